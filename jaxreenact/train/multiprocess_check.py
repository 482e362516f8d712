"""Runs two StarGAN v2 iterations (float64) under ``jax.distributed`` and saves the parameters.

Used by the multi-host test: N processes on 127.0.0.1 must end with the same parameters as one process
on the same global batch. Run as ``python -m jaxreenact.train.multiprocess_check --num_processes 2 --process_id i
--port P --out FILE``; ``--num_processes 1`` runs the single-process baseline.
"""
from __future__ import annotations

import os

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_processes", 1, "Processes in the run.")
flags.DEFINE_integer("process_id", 0, "This process.")
flags.DEFINE_integer("port", 12355, "Coordinator port on 127.0.0.1.")
flags.DEFINE_string("out", None, "Where process 0 writes the parameters (.npz).")
flags.DEFINE_integer("global_batch", 8, "Global batch size.")


def main(argv):
  del argv
  import jax
  jax.config.update("jax_enable_x64", True)
  if FLAGS.num_processes > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{FLAGS.port}", FLAGS.num_processes, FLAGS.process_id)
  import flax
  import jax.numpy as jnp
  import numpy as np

  from jaxreenact.models import stargan_v2  # imports jax: keeps this module jax-free
  from jaxreenact.train import sharding  # imports jax: keeps this module jax-free
  from jaxreenact.train import stargan_v2 as sg  # imports jax: keeps this module jax-free

  cfg = stargan_v2.Config(img_size=32, num_domains=2, latent_dim=8, style_dim=16, max_conv_dim=32, w_hpf=0,
                          base_dim=8)
  hp = sg.HParams(ds_iter=20)
  mesh = sharding.make_mesh()
  state = sg.create_sharded_state(cfg, hp, jax.random.key(0), mesh)
  f64 = lambda t: jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, t)  # noqa: E731
  state = jax.jit(lambda s: s.replace(params=f64(s.params), ema=f64(s.ema), opt_state=f64(s.opt_state)),
                  out_shardings=sharding.replicated(mesh))(state)
  step = sg.jit_train_step(cfg, hp, mesh)
  b, n, i = FLAGS.global_batch, jax.process_count(), jax.process_index()
  for it in range(2):
    rng = np.random.default_rng(it)
    full = {"x_src": rng.uniform(-1, 1, (b, 32, 32, 3)), "y_src": rng.integers(0, 2, b),
            "x_ref": rng.uniform(-1, 1, (b, 32, 32, 3)), "x_ref2": rng.uniform(-1, 1, (b, 32, 32, 3)),
            "y_ref": rng.integers(0, 2, b)}
    local = {k: v[i * b // n:(i + 1) * b // n] for k, v in full.items()}  # this host's rows of the global batch
    state, metrics = step(state, sharding.shard_batch(local, mesh))
  params = jax.tree.map(lambda a: np.asarray(a.addressable_shards[0].data), state.params)
  if i == 0:
    flat = {"/".join(k): v for k, v in flax.traverse_util.flatten_dict(params).items()}
    np.savez(FLAGS.out, **flat)
  print(f"process {i}/{n}: devices={jax.device_count()} G/latent_loss={float(metrics['G/latent_loss']):.6f}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["out"])
  app.run(main)

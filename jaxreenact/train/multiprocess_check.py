"""Runs two StarGAN v2 iterations (float64) under ``jax.distributed`` from a given initial state; saves the result.

Used by the multi-host test: N processes on 127.0.0.1 must end with the same parameters as one process on the same
global batch and the same initial state. The test writes that state once (:func:`save_state`, float64) and every
process reads it, so no process compiles an initialiser. Run as ``python -m jaxreenact.train.multiprocess_check
--num_processes 2 --process_id i --port P --init STATE.npz --out FILE``.
"""
from __future__ import annotations


from absl import app, flags

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Only when run as a script: the test imports this module's helpers alongside other absl programs' flags."""
  flags.DEFINE_integer("num_processes", 1, "Processes in the run.")
  flags.DEFINE_integer("process_id", 0, "This process.")
  flags.DEFINE_integer("port", 12355, "Coordinator port on 127.0.0.1.")
  flags.DEFINE_string("init", None, "Initial training state (.npz written by save_state).")
  flags.DEFINE_string("out", None, "Where process 0 writes the parameters (.npz).")
  flags.DEFINE_integer("global_batch", 4, "Global batch size.")


def config():
  """The model and hyper-parameters of the check (also used by the test's one-process reference)."""
  from jaxreenact.models import stargan_v2  # imports jax: keeps this module jax-free until flags are parsed
  from jaxreenact.train import stargan_v2 as sg  # imports jax: as above
  cfg = stargan_v2.Config(img_size=32, num_domains=2, latent_dim=8, style_dim=16, max_conv_dim=32, w_hpf=0,
                          base_dim=8)
  return cfg, sg.HParams(ds_iter=20)


def batch(it: int, b: int):
  """Global batch of iteration ``it`` (float64 images)."""
  import numpy as np
  rng = np.random.default_rng(it)
  return {"x_src": rng.uniform(-1, 1, (b, 32, 32, 3)), "y_src": rng.integers(0, 2, b),
          "x_ref": rng.uniform(-1, 1, (b, 32, 32, 3)), "x_ref2": rng.uniform(-1, 1, (b, 32, 32, 3)),
          "y_ref": rng.integers(0, 2, b)}


def save_state(state, path) -> None:
  """Every leaf of ``state`` (PRNG keys as their raw data), in tree order, to ``path`` (.npz)."""
  import jax
  import numpy as np
  leaves = [jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
            for x in jax.tree.leaves(state)]
  np.savez(path, **{f"{i:05d}": np.asarray(jax.device_get(x)) for i, x in enumerate(leaves)})


def load_state(template, path, sharding=None):
  """The state saved by :func:`save_state`, into the structure of ``template`` (e.g. a ``jax.eval_shape``); with
  ``sharding``, every leaf becomes a global array of it (each process holds the whole file, so any sharding)."""
  import jax
  import numpy as np
  ref, treedef = jax.tree.flatten(template)
  with np.load(path) as f:
    arrays = [f[k] for k in sorted(f.files)]
  if sharding is not None:
    arrays = [jax.make_array_from_callback(a.shape, sharding, lambda idx, a=a: a[idx]) for a in arrays]
  if len(arrays) != len(ref):
    raise ValueError(f"{path}: {len(arrays)} arrays, the state has {len(ref)} leaves")
  leaves = [jax.random.wrap_key_data(a) if jax.dtypes.issubdtype(r.dtype, jax.dtypes.prng_key) else a
            for a, r in zip(arrays, ref)]
  return jax.tree.unflatten(treedef, leaves)


def main(argv):
  del argv
  import jax
  jax.config.update("jax_enable_x64", True)
  if FLAGS.num_processes > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{FLAGS.port}", FLAGS.num_processes, FLAGS.process_id)
  import flax
  import numpy as np

  from jaxreenact.train import sharding  # imports jax: keeps this module jax-free until flags are parsed
  from jaxreenact.train import stargan_v2 as sg  # imports jax: as above

  cfg, hp = config()
  mesh = sharding.make_mesh()
  template = jax.eval_shape(lambda k: sg.init_state(cfg, hp, k), jax.random.key(0))
  state = load_state(template, FLAGS.init, sharding.replicated(mesh))
  step = sg.jit_train_step(cfg, hp, mesh)
  b, n, i = FLAGS.global_batch, jax.process_count(), jax.process_index()
  for it in range(2):
    local = {k: v[i * b // n:(i + 1) * b // n] for k, v in batch(it, b).items()}  # this host's rows
    state, metrics = step(state, sharding.shard_batch(local, mesh))
  params = jax.tree.map(lambda a: np.asarray(a.addressable_shards[0].data), state.params)
  if i == 0:
    flat = {"/".join(k): v for k, v in flax.traverse_util.flatten_dict(params).items()}
    np.savez(FLAGS.out, **flat)
  print(f"process {i}/{n}: devices={jax.device_count()} G/latent_loss={float(metrics['G/latent_loss']):.6f}")


if __name__ == "__main__":
  _define_flags()
  flags.mark_flags_as_required(["init", "out"])
  app.run(main)

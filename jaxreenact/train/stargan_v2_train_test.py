"""StarGAN v2 training: multi-device equivalence, learning actually happens (exact resume after SIGINT/SIGTERM/
SIGKILL: interrupt_test.py, which uses `_train_cmd` and `_env` from here)."""
import dataclasses
import functools
import os
import subprocess
import sys

import jax
import numpy as np
import flax
import pytest

from conftest import STARGAN_RUN_GROUP
from jaxreenact.models import stargan_v2
from jaxreenact.train import sharding
from jaxreenact.train import multiprocess_check
from jaxreenact.train import stargan_v2 as sg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG, HP = multiprocess_check.config()  # the multi-device tests and the multi-process check train the same model
# The two multi-device tests share one initial state and one one-device reference (one worker builds them once).
_multi = pytest.mark.xdist_group("stargan_v2_multi_device")


def _batch(seed, b=8):
  rng = np.random.default_rng(seed)
  return {"x_src": rng.uniform(-1, 1, (b, 32, 32, 3)).astype(np.float32), "y_src": rng.integers(0, 2, b),
          "x_ref": rng.uniform(-1, 1, (b, 32, 32, 3)).astype(np.float32),
          "x_ref2": rng.uniform(-1, 1, (b, 32, 32, 3)).astype(np.float32), "y_ref": rng.integers(0, 2, b)}


@functools.cache
def _sharded_initial_state():
  """The state as launch.train builds it, directly replicated on a 4-device mesh (one initialiser compile, shared by
  the multi-device tests)."""
  with jax.enable_x64(True):
    return sg.create_sharded_state(CFG, HP, jax.random.key(0), sharding.make_mesh(4))


@functools.cache
def _initial_state_f64():
  """That fresh state with every float leaf in float64, on the host."""
  state = _sharded_initial_state()
  f64 = lambda t: jax.tree.map(lambda a: np.asarray(a, np.float64) if a.dtype == np.float32 else a, t)  # noqa: E731
  host = jax.device_get(state)
  return host.replace(params=f64(host.params), ema=f64(host.ema), opt_state=f64(host.opt_state),
                      rng=np.asarray(jax.random.key_data(state.rng)))  # a PRNG key has no host form: its data


def _two_steps(n_devices):
  """Two iterations in float64 (batches of multiprocess_check) from the shared initial state: Adam's first step with
  β1=0 is lr·sign(g), so in float32 a gradient below round-off (which differs with the reduction order across
  devices) can flip a parameter by 2·lr."""
  with jax.enable_x64(True):
    mesh = sharding.make_mesh(n_devices)
    host = _initial_state_f64()
    state = sharding.replicate(host.replace(rng=jax.random.wrap_key_data(host.rng)), mesh)
    step = sg.jit_train_step(CFG, HP, mesh, compiler_options={"xla_backend_optimization_level": 0})
    for i in range(2):
      old = state
      state, metrics = step(state, sharding.shard_batch(multiprocess_check.batch(i, 4), mesh))
      assert old.params["generator"]["params"]["from_rgb"]["kernel"].is_deleted()  # the state was donated
    return jax.device_get(state.params), jax.device_get(metrics)


@functools.cache
def _one_device():
  return _two_steps(1)


@_multi
def test_four_devices_equal_one_device():
  assert len(jax.devices()) >= 4, "conftest sets --xla_force_host_platform_device_count=4"
  p1, m1 = _one_device()
  p4, m4 = _two_steps(4)
  assert jax.tree.leaves(p4)[0].dtype == np.float64
  for k in m1:
    np.testing.assert_allclose(m4[k], m1[k], rtol=1e-5, atol=1e-6, err_msg=k)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=0), p4, p1)


@_multi
def test_state_is_replicated_and_batch_sharded():
  mesh = sharding.make_mesh(4)
  state = _sharded_initial_state()
  leaves = jax.tree.leaves(state)
  assert all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == 4 for x in leaves), "state not replicated"
  b = sharding.shard_batch(_batch(0), mesh)
  assert b["x_src"].sharding.spec == jax.sharding.PartitionSpec("data")
  assert len(b["x_src"].addressable_shards) == 4 and b["x_src"].addressable_shards[0].data.shape[0] == 2
  with pytest.raises(ValueError, match="divisible"):
    sharding.check_batch_divisible(6, mesh)


# The model of the launch.train runs of the tests (conftest's stargan_run, interrupts, damaged checkpoints) and of
# test_learning_lowers_cycle_loss: the tiny preset narrowed to CFG, at batch 4 and lr 1e-3 (10x the official, so that
# a few steps show learning). One model, batch and optimiser: every one of them runs the same two compiled programs
# (initialiser and training step), compiled once per test run and read back from its persistent cache after that.
LEARNING_LR = 1e-3
RUN_BATCH = 4


def _train_cmd(workdir, total, every=5):
  return [sys.executable, "-m", "launch.train", "--config", "configs/stargan_v2.py:tiny", "--workdir", str(workdir),
          f"--config.total_steps={total}", f"--config.checkpoint_every={every}", "--config.sample_every=1000",
          "--config.log_every=5", f"--config.batch_size={RUN_BATCH}", f"--config.model.base_dim={CFG.base_dim}",
          f"--config.model.max_conv_dim={CFG.max_conv_dim}", f"--config.hparams.lr={LEARNING_LR}",
          "--config.num_devices=1"]


def _env(tmp_cache):
  """The environment of the tests' launch.train runs: this process's XLA flags (conftest's: fast compile, 4 CPU
  devices of which the runs use one), so that their programs are the ones the in-process tests compile; the run's
  compilation cache (conftest), else ``tmp_cache``."""
  return dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(tmp_cache),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


@pytest.mark.slow
@pytest.mark.xdist_group(STARGAN_RUN_GROUP)  # after conftest's stargan_run on its worker: the programs are cached
def test_learning_lowers_cycle_loss():
  """30 steps of the tests' launch.train model (``_train_cmd``: batch 4, lr 1e-3) on the embedded faces, built as
  launch.train builds it (same initialiser, step and default matmul precision, so both compiled programs are the
  ones conftest's stargan_run wrote to the run's cache): the cycle loss must fall well below its start.

  Measured on 2 CPU cores (means of steps 1-5 -> 26-30): data seeds 0, 1, 2: 0.94 -> 0.69, 0.93 -> 0.62,
  0.93 -> 0.59 (ratios 0.73, 0.66, 0.64); at the official lr 1e-4, 0.98 -> 0.92 (0.93). Frozen or wrong-signed
  gradients leave it at or above its start.
  """
  from jaxreenact.data import sample_data_dir, stargan_v2_pipeline
  hp = dataclasses.replace(sg.HParams.preset("tiny"), lr=LEARNING_LR)
  with jax.default_matmul_precision(None):  # launch.train's setting (conftest sets "highest" for parity)
    mesh = sharding.make_mesh(1)
    state = sg.create_sharded_state(CFG, hp, jax.random.key(0), mesh)
    step = sg.jit_train_step(CFG, hp, mesh)
    data = stargan_v2_pipeline(sample_data_dir().stargan_v2, "train", CFG.img_size, RUN_BATCH, 0, process_index=0,
                               process_count=1)
    cyc = []
    for _ in range(30):
      state, m = step(state, sharding.shard_batch(next(data), mesh))
      cyc.append(float(m["G/latent_cyc"]))
  start, end = np.mean(cyc[:5]), np.mean(cyc[-5:])
  assert end < 0.8 * start, (start, end)


def _free_port():
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@_multi
@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
  """jax.distributed over two processes on 127.0.0.1 (one CPU device each) == one device, same global batch and
  initial state."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",  # unoptimised XLA backend: half the compile time, same arithmetic
             XLA_FLAGS="--xla_force_host_platform_device_count=1 --xla_backend_optimization_level=0")
  with jax.enable_x64(True):
    multiprocess_check.save_state(_initial_state_f64(), tmp_path / "init.npz")
  port = _free_port()
  procs = [subprocess.Popen([sys.executable, "-m", "jaxreenact.train.multiprocess_check", "--num_processes", "2",
                             "--process_id", str(i), "--port", str(port), "--init", str(tmp_path / "init.npz"),
                             "--out", str(tmp_path / "two.npz")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
    assert "devices=2" in out  # the mesh spans both processes' devices
  one = {"/".join(k): v for k, v in flax.traverse_util.flatten_dict(_one_device()[0]).items()}
  two = np.load(tmp_path / "two.npz")
  assert sorted(one) == sorted(two.files) and len(one) > 10
  for k in one:
    assert two[k].dtype == np.float64, k
    np.testing.assert_allclose(two[k], one[k], atol=1e-5, rtol=0, err_msg=k)

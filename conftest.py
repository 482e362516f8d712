"""Shared pytest setup: float32 at highest matmul precision in both frameworks (docs/facts.md §4)."""
import os

# 4 fake CPU devices for the sharding tests. Backend optimisation level 0: LLVM code generation without its
# optimisation passes, the same HLO (so the same arithmetic, FLOP counts and layouts) at about 60 % of the CPU
# compile time; nearly every test runs a program a few times, so compiles dominate the suite. Scripts the tests
# launch inherit it. Speed is measured by benchmarks/, never here.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

# One persistent compilation cache per test run, shared by the xdist workers and the scripts the tests launch
# (jaxreenact/compile_cache.py): many tests compile the same tiny training steps in fresh jits or processes, and
# only the first pays. Fresh for every run (removed at the end), so a run's timing never depends on an earlier one.
# The process that imports this first (pytest, or xdist's controller) names it; workers inherit the variable.
_CACHE = os.path.join(tempfile.gettempdir(), f"jaxreenact_test_xla_{os.getpid()}")
os.environ.setdefault("JAXREENACT_COMPILE_CACHE", _CACHE)
if os.environ["JAXREENACT_COMPILE_CACHE"].lower() not in ("off", "0", "false", "no"):
  from jaxreenact import compile_cache  # noqa: E402

  compile_cache.enable(os.environ["JAXREENACT_COMPILE_CACHE"])


def pytest_collection_modifyitems(config, items):
  """Slow tests first (a stable sort: the rest keep their order). xdist's loadgroup hands out its work units in
  collection order after the multi-test groups (largest first), so a minute-long test collected last would run
  alone at the end while the other worker idles; started first, the short tests fill in around it. Grouped tests
  keep their place: their order inside a group is the one their fixtures and caches assume."""
  items.sort(key=lambda it: 0 if it.get_closest_marker("slow") and not it.get_closest_marker("xdist_group") else 1)


def pytest_sessionfinish(session, exitstatus):
  if os.environ.get("JAXREENACT_COMPILE_CACHE") == _CACHE:  # only the process that named it cleans up
    shutil.rmtree(_CACHE, ignore_errors=True)

try:
  import torch  # noqa: E402

  torch.backends.cuda.matmul.allow_tf32 = False
  torch.backends.cudnn.allow_tf32 = False
  # One share of the cores per xdist worker: tiny-config torch ops with more OpenMP threads than free cores spend
  # their time in barriers (a DeepSpeed tiny iteration: 0.33 s with 1 thread, 1.07 s with 2 while a core is busy).
  _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
  torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))
except ImportError:  # torch is an optional extra; torch-dependent tests importorskip it.
  pass


# The tests that train the tiny StarGAN v2 through launch.train (interrupts, damaged checkpoints, workdir
# conversion) share one xdist group, so the finished run below is built once per test run; the StarGAN v2 learning
# test trains the same model in-process, in the same group, so it reads both compiled programs from the cache.
STARGAN_RUN_GROUP = "stargan_v2_tiny_run"
STARGAN_RUN_STEPS = 8  # checkpoints at steps 1, 5 and 8 (Orbax saves the first step, then every 5 and the last)


@pytest.fixture(scope="session")
def stargan_run(tmp_path_factory):
  """A finished tiny StarGAN v2 run of ``launch.train`` (checkpoints 1, 5, 8; a metrics row per step). Read-only:
  a test that changes a run works on a copy."""
  from jaxreenact.train.stargan_v2_train_test import ROOT, _env, _train_cmd
  wd = tmp_path_factory.mktemp("stargan_run") / "wd"
  cmd = _train_cmd(wd, STARGAN_RUN_STEPS) + ["--config.log_every=1"]
  r = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path_factory.mktemp("xla")), capture_output=True, text=True,
                     timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  return wd

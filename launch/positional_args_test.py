"""Every launch entry point refuses a stray positional argument before doing any work.

absl passes positional arguments to ``main`` silently: ``python -m launch.benchmark dagan`` used to benchmark
StarGAN v2 (the default --model) and exit 0.
"""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Flags that let each command get past absl's required-flag check, so that the refusal seen is the positional one.
REQUIRED = {
    "benchmark": [],
    "compare": ["--workdir", "{tmp}/compare"],
    "complexity": ["--out", "{tmp}/complexity"],
    "convert": [],
    "deepspeed_train": [],
    "evaluate": [],
    "prepare_data": ["sample"],  # its one positional argument is the sub-command; a second one is refused
    "reenact": [],
    "sample": [],
    "train": ["--config", "configs/stargan_v2.py:tiny", "--workdir", "{tmp}/train"],
}
# Every module runs under launch.cli.run, so every refusal is one line.
SKIP: set[str] = set()
ONE_LINE = set(REQUIRED)


def _entry_points():
  names = [os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "launch", "*.py"))]
  return sorted(n for n in names if not n.endswith("_test") and n not in ("__init__", "cli") and n not in SKIP)


def test_every_entry_point_is_listed():
  # A new launch module must be added to REQUIRED, so the test below covers it.
  assert set(_entry_points()) == set(REQUIRED)


@pytest.mark.parametrize("module", sorted(REQUIRED))
def test_stray_positional_argument_is_refused(module, tmp_path):
  args = [a.format(tmp=tmp_path) for a in REQUIRED[module]]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  res = subprocess.run([sys.executable, "-m", f"launch.{module}", *args, "dagan"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
  assert res.returncode != 0, res.stdout[-2000:]
  last = res.stderr.strip().splitlines()[-1]
  assert "dagan" in last and ("unexpected" in last or "exactly one command" in last), res.stderr[-2000:]
  assert not res.stdout.strip()  # nothing ran: no JSON result, no progress output
  assert not os.listdir(tmp_path)  # no output directory was created
  if module in ONE_LINE:
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr

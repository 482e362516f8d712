"""launch.train refuses what it cannot start from in one line, before writing anything: an unwritable --workdir,
a data_dir with no prepared dataset, a depth run to start from that does not exist."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("extra, needle", [
    (["--workdir", "/proc/run"], "--workdir=/proc/run: cannot write in /proc"),
    (["--workdir", "{tmp}/run", "--config.data_dir={tmp}/nope"], "no prepared talking_heads dataset at {tmp}/nope"),
    (["--workdir", "{tmp}/run", "--config.depth_checkpoint={tmp}/nope"], "--config.depth_checkpoint={tmp}/nope: "),
])
def test_unusable_inputs_end_in_one_line_and_write_nothing(tmp_path, extra, needle):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  args = [a.format(tmp=tmp_path) for a in extra]
  res = subprocess.run([sys.executable, "-m", "launch.train", "--config", "configs/dagan.py:tiny", *args], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
  errors = [line for line in res.stderr.splitlines() if line[:1] not in ("I", "W")]  # absl log lines aside
  assert res.returncode != 0 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
  assert errors[0].startswith("launch.train: error: ") and needle.format(tmp=tmp_path) in errors[0], errors[0]
  assert not (tmp_path / "run").exists()  # no config.json that a corrected retry would be refused against

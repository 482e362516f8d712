"""A damaged newest checkpoint: inference and conversion fall back to the newest step that restores (naming the
damaged one, touching nothing); a resumed training run continues from it and moves the damaged step aside."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train(workdir, total):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "launch.train", "--config", "configs/stargan_v2.py:tiny", "--workdir",
                         str(workdir), f"--config.total_steps={total}", "--config.checkpoint_every=1",
                         "--config.sample_every=1000", "--config.log_every=1"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900)


def _damage(workdir, step):
  """Deletes the largest file of a step's saved state (what a partial copy or a disk error leaves)."""
  state = workdir / "checkpoints" / str(step) / "state"
  files = [p for p in state.rglob("*") if p.is_file()]
  victim = max(files, key=lambda p: p.stat().st_size)
  victim.unlink()
  return victim


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
  wd = tmp_path_factory.mktemp("run") / "wd"
  res = _train(wd, 2)
  assert res.returncode == 0, res.stderr[-3000:]
  return wd


@pytest.mark.slow
def test_inference_falls_back_to_the_previous_step_and_changes_nothing(run2, tmp_path, caplog):
  from jaxreenact.inference import checkpoints
  wd = tmp_path / "wd"
  shutil.copytree(run2, wd)
  _damage(wd, 2)
  before = sorted(str(p.relative_to(wd)) for p in wd.rglob("*"))
  with caplog.at_level("WARNING"):
    loaded = checkpoints.load_stargan_v2(wd)
  assert loaded.step == 1
  assert any("step 2 is damaged" in r.getMessage() for r in caplog.records)
  assert sorted(str(p.relative_to(wd)) for p in wd.rglob("*")) == before  # read-only use: nothing moved
  _damage(wd, 1)
  with pytest.raises(checkpoints.CheckpointError, match="no checkpoint restores: step 2: .*; step 1: "):
    checkpoints.load_stargan_v2(wd)


@pytest.mark.slow
def test_resume_continues_from_the_newest_good_step(run2, tmp_path):
  wd = tmp_path / "wd"
  shutil.copytree(run2, wd)
  _damage(wd, 2)
  res = _train(wd, 3)
  assert res.returncode == 0, res.stderr[-3000:]
  assert "step 2 is damaged" in res.stderr
  ckpts = wd / "checkpoints"
  assert (ckpts / "2.damaged").is_dir()  # kept for inspection, out of Orbax's way
  assert {p.name for p in ckpts.iterdir() if p.name.isdigit()} >= {"2", "3"}  # step 2 trained and saved again
  steps = [json.loads(line)["step"] for line in (wd / "metrics.jsonl").read_text().splitlines()]
  assert steps == [1, 2, 3]

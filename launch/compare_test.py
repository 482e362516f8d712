"""launch.compare at a reduced step count: the report completes, stages are cached, a failing part is reported."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compare(workdir, *extra):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "launch.compare", "--workdir", str(workdir), *extra], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_reduced_compare_writes_report_and_survives_a_failing_stage(tmp_path):
  # Train StarGAN v2 for 2 steps; evaluate DaGAN from a file that is not a checkpoint (must fail in its section);
  # skip the expensive stages (the full run is the README's main command, ~12 min on 2 cores).
  skip = "train_dagan,speed_stargan_v2,speed_dagan,complexity,quality_stargan_v2,media"
  bad = tmp_path / "not_a_ckpt.pth.tar"
  bad.write_text("this is not a checkpoint")
  res = _compare(tmp_path, "--steps", "2", "--skip", skip, "--dagan_ckpt", str(bad))
  assert res.returncode == 1, res.stderr[-3000:]  # a failed stage fails the command, after the report is written
  assert "1 failed stage(s): quality_dagan" in res.stdout
  for name in ("report.md", "report.html", "report.json", "chart_losses.png"):
    assert (tmp_path / name).is_file(), name
  report = json.loads((tmp_path / "report.json").read_text())
  stages = report["stages"]
  assert stages["train_stargan_v2"]["status"] == "ok" and stages["train_stargan_v2"]["steps"] == 2
  assert stages["quality_dagan"]["status"] == "failed" and "not_a_ckpt" in stages["quality_dagan"]["error"]
  assert stages["complexity"]["status"] == "skipped"
  md = (tmp_path / "report.md").read_text()
  assert "| quality_dagan | failed |" in md and "| train_stargan_v2 | ok |" in md
  assert "Table 10" in md and "1,488.63" in md  # the study's figures are always shown
  html = (tmp_path / "report.html").read_text()
  assert "data:image/png;base64," in html  # figures embedded: the file stands alone
  # Re-running reuses the finished training stage instead of training again.
  res = _compare(tmp_path, "--steps", "2", "--skip", skip, "--dagan_ckpt", str(bad))
  assert res.returncode == 1, res.stderr[-3000:]
  assert "train_stargan_v2: reused" in res.stdout


@pytest.mark.parametrize("args,flag", [(["--skip", "qualty_dagan"], "--skip"), (["--dagan_data", "/no/such"],
                                                                               "--dagan_data"), (["dagan"], "dagan"),
                                       (["--workdir", "/proc/compare"], "--workdir=/proc/compare")])
def test_bad_options_are_refused_before_any_stage_runs(tmp_path, args, flag):
  res = _compare(tmp_path / "wd", *args)
  assert res.returncode != 0
  lines = res.stderr.strip().splitlines()
  assert len(lines) == 1 and flag in lines[0], res.stderr[-2000:]
  assert not (tmp_path / "wd" / "stages").exists()  # nothing ran

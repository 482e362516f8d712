"""launch.reenact refuses an unusable --out / --depth_video before loading or running anything.

Before, `--out <a directory>` or `--out result` exited 0 after all the compute, with the ffmpeg error only in the
log and the JSON/Markdown reports naming a video that did not exist.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _reenact(*extra):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "launch.reenact", "--checkpoint", "random:tiny", "--source_image",
                         "sample:astronaut", "--driving_video", "sample:carphone", "--size", "64", "--max_frames",
                         "4", *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("flag, value, reason", [
    ("--out", "{tmp}/adir", "is a directory"),
    ("--out", "{tmp}/result", "must end in .mp4"),
    ("--out", "/proc/x.mp4", "cannot write in /proc"),  # /proc refuses new files even to root
    ("--out", "{tmp}/a_file/x.mp4", "is not a directory"),
    ("--depth_video", "{tmp}/adir", "is a directory"),
    ("--depth_video", "{tmp}/ok.mp4", "the same file as --out"),
])
def test_unusable_output_is_refused_before_any_compute(tmp_path, flag, value, reason):
  (tmp_path / "adir").mkdir()
  (tmp_path / "a_file").write_text("a file, not a folder")
  value = value.format(tmp=tmp_path)
  args = ["--out", str(tmp_path / "ok.mp4")] if flag != "--out" else []
  res = _reenact(*args, flag, value)
  assert res.returncode != 0
  lines = res.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"launch.reenact: error: {flag}={value}: "), res.stderr[-2000:]
  assert reason in lines[0]
  assert not res.stdout.strip()  # no JSON result printed
  # Nothing was written: no video, no preview, no report naming a video.
  assert sorted(os.listdir(tmp_path)) == ["a_file", "adir"] and not os.listdir(tmp_path / "adir")

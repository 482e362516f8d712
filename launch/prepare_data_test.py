"""`python -m launch.prepare_data` end to end, as a user runs it (subprocesses, real flags, JSON summaries)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from jaxreenact.data import media, testdata
from launch import prepare_data

REPO = Path(__file__).resolve().parents[1]


class _Result:
  def __init__(self, returncode, stdout, stderr):
    self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _subprocess(*args, timeout=300):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  return subprocess.run([sys.executable, "-m", "launch.prepare_data", *map(str, args)], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _run(*args, capsys=None):
  """The command in-process (same flags, same main) — subprocess start-up would dominate the test time."""
  with flagsaver.flagsaver():
    try:
      argv = flags.FLAGS(["prepare_data", *map(str, args)])
      prepare_data.main(argv)
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # app.UsageError and friends: what absl.app would print and exit 1 for
      print(str(e), file=sys.stderr)
      code = 1
    finally:
      flags.FLAGS.unparse_flags()
  out = capsys.readouterr()
  return _Result(code, out.out, out.err)


def test_help_lists_every_command():
  r = _subprocess("--help")
  assert r.returncode in (0, 1)  # absl's --help handler exits with 1 after printing the usage
  assert r.stdout.startswith("Prepare training data")
  for cmd in ("images", "videos", "crop", "align", "sample"):
    assert f"\n  {cmd} " in r.stdout
  for flag in ("--src", "--data_dir", "--out", "--summary", "--min_size", "--detector", "--format"):
    assert flag in r.stdout
  bad = _subprocess("frobnicate")
  assert bad.returncode != 0 and "expected exactly one command" in bad.stderr


def test_images_and_videos_commands(tmp_path, capsys):
  src_i, src_v, out = tmp_path / "imgs", tmp_path / "vids", tmp_path / "tfds"
  bad = testdata.write_bad_image_tree(src_i)
  r = _run("images", "--src", src_i, "--data_dir", out, "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  assert "train: 9 images" in r.stdout and f"skipped {len(bad)} file(s)" in r.stdout
  summary = json.loads((out / "prepare_images.json").read_text(encoding="utf-8"))
  assert summary["totals"] == {"train": 9, "val": 1} and summary["num_skipped"] == len(bad)
  assert any(s["path"].endswith("zero.png") and "zero-byte" in s["reason"] for s in summary["skipped"])

  testdata.write_video_tree(src_v, with_bad=True)
  r = _run("videos", "--src", src_v, "--data_dir", out, "--frame_format", "jpeg", "--summary", tmp_path / "v.json",
           "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  summary = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
  assert summary["examples"]["train"] == {"id10001": 2, "id10002": 1, "vidéo_x": 1}
  assert summary["frames"] == {"test": 6, "train": 33} and summary["num_skipped"] == 5
  again = _run("images", "--src", src_i, "--data_dir", out, "--noprogress", capsys=capsys)
  assert again.returncode == 0 and "already prepared, reused" in again.stdout


def test_nothing_usable_exits_with_an_error(tmp_path, capsys):
  (tmp_path / "src" / "train" / "faces").mkdir(parents=True)
  (tmp_path / "src" / "train" / "faces" / "x.jpg").write_bytes(b"")
  r = _run("images", "--src", tmp_path / "src", "--data_dir", tmp_path / "out", "--noprogress", capsys=capsys)
  assert r.returncode == 1 and "no usable image" in r.stderr and str(tmp_path / "src" / "train") in r.stderr
  r = _run("images", "--data_dir", tmp_path / "out", capsys=capsys)
  assert r.returncode != 0 and "needs --src" in r.stderr


def test_align_and_crop_commands(tmp_path, capsys):
  from skimage import data as skdata

  from jaxreenact.data import sample

  (tmp_path / "stills" / "train" / "x").mkdir(parents=True)
  Image.fromarray(skdata.astronaut()).save(tmp_path / "stills" / "train" / "x" / "a.jpg")
  r = _run("align", "--src", tmp_path / "stills", "--out", tmp_path / "aligned", "--img_size", 64, "--noprogress",
           capsys=capsys)
  assert r.returncode == 0, r.stderr
  assert np.asarray(Image.open(tmp_path / "aligned" / "train" / "x" / "a.png")).shape == (64, 64, 3)
  assert json.loads((tmp_path / "aligned" / "prepare_align.json").read_text())["examples"]["aligned"]["images"] == 1

  frames, _ = media.read_video_frames(sample.carphone_path(), max_frames=32)
  media.write_video(tmp_path / "clip.mp4", frames)
  r = _run("crop", "--src", tmp_path / "clip.mp4", "--out", tmp_path / "crops", "--img_size", 64, "--min_frames", 16,
           "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  clips = [p for p in (tmp_path / "crops").iterdir() if p.is_dir()]
  assert len(clips) == 1 and clips[0].name.startswith("clip#000000#")


def test_sample_command_builds_offline(tmp_path):
  env_root = tmp_path / "sample"
  r = _subprocess("sample", "--data_dir", env_root, "--noprogress")  # a real run, as from a clean install
  assert r.returncode == 0, r.stderr
  assert "sample data ready" in r.stdout and (env_root / "image_domains").is_dir()
  summary = json.loads((env_root / "prepare_sample.json").read_text(encoding="utf-8"))
  assert summary["image_domains"]["totals"]["train"] >= 90 and summary["talking_heads"]["frames"]["train"] >= 30

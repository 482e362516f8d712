"""launch.reenact / launch.sample / launch.evaluate end to end with tiny freshly drawn models (subprocesses)."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *args, timeout=600):
  env = dict(os.environ, JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1")  # one torch thread: faster on 2 shared cores
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


@pytest.mark.parametrize("module", ["launch.reenact", "launch.sample", "launch.evaluate"])
def test_help_and_usage_errors(module):
  res = _run(module, "--help")  # absl prints the module docstring and flags, then exits with status 1
  assert "--checkpoint" in res.stdout and "python -m " + module in res.stdout
  res = _run(module)
  assert res.returncode != 0 and "required" in res.stderr


def test_reenact_keeps_frames_fps_and_audio(tmp_path):
  from jaxreenact.data import media
  from jaxreenact.data.sample import carphone_path
  from jaxreenact.inference import video
  frames, _ = media.read_video_frames(carphone_path(), max_frames=12)
  silent = tmp_path / "silent.mp4"
  video.write_video(silent, frames, 12.5)
  driving = tmp_path / "driving.mp4"
  subprocess.run([video.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(silent), "-f", "lavfi",
                  "-i", "sine=frequency=300:duration=2", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                  "-shortest", str(driving)], check=True)
  source = tmp_path / "face.png"
  Image.fromarray(data.astronaut()).save(source)
  out = tmp_path / "out" / "result.mp4"
  res = _run("launch.reenact", "--checkpoint", "random:tiny", "--source_image", str(source), "--driving_video",
             str(driving), "--out", str(out), "--size", "64", "--side_by_side", "--depth_video",
             str(tmp_path / "out" / "depth.mp4"), "--find_best_frame", "--crop", "--adapt_scale")
  assert res.returncode == 0, res.stderr[-3000:]
  got, fps, _ = video.read_video(out)
  assert len(got) == 12 and got[0].shape == (64, 4 * 64, 3)  # source | driving | result | depth
  assert fps == pytest.approx(12.5, abs=0.01)
  assert video.probe(out)["has_audio"]
  depth, dfps, _ = video.read_video(tmp_path / "out" / "depth.mp4")
  assert len(depth) == 12 and depth[0].shape == (64, 64, 3) and dfps == pytest.approx(12.5, abs=0.01)
  report = json.loads((tmp_path / "out" / "result.json").read_text())
  assert report["frames"] == 12 and report["fps"] == pytest.approx(12.5, abs=0.01) and report["videos"]["result"]["audio"]
  assert report["source_crop"]["face_found"] and 0 <= report["initial_frame"] < 12
  assert (tmp_path / "out" / "result.md").read_text().startswith("# DaGAN reenactment")
  assert (tmp_path / "out" / "result_preview.png").is_file()


def test_sample_writes_grids_and_videos(tmp_path):
  photo = data.astronaut()
  for d, (y, x) in {"dom_a": (0, 0), "dom_b": (200, 200)}.items():
    (tmp_path / "src" / d).mkdir(parents=True)
    for i in range(2):
      Image.fromarray(photo[y + 30 * i:y + 30 * i + 256, x:x + 256]).save(tmp_path / "src" / d / f"{i}.png")
  out = tmp_path / "samples"
  res = _run("launch.sample", "--checkpoint", "random:tiny", "--src_dir", str(tmp_path / "src"), "--out_dir", str(out),
             "--num_src", "2", "--num_ref", "4", "--num_latent", "2", "--psi", "0.5,1.0", "--video_latent_codes", "2")
  assert res.returncode == 0, res.stderr[-3000:]
  s = 32
  assert np.asarray(Image.open(out / "reference.png")).shape == ((1 + 4) * s, (1 + 2) * s, 3)
  for d in ("dom_a", "dom_b"):
    for psi in ("0.5", "1"):
      assert np.asarray(Image.open(out / f"latent_{d}_psi{psi}.png")).shape == ((1 + 2) * s, 2 * s, 3)
  from jaxreenact.inference import video
  for name in ("video_ref", "video_latent"):  # two interpolations of 31 frames, last frame held 10 more
    frames, fps, _ = video.read_video(out / f"{name}.mp4")
    assert len(frames) == 2 * 31 + 10 and fps == pytest.approx(15.0, abs=0.01)
  report = json.loads((out / "results.json").read_text())
  assert report["domains"] == ["dom_a", "dom_b"] and report["videos"]["video_ref"]["frames"] == 72
  assert "![reference](reference.png)" in (out / "README.md").read_text()


def test_evaluate_dagan_reports(tmp_path):
  out = tmp_path / "eval"
  res = _run("launch.evaluate", "--model", "dagan", "--checkpoint", "random:tiny", "--size", "64", "--max_frames", "3",
             "--metrics", "l1,psnr,ssim,lpips,akd", "--out_dir", str(out))
  assert res.returncode == 0, res.stderr[-3000:]
  report = json.loads((out / "results.json").read_text())
  summary = report["summary"]
  assert summary["frames"] == 3 and summary["clips"] == 1
  assert 0 < summary["l1"] < 1 and 0 < summary["lpips"] and -1 <= summary["ssim"] <= 1
  with open(out / "frames.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 3 and [r["driving_frame"] for r in rows] == ["0", "1", "2"]
  assert "| all | 3 |" in (out / "README.md").read_text()
  assert len(list((out / "clips").glob("*.mp4"))) == 1 and len(list((out / "clips").glob("*.png"))) == 1


def test_evaluate_stargan_v2_reports(tmp_path):
  pytest.importorskip("torch")
  out = tmp_path / "eval"
  res = _run("launch.evaluate", "--model", "stargan_v2", "--checkpoint", "random:tiny", "--num_outs_per_domain", "2",
             "--max_per_domain", "2", "--max_real", "4", "--batch_size", "2", "--out_dir", str(out))
  assert res.returncode == 0, res.stderr[-3000:]
  report = json.loads((out / "results.json").read_text())
  m = report["metrics"]
  for mode in ("latent", "reference"):
    assert {f"FID_{mode}/lfw2photo", f"FID_{mode}/photo2lfw", f"FID_{mode}/mean", f"LPIPS_{mode}/mean"} <= set(m)
    assert m[f"FID_{mode}/mean"] > 0 and m[f"LPIPS_{mode}/mean"] > 0
    assert len(list((out / "generated" / mode / "lfw2photo").glob("*.png"))) == 2 * 2
  assert (out / "latent_outputs.png").is_file() and "| FID | latent | mean |" in (out / "README.md").read_text()


def test_sample_names_an_unusable_source_image(tmp_path):
  """A zero-byte image in --src_dir: one line naming the file, a non-zero exit, nothing written."""
  for d in ("dom_a", "dom_b"):
    (tmp_path / "src" / d).mkdir(parents=True)
    Image.fromarray(data.astronaut()[:64, :64]).save(tmp_path / "src" / d / "ok.png")
  (tmp_path / "src" / "dom_b" / "zero.png").write_bytes(b"")
  out = tmp_path / "samples"
  res = _run("launch.sample", "--checkpoint", "random:tiny", "--src_dir", str(tmp_path / "src"), "--out_dir", str(out),
             "--novideos")
  errors = [line for line in res.stderr.splitlines() if not line.startswith("I")]  # absl INFO log lines aside
  assert res.returncode != 0 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
  assert errors[0].startswith("launch.sample: error: --src_dir=") and str(tmp_path / "src" / "dom_b" / "zero.png") in errors[0]
  assert "zero-byte" in errors[0] and not out.exists()


def test_domain_folder_names_an_image_that_is_not_one(tmp_path):
  from jaxreenact.inference import stargan_v2 as sgi
  (tmp_path / "ref" / "dom").mkdir(parents=True)
  (tmp_path / "ref" / "dom" / "notes.jpg").write_text("not a JPEG")
  with pytest.raises(ValueError, match=r"--ref_dir=.*: cannot use image .*notes\.jpg: "):
    sgi.load_domain_folder(tmp_path / "ref", 32, flag="--ref_dir")


@pytest.mark.parametrize("case", ["missing", "text_file", "out_dir_is_a_file"])
def test_sample_checkpoint_and_output_errors_are_one_line(tmp_path, case):
  """A missing checkpoint, a text file given as one, an --out_dir that cannot be created: one line naming the flag
  and the path, a non-zero exit, no traceback, nothing written."""
  ckpt, out = tmp_path / "missing.ckpt", tmp_path / "samples"
  if case == "text_file":
    ckpt.write_text("not a checkpoint\n")
  if case == "out_dir_is_a_file":
    ckpt = "random:tiny"
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "samples"
  res = _run("launch.sample", "--checkpoint", str(ckpt), "--out_dir", str(out), "--novideos")
  errors = [line for line in res.stderr.splitlines() if not line.startswith("I")]  # absl INFO log lines aside
  assert res.returncode != 0 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
  flag, path = ("--out_dir", out) if case == "out_dir_is_a_file" else ("--checkpoint", ckpt)
  assert errors[0].startswith(f"launch.sample: error: {flag}={path}"), errors[0]
  assert not out.exists()
  if case == "text_file":
    assert "weights_only=False" not in res.stderr and ckpt.read_text() == "not a checkpoint\n"

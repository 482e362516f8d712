"""TFDS builders on generated trees holding every bad-input case; no TensorFlow is imported."""
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxreenact.data import builders, media, testdata


def _reasons(report):
  return {s["path"]: s["reason"] for s in report.skipped}


def _find(reasons, rel):
  hits = [r for p, r in reasons.items() if p.endswith(rel)]
  assert hits, f"{rel} not reported as skipped; skipped: {sorted(reasons)}"
  return hits[0]


@pytest.fixture(scope="module")
def images_prepared(tmp_path_factory):
  src = tmp_path_factory.mktemp("images_src")
  bad = testdata.write_bad_image_tree(src)
  out = tmp_path_factory.mktemp("images_tfds")
  report = builders.prepare_image_domains(src, out, target_size=32, progress=False)
  return src, out, bad, report


def test_image_domains_counts_labels_and_skips(images_prepared):
  src, out, bad, report = images_prepared
  assert report.examples == {"train": {"café": 1, "cats": 3, "dogs": 5}, "val": {"café": 0, "cats": 1, "dogs": 0}}
  reasons = _reasons(report)
  assert "zero-byte" in _find(reasons, bad["zero"])
  assert "not a decodable image" in _find(reasons, bad["corrupt"])
  assert "not a decodable image" in _find(reasons, bad["truncated"])
  assert "not a decodable image" in _find(reasons, bad["truncated_png"])
  assert "not a decodable image" in _find(reasons, bad["text"])
  assert "not a .jpg" in _find(reasons, bad["readme"])
  assert "empty domain folder" in _find(reasons, bad["empty_domain"])
  assert "outside a domain folder" in _find(reasons, bad["stray"])
  assert report.num_skipped == len(bad)
  notes = {n["path"]: n["note"] for n in report.notes}
  assert any(p.endswith("tiny.png") and "smaller than the target size" in n for p, n in notes.items())
  for name in ("gray.jpg", "rgba.png", "palette.png", "sixteen.png"):
    assert any(p.endswith(name) and "converted" in n for p, n in notes.items()), name
  assert "tensorflow" not in sys.modules


def test_image_domains_records(images_prepared):
  _, out, _, _ = images_prepared
  view = builders.load_image_domains(out, "train")
  assert view.domains == ["café", "cats", "dogs"]  # sorted names → labels, empty domain dropped
  assert view.domain_ranges == [(0, 1), (1, 3), (4, 5)]
  by_path = {}
  for label, (start, count) in enumerate(view.domain_ranges):
    for i in range(start, start + count):
      rec = view.source[i]
      assert int(rec["label"]) == label
      by_path[rec["path"].decode().removeprefix("train/")] = np.asarray(media.decode_rgb(rec["image"]))
  assert set(by_path) == {"café/visage_é.jpg", "cats/rgb.jpg", "cats/rgb.png", "cats/sub/nested.png", "dogs/gray.jpg",
                          "dogs/rgba.png", "dogs/palette.png", "dogs/sixteen.png", "dogs/tiny.png"}
  for img in by_path.values():
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[-1] == 3
  gray = by_path["dogs/gray.jpg"]
  assert gray.shape == (48, 48, 3) and np.array_equal(gray[..., 0], gray[..., 1])
  np.testing.assert_array_equal(by_path["dogs/rgba.png"], testdata.tagged_image(7, 40))  # alpha dropped
  sixteen = by_path["dogs/sixteen.png"]
  assert sixteen[0, 0, 0] == 128 and sixteen[-1, -1, 0] == 255  # 16-bit rescaled, not clipped
  np.testing.assert_array_equal(by_path["cats/rgb.png"], testdata.tagged_image(2, 40))  # lossless
  assert by_path["dogs/tiny.png"].shape == (8, 8, 3)
  val = builders.load_image_domains(out, "validation")  # alias of val
  assert val.split == "val" and val.domain_ranges == [(0, 0), (0, 1), (1, 0)]


def test_original_bytes_kept_for_rgb_files(images_prepared):
  src, out, _, _ = images_prepared
  view = builders.load_image_domains(out, "train")
  recs = {view.source[i]["path"].decode(): view.source[i]["image"] for i in range(len(view.source))}
  assert recs["train/cats/rgb.jpg"] == (src / "train" / "cats" / "rgb.jpg").read_bytes()


def test_reuse_and_json_summary(images_prepared, tmp_path):
  src, out, _, first = images_prepared
  again = builders.prepare_image_domains(src, out, progress=False)
  assert again.reused and again.examples == first.examples and again.num_skipped == first.num_skipped
  again.write_json(tmp_path / "s.json")
  data = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
  assert data["totals"] == {"train": 9, "val": 1} and data["num_skipped"] == first.num_skipped


def test_min_size_skips_small_images(tmp_path):
  src = tmp_path / "src"
  testdata.write_image_tree(src, {"a": 2}, size=24)
  (src / "train" / "a" / "big.png").write_bytes(media.encode_png(testdata.tagged_image(50, 64)))
  report = builders.prepare_image_domains(src, tmp_path / "out", min_size=32, progress=False)
  assert report.examples == {"train": {"a": 1}}
  assert sum("smaller than --min_size 32" in s["reason"] for s in report.skipped) == 2


def test_zero_usable_images_is_an_error_naming_the_folder(tmp_path):
  src = tmp_path / "src"
  (src / "train" / "faces").mkdir(parents=True)
  (src / "train" / "faces" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
  (src / "train" / "faces" / "empty.png").write_bytes(b"")
  with pytest.raises(builders.PrepareError, match="no usable image") as e:
    builders.prepare_image_domains(src, tmp_path / "out", progress=False)
  assert str(src / "train") in str(e.value)
  assert not builders.ImageDomains(data_dir=str(tmp_path / "out")).is_prepared()


@pytest.mark.parametrize("layout", ["no_splits", "nothing", "both_val"])
def test_wrong_layouts_are_explained(tmp_path, layout):
  src = tmp_path / "src"
  if layout == "no_splits":
    (src / "cats").mkdir(parents=True)
    (src / "cats" / "x.png").write_bytes(media.encode_png(testdata.tagged_image(1)))
    match = "no split folders"
  elif layout == "nothing":
    (src / "train" / "cats").mkdir(parents=True)
    match = "no images under"
  else:
    testdata.write_image_tree(src, {"a": 1})
    (src / "val").mkdir()
    (src / "validation").mkdir()
    match = "both"
  with pytest.raises(builders.PrepareError, match=match):
    builders.prepare_image_domains(src, tmp_path / "out", progress=False)


def test_interrupted_prepare_leaves_no_complete_dataset(tmp_path, monkeypatch):
  src = tmp_path / "src"
  testdata.write_image_tree(src, {"a": 4, "b": 4})
  out = tmp_path / "out"
  real = media.normalize_image_bytes
  calls = {"n": 0}

  def flaky(data):
    calls["n"] += 1
    if calls["n"] == 5:
      raise KeyboardInterrupt  # the user pressing Ctrl-C halfway
    return real(data)

  monkeypatch.setattr(media, "normalize_image_bytes", flaky)
  with pytest.raises(KeyboardInterrupt):
    builders.prepare_image_domains(src, out, progress=False, num_workers=1)
  assert not builders.ImageDomains(data_dir=str(out)).is_prepared()
  assert not (out / "image_domains" / "1.0.0").exists()
  with pytest.raises(FileNotFoundError, match="launch.prepare_data images"):
    builders.load_image_domains(out, "train")
  monkeypatch.setattr(media, "normalize_image_bytes", real)
  report = builders.prepare_image_domains(src, out, progress=False)
  assert report.examples == {"train": {"a": 4, "b": 4}} and not report.reused


def test_killed_prepare_leaves_no_complete_dataset(tmp_path):
  """SIGKILL halfway through writing (no Python cleanup runs): only TFDS's incomplete.* folder is left."""
  src, out = tmp_path / "src", tmp_path / "out"
  testdata.write_image_tree(src, {"a": 4, "b": 4})
  script = textwrap.dedent(f"""
      import os, signal
      from jaxreenact.data import builders, media
      real, calls = media.normalize_image_bytes, [0]
      def dying(data):
        calls[0] += 1
        if calls[0] == 6:
          os.kill(os.getpid(), signal.SIGKILL)
        return real(data)
      media.normalize_image_bytes = dying
      builders.prepare_image_domains({str(src)!r}, {str(out)!r}, progress=False, num_workers=1)
  """)
  repo = Path(__file__).resolve().parents[2]
  r = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(repo)), timeout=120)
  assert r.returncode == -9
  assert any(p.name.startswith("incomplete") for p in (out / "image_domains").iterdir())
  assert not builders.ImageDomains(data_dir=str(out)).is_prepared()
  report = builders.prepare_image_domains(src, out, progress=False)  # a rerun starts over and completes
  assert report.examples == {"train": {"a": 4, "b": 4}}


@pytest.fixture(scope="module")
def videos_prepared(tmp_path_factory):
  src = tmp_path_factory.mktemp("videos_src")
  bad = testdata.write_video_tree(src)
  out = tmp_path_factory.mktemp("videos_tfds")
  report = builders.prepare_talking_heads(src, out, target_size=32, progress=False)
  return src, out, bad, report


def test_talking_heads_identities_and_skips(videos_prepared):
  _, _, bad, report = videos_prepared
  assert report.examples == {"test": {"id10003": 1}, "train": {"id10001": 2, "id10002": 1, "vidéo_x": 1}}
  assert report.frames == {"test": 6, "train": 12 + 9 + 7 + 5}
  reasons = _reasons(report)
  assert "not a decodable image" in _find(reasons, bad["corrupt_frame"])
  assert "no decodable frames" in _find(reasons, bad["empty_video"])
  assert "zero-byte" in _find(reasons, bad["zero_mp4"])
  assert "ffmpeg" in _find(reasons, bad["random_mp4"])
  assert "neither a frame folder nor a video" in _find(reasons, bad["text"])
  assert any("smaller than the target size" in n["note"] for n in report.notes)


def test_talking_heads_records_in_frame_order(videos_prepared):
  _, out, _, _ = videos_prepared
  view = builders.load_talking_heads(out, "train")
  assert view.identities == ["id10001", "id10002", "vidéo_x"]
  names = [v[0] for v in view.videos]
  assert names == ["id10001#aaa#000001#000012", "id10001#bbb#000001#000009", "id10002#ccc", "vidéo_x"]
  assert [v[3] for v in view.videos] == [12, 9, 7, 5]
  assert view.videos_of_identity == [[0, 1], [2], [3]]
  starts = [v[2] for v in view.videos]
  assert starts == [0, 12, 21, 28]  # contiguous runs
  for vi in (0, 3):  # frame folders: f1 … f12 in natural order, red channel = time index
    _, _, start, n = view.videos[vi]
    reds = [int(np.asarray(media.decode_rgb(view.source[start + t]["image"]))[12, 12, 0]) for t in range(n)]
    assert reds == list(range(n))
    assert view.source[start]["video"].decode() == names[vi]
  rec = view.source[12]
  assert rec["identity"] == b"id10001" and int(rec["frame"]) == 0
  mp4_first = np.asarray(media.decode_rgb(rec["image"]))
  assert mp4_first.shape == (32, 32, 3)
  jpg = np.asarray(media.decode_rgb(view.source[21 + 3]["image"]))
  assert abs(int(jpg[12, 12, 0]) - 3) <= 2 and abs(int(jpg[12, 12, 1]) - 30) <= 2  # JPEG frames kept as they are
  test = builders.load_talking_heads(out, "test")
  assert test.videos == [("id10003#ddd", "id10003", 0, 6)]


def test_identity_parsing():
  assert builders.identity_of("id10001#7w0IBEWc9Qw#000993#001143") == "id10001"
  assert builders.identity_of("my_clip") == "my_clip"
  assert builders.identity_of("#weird") == "#weird"


def test_video_with_no_decodable_frames_only_is_an_error(tmp_path):
  src = tmp_path / "src"
  (src / "train").mkdir(parents=True)
  (src / "train" / "a.mp4").write_bytes(b"not a video at all" * 10)
  with pytest.raises(builders.PrepareError, match="no usable frame"):
    builders.prepare_talking_heads(src, tmp_path / "out", progress=False)
  assert not builders.TalkingHeads(data_dir=str(tmp_path / "out")).is_prepared()


def test_normalize_image_bytes_modes():
  rgb = testdata.tagged_image(3, 16)
  png = media.encode_png(rgb)
  assert media.normalize_image_bytes(png) == (png, (16, 16), False)
  for mode in ("L", "LA", "RGBA", "CMYK", "P", "I", "F"):
    im = Image.fromarray(rgb).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode in ("I", "F") else "PNG")
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    data, hw, converted = media.normalize_image_bytes(buf.getvalue())
    out = np.asarray(media.decode_rgb(data))
    assert converted and hw == (16, 16) and out.shape == (16, 16, 3), mode
  with pytest.raises(media.BadMedia, match="zero-byte"):
    media.normalize_image_bytes(b"")

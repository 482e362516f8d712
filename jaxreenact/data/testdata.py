"""Small generated dataset trees for the data tests (every bad-input case of issue 4), kept out of conftest.

Each good image/frame encodes its identity in its pixels so tests can tell which record came back:
image_domains images are filled with value `10 * domain + index` in the red channel; talking-head frame t of a
video is filled with value `t` in the red channel and the video number in the green channel.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from jaxreenact.data import media


def _jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
  return buf.getvalue()


def tagged_image(value: int, size: int = 24) -> np.ndarray:
  img = np.zeros((size, size, 3), np.uint8)
  img[..., 0] = value
  img[..., 1] = 128
  img[: size // 4, : size // 4, 2] = 255  # a corner mark: flips are visible
  return img


def write_image_tree(root: Path, counts: dict[str, int] | None = None, size: int = 24) -> dict[str, list[str]]:
  """Clean tree ROOT/train/<domain>/img_i.png with `counts` images per domain; returns the file names."""
  counts = counts or {"a": 2, "b": 5, "c": 9}
  names: dict[str, list[str]] = {}
  for d, (domain, n) in enumerate(sorted(counts.items())):
    folder = root / "train" / domain
    folder.mkdir(parents=True, exist_ok=True)
    names[domain] = []
    for i in range(n):
      name = f"img_{i}.png"
      (folder / name).write_bytes(media.encode_png(tagged_image(10 * d + i, size)))
      names[domain].append(name)
  return names


def write_bad_image_tree(root: Path) -> dict[str, str]:
  """A tree with one of every bad-input case; returns {case: relative path} for the files that must be skipped."""
  rng = np.random.default_rng(0)
  train, val = root / "train", root / "validation"  # the expression set ships `validation/`
  good = {
      "train/cats/rgb.jpg": _jpeg(tagged_image(1, 40)),
      "train/cats/rgb.png": media.encode_png(tagged_image(2, 40)),
      "train/cats/sub/nested.png": media.encode_png(tagged_image(3, 40)),  # official listdir is recursive
      "train/dogs/gray.jpg": None,
      "train/dogs/rgba.png": None,
      "train/dogs/palette.png": None,
      "train/dogs/sixteen.png": None,
      "train/dogs/tiny.png": media.encode_png(tagged_image(4, 8)),  # smaller than the target size
      "train/café/visage_é.jpg": _jpeg(tagged_image(5, 40)),  # non-ASCII folder and file
      "validation/cats/v.png": media.encode_png(tagged_image(6, 40)),
  }
  for rel, data in good.items():
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
      (root / rel).write_bytes(data)
  Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8), "L").save(train / "dogs" / "gray.jpg")
  rgba = np.concatenate([tagged_image(7, 40), np.full((40, 40, 1), 128, np.uint8)], axis=-1)
  Image.fromarray(rgba, "RGBA").save(train / "dogs" / "rgba.png")
  palette = Image.fromarray(tagged_image(8, 40)).convert("P", palette=Image.ADAPTIVE, colors=16)
  palette.save(train / "dogs" / "palette.png")
  sixteen = np.full((40, 40), 65535, np.uint16)
  sixteen[:20] = 32896  # 32896 / 65535 · 255 = 128
  Image.fromarray(sixteen).save(train / "dogs" / "sixteen.png")  # uint16 → mode I;16

  bad = {
      "corrupt": "train/cats/corrupt.jpg",
      "truncated": "train/cats/truncated.jpg",
      "truncated_png": "train/dogs/truncated.png",
      "zero": "train/cats/zero.png",
      "text": "train/cats/not_an_image.png",
      "readme": "train/cats/README.txt",
      "empty_domain": "train/empty",
      "stray": "train/stray.png",
  }
  (root / bad["corrupt"]).write_bytes(rng.integers(0, 255, 2000, dtype=np.uint8).tobytes())
  full = _jpeg(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
  (root / bad["truncated"]).write_bytes(full[: len(full) // 2])
  png = media.encode_png(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
  (root / bad["truncated_png"]).write_bytes(png[: len(png) // 2])
  (root / bad["zero"]).write_bytes(b"")
  (root / bad["text"]).write_text("hello, I am not a PNG\n")
  (root / bad["readme"]).write_text("notes\n")
  (root / bad["empty_domain"]).mkdir(parents=True, exist_ok=True)
  (root / bad["stray"]).write_bytes(media.encode_png(tagged_image(9, 8)))
  del val
  return bad


def frame_pixels(t: int, video: int, size: int = 24) -> np.ndarray:
  img = np.zeros((size, size, 3), np.uint8)
  img[..., 0] = t
  img[..., 1] = 10 * video
  img[: size // 4, : size // 4, 2] = 255
  return img


def write_video_tree(root: Path, with_bad: bool = True, size: int = 24) -> dict[str, str]:
  """FOMM-layout tree. Good videos (red = frame index, green = 10·video number):

  train/id10001#aaa#000001#000012/ 12 PNG frames named f1.png … f12.png (natural order ≠ lexical order)
  train/id10001#bbb#000001#000009.mp4 9 frames (lossy: tests read frame order from frame folders only)
  train/id10002#ccc/ 7 JPEG frames; train/vidéo_x/ 5 PNG frames (non-ASCII, identity = its own name)
  test/id10003#ddd/ 6 PNG frames
  Bad (when with_bad): a corrupt frame inside the first folder, an empty folder, a zero-byte mp4, a random-bytes
  mp4, a text file. Returns {case: relative path} of the bad ones.
  """
  def frames_dir(rel: str, n: int, video: int, ext: str = "png"):
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    for t in range(n):
      pixels = frame_pixels(t, video, size)
      data = media.encode_png(pixels) if ext == "png" else _jpeg(pixels, 100)
      (d / f"f{t + 1}.{ext}").write_bytes(data)

  frames_dir("train/id10001#aaa#000001#000012", 12, 1)
  media.write_video(root / "train" / "id10001#bbb#000001#000009.mp4",
                    [frame_pixels(t * 20, 2, 32) for t in range(9)], fps=25)
  frames_dir("train/id10002#ccc", 7, 3, ext="jpg")
  frames_dir("train/vidéo_x", 5, 4)
  frames_dir("test/id10003#ddd", 6, 5)
  bad: dict[str, str] = {}
  if with_bad:
    rng = np.random.default_rng(1)
    bad = {
        "corrupt_frame": "train/id10001#aaa#000001#000012/f99.png",
        "empty_video": "train/id10009#empty",
        "zero_mp4": "train/zero.mp4",
        "random_mp4": "train/random.mp4",
        "text": "train/list.txt",
    }
    garbage = rng.integers(0, 255, 300, dtype=np.uint8).tobytes()
    (root / bad["corrupt_frame"]).write_bytes(b"\x89PNG\r\n\x1a\n" + garbage)  # PNG signature, then noise
    (root / bad["empty_video"]).mkdir(parents=True)
    (root / bad["zero_mp4"]).write_bytes(b"")
    (root / bad["random_mp4"]).write_bytes(rng.integers(0, 255, 5000, dtype=np.uint8).tobytes())
    (root / bad["text"]).write_text("id10001\n")
  return bad

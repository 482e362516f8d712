"""DaGAN face reenactment: a source photo animated by a driving video (the official demo.py, in JAX).

Per driving frame (demo.py make_animation): depth of the frame (disp scale 0), keypoints of RGB+depth, relative
motion w.r.t. the initial driving frame (FOMM normalize_kp: relative values and Jacobians, optional
``adapt_movement_scale``), generator(source, source depth, source keypoints, new keypoints). Inputs are resized
to the model size (skimage ``resize``, as the demo); ``--find_best_frame`` picks the driving frame whose
normalised dlib landmarks are closest to the source's and uses it as the initial frame (the demo's forward and
backward passes from that frame give exactly this, since each frame depends only on itself and the initial one).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxreenact.evaluation.face_metrics import default_analyzer
from jaxreenact.images import to_uint8
from jaxreenact.models import dagan
from jaxreenact.models.dagan.config import AnimationOptions as Options  # demo.py's flags, defined with the model

log = logging.getLogger(__name__)


def min_size(cfg: dagan.Config) -> int:
  """Smallest usable model resolution: every network's divisibility, and the depth net's 64 px floor."""
  return max(64, dagan.min_image_size(cfg))


# ------------------------------------------------------------------------------------------------------------
# images


def resize_frames(frames: Sequence[np.ndarray], size: int, what: str) -> np.ndarray:
  """(H, W, 3) uint8/float frames -> (T, size, size, 3) float32 in [0, 1] (skimage resize, as demo.py)."""
  from skimage.transform import resize
  out = []
  warned = False
  for f in frames:
    f = np.asarray(f)
    if f.ndim == 2:
      f = np.repeat(f[..., None], 3, -1)
    f = f[..., :3]
    if f.shape[:2] != (size, size):
      if not warned:
        h, w = f.shape[:2]
        log.warning("%s is %dx%d: resized to %dx%d%s", what, w, h, size, size,
                    " (aspect ratio changes: crop it square, e.g. with --crop)" if h != w else "")
        warned = True
      f = resize(f, (size, size), order=1, preserve_range=False)  # float64 in [0, 1]; antialias when shrinking
    elif f.dtype == np.uint8:
      f = f / 255.0
    out.append(np.asarray(f, np.float32))
  return np.stack(out)


def square_crop_box(box: Sequence[float], frame_hw: tuple[int, int], increase: float) -> tuple[int, int, int, int]:
  """FOMM crop-video.py box growth (then shifted inside the frame and kept square)."""
  from jaxreenact.data.faces import tube_crop_box  # imports tensorflow_datasets (data builders)
  return tube_crop_box(box, frame_hw, increase)


def crop_source(image: np.ndarray, increase: float = 0.4) -> tuple[np.ndarray, dict]:
  """Square crop around the best face of a still (uint8); the whole image when none is found."""
  from jaxreenact.data.faces import FaceDetector  # imports tensorflow_datasets (data builders)
  faces = FaceDetector("auto", landmarks=False).detect(image, landmarks=False)
  if not faces:
    log.warning("no face found in the source image: using it uncropped")
    return image, {"face_found": False}
  box = square_crop_box(faces[0].box, image.shape[:2], increase)
  l, t, r, b = box
  return image[t:b, l:r], {"face_found": True, "box": list(box)}


def crop_driving(frames: Sequence[np.ndarray], increase: float = 0.4, every: int = 5) -> tuple[list[np.ndarray], dict]:
  """One fixed square crop for the whole clip: the union of the face boxes (every k-th frame), FOMM-style."""
  from jaxreenact.data.faces import FaceDetector  # imports tensorflow_datasets (data builders)
  det = FaceDetector("auto", landmarks=False)
  boxes = [f[0].box for t in range(0, len(frames), every) if (f := det.detect(frames[t], landmarks=False))]
  if not boxes:
    log.warning("no face found in the driving video: using it uncropped")
    return list(frames), {"face_found": False}
  union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
  l, t, r, b = square_crop_box(union, frames[0].shape[:2], increase)
  return [f[t:b, l:r] for f in frames], {"face_found": True, "box": [l, t, r, b], "frames_with_face": len(boxes)}


# ------------------------------------------------------------------------------------------------------------
# best frame (demo.py find_best_frame, with dlib landmarks instead of face-alignment)


def _normalized_landmarks(lm: np.ndarray) -> np.ndarray:
  from scipy.spatial import ConvexHull
  lm = lm - lm.mean(axis=0, keepdims=True)
  return lm / np.sqrt(ConvexHull(lm).volume)


def find_best_frame(source: np.ndarray, driving: Sequence[np.ndarray], progress: bool = True) -> tuple[int, dict]:
  """Index of the driving frame whose centred, hull-area-normalised 68 landmarks are closest (sum of squares) to
  the source's. Frames without a detected face are skipped; 0 when the source has no face."""
  analyzer = default_analyzer(embeddings=False)
  to_u8 = lambda x: (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8) if x.dtype != np.uint8 else x  # noqa: E731
  src = analyzer.landmarks(to_u8(source))
  if src is None:
    log.warning("--find_best_frame: no face in the source image; starting from frame 0")
    return 0, {"source_face": False}
  src = _normalized_landmarks(src)
  best, best_norm, found = 0, float("inf"), 0
  for i, f in enumerate(tqdm(driving, desc="best frame", disable=not progress, leave=False)):
    lm = analyzer.landmarks(to_u8(f))
    if lm is None:
      continue
    found += 1
    d = float(np.sum((src - _normalized_landmarks(lm)) ** 2))
    if d < best_norm:
      best, best_norm = i, d
  return best, {"source_face": True, "frames_with_face": found, "distance": best_norm if found else None}


# ------------------------------------------------------------------------------------------------------------
# model


class Reenactor:
  """Jitted DaGAN inference with one set of variables {'depth', 'kp_detector', 'generator'}.

  Work that depends only on the source (its depth, keypoints and the generator's source encoders) and the
  initial driving keypoints is done once per video by :meth:`prepare`; :meth:`animate` then does only the
  per-frame work (driving depth + keypoints, motion, warp, attention, decoder) for a batch of driving frames.
  """

  def __init__(self, cfg: dagan.Config, variables: dict[str, Any]):
    self.cfg = cfg
    self.nets = dagan.build(cfg)
    self.variables = {k: jax.tree.map(jnp.asarray, variables[k]) for k in ("depth", "kp_detector", "generator")}

  def _encode_fn(self, v, img):
    """img (B, H, W, 3) in [0, 1] -> depth (B, H, W, 1), keypoints."""
    disp = self.nets.depth.apply(v["depth"], img)[0]  # scale-0 disparity in (0, 1): DaGAN's "depth"
    kp_in = jnp.concatenate([img, disp], -1) if self.cfg.rgbd else img
    return disp, self.nets.kp_detector.apply(v["kp_detector"], kp_in)

  @functools.cached_property
  def _encode(self):
    return jax.jit(self._encode_fn)

  @functools.cached_property
  def _prepare(self):
    def prepare(v, source, initial):  # source, initial (1, H, W, 3)
      depth_s, kp_s = self._encode_fn(v, source)
      _, kp_0 = self._encode_fn(v, initial)
      features = self.nets.generator.apply(v["generator"], source, depth_s, method="encode_source")
      return {"source": source, "depth": depth_s, "kp": kp_s, "kp_initial": kp_0, "features": features}
    return jax.jit(prepare)

  @staticmethod
  def _motion(kp_source, kp_driving, kp_initial, relative, adapt_scale):
    # relative / adapt_scale are traced booleans: one compiled function serves every flag combination
    kp_rel = dagan.normalize_kp(kp_source, kp_driving, kp_initial, adapt_movement_scale=False)
    kp_adapt = dagan.normalize_kp(kp_source, kp_driving, kp_initial, adapt_movement_scale=True)
    kp_rel = jax.tree.map(lambda a, b: jnp.where(adapt_scale, b, a), kp_rel, kp_adapt)
    return jax.tree.map(lambda r, d: jnp.where(relative, r, d), kp_rel, dict(kp_driving))

  def _step_fn(self, v, prepared, chunk, relative, adapt_scale):
    """One batch of driving frames (B, H, W, 3) -> (prediction (B, H, W, 3), driving depth (B, H, W, 1))."""
    depth_d, kp_d = self._encode_fn(v, chunk)
    kp_norm = self._motion(prepared["kp"], kp_d, prepared["kp_initial"], relative, adapt_scale)
    b = chunk.shape[0]
    tile = lambda x: jnp.broadcast_to(x, (b, *x.shape[1:]))  # noqa: E731  one source for the whole batch
    out = self.nets.generator.apply(v["generator"], tile(prepared["source"]), kp_driving=kp_norm,
                                    kp_source=jax.tree.map(tile, prepared["kp"]),
                                    source_depth=tile(prepared["depth"]), source_features=prepared["features"])
    return out["prediction"], depth_d

  @functools.cached_property
  def _step(self):
    return jax.jit(self._step_fn)

  def encode(self, images: np.ndarray):
    return self._encode(self.variables, jnp.asarray(images, jnp.float32))

  def prepare(self, source: np.ndarray, initial_frame: np.ndarray) -> dict[str, Any]:
    """Once per video: source (S, S, 3) and the initial driving frame (S, S, 3) in [0, 1] -> the source state
    for :meth:`animate` (source depth, keypoints, generator source features, initial driving keypoints)."""
    as_batch = lambda x: jnp.asarray(x, jnp.float32)[None]  # noqa: E731
    return self._prepare(self.variables, as_batch(source), as_batch(initial_frame))

  def animate(self, prepared: dict[str, Any], driving: np.ndarray, opts: Options = Options()):
    """driving (B, S, S, 3) in [0, 1] -> (prediction (B, S, S, 3), driving depth (B, S, S, 1)) as jax arrays.

    Each batch size compiles once; :meth:`run` pads the last batch of a video to ``opts.batch_size``.
    """
    return self._step(self.variables, prepared, jnp.asarray(driving, jnp.float32), jnp.asarray(opts.relative),
                      jnp.asarray(opts.adapt_scale))

  def run(self, source: np.ndarray, driving: np.ndarray, opts: Options = Options(), progress: bool = True,
          initial_index: int = 0) -> dict[str, np.ndarray]:
    """source (S, S, 3), driving (T, S, S, 3) in [0, 1] -> {'prediction' (T, S, S, 3), 'depth' (T, S, S, 1)}."""
    source, driving = np.asarray(source, np.float32), np.asarray(driving, np.float32)
    if source.ndim != 3 or driving.ndim != 4 or driving.shape[1:] != source.shape or source.shape[-1] != 3:
      raise ValueError(f"Reenactor.run: expected source (S, S, 3) and driving (T, S, S, 3) of the same size, got "
                       f"{source.shape} and {driving.shape}")
    if not 0 <= initial_index < len(driving):
      raise ValueError(f"initial_index {initial_index} outside the {len(driving)} driving frames")
    prepared = self.prepare(source, driving[initial_index])
    preds, depths = [], []
    t = len(driving)
    bs = max(1, opts.batch_size)
    for i in tqdm(range(0, t, bs), desc="reenact", disable=not progress, unit="batch"):
      chunk = driving[i:i + bs]
      k = len(chunk)
      if k < bs:  # pad to one compiled shape (compiling costs more than a few padded frames)
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], bs - k, 0)])
      pred, depth_d = self.animate(prepared, chunk, opts)
      preds.append(np.asarray(pred)[:k])
      depths.append(np.asarray(depth_d)[:k])
    return {"prediction": np.concatenate(preds), "depth": np.concatenate(depths)}


# ------------------------------------------------------------------------------------------------------------
# outputs


def depth_to_gray(depth: np.ndarray) -> np.ndarray:
  """demo.py visualisation: 1 - d / max(d) per frame, as a (…, H, W, 3) uint8 gray image."""
  d = np.asarray(depth, np.float32)[..., 0]
  m = d.reshape(d.shape[0], -1).max(axis=1).reshape(-1, 1, 1)
  g = 1.0 - d / np.maximum(m, 1e-8)
  return np.repeat(to_uint8(g, (0.0, 1.0))[..., None], 3, -1)


def side_by_side(source: np.ndarray, driving: np.ndarray, prediction: np.ndarray, depth: np.ndarray) -> list[np.ndarray]:
  """source | driving | result | driving depth, per frame (uint8)."""
  src = to_uint8(source, (0.0, 1.0))
  gray = depth_to_gray(depth)
  return [np.concatenate([src, to_uint8(d, (0.0, 1.0)), to_uint8(p, (0.0, 1.0)), g], axis=1)
          for d, p, g in zip(driving, prediction, gray)]


def reenact(reenactor: Reenactor, source_image: np.ndarray, driving_frames: Sequence[np.ndarray], *, size: int,
            opts: Options = Options(), crop: bool = False, crop_increase: float = 0.4,
            progress: bool = True) -> dict[str, Any]:
  """Whole pipeline on uint8 inputs: optional face crop, resize, best frame, animation.

  Returns {'source', 'driving' (T, S, S, 3) [0, 1], 'prediction', 'depth', 'info': dict}.
  """
  info: dict[str, Any] = {"input_frames": len(driving_frames), "size": size, **dataclasses.asdict(opts)}
  timings: dict[str, float] = {}
  t0 = time.perf_counter()
  if crop:
    source_image, info["source_crop"] = crop_source(source_image, crop_increase)
    driving_frames, info["driving_crop"] = crop_driving(driving_frames, crop_increase)
    timings["crop"] = time.perf_counter() - t0
  initial = 0
  if opts.best_frame is not None:
    if not 0 <= opts.best_frame < len(driving_frames):
      raise ValueError(f"--best_frame={opts.best_frame}: the driving video has {len(driving_frames)} frames")
    initial = opts.best_frame
  elif opts.find_best_frame:  # on the (cropped) full-resolution frames: landmarks need more than 64 px
    t1 = time.perf_counter()
    initial, info["best_frame_search"] = find_best_frame(source_image, driving_frames, progress)
    timings["find_best_frame"] = time.perf_counter() - t1
  info["initial_frame"] = initial
  t1 = time.perf_counter()
  source = resize_frames([source_image], size, "the source image")[0]
  driving = resize_frames(driving_frames, size, "the driving video")
  timings["resize"] = time.perf_counter() - t1
  t1 = time.perf_counter()
  out = reenactor.run(source, driving, opts, progress, initial_index=initial)
  timings["animate"] = time.perf_counter() - t1  # includes the one-off jit compilation
  info["seconds"] = {k: round(v, 3) for k, v in timings.items()}
  return {"source": source, "driving": driving, **out, "info": info}

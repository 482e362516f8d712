"""StarGAN v2 sampling: reference- and latent-guided grids and interpolation videos (core/utils.py, core/solver.py).

Images are NHWC in [-1, 1] (the official ``Normalize(0.5, 0.5)``); outputs are uint8 grids/frames. The official
sampler uses the EMA networks and, with w_hpf > 0, FAN masks of the *source* images.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from jaxreenact.data import media
from jaxreenact.models import stargan_v2
from jaxreenact.train import samples

Array = jax.Array


@dataclasses.dataclass
class DomainImages:
  """Images of a folder laid out per domain: ``ROOT/<domain>/*.png|jpg`` (sorted domain names = labels)."""
  domains: list[str]
  images: np.ndarray  # (N, S, S, 3) float32 in [-1, 1]
  labels: np.ndarray  # (N,) int32
  paths: list[str]


def load_domain_folder(root: str | os.PathLike, img_size: int, num_domains: int | None = None,
                       max_per_domain: int | None = None, flag: str = "--src_dir") -> DomainImages:
  """Reads ``ROOT/<domain>/<image>`` (official ImageFolder layout), resized to img_size (bilinear, as
  torchvision Resize) and normalised to [-1, 1]. Validates the domain count against the checkpoint.

  Raises:
    FileNotFoundError: `root` is not a directory.
    ValueError: wrong domain count, an empty domain, or an image that cannot be read (the message names it).
  """
  root = Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"{flag}={root}: not a directory (expected ROOT/<domain>/<images>)")
  domains = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
  if not domains:
    raise ValueError(f"{flag}={root}: no domain sub-folders (expected ROOT/<domain>/<images>, one folder per domain)")
  if num_domains is not None and len(domains) != num_domains:
    raise ValueError(f"{flag}={root} has {len(domains)} domain folders {domains}, but the checkpoint was trained "
                     f"with num_domains={num_domains}; give one folder per domain of the model, in its label order")
  images, labels, paths = [], [], []
  for y, d in enumerate(domains):
    files = sorted((p for p in (root / d).iterdir() if p.is_file() and media.has_extension(p, media.IMAGE_EXTENSIONS)),
                   key=lambda p: media.natural_key(p.name))
    if max_per_domain:
      files = files[:max_per_domain]
    if not files:
      raise ValueError(f"{flag}={root}: domain folder {d!r} holds no .jpg/.png image")
    for f in files:
      try:
        rgb = media.read_image_file(f)
      except media.BadMedia as e:  # zero-byte, truncated, not an image, unreadable
        raise ValueError(f"{flag}={root}: cannot use image {media.display_path(f)}: {e}") from None
      images.append(to_model_input(rgb, img_size))
      labels.append(y)
      paths.append(os.fspath(f))
  return DomainImages(domains, np.stack(images), np.asarray(labels, np.int32), paths)


def load_sample_domains(img_size: int, split: str = "val", max_per_domain: int | None = None,
                        num_domains: int | None = None) -> DomainImages:
  """The embedded sample data's image_domains split (lfw, photo) as :class:`DomainImages`."""
  from jaxreenact.data import load_image_domains, sample_data_dir  # imports tensorflow_datasets (data builders)
  view = load_image_domains(sample_data_dir().stargan_v2, split)
  if num_domains is not None and len(view.domains) != num_domains:
    raise ValueError(f"the embedded sample data has {len(view.domains)} domains {view.domains}, but the checkpoint "
                     f"has num_domains={num_domains}: pass --src_dir/--ref_dir with one folder per domain")
  images, labels, paths = [], [], []
  for y, (start, count) in enumerate(view.domain_ranges):
    n = count if not max_per_domain else min(count, max_per_domain)
    for i in range(start, start + n):
      rec = view.source[i]
      images.append(to_model_input(np.asarray(media.decode_rgb(rec["image"])), img_size))
      labels.append(y)
      paths.append(str(rec.get("path", i)))
  return DomainImages(list(view.domains), np.stack(images), np.asarray(labels, np.int32), paths)


def to_model_input(rgb: np.ndarray, img_size: int) -> np.ndarray:
  """(H, W, 3) uint8 -> (S, S, 3) float32 in [-1, 1] (Resize([S, S]) bilinear, ToTensor, Normalize(0.5, 0.5))."""
  im = Image.fromarray(rgb)
  if im.size != (img_size, img_size):
    im = im.resize((img_size, img_size), Image.BILINEAR)
  return np.asarray(im, np.float32) / 127.5 - 1.0


class Sampler:
  """Jitted style computation and generation with one set of (EMA) variables."""

  def __init__(self, cfg: stargan_v2.Config, variables: dict[str, Any], batch_size: int = 8):
    self.cfg = cfg
    self.nets = stargan_v2.build(cfg)
    self.variables = jax.tree.map(jnp.asarray, variables)
    self.batch_size = batch_size
    if cfg.w_hpf > 0 and "fan" not in variables:
      raise ValueError("w_hpf > 0: the sampler needs FAN variables ('fan') for the masks")

  @functools.cached_property
  def _style_ref(self):
    return jax.jit(lambda v, x, y: self.nets.style_encoder.apply(v, x, y))

  @functools.cached_property
  def _style_latent(self):
    return jax.jit(lambda v, z, y: self.nets.mapping_network.apply(v, z, y))

  @functools.cached_property
  def _generate(self):
    nets, hpf = self.nets, self.cfg.w_hpf > 0

    def gen(g, fan, x, s):
      masks = nets.fan.apply(fan, x, method="get_heatmap") if hpf else None
      return nets.generator.apply(g, x, s, masks=masks)
    return jax.jit(gen)

  def style_from_reference(self, x_ref: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
    return self._batched(lambda x, y: self._style_ref(self.variables["style_encoder"], x, y), x_ref, y_ref)

  def style_from_latent(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return self._batched(lambda a, b: self._style_latent(self.variables["mapping_network"], a, b), z, y)

  def average_style(self, y: int, num: int = 10_000, seed: int = 0) -> np.ndarray:
    """Mean style of ``num`` latent codes of domain y (official: 10,000 codes, for ψ truncation)."""
    z = jax.random.normal(jax.random.key(seed), (num, self.cfg.latent_dim), jnp.float32)
    chunk = 1000  # the mapping network is a small MLP: large batches, few calls
    total = 0.0
    for i in range(0, num, chunk):
      zz = z[i:i + chunk]
      s = self._style_latent(self.variables["mapping_network"], zz, jnp.full((zz.shape[0],), y, jnp.int32))
      total = total + np.asarray(s, np.float64).sum(axis=0)
    return (total / num).astype(np.float32)

  def generate(self, x_src: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) sources, (N, style_dim) styles -> (N, S, S, 3) outputs (no tanh, as official)."""
    fan = self.variables.get("fan")
    return self._batched(lambda x, st: self._generate(self.variables["generator"], fan, x, st), x_src, s)

  def _batched(self, fn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = []
    n = len(a)
    for i in range(0, n, self.batch_size):
      aa, bb = np.asarray(a[i:i + self.batch_size]), np.asarray(b[i:i + self.batch_size])
      k = len(aa)
      if k < self.batch_size:  # pad partial batches: one compiled shape
        pad = self.batch_size - k
        aa = np.concatenate([aa, np.repeat(aa[-1:], pad, 0)])
        bb = np.concatenate([bb, np.repeat(bb[-1:], pad, 0)])
      out.append(np.asarray(fn(aa, bb))[:k])
    return np.concatenate(out)


# ------------------------------------------------------------------------------------------------------------
# grids


def reference_grid(sampler: Sampler, x_src: np.ndarray, x_ref: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
  """Official translate_using_reference layout: first row blank + sources; row i: reference i + its outputs."""
  s_ref = sampler.style_from_reference(x_ref, y_ref)  # (R, style_dim)
  n, r = len(x_src), len(x_ref)
  out = sampler.generate(np.repeat(x_src[None], r, 0).reshape(n * r, *x_src.shape[1:]),
                         np.repeat(s_ref, n, axis=0)).reshape(r, n, *x_src.shape[1:])
  rows = [[np.full_like(samples.to_uint8(x_src[0]), 255)] + [samples.to_uint8(x) for x in x_src]]
  for i in range(r):
    rows.append([samples.to_uint8(x_ref[i])] + [samples.to_uint8(o) for o in out[i]])
  return samples.grid(rows, pad=0)


def latent_grid(sampler: Sampler, x_src: np.ndarray, y_trg: int, z_list: np.ndarray, psi: float = 1.0,
                s_avg: np.ndarray | None = None) -> np.ndarray:
  """Official translate_using_latent for one domain: first row sources; one row of outputs per latent code.

  ``psi`` < 1 truncates towards the domain's average style (lerp(s_avg, s, ψ)).
  """
  n = len(x_src)
  rows = [[samples.to_uint8(x) for x in x_src]]
  for z in z_list:
    s = sampler.style_from_latent(np.repeat(z[None], n, 0), np.full((n,), y_trg, np.int32))
    if psi != 1.0:
      if s_avg is None:
        s_avg = sampler.average_style(y_trg)
      s = s_avg[None] + psi * (s - s_avg[None])
    rows.append([samples.to_uint8(o) for o in sampler.generate(x_src, s)])
  return samples.grid(rows, pad=0)


# ------------------------------------------------------------------------------------------------------------
# videos


def get_alphas(start: float = -5, end: float = 5, step: float = 0.5, len_tail: int = 10) -> list[float]:
  """Official interpolation schedule: 0, sigmoid(-5 … 4.5), then 1 held for 10 frames (32 frames)."""
  return [0.0] + [float(1 / (1 + np.exp(-a))) for a in np.arange(start, end, step)] + [1.0] * len_tail


def _interpolation_frames(sampler: Sampler, x_src: np.ndarray, s_prev: np.ndarray, s_next: np.ndarray,
                          alphas: Sequence[float]) -> list[np.ndarray]:
  """Per alpha: sources on top, outputs below, sources side by side -> (2S, N·S, 3) uint8 frames."""
  n = len(x_src)
  styles = np.stack([s_prev + a * (s_next - s_prev) for a in alphas])  # (T, style_dim)
  out = sampler.generate(np.tile(x_src, (len(alphas), 1, 1, 1)), np.repeat(styles, n, 0))
  out = out.reshape(len(alphas), n, *x_src.shape[1:])
  top = np.concatenate([samples.to_uint8(x) for x in x_src], axis=1)
  return [np.concatenate([top, np.concatenate([samples.to_uint8(o) for o in frame], axis=1)], axis=0)
          for frame in out]


def _slide(x_prev: np.ndarray, x_next: np.ndarray, alphas: Sequence[float], margin: int = 32) -> list[np.ndarray]:
  """Official slide(): the next reference slides up over the previous one, in a (2S, S + margin) panel."""
  h, w = x_prev.shape[:2]
  merged = np.concatenate([samples.to_uint8(x_prev), samples.to_uint8(x_next)], axis=0)  # (2S, S, 3)
  frames = []
  for a in alphas:
    canvas = np.zeros((2 * h, w + margin, 3), np.uint8)  # official canvas is -1 -> black
    top = int(h * (1 - a))
    canvas[top:, :w] = merged[:2 * h - top]
    frames.append(canvas)
  return frames


def reference_video(sampler: Sampler, x_src: np.ndarray, x_ref: np.ndarray, y_ref: np.ndarray,
                    progress: bool = True) -> list[np.ndarray]:
  """Official video_ref: style interpolation between consecutive references of the same domain."""
  s_ref = sampler.style_from_reference(x_ref, y_ref)
  alphas = get_alphas()
  video: list[np.ndarray] = []
  prev = None
  for i in tqdm(range(len(x_ref)), desc="video_ref", disable=not progress):
    if prev is None or y_ref[prev] != y_ref[i]:
      prev = i
      continue
    inter = _interpolation_frames(sampler, x_src, s_ref[prev], s_ref[i], alphas)
    slide = _slide(x_ref[prev], x_ref[i], alphas)
    video += [np.concatenate([s, f], axis=1) for s, f in zip(slide, inter)]
    prev = i
  if video:
    video += [video[-1]] * 10  # official: last frame held 10 more times
  return video


def latent_video(sampler: Sampler, x_src: np.ndarray, y_list: Sequence[int], z_list: np.ndarray, psi: float = 1.0,
                 progress: bool = True) -> list[np.ndarray]:
  """Official video_latent: interpolation between consecutive latent styles within each target domain."""
  alphas = get_alphas()
  video: list[np.ndarray] = []
  for y in tqdm(list(y_list), desc="video_latent", disable=not progress):
    s_avg = sampler.average_style(int(y)) if psi != 1.0 else None
    styles = sampler.style_from_latent(np.asarray(z_list, np.float32), np.full((len(z_list),), y, np.int32))
    if s_avg is not None:
      styles = s_avg[None] + psi * (styles - s_avg[None])
    for k in range(1, len(styles)):
      video += _interpolation_frames(sampler, x_src, styles[k - 1], styles[k], alphas)
  if video:
    video += [video[-1]] * 10
  return video

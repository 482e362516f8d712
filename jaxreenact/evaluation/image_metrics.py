"""Per-image reconstruction metrics in JAX: L1, PSNR and SSIM (scikit-image's definitions, jit-able).

All functions take images (B, H, W, C) or (H, W, C) with values in ``[0, data_range]`` and return one value per
image ((B,) or a scalar).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _batched(x) -> tuple[jax.Array, bool]:
  x = jnp.asarray(x, jnp.float32)
  if x.ndim == 3:
    return x[None], True
  if x.ndim != 4:
    raise ValueError(f"expected images (B, H, W, C) or (H, W, C), got shape {x.shape}")
  return x, False


def _pair(a, b) -> tuple[jax.Array, jax.Array, bool]:
  a, single = _batched(a)
  b, _ = _batched(b)
  if a.shape != b.shape:
    raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
  return a, b, single


def l1(a, b) -> jax.Array:
  """Mean absolute difference per image (FOMM/DaGAN reconstruction L1 on [0, 1] images)."""
  a, b, single = _pair(a, b)
  out = jnp.mean(jnp.abs(a - b), axis=(1, 2, 3))
  return out[0] if single else out


def psnr(a, b, data_range: float = 1.0) -> jax.Array:
  """10·log10(data_range² / MSE) per image (skimage.metrics.peak_signal_noise_ratio); identical images give inf."""
  a, b, single = _pair(a, b)
  mse = jnp.mean((a - b) ** 2, axis=(1, 2, 3))
  out = jnp.where(mse == 0, jnp.inf, 10.0 * jnp.log10(data_range ** 2 / jnp.where(mse == 0, 1.0, mse)))
  return out[0] if single else out


def _window_1d(gaussian: bool, win_size: int | None, sigma: float) -> np.ndarray:
  if gaussian:
    radius = int(3.5 * sigma + 0.5)  # skimage passes truncate=3.5 to scipy.ndimage.gaussian_filter
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()
  win_size = 7 if win_size is None else win_size
  if win_size % 2 != 1 or win_size < 3:
    raise ValueError(f"SSIM win_size must be odd and >= 3, got {win_size}")
  return np.full((win_size,), 1.0 / win_size)  # scipy.ndimage.uniform_filter


def _filter_valid(x: jax.Array, w: np.ndarray) -> jax.Array:
  """Separable filter, VALID: exactly skimage's filtered map after it crops (win_size-1)//2 per border."""
  b, h, wd, c = x.shape
  k = jnp.asarray(w, x.dtype)
  x = x.transpose(0, 3, 1, 2).reshape(b * c, 1, h, wd)  # (B·C, 1, H, W)
  dn = ("NCHW", "OIHW", "NCHW")
  prec = jax.lax.Precision.HIGHEST
  x = jax.lax.conv_general_dilated(x, k.reshape(1, 1, -1, 1), (1, 1), "VALID", dimension_numbers=dn, precision=prec)
  x = jax.lax.conv_general_dilated(x, k.reshape(1, 1, 1, -1), (1, 1), "VALID", dimension_numbers=dn, precision=prec)
  return x.reshape(b, c, x.shape[2], x.shape[3])


@functools.partial(jax.jit, static_argnames=("data_range", "gaussian", "win_size", "sigma", "sample_covariance"))
def _ssim(a, b, data_range, gaussian, win_size, sigma, sample_covariance):
  w = _window_1d(gaussian, win_size, sigma)
  n = w.size
  if a.shape[1] < n or a.shape[2] < n:
    raise ValueError(f"SSIM window {n}×{n} is larger than the images {a.shape[1:3]}")
  filt = lambda t: _filter_valid(t, w)  # noqa: E731
  cov_norm = n * n / (n * n - 1.0) if sample_covariance else 1.0
  ux, uy = filt(a), filt(b)
  vx = cov_norm * (filt(a * a) - ux * ux)
  vy = cov_norm * (filt(b * b) - uy * uy)
  vxy = cov_norm * (filt(a * b) - ux * uy)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))  # (B, C, h, w)
  return jnp.mean(s, axis=(1, 2, 3))


def ssim(a, b, data_range: float = 1.0, gaussian: bool = False, win_size: int | None = None, sigma: float = 1.5,
         sample_covariance: bool | None = None) -> jax.Array:
  """Mean SSIM per image, averaged over channels — skimage.metrics.structural_similarity(channel_axis=-1).

  Args:
    a, b: images (B, H, W, C) or (H, W, C) in [0, data_range].
    data_range: value range (1 for [0, 1] images).
    gaussian: False = skimage's default (7×7 uniform window, sample covariance); True = Wang et al. 2004
      (Gaussian σ=1.5 window of 11×11, population covariance), i.e. ``gaussian_weights=True,
      use_sample_covariance=False``.
    win_size: uniform window size (ignored with ``gaussian``).
    sample_covariance: override the covariance normalisation (default: not gaussian).
  Returns:
    (B,) or scalar SSIM.
  """
  a, b, single = _pair(a, b)
  if sample_covariance is None:
    sample_covariance = not gaussian
  out = _ssim(a, b, float(data_range), bool(gaussian), win_size, float(sigma), bool(sample_covariance))
  return out[0] if single else out

"""FOMM's band-limited downsampling (``AntiAliasInterpolation2d``) as a parameter-free function (NHWC)."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np


def _kernel_geometry(scale: float) -> tuple[float, int, int, int]:
  """(sigma, kernel_size, pad_before ka, pad_after kb) exactly as FOMM derives them."""
  if not 0 < scale < 1:
    raise ValueError(f"anti-alias scale must be in (0, 1) (1 is the identity); got {scale!r}")
  sigma = (1 / scale - 1) / 2
  size = 2 * round(sigma * 4) + 1  # Python round (banker's), as FOMM
  ka = size // 2
  kb = ka - 1 if size % 2 == 0 else ka
  return sigma, size, ka, kb


def gaussian_kernel_2d(scale: float) -> np.ndarray:
  """Normalised (k, k) float32 Gaussian of FOMM's AntiAliasInterpolation2d, computed in float32 as torch does."""
  sigma, size, _, _ = _kernel_geometry(scale)
  grid = np.arange(size, dtype=np.float32)
  mean = (size - 1) / 2
  g = np.exp(-(grid - np.float32(mean)) ** 2 / np.float32(2 * sigma ** 2)).astype(np.float32)
  kernel = g[:, None] * g[None, :]  # product over the two meshgrid axes (row index first)
  return (kernel / kernel.sum(dtype=np.float32)).astype(np.float32)


def gaussian_kernel(channels: int, scale: float) -> np.ndarray:
  """The torch buffer ``weight`` of ``AntiAliasInterpolation2d(channels, scale)``: (C, 1, k, k) float32."""
  k = gaussian_kernel_2d(scale)
  return np.ascontiguousarray(np.broadcast_to(k[None, None], (channels, 1) + k.shape))


def anti_alias_downsample(x: jax.Array, scale: float) -> jax.Array:
  """``AntiAliasInterpolation2d(C, scale)(x)``: Gaussian blur then keep every int(1/scale)-th pixel.

  Args:
    x: (B, H, W, C).
    scale: downsampling factor, e.g. 0.25; 1 returns x unchanged (as FOMM).
  Returns:
    (B, ceil(H·scale'), ceil(W·scale'), C) with scale' = 1/int(1/scale).
  """
  chex.assert_rank(x, 4)
  if scale == 1.0:
    return x  # FOMM: identity at scale 1 (the kernel would have sigma 0)
  _, _, ka, kb = _kernel_geometry(scale)
  step = int(1 / scale)  # FOMM: int(inv_scale) slicing
  c = x.shape[-1]
  k2 = gaussian_kernel_2d(scale)
  kernel = jnp.asarray(np.broadcast_to(k2[:, :, None, None], k2.shape + (1, c)), dtype=x.dtype)  # (k, k, 1, C) HWIO
  # F.pad(x, (ka, kb, ka, kb)) zeros, depthwise conv, then [::step, ::step] == the same conv with stride step.
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(step, step), padding=((ka, kb), (ka, kb)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)

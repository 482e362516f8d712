"""Resampling with PyTorch semantics: avg pool, nearest ×k, bilinear with ``align_corners`` (no antialias)."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def avg_pool(x: jax.Array, k: int = 2) -> jax.Array:
  """``F.avg_pool2d(x, k)`` (stride k, no padding, floor): (B, H, W, C) -> (B, H//k, W//k, C)."""
  b, h, w, c = x.shape
  ho, wo = h // k, w // k
  x = x[:, :ho * k, :wo * k, :]  # torch floors odd sizes
  return x.reshape(b, ho, k, wo, k, c).mean(axis=(2, 4))


def upsample_nearest(x: jax.Array, k: int = 2) -> jax.Array:
  """``F.interpolate(x, scale_factor=k, mode='nearest')`` for integer k == repeat."""
  return jnp.repeat(jnp.repeat(x, k, axis=1), k, axis=2)


def _source_coords(out_size: int, in_size: int, align_corners: bool, scale: float | None):
  dst = jnp.arange(out_size, dtype=jnp.float32)
  if align_corners:
    if out_size == 1:
      return jnp.zeros_like(dst)
    return dst * ((in_size - 1) / (out_size - 1))
  # torch: area_pixel_compute_scale uses 1/scale_factor when given, else in/out.
  ratio = (1.0 / scale) if scale is not None else in_size / out_size
  return jnp.maximum((dst + 0.5) * ratio - 0.5, 0.0)  # torch clamps negative source index to 0


def _lerp_axis(x: jax.Array, axis: int, out_size: int, align_corners: bool, scale: float | None) -> jax.Array:
  in_size = x.shape[axis]
  src = _source_coords(out_size, in_size, align_corners, scale)
  i0 = jnp.clip(jnp.floor(src).astype(jnp.int32), 0, in_size - 1)
  i1 = jnp.minimum(i0 + 1, in_size - 1)
  lam = (src - i0.astype(jnp.float32)).astype(x.dtype)
  shape = [1] * x.ndim
  shape[axis] = out_size
  lam = lam.reshape(shape)
  return jnp.take(x, i0, axis=axis) * (1 - lam) + jnp.take(x, i1, axis=axis) * lam


def resize_bilinear(x: jax.Array, size: tuple[int, int], align_corners: bool = False,
                    scale_factor: float | None = None) -> jax.Array:
  """``F.interpolate(x, size, mode='bilinear', align_corners=...)``; no antialiasing.

  Args:
    x: (B, H, W, C).
    size: (H_out, W_out).
    align_corners: torch's flag.
    scale_factor: pass when torch was called with ``scale_factor=`` instead of ``size=``; torch then
      maps coordinates with 1/scale_factor (identical for integer factors).
  Returns:
    (B, H_out, W_out, C).
  """
  ho, wo = size
  x = _lerp_axis(x, 1, ho, align_corners, scale_factor)
  return _lerp_axis(x, 2, wo, align_corners, scale_factor)

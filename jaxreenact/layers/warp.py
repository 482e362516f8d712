"""Bilinear ``grid_sample`` with PyTorch semantics and FOMM's coordinate grid (NHWC).

The sampler reads the four bilinear corners with one gather of rows of the image flattened to (B·H·W, C)
(its transpose is one scatter-add; ≈1.2–1.5× faster forward + backward on CPU than four batched gathers, see
benchmarks/kernels_benchmark.py). Its gradients (w.r.t. both the image and the grid) come from autodiff and
reproduce torch's hand-written backward, including the border/reflection conventions (a coordinate exactly on a
clipping border gets zero gradient).
"""
from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

_PADDING_MODES = ("zeros", "border", "reflection")


def make_coordinate_grid(h: int, w: int, dtype: Any = jnp.float32) -> jax.Array:
  """FOMM ``make_coordinate_grid((h, w), type)``: (H, W, 2), last dim (x, y) in [-1, 1].

  Uses FOMM's ``2 * (i / (n - 1)) - 1`` arithmetic (the (w−1) convention) in the requested dtype.
  """
  # Built in numpy (a constant): XLA may turn `/ (w - 1)` into a multiply by the reciprocal, 1 ulp off torch.
  npdtype = np.dtype(jnp.dtype(dtype)) if jnp.dtype(dtype) != jnp.bfloat16 else np.float32
  x = np.arange(w, dtype=npdtype)
  y = np.arange(h, dtype=npdtype)
  x = 2 * (x / npdtype.type(w - 1)) - 1  # FOMM: 2 * (x / (w - 1)) - 1
  y = 2 * (y / npdtype.type(h - 1)) - 1
  xx = np.broadcast_to(x[None, :], (h, w))
  yy = np.broadcast_to(y[:, None], (h, w))
  return jnp.asarray(np.stack([xx, yy], axis=-1), dtype=dtype)  # (H, W, 2)


def _unnormalize(coord: jax.Array, size: int, align_corners: bool) -> jax.Array:
  # torch grid_sampler_unnormalize: -1/+1 are pixel centres (True) or outer pixel edges (False).
  if align_corners:
    return (coord + 1) / 2 * (size - 1)
  return ((coord + 1) * size - 1) / 2


def _clip(coord: jax.Array, size: int) -> jax.Array:
  # torch clip_coordinates(_set_grad): clamp to [0, size-1]; the borders themselves count as out of
  # bounds for the gradient (grad 0 at exactly 0 or size-1), hence `where` rather than jnp.clip.
  hi = size - 1
  return jnp.where(coord <= 0, jnp.zeros_like(coord),
                   jnp.where(coord >= hi, jnp.full_like(coord, hi), coord))


def _reflect(coord: jax.Array, twice_low: int, twice_high: int) -> jax.Array:
  # torch reflect_coordinates(_set_grad): fold into [low, high]; gradient sign flips per reflection,
  # with x < low mirrored first (grad -1) and x == low treated as positive (grad +1).
  if twice_low == twice_high:
    return jnp.zeros_like(coord)
  low = twice_low / 2
  span = (twice_high - twice_low) / 2
  d = coord - low
  d = jnp.where(d < 0, -d, d)
  extra = jnp.fmod(d, span)
  flips = jnp.floor(jax.lax.stop_gradient(d) / span)
  even = jnp.fmod(flips, 2) == 0
  return jnp.where(even, extra + low, span - extra + low)


def _source_index(coord: jax.Array, size: int, padding_mode: str, align_corners: bool) -> jax.Array:
  """torch grid_sampler_compute_source_index."""
  coord = _unnormalize(coord, size, align_corners)
  if padding_mode == "border":
    coord = _clip(coord, size)
  elif padding_mode == "reflection":
    if align_corners:
      coord = _reflect(coord, 0, 2 * (size - 1))
    else:
      coord = _reflect(coord, -1, 2 * size - 1)
    coord = _clip(coord, size)
  return coord


def grid_sample(img: jax.Array, grid: jax.Array, padding_mode: str = "zeros",
                align_corners: bool = False) -> jax.Array:
  """``F.grid_sample(img, grid, mode='bilinear', padding_mode, align_corners)`` in NHWC.

  Args:
    img: (B, H, W, C).
    grid: (B, Ho, Wo, 2), last dim (x, y) normalised to [-1, 1] (values outside are allowed).
    padding_mode: 'zeros' | 'border' | 'reflection' (torch's names).
    align_corners: torch's flag (False is torch's default since 1.3).
  Returns:
    (B, Ho, Wo, C) in img's dtype; coordinates and weights are computed in at least float32.
  """
  chex.assert_rank([img, grid], 4)
  if padding_mode not in _PADDING_MODES:
    raise ValueError(f"grid_sample: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
  b, h, w, c = img.shape
  if grid.shape[0] != b or grid.shape[-1] != 2:
    raise ValueError(f"grid_sample: grid must be (B={b}, Ho, Wo, 2), got {grid.shape}")
  _, ho, wo, _ = grid.shape
  cdtype = jnp.promote_types(grid.dtype, jnp.float32)
  g = grid.astype(cdtype).reshape(b, ho * wo, 2)
  ix = _source_index(g[..., 0], w, padding_mode, align_corners)  # (B, N)
  iy = _source_index(g[..., 1], h, padding_mode, align_corners)
  x0 = jnp.floor(ix)
  y0 = jnp.floor(iy)
  x1 = x0 + 1
  y1 = y0 + 1
  # torch bilinear weights: nw = (x_se - x)(y_se - y), ne = (x - x_sw)(y_sw - y), ...
  w_nw = (x1 - ix) * (y1 - iy)
  w_ne = (ix - x0) * (y1 - iy)
  w_sw = (x1 - ix) * (iy - y0)
  w_se = (ix - x0) * (iy - y0)

  if b * h * w >= 2 ** 31:
    raise ValueError(f"grid_sample: img {img.shape} has {b * h * w} pixels; row indices are int32 (< 2**31)")
  base = jnp.arange(b, dtype=jnp.int32)[:, None] * (h * w)  # (B, 1): first row of each image
  rows, weights = [], []
  for yc, xc, wc in ((y0, x0, w_nw), (y0, x1, w_ne), (y1, x0, w_sw), (y1, x1, w_se)):
    # torch within_bounds_2d: an out-of-image corner contributes 0 (to the value and to both gradients); it reads
    # a clipped, in-bounds row with weight 0.
    valid = (xc >= 0) & (xc <= w - 1) & (yc >= 0) & (yc <= h - 1)
    xi = jnp.clip(xc, 0, w - 1).astype(jnp.int32)
    yi = jnp.clip(yc, 0, h - 1).astype(jnp.int32)
    rows.append(base + yi * w + xi)  # (B, N)
    weights.append(jnp.where(valid, wc, 0).astype(img.dtype)[..., None])  # (B, N, 1)
  idx = jnp.stack(rows).reshape(4 * b * ho * wo)  # (4·B·N,) corner-major
  # One gather for all corners (and one scatter-add in the backward); indices are clipped, hence in bounds.
  vals = img.reshape(b * h * w, c).at[idx].get(mode="promise_in_bounds").reshape(4, b, ho * wo, c)
  out = vals[0] * weights[0] + vals[1] * weights[1] + vals[2] * weights[2] + vals[3] * weights[3]  # (B, N, C)
  return out.reshape(b, ho, wo, c).astype(img.dtype)

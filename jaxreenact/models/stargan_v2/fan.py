"""FAN landmark network of StarGAN v2 (clovaai/stargan-v2 ``core/wing.py``) in Flax linen, NHWC.

A one-stack AdaptiveWing hourglass: a 256x256 image in [0, 1] -> 98 WFLW landmark heatmaps + 1 boundary map at 64x64.
StarGAN v2 keeps it frozen (BatchNorm in eval mode, running statistics in the ``batch_stats`` collection) and only uses
:meth:`FAN.get_heatmap`, which turns an image in [-1, 1] into the two face masks of the ``w_hpf > 0`` generator.

Submodule names mirror the torch attribute paths (``m0.b2_plus_1.downsample.0`` -> ``m0/b2_plus_1/downsample_0``);
see ``jaxreenact/checkpoint/fan_convert.py`` for the key table. 6,333,603 parameters.
"""
from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.layers.conv import Conv2d
from jaxreenact.layers.resample import avg_pool, resize_bilinear, upsample_nearest

Array = jax.Array

FAN_INPUT_SIZE = 256  # get_heatmap resizes every input to 256x256, as the official code does
MASK_SIZE = 256


def _batch_norm(name: str, dtype: Any, param_dtype: Any) -> nn.BatchNorm:
  # torch BatchNorm2d in eval(): running statistics, eps 1e-5 (FAN is never trained here).
  return nn.BatchNorm(use_running_average=True, momentum=0.9, epsilon=1e-5, dtype=dtype, param_dtype=param_dtype,
                      name=name)


def coord_channels(height: int, width: int, with_r: bool) -> np.ndarray:
  """CoordConv channels (H, W, 2 or 3): row coordinate, column coordinate in [-1, 1] [, radius / max radius]."""
  # Same float32 operations, in the same order, as AddCoordsTh builds its grid.
  rows = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width))
  cols = np.broadcast_to(np.arange(width, dtype=np.float32)[None, :], (height, width))
  rows = rows / np.float32(height - 1) * np.float32(2) - np.float32(1)
  cols = cols / np.float32(width - 1) * np.float32(2) - np.float32(1)
  chans = [rows, cols]
  if with_r:
    radius = np.sqrt(rows * rows + cols * cols)
    chans.append(radius / radius.max())
  return np.stack(chans, axis=-1).astype(np.float32)


class CoordConvTh(nn.Module):
  """CoordConv: append coordinate channels, then ``conv``; returns (conv output, last two appended channels).

  The official ``with_boundary`` branch needs a heatmap argument that FAN never passes, so it is not implemented.
  """
  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  with_r: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, Array]:
    b, h, w, _ = x.shape
    coords = jnp.asarray(coord_channels(h, w, self.with_r), x.dtype)
    x = jnp.concatenate([x, jnp.broadcast_to(coords, (b, h, w, coords.shape[-1]))], axis=-1)  # (B, H, W, C + 3)
    y = Conv2d(self.features, self.kernel_size, stride=self.stride, padding=self.padding, name="conv",
               dtype=self.dtype, param_dtype=self.param_dtype)(x)
    return y, x[..., -2:]


class ConvBlock(nn.Module):
  """Pre-activation block: BN-ReLU-conv3x3 to C/2, C/4, C/4 channels, concatenated, plus the (projected) input."""
  features: int
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    half, quarter = self.features // 2, self.features // 4
    out1 = Conv2d(half, 3, padding=1, use_bias=False, name="conv1", **kw)(nn.relu(_batch_norm("bn1", **kw)(x)))
    out2 = Conv2d(quarter, 3, padding=1, use_bias=False, name="conv2", **kw)(nn.relu(_batch_norm("bn2", **kw)(out1)))
    out3 = Conv2d(quarter, 3, padding=1, use_bias=False, name="conv3", **kw)(nn.relu(_batch_norm("bn3", **kw)(out2)))
    shortcut = x
    if x.shape[-1] != self.features:
      # torch nn.Sequential(BatchNorm2d, ReLU, Conv2d 1x1 no bias): keys downsample.0 / downsample.2
      shortcut = nn.relu(_batch_norm("downsample_0", **kw)(x))
      shortcut = Conv2d(self.features, 1, use_bias=False, name="downsample_2", **kw)(shortcut)
    return jnp.concatenate([out1, out2, out3], axis=-1) + shortcut  # (B, H, W, features)


class HourGlass(nn.Module):
  """Recursive hourglass of ``depth`` levels (``b1_L``, ``b2_L``, ``b3_L``, ``b2_plus_1``) after a 1x1 CoordConv."""
  depth: int = 4
  features: int = 256
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, Array]:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x, last_channels = CoordConvTh(self.features, 1, with_r=True, name="coordconv", **kw)(x)
    names = [f"b{i}_{lvl}" for lvl in range(1, self.depth + 1) for i in (1, 2, 3)] + ["b2_plus_1"]
    blocks = {n: ConvBlock(self.features, name=n, **kw) for n in names}

    def level(lvl: int, inp: Array) -> Array:
      up = blocks[f"b1_{lvl}"](inp)
      low = blocks[f"b2_{lvl}"](avg_pool(inp, 2))  # torch pools the level input, not ``up``
      low = level(lvl - 1, low) if lvl > 1 else blocks["b2_plus_1"](low)
      low = blocks[f"b3_{lvl}"](low)
      return up + upsample_nearest(low, 2)  # F.interpolate(scale_factor=2, mode='nearest')

    return level(self.depth, x), last_channels


class FAN(nn.Module):
  """StarGAN v2's FAN; ``__call__`` maps (B, H, W, 3) in [0, 1] (H, W = 256 officially) to heatmaps.

  Attributes:
    num_modules: kept for parity with the official signature; the official class builds one stack whatever it says,
      so only 1 is accepted.
    end_relu: ReLU on the heatmaps (False in StarGAN v2).
    num_landmarks: 98 (WFLW); the network predicts one more channel, the boundary map.
  """
  num_modules: int = 1
  end_relu: bool = False
  num_landmarks: int = 98
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> tuple[list[Array], list[Array]]:
    """Runs the network.

    Args:
      x: (B, H, W, 3) image in [0, 1]; H and W multiples of 64 (the official network only accepts 256).
    Returns:
      ``([heatmaps (B, H/4, W/4, num_landmarks + 1)], [coord channels (B, H/4, W/4, 2)])``: lists of one element,
      as the official forward returns (its second list holds the last two CoordConv channels of the hourglass).
    """
    if self.num_modules != 1:
      raise ValueError(f"FAN.num_modules must be 1 (the official FAN builds a single stack), got {self.num_modules}")
    chex.assert_rank(x, 4)
    b, h, w, c = x.shape
    if c != 3 or h % 64 or w % 64:
      raise ValueError(f"FAN expects (B, H, W, 3) with H, W multiples of 64 (officially 256), got {x.shape}")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x, _ = CoordConvTh(64, 7, stride=2, padding=3, with_r=True, name="conv1", **kw)(x)  # (B, H/2, W/2, 64)
    x = nn.relu(_batch_norm("bn1", **kw)(x))
    x = avg_pool(ConvBlock(128, name="conv2", **kw)(x), 2)  # (B, H/4, W/4, 128)
    x = ConvBlock(128, name="conv3", **kw)(x)
    x = ConvBlock(256, name="conv4", **kw)(x)
    ll, boundary = HourGlass(depth=4, features=256, name="m0", **kw)(x)
    ll = ConvBlock(256, name="top_m_0", **kw)(ll)
    ll = nn.relu(_batch_norm("bn_end0", **kw)(Conv2d(256, 1, name="conv_last0", **kw)(ll)))
    out = Conv2d(self.num_landmarks + 1, 1, name="l0", **kw)(ll)  # (B, H/4, W/4, num_landmarks + 1)
    if self.end_relu:
      out = nn.relu(out)
    return [out], [boundary]

  def get_heatmap(self, x: Array, b_preprocess: bool = True) -> tuple[Array, Array] | Array:
    """Official ``FAN.get_heatmap``: image in [-1, 1] -> the two generator masks.

    Args:
      x: (B, H, W, 3) in [-1, 1], any H, W.
      b_preprocess: False returns the raw 64x64 heatmaps without upsampling or mask recipe.
    Returns:
      ``(mask, mask2)``, each (B, 256, 256, 1) in [0, 1] (``mask2`` leaves out face line, mouth and eyebrows);
      with ``b_preprocess=False`` the heatmaps (B, 64, 64, num_landmarks).
    """
    chex.assert_rank(x, 4)
    if x.shape[-1] != 3:
      raise ValueError(f"FAN.get_heatmap expects (B, H, W, 3) images in [-1, 1], got {x.shape}")
    if x.shape[1:3] != (FAN_INPUT_SIZE, FAN_INPUT_SIZE):
      # F.interpolate(x, size=256, mode='bilinear'): default align_corners=False, no antialias
      x = resize_bilinear(x, (FAN_INPUT_SIZE, FAN_INPUT_SIZE), align_corners=False)
    outputs, _ = self(x * 0.5 + 0.5)
    heatmaps = outputs[-1][..., :-1]  # drop the boundary channel: (B, 64, 64, num_landmarks)
    if not b_preprocess:
      return heatmaps
    factor = x.shape[1] // heatmaps.shape[1]
    # F.interpolate(scale_factor=4, mode='bilinear', align_corners=True): output (64*4, 64*4)
    heatmaps = resize_bilinear(heatmaps.astype(jnp.float32), (heatmaps.shape[1] * factor, heatmaps.shape[2] * factor),
                               align_corners=True)
    return preprocess(heatmaps)


# --------------------------------------------------------------------------------------------------------------------
# Heatmaps -> masks (official ``preprocess``), channel ranges [start, end) of the 98 WFLW landmarks.
CHIN = (8, 25)
EYEBROWS = (33, 51)
EYEBROWS_EDGES = (33, 46)
NOSE = (51, 55)
NOSTRILS = (55, 60)
EYES = (60, 76)
LIP_EDGES = (76, 82)
LIP_UPPER = (77, 82)
LIP_LOWER = (83, 88)
LIP_INNER = (88, 96)
# (range, shift, power), applied in this order; the shift is multiplied by H // 256.
_PART_OPS = ((CHIN, 0, 3), (EYEBROWS, -7, 2), (NOSTRILS, 8, 4), (LIP_UPPER, -8, 4), (LIP_LOWER, 8, 4),
             (LIP_INNER, -2, 3))
_ZERO_OUT = tuple(range(0, CHIN[0])) + tuple(range(CHIN[1], 33)) + (EYEBROWS_EDGES[0], EYEBROWS_EDGES[1],
                                                                    LIP_EDGES[0], LIP_EDGES[1])


def _shift(x: Array, n: int) -> Array:
  """Official ``shift(x, N)``: cyclic along H, output row i = input row (i + N) mod H."""
  return jnp.roll(x, -n, axis=1)


def preprocess(x: Array) -> tuple[Array, Array]:
  """Official ``preprocess``: upsampled heatmaps (B, H, W, 98) -> (mask, mask2), each (B, H, W, 1) in [0, 1].

  Truncates values below 0.1, min-max normalises each (sample, channel), reshapes part channels (shift + power),
  zeroes some channels, and sums over channels; ``mask2`` additionally leaves out chin, lips and eyebrows.
  """
  chex.assert_rank(x, 4)
  if x.shape[-1] < LIP_INNER[1]:
    raise ValueError(f"preprocess expects >= {LIP_INNER[1]} landmark channels (WFLW 98), got shape {x.shape}")
  x = jnp.where(x < 0.1, jnp.zeros_like(x), x)  # truncate(thres=0.1)
  # torch min/max propagate NaN; XLA's CPU reductions may not, so make it explicit
  has_nan = jnp.isnan(x).any(axis=(1, 2), keepdims=True)
  lo = jnp.where(has_nan, jnp.nan, jnp.min(x, axis=(1, 2), keepdims=True))
  hi = jnp.where(has_nan, jnp.nan, jnp.max(x, axis=(1, 2), keepdims=True))
  x = (x - lo) / (hi - lo + 1e-6)  # normalize(eps=1e-6), per sample and channel
  sw = x.shape[1] // 256
  for (start, end), n, power in _PART_OPS:
    x = x.at[..., start:end].set(_shift(x[..., start:end], n * sw) ** power)
  x = x.at[..., list(_ZERO_OUT)].set(0.0)
  start, end = NOSE
  x = x.at[..., start + 1:end].set(_shift(x[..., start + 1:end], 4 * sw))  # then ``** 1``: a no-op
  start, end = EYES
  eyes = x[..., start:end]
  x = x.at[..., start:end].set(_shift(eyes, -8) ** 3 + _shift(eyes, -24))  # official: fixed -8/-24, not times sw
  x2 = x.at[..., CHIN[0]:CHIN[1]].set(0.0)
  x2 = x2.at[..., LIP_EDGES[0]:LIP_INNER[1]].set(0.0)
  x2 = x2.at[..., EYEBROWS[0]:EYEBROWS[1]].set(0.0)
  m = jnp.sum(x, axis=-1, keepdims=True)  # (B, H, W, 1)
  m2 = jnp.sum(x2, axis=-1, keepdims=True)
  m = jnp.where(jnp.isnan(m), jnp.zeros_like(m), m)  # x[x != x] = 0
  # Official ``x2[x != x] = 0`` tests the already cleaned x, so it never fires: any NaN in mask2 stays.
  m2 = jnp.where(jnp.isnan(m), jnp.zeros_like(m2), m2)
  return jnp.clip(m, 0.0, 1.0), jnp.clip(m2, 0.0, 1.0)

"""FOMM keypoint detector (modules/keypoint_detector.py) in Flax, NHWC; DaGAN feeds it RGB + depth."""
from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.layers.antialias import anti_alias_downsample
from jaxreenact.layers.conv import Conv2d
from jaxreenact.layers.warp import make_coordinate_grid
from jaxreenact.models.dagan.blocks import Hourglass


def _identity_jacobian_bias(num_maps: int):
  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.asarray(np.tile(np.array([1.0, 0.0, 0.0, 1.0], np.float32), num_maps), dtype).reshape(shape)
  return init


class KPDetector(nn.Module):
  """Keypoints as soft-argmax of heatmaps (softmax / temperature) plus heatmap-weighted Jacobians.

  ``__call__(x (B, H, W, num_channels), train=False)`` -> {"value": (B, K, 2) (x, y) in [-1, 1],
  "jacobian": (B, K, 2, 2)} (no "jacobian" without ``estimate_jacobian``).
  """
  block_expansion: int
  num_kp: int
  num_channels: int
  max_features: int
  num_blocks: int
  temperature: float
  estimate_jacobian: bool = False
  scale_factor: float = 1
  single_jacobian_map: bool = False
  pad: int = 0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    chex.assert_rank(x, 4)
    if x.shape[-1] != self.num_channels:
      raise ValueError(f"KPDetector: expected {self.num_channels} input channels (RGB+depth under rgbd), "
                       f"got input of shape {x.shape}")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if self.scale_factor != 1:
      x = anti_alias_downsample(x, self.scale_factor)  # torch buffer `down.weight` (fixed Gaussian)
    feature_map = Hourglass(self.block_expansion, self.num_blocks, self.max_features, name="predictor", **kw)(x, train)
    logits = Conv2d(self.num_kp, 7, padding=self.pad, name="kp", **kw)(feature_map)  # (B, h, w, K)
    b, h, w, k = logits.shape
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    heatmap = jax.nn.softmax(logits / self.temperature, axis=(1, 2))  # softmax over h·w per keypoint
    grid = make_coordinate_grid(h, w, heatmap.dtype)  # (h, w, 2)
    value = jnp.sum(heatmap[..., None] * grid[None, :, :, None, :], axis=(1, 2))  # (B, K, 2)
    out = {"value": value}
    if self.estimate_jacobian:
      num_maps = 1 if self.single_jacobian_map else self.num_kp
      jmap = Conv2d(4 * num_maps, 7, padding=self.pad, name="jacobian", kernel_init=nn.initializers.zeros,
                    bias_init=_identity_jacobian_bias(num_maps), **kw)(feature_map)
      jmap = jmap.reshape(b, h, w, num_maps, 4).astype(heatmap.dtype)  # torch view (B, J, 4, h, w)
      jac = jnp.sum(heatmap[..., None] * jmap, axis=(1, 2))  # (B, K, 4)
      out["jacobian"] = jac.reshape(b, k, 2, 2)
    return out

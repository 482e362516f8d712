"""FOMM multi-scale discriminator (modules/discriminator.py) in Flax, NHWC, with keypoint-heatmap conditioning."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.layers.conv import Conv2d
from jaxreenact.layers.norm import InstanceNorm2d
from jaxreenact.layers.resample import avg_pool
from jaxreenact.layers.spectral_norm import SpectralNormConv2d
from jaxreenact.models.dagan.utils import Keypoints, image_pyramid, kp2gaussian, scale_key


class DiscDownBlock2d(nn.Module):
  """Conv 4×4 VALID -> [InstanceNorm(affine)] -> LeakyReLU 0.2 -> [avg pool 2]."""
  features: int
  norm: bool = False
  pool: bool = False
  sn: bool = False
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if self.sn:
      x = SpectralNormConv2d(self.features, 4, name="conv", **kw)(x, train)
    else:
      x = Conv2d(self.features, 4, name="conv", **kw)(x)
    if self.norm:
      x = InstanceNorm2d(affine=True, name="norm", **kw)(x)  # nn.InstanceNorm2d(affine=True), eps 1e-5
    x = jax.nn.leaky_relu(x, 0.2)
    if self.pool:
      x = avg_pool(x, 2)
    return x


class Discriminator(nn.Module):
  """Patch discriminator on image ⊕ keypoint heatmaps; returns (feature_maps, prediction_map)."""
  num_channels: int = 3
  block_expansion: int = 64
  num_blocks: int = 4
  max_features: int = 512
  sn: bool = False
  use_kp: bool = False
  num_kp: int = 10
  kp_variance: float = 0.01
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, kp: Keypoints | None = None,
               train: bool = False) -> tuple[list[jax.Array], jax.Array]:
    chex.assert_rank(x, 4)
    if x.shape[-1] != self.num_channels:
      raise ValueError(f"Discriminator: expected {self.num_channels} image channels, got {x.shape}")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    out = x
    if self.use_kp:
      if kp is None:
        raise ValueError("Discriminator(use_kp=True) needs the driving keypoints")
      kpv = jax.lax.stop_gradient(kp["value"] if isinstance(kp, Mapping) else kp)  # official: detach_kp
      out = jnp.concatenate([out, kp2gaussian(kpv, x.shape[1:3], self.kp_variance).astype(x.dtype)], axis=-1)
    feature_maps = []
    for i in range(self.num_blocks):
      out = DiscDownBlock2d(min(self.max_features, self.block_expansion * 2 ** (i + 1)), norm=i != 0,
                            pool=i != self.num_blocks - 1, sn=self.sn, name=f"down_blocks_{i}", **kw)(out, train)
      feature_maps.append(out)
    if self.sn:
      prediction_map = SpectralNormConv2d(1, 1, name="conv", **kw)(out, train)
    else:
      prediction_map = Conv2d(1, 1, name="conv", **kw)(out)
    return feature_maps, prediction_map


class MultiScaleDiscriminator(nn.Module):
  """One :class:`Discriminator` per scale (Flax names ``discs_<scale with '.'→'-'>``, torch ``discs.<key>``).

  ``__call__(image, kp_driving, train=False)``: ``image`` is either (B, H, W, C) — each scale's input is then
  its FOMM anti-aliased pyramid level — or a pyramid dict {'prediction_<scale>': image}. Returns
  {'feature_maps_<s>': [...], 'prediction_map_<s>': (B, h, w, 1)} for every scale s, plus 'feature_maps' and
  'prediction_map' for the first scale (the only one in DaGAN's scales [1]).
  """
  scales: Sequence[float] = (1,)
  num_channels: int = 3
  block_expansion: int = 64
  num_blocks: int = 4
  max_features: int = 512
  sn: bool = False
  use_kp: bool = False
  num_kp: int = 10
  kp_variance: float = 0.01
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, image: jax.Array | Mapping[str, jax.Array], kp_driving: Keypoints | None = None,
               train: bool = False) -> dict[str, Any]:
    pyramid = image if isinstance(image, Mapping) else image_pyramid(image, self.scales)
    out: dict[str, Any] = {}
    for s in self.scales:
      key = scale_key(s)
      if f"prediction_{key}" not in pyramid:
        raise ValueError(f"MultiScaleDiscriminator: input pyramid lacks 'prediction_{key}' (has {sorted(pyramid)})")
      disc = Discriminator(self.num_channels, self.block_expansion, self.num_blocks, self.max_features, self.sn,
                           self.use_kp, self.num_kp, self.kp_variance, name=f"discs_{key.replace('.', '-')}",
                           dtype=self.dtype, param_dtype=self.param_dtype)
      feature_maps, prediction_map = disc(pyramid[f"prediction_{key}"], kp_driving, train)
      out[f"feature_maps_{key}"] = feature_maps
      out[f"prediction_map_{key}"] = prediction_map
    first = scale_key(self.scales[0])
    out["feature_maps"] = out[f"feature_maps_{first}"]
    out["prediction_map"] = out[f"prediction_map_{first}"]
    return out

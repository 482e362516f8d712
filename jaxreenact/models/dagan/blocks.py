"""FOMM building blocks (modules/util.py) in Flax, NHWC; names mirror the torch attributes.

Every BatchNorm block takes ``train``: False normalises with running statistics (torch eval), True with
batch statistics, updating ``batch_stats`` when that collection is mutable (torch train).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.layers.batchnorm import BatchNorm2d
from jaxreenact.layers.conv import Conv2d, Padding
from jaxreenact.layers.resample import avg_pool, upsample_nearest


class SameBlock2d(nn.Module):
  """conv -> BN -> ReLU at constant resolution."""
  features: int
  kernel_size: int | tuple[int, int] = 3
  padding: Padding = 1
  groups: int = 1
  dtype: Any = None
  param_dtype: Any = jnp.float32
  pool: bool = False  # DownBlock2d: then avg pool 2

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = Conv2d(self.features, self.kernel_size, padding=self.padding, groups=self.groups, name="conv",
               dtype=self.dtype, param_dtype=self.param_dtype)(x)
    x = BatchNorm2d(name="norm", dtype=self.dtype, param_dtype=self.param_dtype)(x, use_running_average=not train)
    x = nn.relu(x)
    return avg_pool(x, 2) if self.pool else x


class DownBlock2d(SameBlock2d):
  """conv -> BN -> ReLU -> avg pool 2 (torch AvgPool2d((2, 2)), floor)."""
  pool: bool = True


class UpBlock2d(nn.Module):
  """Nearest x2 (F.interpolate(scale_factor=2)) -> conv -> BN -> ReLU."""
  features: int
  kernel_size: int | tuple[int, int] = 3
  padding: Padding = 1
  groups: int = 1
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = upsample_nearest(x, 2)
    x = Conv2d(self.features, self.kernel_size, padding=self.padding, groups=self.groups, name="conv",
               dtype=self.dtype, param_dtype=self.param_dtype)(x)
    x = BatchNorm2d(name="norm", dtype=self.dtype, param_dtype=self.param_dtype)(x, use_running_average=not train)
    return nn.relu(x)


class ResBlock2d(nn.Module):
  """Pre-activation residual block: x + conv2(relu(BN2(conv1(relu(BN1(x))))))."""
  kernel_size: int | tuple[int, int] = 3
  padding: Padding = 1
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    c = x.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    h = BatchNorm2d(name="norm1", **kw)(x, use_running_average=not train)
    h = Conv2d(c, self.kernel_size, padding=self.padding, name="conv1", **kw)(nn.relu(h))
    h = BatchNorm2d(name="norm2", **kw)(h, use_running_average=not train)
    h = Conv2d(c, self.kernel_size, padding=self.padding, name="conv2", **kw)(nn.relu(h))
    return h + x


class Encoder(nn.Module):
  """Hourglass encoder: returns [x, down_0(x), down_1(...), ...]."""
  block_expansion: int
  num_blocks: int = 3
  max_features: int = 256
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> list[jax.Array]:
    outs = [x]
    for i in range(self.num_blocks):
      feats = min(self.max_features, self.block_expansion * 2 ** (i + 1))
      outs.append(DownBlock2d(feats, 3, 1, name=f"down_blocks_{i}", dtype=self.dtype,
                              param_dtype=self.param_dtype)(outs[-1], train))
    return outs


class Decoder(nn.Module):
  """Hourglass decoder: up-block then concatenate the matching encoder output (channels last)."""
  block_expansion: int
  num_blocks: int = 3
  max_features: int = 256
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feats: list[jax.Array], train: bool = False) -> jax.Array:
    feats = list(feats)
    out = feats.pop()
    for n, i in enumerate(reversed(range(self.num_blocks))):
      feats_out = min(self.max_features, self.block_expansion * 2 ** i)
      out = UpBlock2d(feats_out, 3, 1, name=f"up_blocks_{n}", dtype=self.dtype,
                      param_dtype=self.param_dtype)(out, train)
      out = jnp.concatenate([out, feats.pop()], axis=-1)  # torch.cat(dim=1)
    return out


class Hourglass(nn.Module):
  """FOMM hourglass; output channels = block_expansion + input channels."""
  block_expansion: int
  num_blocks: int = 3
  max_features: int = 256
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    kw = dict(block_expansion=self.block_expansion, num_blocks=self.num_blocks, max_features=self.max_features,
              dtype=self.dtype, param_dtype=self.param_dtype)
    size = 2 ** self.num_blocks
    if x.shape[1] % size or x.shape[2] % size:
      raise ValueError(f"Hourglass with {self.num_blocks} blocks needs H and W divisible by {size}; "
                       f"got input {x.shape}")
    return Decoder(name="decoder", **kw)(Encoder(name="encoder", **kw)(x, train), train)

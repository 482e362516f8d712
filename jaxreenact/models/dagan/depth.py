"""monodepth2 depth network used (frozen) by DaGAN: ResNet encoder + disparity decoder, NHWC.

Flax paths mirror the two official files: ``encoder.pth`` key ``encoder.layer1.0.conv1.weight`` lives at
``params['encoder']['encoder']['layer1_0']['conv1']['kernel']``, ``depth.pth`` key
``decoder.0.conv.conv.weight`` at ``params['decoder']['decoder_0']['conv']['conv']['kernel']``
(see ``jaxreenact.checkpoint.depth_convert``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.layers.batchnorm import BatchNorm2d
from jaxreenact.layers.conv import Conv2d, torch_default_kernel_init
from jaxreenact.layers.resample import upsample_nearest

# torchvision presets: num_layers -> (block, blocks per stage).
RESNET_PRESETS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}
EXPANSION = {"basic": 1, "bottleneck": 4}


def kaiming_normal_fan_out(key, shape, dtype=jnp.float32):
  """torchvision ResNet conv init: kaiming_normal_(mode='fan_out', nonlinearity='relu')."""
  fan_out = math.prod(shape[:-2]) * shape[-1]  # kh·kw·O of HWIO
  return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / fan_out)


def _conv(features: int, k: int, stride: int, name: str, dtype, param_dtype) -> Conv2d:
  # torchvision conv1x1/conv3x3/7×7 stem: padding k//2, no bias
  return Conv2d(features, k, stride=stride, padding=k // 2, use_bias=False, kernel_init=kaiming_normal_fan_out,
                name=name, dtype=dtype, param_dtype=param_dtype)


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  """``nn.MaxPool2d(3, stride=2, padding=1)``: padding is -inf (never selected)."""
  # A Python -inf init lets JAX recognise the max monoid (reduce_window_max), which has a gradient under jit.
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                               ((0, 0), (1, 1), (1, 1), (0, 0)))


class ResBlock(nn.Module):
  """torchvision BasicBlock / Bottleneck (v1.5: stride on the 3×3); names conv1, bn1, …, downsample_{0,1}."""
  planes: int
  block: str = "basic"
  stride: int = 1
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    bn = lambda name: BatchNorm2d(name=name, **kw)
    out_ch = self.planes * EXPANSION[self.block]
    if self.block == "basic":
      h = nn.relu(bn("bn1")(_conv(self.planes, 3, self.stride, "conv1", **kw)(x), not train))
      h = bn("bn2")(_conv(self.planes, 3, 1, "conv2", **kw)(h), not train)
    else:
      h = nn.relu(bn("bn1")(_conv(self.planes, 1, 1, "conv1", **kw)(x), not train))
      h = nn.relu(bn("bn2")(_conv(self.planes, 3, self.stride, "conv2", **kw)(h), not train))
      h = bn("bn3")(_conv(out_ch, 1, 1, "conv3", **kw)(h), not train)
    if self.stride != 1 or x.shape[-1] != out_ch:  # torchvision: 1×1 conv + BN shortcut
      x = bn("downsample_1")(_conv(out_ch, 1, self.stride, "downsample_0", **kw)(x), not train)
    return nn.relu(h + x)


class UnusedLinear(nn.Module):
  """Declares torchvision's classifier ``fc`` (kernel (in, out), bias) without computing anything."""
  in_features: int
  features: int
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self) -> None:
    self.param("kernel", torch_default_kernel_init, (self.in_features, self.features), self.param_dtype)
    bound = 1.0 / math.sqrt(self.in_features)
    self.param("bias", lambda k, s, d=jnp.float32: jax.random.uniform(k, s, d, -bound, bound), (self.features,),
               self.param_dtype)


def resolve_resnet(owner: str, num_layers: int, block: str | None, layers: Sequence[int] | None,
                   widths: Sequence[int]) -> tuple[str, tuple[int, ...]]:
  """(block, layers) of a ResNet: the torchvision preset for ``num_layers`` unless both are given; validated."""
  preset = RESNET_PRESETS.get(num_layers)
  if preset is None and (block is None or layers is None):
    raise ValueError(f"{owner}.num_layers must be one of {sorted(RESNET_PRESETS)} unless block and layers are both "
                     f"given; got num_layers={num_layers}")
  block = block or preset[0]
  layers = tuple(layers) if layers is not None else preset[1]
  if block not in EXPANSION:
    raise ValueError(f"{owner}.block must be 'basic' or 'bottleneck', got {block!r}")
  if len(layers) != 4 or len(tuple(widths)) != 4:
    raise ValueError(f"{owner}.layers and widths need 4 entries; got {layers} and {tuple(widths)}")
  return block, layers


class ResNet(nn.Module):
  """torchvision ResNet trunk returning monodepth2's five features (1/2, 1/4, 1/8, 1/16, 1/32)."""
  block: str
  layers: Sequence[int]
  widths: Sequence[int] = (64, 128, 256, 512)
  num_classes: int = 1000
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> list[jax.Array]:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    h = _conv(self.widths[0], 7, 2, "conv1", **kw)(x)
    feats = [nn.relu(BatchNorm2d(name="bn1", **kw)(h, not train))]  # (B, H/2, W/2, w0)
    h = max_pool_3x3_s2(feats[-1])
    for i, (n, width) in enumerate(zip(self.layers, self.widths)):
      for j in range(n):
        stride = 2 if (i > 0 and j == 0) else 1
        h = ResBlock(width, self.block, stride, name=f"layer{i + 1}_{j}", **kw)(h, train)
      feats.append(h)
    # Unused classifier: parameters only, so counts and files match torchvision (no compute).
    UnusedLinear(self.widths[3] * EXPANSION[self.block], self.num_classes, self.param_dtype, name="fc")()
    return feats


class ResnetEncoder(nn.Module):
  """monodepth2 ResnetEncoder: (img − 0.45) / 0.225, then the ResNet trunk as child ``encoder``."""
  block: str
  layers: Sequence[int]
  widths: Sequence[int] = (64, 128, 256, 512)
  num_classes: int = 1000
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, img: jax.Array, train: bool = False) -> list[jax.Array]:
    x = (img - 0.45) / 0.225  # monodepth2 ResnetEncoder input normalisation
    return ResNet(self.block, tuple(self.layers), tuple(self.widths), self.num_classes, self.dtype,
                  self.param_dtype, name="encoder")(x, train)


class Conv3x3(nn.Module):
  """monodepth2 Conv3x3: ReflectionPad2d(1) + Conv2d 3×3 with bias, as child ``conv``."""
  features: int
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return Conv2d(self.features, 3, padding=1, padding_mode="reflect", name="conv", dtype=self.dtype,
                  param_dtype=self.param_dtype)(x)


class ConvBlock(nn.Module):
  """monodepth2 ConvBlock: Conv3x3 (child ``conv``) + ELU (alpha 1, torch default)."""
  features: int
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.elu(Conv3x3(self.features, self.dtype, self.param_dtype, name="conv")(x))


class DepthDecoder(nn.Module):
  """monodepth2 DepthDecoder; children ``decoder_{i}`` in the official ModuleList order."""
  scales: Sequence[int] = (0, 1, 2, 3)
  num_ch_dec: Sequence[int] = (16, 32, 64, 128, 256)
  num_output_channels: int = 1
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feats: Sequence[jax.Array]) -> list[jax.Array]:
    """feats: the five encoder maps; returns sigmoid disparities for sorted(scales), finest first."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    scales = list(self.scales)
    # Official index: upconv (4,0),(4,1),…,(0,1) = 0..9, then dispconv in the order of `scales`.
    disp_index = {s: 10 + k for k, s in enumerate(scales)}
    outputs = {}
    x = feats[-1]
    for i in range(4, -1, -1):
      x = ConvBlock(self.num_ch_dec[i], name=f"decoder_{2 * (4 - i)}", **kw)(x)
      x = upsample_nearest(x, 2)  # F.interpolate(scale_factor=2, mode='nearest')
      if i > 0:
        x = jnp.concatenate([x, feats[i - 1].astype(x.dtype)], axis=-1)  # torch.cat(dim=1) in NHWC
      x = ConvBlock(self.num_ch_dec[i], name=f"decoder_{2 * (4 - i) + 1}", **kw)(x)
      if i in disp_index:
        d = Conv3x3(self.num_output_channels, name=f"decoder_{disp_index[i]}", **kw)(x)
        outputs[i] = jax.nn.sigmoid(d)  # (B, H/2^i, W/2^i, 1)
    return [outputs[s] for s in sorted(outputs)]


class DepthNet(nn.Module):
  """DaGAN's frozen depth network: img (B, H, W, 3) in [0, 1] -> disparities, scale 0 first.

  Fields: ``num_layers`` picks a torchvision preset (18|34|50|101|152); ``block``/``layers`` override it
  (tiny test nets); ``widths`` are the four stage widths (the stem has ``widths[0]``). BatchNorm runs on
  running statistics unless ``train=True`` (batch statistics; pass ``mutable=['batch_stats']`` to update them).
  H and W must be multiples of 32, at least 64.
  """
  num_layers: int = 18
  block: str | None = None
  layers: tuple[int, ...] | None = None
  widths: tuple[int, ...] = (64, 128, 256, 512)
  scales: tuple[int, ...] = (0, 1, 2, 3)
  num_ch_dec: tuple[int, ...] = (16, 32, 64, 128, 256)
  num_classes: int = 1000
  dtype: Any = None
  param_dtype: Any = jnp.float32

  def resolved(self) -> tuple[str, tuple[int, ...]]:
    """(block, layers) after applying the ``num_layers`` preset."""
    return resolve_resnet("DepthNet", self.num_layers, self.block, self.layers, self.widths)

  def num_ch_enc(self) -> tuple[int, ...]:
    block, _ = self.resolved()
    e = EXPANSION[block]
    w = tuple(self.widths)
    return (w[0], w[0] * e, w[1] * e, w[2] * e, w[3] * e)

  @nn.compact
  def __call__(self, img: jax.Array, train: bool = False) -> list[jax.Array]:
    chex.assert_rank(img, 4)
    b, h, w, c = img.shape
    if c != 3 or h % 32 or w % 32 or h < 64 or w < 64:
      # torch: ReflectionPad2d(1) fails on the 1×1 map at 1/32, so 64 is the smallest size (jnp.pad would not fail).
      raise ValueError(f"DepthNet expects (B, H, W, 3) with H, W multiples of 32 and at least 64; got {img.shape}")
    block, layers = self.resolved()
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    feats = ResnetEncoder(block, layers, tuple(self.widths), self.num_classes, name="encoder", **kw)(
        img.astype(self.dtype or img.dtype), train)
    return DepthDecoder(tuple(self.scales), tuple(self.num_ch_dec), name="decoder", **kw)(feats)

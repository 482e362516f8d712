"""StarGAN v2 networks (clovaai/stargan-v2 core/model.py) in Flax linen, NHWC.

Submodule names mirror the PyTorch attribute paths (``encode.0.conv1`` -> ``encode_0/conv1``) so that
checkpoint conversion is a naming rule, not a hand-written table.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.layers import conv as conv_lib
from jaxreenact.layers import filters, norm, resample

Array = jax.Array
# StarGAN v2 hard-codes LeakyReLU(0.2) everywhere.
lrelu = lambda x: jax.nn.leaky_relu(x, 0.2)  # noqa: E731


def _kernel_init(init: str):
  """'he': core/utils.he_init (kaiming_normal fan_in, zero bias); 'torch': torch default init."""
  if init == "he":
    return conv_lib.kaiming_normal_fan_in, nn.initializers.zeros
  if init == "torch":
    return None, None
  raise ValueError(f"init must be 'he' or 'torch', got {init!r}")


class _Base(nn.Module):
  init_scheme: str = "he"
  dtype: Any = None
  param_dtype: Any = jnp.float32

  def conv(self, features, k, pad, name, use_bias=True):
    kinit, binit = _kernel_init(self.init_scheme)
    return conv_lib.Conv2d(features, k, padding=pad, use_bias=use_bias, name=name, kernel_init=kinit,
                           bias_init=binit, dtype=self.dtype, param_dtype=self.param_dtype)

  def linear(self, features, name):
    kinit, binit = _kernel_init(self.init_scheme)
    return conv_lib.Linear(features, name=name, kernel_init=kinit, bias_init=binit, dtype=self.dtype,
                           param_dtype=self.param_dtype)


class _ParamOnlyConv1x1(nn.Module):
  """Holds the decoder shortcut weight that the official w_hpf>0 generator owns but never uses."""
  features: int
  in_features: int
  kernel_init: Callable | None = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self):
    self.param("kernel", self.kernel_init or conv_lib.torch_default_kernel_init,
               (1, 1, self.in_features, self.features), self.param_dtype)


class ResBlk(_Base):
  """Pre-activation residual block (G encoder, E, D); output (shortcut + residual)/√2."""
  dim_in: int = 64
  dim_out: int = 64
  normalize: bool = False
  downsample: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    # shortcut: conv1x1 (no bias, only if dims differ), then avg_pool 2
    sc = x
    if self.dim_in != self.dim_out:
      sc = self.conv(self.dim_out, 1, 0, "conv1x1", use_bias=False)(sc)
    if self.downsample:
      sc = resample.avg_pool(sc, 2)
    h = x
    if self.normalize:
      h = norm.InstanceNorm2d(affine=True, name="norm1", param_dtype=self.param_dtype)(h)
    h = self.conv(self.dim_in, 3, 1, "conv1")(lrelu(h))
    if self.downsample:
      h = resample.avg_pool(h, 2)
    if self.normalize:
      h = norm.InstanceNorm2d(affine=True, name="norm2", param_dtype=self.param_dtype)(h)
    h = self.conv(self.dim_out, 3, 1, "conv2")(lrelu(h))
    return (sc + h) / math.sqrt(2)


class AdainResBlk(_Base):
  """Decoder block with AdaIN; with w_hpf > 0 the official block returns the residual only."""
  dim_in: int = 64
  dim_out: int = 64
  w_hpf: float = 0.0
  upsample: bool = False

  @nn.compact
  def __call__(self, x: Array, s: Array) -> Array:
    kinit, _ = _kernel_init(self.init_scheme)
    adain = lambda c, name: norm.AdaIN(c, name=name, dtype=self.dtype, param_dtype=self.param_dtype,  # noqa: E731
                                       kernel_init=kinit)
    h = lrelu(adain(self.dim_in, "norm1")(x, s))
    if self.upsample:
      h = resample.upsample_nearest(h, 2)  # torch interpolate(scale_factor=2, mode='nearest')
    h = self.conv(self.dim_out, 3, 1, "conv1")(h)
    h = lrelu(adain(self.dim_out, "norm2")(h, s))
    h = self.conv(self.dim_out, 3, 1, "conv2")(h)
    learned_sc = self.dim_in != self.dim_out
    if self.w_hpf > 0:
      if learned_sc:  # present in the official state_dict, never applied: keep the weight, skip the compute
        _ParamOnlyConv1x1(self.dim_out, self.dim_in, kinit, self.param_dtype, name="conv1x1")()
      return h
    sc = resample.upsample_nearest(x, 2) if self.upsample else x
    if learned_sc:
      sc = self.conv(self.dim_out, 1, 0, "conv1x1", use_bias=False)(sc)
    return (h + sc) / math.sqrt(2)


def base_width(img_size: int, base_dim: int | None) -> int:
  """Official width of from_rgb: 2**14 // img_size; ``base_dim`` overrides it (cheap test/CPU configs only)."""
  return 2**14 // img_size if base_dim is None else base_dim


def generator_layout(img_size: int, max_conv_dim: int, w_hpf: float, base_dim: int | None = None):
  """(dim_in of from_rgb, [(dim_in, dim_out, downsample)] of the encoder, decoder list in run order)."""
  dim_in = base_width(img_size, base_dim)
  base = dim_in
  repeat_num = int(np.log2(img_size)) - 4 + (1 if w_hpf > 0 else 0)
  encode, decode = [], []
  dim_out = dim_in
  for _ in range(repeat_num):
    dim_out = min(dim_in * 2, max_conv_dim)
    encode.append((dim_in, dim_out, True))
    decode.insert(0, (dim_out, dim_in, True))
    dim_in = dim_out
  for _ in range(2):
    encode.append((dim_out, dim_out, False))
    decode.insert(0, (dim_out, dim_out, False))
  return base, encode, decode


class Generator(_Base):
  """x (B, H, W, 3) in [-1, 1], s (B, style_dim) [, masks] -> (B, H, W, 3) (no tanh, as official)."""
  img_size: int = 256
  style_dim: int = 64
  max_conv_dim: int = 512
  w_hpf: float = 1.0
  base_dim: int | None = None

  @nn.compact
  def __call__(self, x: Array, s: Array, masks: tuple[Array, Array] | None = None) -> Array:
    chex.assert_rank(x, 4)
    chex.assert_shape(s, (x.shape[0], self.style_dim))
    if x.shape[1] != self.img_size or x.shape[2] != self.img_size or x.shape[3] != 3:
      raise ValueError(f"Generator(img_size={self.img_size}) expects (B, {self.img_size}, {self.img_size}, 3), "
                       f"got {x.shape}")
    if masks is not None and self.w_hpf <= 0:
      raise ValueError("masks were given but w_hpf == 0: the generator has no high-pass path")
    base, enc, dec = generator_layout(self.img_size, self.max_conv_dim, self.w_hpf, self.base_dim)
    x = self.conv(base, 3, 1, "from_rgb")(x)
    cache = {}
    for i, (di, do, down) in enumerate(enc):
      if masks is not None and x.shape[1] in (32, 64, 128):
        cache[x.shape[1]] = x  # official: cache keyed by block-input height
      x = ResBlk(dim_in=di, dim_out=do, normalize=True, downsample=down, init_scheme=self.init_scheme, dtype=self.dtype,
                 param_dtype=self.param_dtype, name=f"encode_{i}")(x)
    for i, (di, do, up) in enumerate(dec):
      x = AdainResBlk(dim_in=di, dim_out=do, w_hpf=self.w_hpf, upsample=up, init_scheme=self.init_scheme, dtype=self.dtype,
                      param_dtype=self.param_dtype, name=f"decode_{i}")(x, s)
      size = x.shape[1]
      if masks is not None and size in (32, 64, 128):
        mask = masks[0] if size == 32 else masks[1]  # (B, 256, 256, 1)
        # torch F.interpolate(mask, size=size, mode='bilinear'): align_corners=False, in/out scale
        mask = resample.resize_bilinear(mask.astype(x.dtype), (size, size), align_corners=False)
        x = x + filters.high_pass(mask * cache[size], self.w_hpf)
    x = norm.InstanceNorm2d(affine=True, name="to_rgb_0", param_dtype=self.param_dtype)(x)
    return self.conv(3, 1, 0, "to_rgb_2")(lrelu(x))


class MappingNetwork(_Base):
  """z (B, latent_dim), y (B,) -> s (B, style_dim); every domain head is computed, then gathered."""
  latent_dim: int = 16
  style_dim: int = 64
  num_domains: int = 2
  hidden_dim: int = 512  # hard-coded 512 in the official code

  @nn.compact
  def __call__(self, z: Array, y: Array) -> Array:
    chex.assert_shape(z, (None, self.latent_dim))
    chex.assert_shape(y, (z.shape[0],))
    h = z
    for i in range(4):
      h = jax.nn.relu(self.linear(self.hidden_dim, f"shared_{2 * i}")(h))
    outs = []
    for k in range(self.num_domains):
      o = h
      for j in range(3):
        o = jax.nn.relu(self.linear(self.hidden_dim, f"unshared_{k}_{2 * j}")(o))
      outs.append(self.linear(self.style_dim, f"unshared_{k}_6")(o))
    out = jnp.stack(outs, axis=1)  # (B, num_domains, style_dim)
    return jnp.take_along_axis(out, y.astype(jnp.int32)[:, None, None], axis=1)[:, 0]


def _trunk_layout(img_size: int, max_conv_dim: int, base_dim: int | None = None):
  dim_in = base_width(img_size, base_dim)
  base = dim_in
  blocks = []
  dim_out = dim_in
  for _ in range(int(np.log2(img_size)) - 2):
    dim_out = min(dim_in * 2, max_conv_dim)
    blocks.append((dim_in, dim_out))
    dim_in = dim_out
  return base, blocks, dim_out


class _Trunk(_Base):
  """Shared E/D trunk: conv3×3, ResBlks down to 4×4, LReLU, conv4×4 VALID, LReLU -> (B, 1, 1, C)."""
  img_size: int = 256
  max_conv_dim: int = 512
  prefix: str = "shared"
  base_dim: int | None = None

  def trunk(self, x: Array) -> tuple[Array, int]:
    """Called from the subclass's compact ``__call__``; returns features and the block count."""
    if x.shape[1] != self.img_size or x.shape[2] != self.img_size or x.shape[3] != 3:
      raise ValueError(f"{type(self).__name__}(img_size={self.img_size}) expects (B, {self.img_size}, "
                       f"{self.img_size}, 3), got {x.shape}")
    base, blocks, dim_out = _trunk_layout(self.img_size, self.max_conv_dim, self.base_dim)
    p = self.prefix
    x = self.conv(base, 3, 1, f"{p}_0")(x)
    for i, (di, do) in enumerate(blocks):
      x = ResBlk(dim_in=di, dim_out=do, downsample=True, init_scheme=self.init_scheme, dtype=self.dtype,
                 param_dtype=self.param_dtype, name=f"{p}_{i + 1}")(x)
    n = len(blocks)
    x = lrelu(self.conv(dim_out, 4, 0, f"{p}_{n + 2}")(lrelu(x)))  # (B, 1, 1, C)
    return x, n


class StyleEncoder(_Trunk):
  """x (B, H, W, 3), y (B,) -> s (B, style_dim)."""
  style_dim: int = 64
  num_domains: int = 2

  @nn.compact
  def __call__(self, x: Array, y: Array) -> Array:
    chex.assert_shape(y, (x.shape[0],))
    h, _ = self.trunk(x)
    h = h.reshape(h.shape[0], -1)  # (B, C); spatial is 1×1 so NHWC/NCHW flatten agree
    out = jnp.stack([self.linear(self.style_dim, f"unshared_{k}")(h) for k in range(self.num_domains)], axis=1)
    return jnp.take_along_axis(out, y.astype(jnp.int32)[:, None, None], axis=1)[:, 0]


class Discriminator(_Trunk):
  """x (B, H, W, 3), y (B,) -> logits (B,)."""
  num_domains: int = 2
  prefix: str = "main"

  @nn.compact
  def __call__(self, x: Array, y: Array) -> Array:
    chex.assert_shape(y, (x.shape[0],))
    h, n = self.trunk(x)
    out = self.conv(self.num_domains, 1, 0, f"main_{n + 4}")(h).reshape(h.shape[0], -1)  # (B, num_domains)
    return jnp.take_along_axis(out, y.astype(jnp.int32)[:, None], axis=1)[:, 0]

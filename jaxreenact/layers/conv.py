"""Convolution and linear layers with PyTorch semantics (explicit padding, torch default init).

Parameters are named ``kernel`` (HWIO for convs, (in, out) for dense) and ``bias`` so that a torch
``weight``/``bias`` pair converts with one transpose.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Padding = int | tuple[int, int] | Sequence[tuple[int, int]]
Initializer = Any


def torch_default_kernel_init(key, shape, dtype=jnp.float32):
  """torch.nn.Conv2d / Linear default: kaiming_uniform(a=√5) == U(±1/√fan_in)."""
  fan_in = math.prod(shape[:-1])  # HWI of HWIO, or I of (I, O)
  bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def kaiming_normal_fan_in(key, shape, dtype=jnp.float32):
  """torch.nn.init.kaiming_normal_(mode='fan_in', nonlinearity='relu') (StarGAN v2's he_init)."""
  fan_in = math.prod(shape[:-1])
  return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / fan_in)


def _torch_bias_init(fan_in: int):
  bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


# XLA:CPU's convolution emitter is pathologically slow when the output is only a few pixels (a 3×3, 512→512 conv
# on 2×2 maps at batch 4 took 51 ms forward + backward vs 1.6 ms as one matmul; see BENCHMARKS.md), which is where
# VGG, the discriminators and the style encoder end. The jitted training steps take the threshold as an argument
# (``small_conv_pixels``; ``default_small_conv_pixels()`` when not given): convolutions whose output has at most that
# many pixels are then computed as patches × kernel, the same products summed in another order. The argument reaches
# every Conv2d at trace time through ``small_convs_as_matmul(pixels)``, a context variable scoped to the trace; with
# 0 (the default outside any step, and what the complexity report passes) every Conv2d is one
# ``conv_general_dilated``, so FLOP counts are those of the convolutions.
DEFAULT_SMALL_CONV_PIXELS = 16  # tiny training iterations on CPU: the one threshold (of 0/16/32/64) that sped up both
_small_conv_pixels: contextvars.ContextVar[int] = contextvars.ContextVar("small_conv_pixels", default=0)


def default_small_conv_pixels(backend: str | None = None) -> int:
  """The threshold a training step uses when none is given: ``DEFAULT_SMALL_CONV_PIXELS`` on CPU, 0 elsewhere."""
  return DEFAULT_SMALL_CONV_PIXELS if (backend or jax.default_backend()) == "cpu" else 0


@contextlib.contextmanager
def small_convs_as_matmul(pixels: int):
  """Context read at trace time: convolutions (groups 1) with at most ``pixels`` output pixels become one matmul."""
  if pixels < 0:
    raise ValueError(f"small_conv_pixels must be >= 0, got {pixels}")
  token = _small_conv_pixels.set(int(pixels))
  try:
    yield
  finally:
    _small_conv_pixels.reset(token)


def traced_with_small_convs(fn, pixels: int):
  """``fn`` traced inside ``small_convs_as_matmul(pixels)`` (wrap a function before ``jax.jit``)."""
  def wrapped(*args, **kwargs):
    with small_convs_as_matmul(pixels):
      return fn(*args, **kwargs)
  return wrapped


def _conv_as_matmul(x, kernel, stride, pads, dilation, precision):
  """``conv_general_dilated`` (NHWC, HWIO, groups 1) as one matmul of the kh·kw shifted views against the kernel."""
  kh, kw, cin, cout = kernel.shape
  b = x.shape[0]
  ho, wo = _output_size(x.shape, kernel.shape, stride, pads, dilation)
  x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  views = [x[:, i * dilation[0]: i * dilation[0] + (ho - 1) * stride[0] + 1: stride[0],
             j * dilation[1]: j * dilation[1] + (wo - 1) * stride[1] + 1: stride[1], :]
           for i in range(kh) for j in range(kw)]  # kh·kw × (B, Ho, Wo, Cin), in the kernel's (h, w) order
  patches = jnp.concatenate(views, axis=-1).reshape(b * ho * wo, kh * kw * cin)
  return jnp.matmul(patches, kernel.reshape(kh * kw * cin, cout), precision=precision).reshape(b, ho, wo, cout)


def _output_size(x_shape, kernel_shape, stride, pads, dilation) -> tuple[int, int]:
  """(Ho, Wo) of a convolution (torch's formula)."""
  return tuple((x_shape[1 + a] + sum(pads[a]) - dilation[a] * (kernel_shape[a] - 1) - 1) // stride[a] + 1
               for a in (0, 1))


def normalize_padding(padding: Padding) -> tuple[tuple[int, int], tuple[int, int]]:
  """int p -> ((p, p), (p, p)); (ph, pw) -> ((ph, ph), (pw, pw)); pairs pass through."""
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  padding = tuple(padding)
  if len(padding) == 2 and all(isinstance(p, int) for p in padding):
    return ((padding[0], padding[0]), (padding[1], padding[1]))
  if len(padding) == 2 and all(len(p) == 2 for p in padding):
    return (tuple(padding[0]), tuple(padding[1]))
  raise ValueError(f"padding must be an int, (ph, pw) or ((top, bottom), (left, right)); got {padding!r}")


class Conv2d(nn.Module):
  """NHWC 2-D convolution that pads exactly like ``torch.nn.Conv2d(padding=p)`` (never 'SAME')."""
  features: int
  kernel_size: int | tuple[int, int]
  stride: int | tuple[int, int] = 1
  padding: Padding = 0
  dilation: int | tuple[int, int] = 1
  groups: int = 1
  use_bias: bool = True
  padding_mode: str = "zeros"  # torch padding_mode: 'zeros' | 'reflect' | 'replicate'
  kernel_init: Initializer | None = None
  bias_init: Initializer | None = None
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else self.kernel_size
    stride = (self.stride,) * 2 if isinstance(self.stride, int) else tuple(self.stride)
    dilation = (self.dilation,) * 2 if isinstance(self.dilation, int) else tuple(self.dilation)
    cin = x.shape[-1]
    if cin % self.groups:
      raise ValueError(f"{self.name}: input channels {cin} not divisible by groups {self.groups}")
    kshape = (kh, kw, cin // self.groups, self.features)
    kernel = self.param("kernel", self.kernel_init or torch_default_kernel_init, kshape, self.param_dtype)
    pads = normalize_padding(self.padding)
    if self.padding_mode != "zeros" and any(p for pair in pads for p in pair):
      mode = {"reflect": "reflect", "replicate": "edge"}[self.padding_mode]
      x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), mode=mode)
      pads = ((0, 0), (0, 0))
    dtype = self.dtype or x.dtype
    pixels = _small_conv_pixels.get()
    if pixels and self.groups == 1 and math.prod(_output_size(x.shape, kshape, stride, pads, dilation)) <= pixels:
      y = _conv_as_matmul(x.astype(dtype), kernel.astype(dtype), stride, pads, dilation, self.precision)
    else:
      y = jax.lax.conv_general_dilated(
          x.astype(dtype), kernel.astype(dtype), window_strides=stride, padding=pads,
          rhs_dilation=dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
          feature_group_count=self.groups, precision=self.precision)
    if self.use_bias:
      fan_in = kh * kw * cin // self.groups
      bias = self.param("bias", self.bias_init or _torch_bias_init(fan_in), (self.features,), self.param_dtype)
      y = y + bias.astype(dtype)
    return y


class Linear(nn.Module):
  """``torch.nn.Linear`` with torch default init; kernel is (in, out) = torch weight.T."""
  features: int
  use_bias: bool = True
  kernel_init: Initializer | None = None
  bias_init: Initializer | None = None
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init or torch_default_kernel_init, (fan_in, self.features),
                        self.param_dtype)
    dtype = self.dtype or x.dtype
    y = jnp.matmul(x.astype(dtype), kernel.astype(dtype), precision=self.precision)
    if self.use_bias:
      bias = self.param("bias", self.bias_init or _torch_bias_init(fan_in), (self.features,), self.param_dtype)
      y = y + bias.astype(dtype)
    return y

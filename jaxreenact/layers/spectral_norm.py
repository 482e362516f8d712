"""``torch.nn.utils.spectral_norm`` for convolutions, in Flax (NHWC / HWIO).

torch keeps ``weight_orig`` (parameter), ``weight_u`` (out,) and ``weight_v`` (in·kh·kw,) (buffers), and
reshapes the OIHW weight to (out, in·kh·kw) — so v is in OIHW flatten order. Here the parameter is the HWIO
``kernel`` (= weight_orig transposed) and u, v live in the ``spectral`` collection *in torch's layout*, so
conversion is a plain copy. Eval (default) uses u, v as stored with no power iteration (torch; Flax's own
SpectralNorm differs); training runs ``n_power_iterations`` and writes u, v back when allowed.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.layers.conv import Padding, normalize_padding, torch_default_kernel_init

SPECTRAL = "spectral"  # collection holding weight_u / weight_v


def _normalize(x: jax.Array, eps: float) -> jax.Array:
  # torch F.normalize(dim=0): x / max(||x||, eps)
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def kernel_to_matrix(kernel_hwio: jax.Array) -> jax.Array:
  """HWIO kernel -> torch's ``weight.reshape(out, -1)`` of the OIHW weight: (O, I·kh·kw)."""
  o = kernel_hwio.shape[-1]
  return jnp.transpose(kernel_hwio, (3, 2, 0, 1)).reshape(o, -1)


def spectral_normalize(kernel_hwio: jax.Array, u: jax.Array, v: jax.Array, power_iteration: bool,
                       n_power_iterations: int = 1, eps: float = 1e-12):
  """torch ``SpectralNorm.compute_weight``.

  Args:
    kernel_hwio: (kh, kw, I, O) unnormalised weight (torch weight_orig, transposed).
    u: (O,) torch weight_u.  v: (I·kh·kw,) torch weight_v (OIHW flatten order).
    power_iteration: torch ``module.training``.
  Returns:
    (kernel / sigma, u, v) with u, v after the power iteration (unchanged when power_iteration is False).
    u and v carry no gradient (torch computes them under no_grad); sigma does w.r.t. the kernel.
  """
  w = kernel_to_matrix(kernel_hwio)  # (O, I·kh·kw)
  if power_iteration:
    wd = jax.lax.stop_gradient(w)
    for _ in range(n_power_iterations):
      v = _normalize(wd.T @ u, eps)
      u = _normalize(wd @ v, eps)
  u = jax.lax.stop_gradient(u)
  v = jax.lax.stop_gradient(v)
  sigma = jnp.dot(u, w @ v)
  return kernel_hwio / sigma, u, v


class SpectralNormConv2d(nn.Module):
  """``spectral_norm(nn.Conv2d(...))``: same fields as ``conv.Conv2d``; params ``kernel``/``bias``,
  collection ``spectral`` with ``weight_u`` (O,) and ``weight_v`` (I·kh·kw,)."""
  features: int
  kernel_size: int | tuple[int, int]
  stride: int | tuple[int, int] = 1
  padding: Padding = 0
  dilation: int | tuple[int, int] = 1
  groups: int = 1
  use_bias: bool = True
  padding_mode: str = "zeros"
  n_power_iterations: int = 1
  eps: float = 1e-12
  kernel_init: Any = None
  bias_init: Any = None
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, update_stats: bool = True) -> jax.Array:
    """x (B, H, W, Cin) -> (B, Ho, Wo, features).

    Args:
      train: torch ``module.training``: run the power iteration before normalising.
      update_stats: in training, store the new u, v (needs ``mutable=['spectral']``; silently kept
        otherwise, like a torch forward whose buffers are thrown away).
    """
    kh, kw = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else self.kernel_size
    cin = x.shape[-1]
    if cin % self.groups:
      raise ValueError(f"{self.name}: input channels {cin} not divisible by groups {self.groups}")
    kshape = (kh, kw, cin // self.groups, self.features)
    kernel = self.param("kernel", self.kernel_init or torch_default_kernel_init, kshape, self.param_dtype)
    n_in = kh * kw * (cin // self.groups)

    def _init_vec(n):
      # torch: normalize(randn(n)) at wrap time
      return lambda: _normalize(jax.random.normal(self.make_rng("params"), (n,), jnp.float32), self.eps)

    u_var = self.variable(SPECTRAL, "weight_u", _init_vec(self.features))
    v_var = self.variable(SPECTRAL, "weight_v", _init_vec(n_in))
    k_sn, u, v = spectral_normalize(kernel, u_var.value, v_var.value, power_iteration=train,
                                    n_power_iterations=self.n_power_iterations, eps=self.eps)
    if train and update_stats and not self.is_initializing() and self.is_mutable_collection(SPECTRAL):
      u_var.value, v_var.value = u, v
    # The normalised weight goes through the ordinary torch-padded convolution.
    pads = normalize_padding(self.padding)
    if self.padding_mode != "zeros" and any(p for pair in pads for p in pair):
      mode = {"reflect": "reflect", "replicate": "edge"}[self.padding_mode]
      x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), mode=mode)
      pads = ((0, 0), (0, 0))
    stride = (self.stride,) * 2 if isinstance(self.stride, int) else tuple(self.stride)
    dilation = (self.dilation,) * 2 if isinstance(self.dilation, int) else tuple(self.dilation)
    dtype = self.dtype or x.dtype
    y = jax.lax.conv_general_dilated(
        x.astype(dtype), k_sn.astype(dtype), window_strides=stride, padding=pads, rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.groups, precision=self.precision)
    if self.use_bias:
      bound = 1.0 / (n_in ** 0.5)
      bias_init = self.bias_init or (lambda k, s, d=jnp.float32: jax.random.uniform(k, s, d, -bound, bound))
      bias = self.param("bias", bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(dtype)
    return y


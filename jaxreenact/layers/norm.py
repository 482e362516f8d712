"""Normalisation layers with PyTorch numerics (eps 1e-5, biased two-pass variance)."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.layers.conv import Linear


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """torch InstanceNorm2d without affine: per-sample, per-channel over H, W; biased variance.

  Args:
    x: (B, H, W, C).
  Returns:
    (B, H, W, C), computed in float32 at least (two-pass variance, as torch does).
  """
  xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mean = jnp.mean(xf, axis=(1, 2), keepdims=True)
  centred = xf - mean
  var = jnp.mean(centred * centred, axis=(1, 2), keepdims=True)  # two-pass, biased (torch)
  return (centred * jax.lax.rsqrt(var + eps)).astype(x.dtype)


class InstanceNorm2d(nn.Module):
  """``torch.nn.InstanceNorm2d(C, affine=...)``; params ``scale`` (torch weight) and ``bias``."""
  affine: bool = True
  eps: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = instance_norm(x, self.eps)
    if self.affine:
      c = x.shape[-1]
      scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
      bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
      y = y * scale.astype(y.dtype) + bias.astype(y.dtype)
    return y.astype(self.dtype or x.dtype)


class AdaIN(nn.Module):
  """Adaptive instance norm of StarGAN v2: ``(1 + γ)·IN(x) + β`` with ``[γ, β] = fc(s)``."""
  num_features: int
  eps: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, s: jax.Array) -> jax.Array:
    """x (B, H, W, C), s (B, style_dim) -> (B, H, W, C)."""
    h = Linear(2 * self.num_features, name="fc", dtype=self.dtype, param_dtype=self.param_dtype,
               kernel_init=self.kernel_init)(s)  # (B, 2C)
    gamma = h[:, None, None, :self.num_features]  # first C (torch chunk order)
    beta = h[:, None, None, self.num_features:]
    return (1.0 + gamma) * instance_norm(x, self.eps) + beta

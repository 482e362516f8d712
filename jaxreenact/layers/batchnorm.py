"""``torch.nn.BatchNorm2d`` in Flax (NHWC), with torch's running-statistics rule."""
from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp


class BatchNorm2d(nn.Module):
  """torch BatchNorm2d: params ``scale``/``bias`` (torch weight/bias), batch_stats ``mean``/``var``.

  Training (``use_running_average=False``) normalises with the biased batch variance and, when the
  ``batch_stats`` collection is mutable, updates ``new = (1 - momentum)·old + momentum·batch`` with the
  *unbiased* batch variance, exactly as torch (momentum 0.1 in torch's convention). Under ``jax.jit`` with
  a globally sharded batch the statistics are over the whole batch (= torch SyncBatchNorm).
  """
  affine: bool = True
  momentum: float = 0.1  # torch convention (weight of the new batch statistic)
  eps: float = 1e-5
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, use_running_average: bool) -> jax.Array:
    """x (B, H, W, C) -> (B, H, W, C)."""
    chex.assert_rank(x, 4)
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      mean = jnp.mean(xf, axis=(0, 1, 2))
      var = jnp.mean(jnp.square(xf - mean), axis=(0, 1, 2))  # two-pass, biased: used to normalise (torch)
      if not self.is_initializing() and self.is_mutable_collection("batch_stats"):
        n = x.shape[0] * x.shape[1] * x.shape[2]
        unbiased = var * (n / max(n - 1, 1))  # torch stores the unbiased variance in running_var
        m = self.momentum
        ra_mean.value = (1 - m) * ra_mean.value + m * jax.lax.stop_gradient(mean)
        ra_var.value = (1 - m) * ra_var.value + m * jax.lax.stop_gradient(unbiased)
    y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
    if self.affine:
      scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
      bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
      y = y * scale.astype(y.dtype) + bias.astype(y.dtype)
    return y.astype(self.dtype or x.dtype)

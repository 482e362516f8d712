"""Fixed (non-learned) depthwise filters."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# StarGAN v2 HighPass kernel (core/model.py), divided by w_hpf at call time.
HIGH_PASS_KERNEL = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32)


def depthwise_conv3x3(x: jax.Array, kernel: jax.Array, precision=None) -> jax.Array:
  """Same 3×3 kernel on every channel, zero pad 1 (torch ``conv2d(..., padding=1, groups=C)``).

  Args:
    x: (B, H, W, C); kernel: (3, 3).
  """
  c = x.shape[-1]
  k = jnp.broadcast_to(kernel.astype(x.dtype)[:, :, None, None], (3, 3, 1, c))  # HWIO, depthwise
  return jax.lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      feature_group_count=c, precision=precision)


def high_pass(x: jax.Array, w_hpf: float, kernel: jax.Array | None = None) -> jax.Array:
  """StarGAN v2 HighPass: depthwise Laplacian-like 3×3 filter / w_hpf."""
  k = jnp.asarray(HIGH_PASS_KERNEL if kernel is None else kernel) / w_hpf
  return depthwise_conv3x3(x, k)

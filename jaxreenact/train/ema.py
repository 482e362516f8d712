"""Exponential moving average of parameters, as a pure function."""
from __future__ import annotations

import jax


def ema_update(params, ema_params, beta: float):
  """StarGAN v2 ``moving_average``: ``torch.lerp(param, ema, β)`` = param + β·(ema − param)."""
  return jax.tree.map(lambda p, e: p + beta * (e - p), params, ema_params)

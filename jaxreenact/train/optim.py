"""Optimisers matching torch.optim.Adam semantics."""
from __future__ import annotations

import optax


def torch_adam(lr: float, b1: float, b2: float, eps: float = 1e-8, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """``torch.optim.Adam(lr, betas=(b1, b2), eps, weight_decay)``.

  torch adds ``weight_decay·param`` to the gradient *before* the moment updates (coupled L2, not AdamW), and its
  denominator is ``sqrt(v̂) + eps`` — optax's ``scale_by_adam`` with ``eps_root=0`` uses the same formula.
  """
  parts = []
  if weight_decay:
    parts.append(optax.add_decayed_weights(weight_decay))  # coupled L2 (torch Adam), before the moments
  parts += [optax.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=0.0), optax.scale(-lr)]
  return optax.chain(*parts)

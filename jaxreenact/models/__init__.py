"""Flax networks: ``stargan_v2/``, ``dagan/`` and ``vgg.py``; :func:`count_params` for any of their variables."""
from __future__ import annotations

import math

import jax


def count_params(tree) -> int:
  """Number of scalars in a pytree of arrays or ``jax.ShapeDtypeStruct`` (e.g. ``jax.eval_shape`` of an init)."""
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))

"""Flax networks: ``stargan_v2/``, ``dagan/`` and ``vgg.py``; :func:`count_params` for any of their variables."""
from __future__ import annotations

import math

import jax


# Initialisers run once per process: XLA's unoptimised backend compiles them ~5× faster (a tiny DaGAN's networks:
# 23 s -> 4.4 s on 2 CPU cores), which is most of a small run's start-up. Same HLO; only the machine code differs.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def init_jit(fn, compiler_options: dict | None = None, **jit_kwargs):
  """``jax.jit`` for initialisers (``compiler_options``, default :data:`INIT_COMPILER_OPTIONS`); inside another
  trace (an initialiser jitted as a whole, or ``jax.eval_shape`` of one) ``fn`` is simply traced into it, since
  compiler options only apply to the outermost jit."""
  jitted = jax.jit(fn, compiler_options=compiler_options or INIT_COMPILER_OPTIONS, **jit_kwargs)

  def call(*args, **kwargs):
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs))):
      return fn(*args, **kwargs)
    return jitted(*args, **kwargs)

  return call


def count_params(tree) -> int:
  """Number of scalars in a pytree of arrays or ``jax.ShapeDtypeStruct`` (e.g. ``jax.eval_shape`` of an init)."""
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))

"""Tiny freshly drawn models shared by the tests of this package (built and compiled once per process)."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def tiny_reenactor():
  """A Reenactor of ``random:tiny`` DaGAN (use at 64 px)."""
  from jaxreenact.inference import loading, reenact  # imports jax: keeps this module jax-free
  loaded = loading.load_dagan("random:tiny")
  return reenact.Reenactor(loaded.config, loaded.variables)


@functools.lru_cache(maxsize=1)
def tiny_sampler():
  """A Sampler of ``random:tiny`` StarGAN v2 (32 px), batch size 4."""
  from jaxreenact.inference import loading  # imports jax: keeps this module jax-free
  from jaxreenact.inference import stargan_v2 as sgi  # imports jax: keeps this module jax-free
  loaded = loading.load_stargan_v2("random:tiny")
  return sgi.Sampler(loaded.config, loaded.variables, batch_size=4)

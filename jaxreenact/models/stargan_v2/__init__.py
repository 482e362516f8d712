"""StarGAN v2 (Choi et al., CVPR 2020) in Flax: configuration, networks and the FAN mask network.

Example:
  cfg = stargan_v2.Config(img_size=256, num_domains=2, w_hpf=1)
  nets = stargan_v2.build(cfg)
  variables = stargan_v2.init_variables(nets, cfg, jax.random.key(0))
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.models import count_params, init_jit  # noqa: F401 - count_params is part of this package's API
from jaxreenact.models.stargan_v2.networks import (AdainResBlk, Discriminator, Generator, MappingNetwork, ResBlk,
                                                   StyleEncoder, generator_layout)

MODULES = ("generator", "mapping_network", "style_encoder", "discriminator")


@dataclasses.dataclass(frozen=True)
class Config:
  """Every architecture knob of the official code (core/model.py, main.py defaults)."""
  img_size: int = 256
  num_domains: int = 2
  latent_dim: int = 16
  style_dim: int = 64
  max_conv_dim: int = 512
  w_hpf: float = 1.0
  base_dim: int | None = None  # not in the official code (always 2**14 // img_size); set only for cheap configs

  def __post_init__(self):
    size = self.img_size
    if size < 16 or size & (size - 1):
      raise ValueError(f"img_size must be a power of two >= 16, got {size}")
    if size < 32 and self.w_hpf <= 0:
      raise ValueError(f"img_size {size} needs w_hpf > 0 (the w_hpf=0 generator has no blocks below 32 px)")
    if self.num_domains < 1:
      raise ValueError(f"num_domains must be >= 1, got {self.num_domains}")
    if self.base_dim is not None and self.base_dim < 1:
      raise ValueError(f"base_dim must be positive or None, got {self.base_dim}")
    for f in ("latent_dim", "style_dim", "max_conv_dim"):
      if getattr(self, f) < 1:
        raise ValueError(f"{f} must be positive, got {getattr(self, f)}")

  @classmethod
  def celeba_hq(cls) -> "Config":
    return cls(img_size=256, num_domains=2, w_hpf=1)

  @classmethod
  def afhq(cls) -> "Config":
    return cls(img_size=256, num_domains=3, w_hpf=0)

  @classmethod
  def expressions(cls) -> "Config":
    """The study's Table 12: 7 emotion domains at 256 px, no high-pass masks."""
    return cls(img_size=256, num_domains=7, w_hpf=0)

  @classmethod
  def tiny(cls) -> "Config":
    """32 px, narrow (base_dim 16, max_conv_dim 64): CPU smoke runs, CI and the shipped weights."""
    return cls(img_size=32, num_domains=2, latent_dim=8, style_dim=16, max_conv_dim=64, w_hpf=0.0, base_dim=16)

  @classmethod
  def preset(cls, name: str) -> "Config":
    """The named configuration (every consumer resolves names here): one of :data:`PRESETS`."""
    if name not in PRESETS:
      raise ValueError(f"unknown StarGAN v2 preset {name!r}; choose one of {', '.join(PRESETS)}")
    return getattr(cls, name)()


PRESETS = ("celeba_hq", "afhq", "expressions", "tiny")


@dataclasses.dataclass(frozen=True)
class Nets:
  generator: Generator
  mapping_network: MappingNetwork
  style_encoder: StyleEncoder
  discriminator: Discriminator
  fan: Any = None  # FAN when w_hpf > 0

  def modules(self) -> dict[str, nn.Module]:
    out = {k: getattr(self, k) for k in MODULES}
    if self.fan is not None:
      out["fan"] = self.fan
    return out


def build(cfg: Config, init: str = "he", dtype: Any = None, param_dtype: Any = jnp.float32) -> Nets:
  """Builds the Flax modules; ``init='he'`` is the official training init, ``'torch'`` torch's default."""
  kw = dict(init_scheme=init, dtype=dtype, param_dtype=param_dtype)
  fan = None
  if cfg.w_hpf > 0:
    from jaxreenact.models.stargan_v2.fan import FAN  # avoids an import cycle with models.stargan_v2.fan
    fan = FAN(dtype=dtype, param_dtype=param_dtype)
  return Nets(
      generator=Generator(img_size=cfg.img_size, style_dim=cfg.style_dim, max_conv_dim=cfg.max_conv_dim,
                          w_hpf=cfg.w_hpf, base_dim=cfg.base_dim, **kw),
      mapping_network=MappingNetwork(latent_dim=cfg.latent_dim, style_dim=cfg.style_dim,
                                     num_domains=cfg.num_domains, **kw),
      style_encoder=StyleEncoder(img_size=cfg.img_size, style_dim=cfg.style_dim, num_domains=cfg.num_domains,
                                 max_conv_dim=cfg.max_conv_dim, base_dim=cfg.base_dim, **kw),
      discriminator=Discriminator(img_size=cfg.img_size, num_domains=cfg.num_domains,
                                  max_conv_dim=cfg.max_conv_dim, base_dim=cfg.base_dim, **kw),
      fan=fan)


def dummy_inputs(cfg: Config, batch: int = 1) -> dict[str, tuple]:
  """Positional arguments of each module's ``init``/``apply`` (zeros of the right shape)."""
  x = jnp.zeros((batch, cfg.img_size, cfg.img_size, 3), jnp.float32)
  y = jnp.zeros((batch,), jnp.int32)
  s = jnp.zeros((batch, cfg.style_dim), jnp.float32)
  z = jnp.zeros((batch, cfg.latent_dim), jnp.float32)
  out = {"generator": (x, s), "mapping_network": (z, y), "style_encoder": (x, y), "discriminator": (x, y)}
  if cfg.w_hpf > 0:
    out["fan"] = (jnp.zeros((batch, 256, 256, 3), jnp.float32),)
  return out


def init_variables(nets: Nets, cfg: Config, rng: jax.Array) -> dict[str, Any]:
  """Initial variables for every module (FAN too, though it is only meaningful with loaded weights)."""
  inputs = dummy_inputs(cfg)
  mods = nets.modules()
  keys = jax.random.split(rng, len(mods))
  return {name: init_jit(mods[name].init)(k, *inputs[name]) for k, name in zip(keys, mods)}


def variable_shapes(nets: Nets, cfg: Config) -> dict[str, Any]:
  """Shapes of every module's variables without allocating (``jax.eval_shape``)."""
  inputs = dummy_inputs(cfg)
  return {name: jax.eval_shape(m.init, jax.random.key(0), *inputs[name]) for name, m in nets.modules().items()}


__all__ = ["Config", "Nets", "build", "init_variables", "variable_shapes", "dummy_inputs", "count_params", "MODULES",
           "Generator", "MappingNetwork", "StyleEncoder", "Discriminator", "ResBlk", "AdainResBlk", "generator_layout"]

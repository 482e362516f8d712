"""DaGAN (harlanhong/CVPR2022-DaGAN) in Flax: depth network, keypoint detector, generators, discriminator.

Example::

  from jaxreenact.models import dagan
  cfg = dagan.Config.vox256()
  nets = dagan.build(cfg)
  disps = nets.depth.apply(variables["depth"], img)               # img (B, H, W, 3) in [0, 1]
  kp = nets.kp_detector.apply(variables["kp_detector"], jnp.concatenate([img, disps[0]], -1))
  out = nets.generator.apply(variables["generator"], source, kp_driving=kp_d, kp_source=kp_s, source_depth=disp_s)
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.models import init_jit
from jaxreenact.models.dagan.config import (PRESETS, Config, DenseMotionParams, DiscriminatorParams, GeneratorParams,
                                            KPDetectorParams)
from jaxreenact.models.dagan.depth import DepthNet
from jaxreenact.models.dagan.discriminator import MultiScaleDiscriminator
from jaxreenact.models.dagan.generator import DepthAwareGenerator, SPADEDepthAwareGenerator
from jaxreenact.models.dagan.keypoints import KPDetector
from jaxreenact.models.dagan.utils import Transform, image_pyramid, kp2gaussian, normalize_kp

DEFAULT_DEPTH_WIDTHS = (64, 128, 256, 512)


@dataclasses.dataclass(frozen=True)
class DaGAN:
  """The four DaGAN networks as Flax modules (variables live outside, keyed by these names)."""
  depth: nn.Module
  kp_detector: nn.Module
  generator: nn.Module
  discriminator: nn.Module


def build(cfg: Config, dtype: Any = None, param_dtype: Any = jnp.float32) -> DaGAN:
  """Builds the modules described by ``cfg``; ``.generator`` is the SPADE one when ``cfg.generator`` says so.

  ``dtype`` is the compute dtype. With a half type (bf16) the keypoint detector and the dense-motion network still
  compute in float32: keypoint Jacobians are inverted downstream, and in bf16 only 63% of the keypoint detector's
  first Adam updates had the float32 sign (90% with this policy; benchmarks/precision_check.py, BENCHMARKS.md),
  and both run at a quarter of the image resolution, so this costs little.
  """
  kw = dict(dtype=dtype, param_dtype=param_dtype)
  motion_dtype = None if dtype is None else jnp.promote_types(dtype, jnp.float32)
  depth = DepthNet(num_layers=cfg.depth_layers, widths=tuple(cfg.depth_widths or DEFAULT_DEPTH_WIDTHS), **kw)
  kpp = cfg.kp_detector_params
  kp_detector = KPDetector(kpp.block_expansion, cfg.num_kp, cfg.kp_channels, kpp.max_features, kpp.num_blocks,
                           kpp.temperature, cfg.estimate_jacobian, kpp.scale_factor, kpp.single_jacobian_map,
                           kpp.pad, dtype=motion_dtype, param_dtype=param_dtype)
  gp = cfg.generator_params
  gen_kw = dict(num_channels=cfg.num_channels, num_kp=cfg.num_kp, block_expansion=gp.block_expansion,
                max_features=gp.max_features, num_down_blocks=gp.num_down_blocks,
                num_bottleneck_blocks=gp.num_bottleneck_blocks, estimate_occlusion_map=gp.estimate_occlusion_map,
                dense_motion_params=gp.dense_motion_params, estimate_jacobian=cfg.estimate_jacobian,
                motion_dtype=motion_dtype, **kw)
  if cfg.generator == "SPADEDepthAwareGenerator":
    generator = SPADEDepthAwareGenerator(spade_compress=gp.spade_compress, spade_out=gp.spade_out,
                                         spade_hidden=gp.spade_hidden, **gen_kw)
  else:
    generator = DepthAwareGenerator(**gen_kw)
  dp = cfg.discriminator_params
  # run.py builds the discriminator before switching num_channels to 4: it sees RGB (+ K heatmaps).
  discriminator = MultiScaleDiscriminator(tuple(dp.scales), cfg.num_channels, dp.block_expansion, dp.num_blocks,
                                          dp.max_features, dp.sn, dp.use_kp, cfg.num_kp, dp.kp_variance, **kw)
  return DaGAN(depth, kp_detector, generator, discriminator)


def min_image_size(cfg: Config) -> int:
  """Smallest square image size all four networks accept (depth: multiple of 32; hourglasses: divisibility)."""
  kpp, gp = cfg.kp_detector_params, cfg.generator_params
  need = [(1.0, 32), (1.0, 2 ** gp.num_down_blocks), (kpp.scale_factor, 2 ** kpp.num_blocks)]
  if gp.dense_motion_params is not None:
    need.append((gp.dense_motion_params.scale_factor, 2 ** gp.dense_motion_params.num_blocks))
  size = 64  # DepthNet: multiple of 32 and at least 64 (its 1/32 map must allow reflection padding)
  while not all((size * s) == int(size * s) and int(size * s) % d == 0 for s, d in need):
    size += 32
  return size


def example_inputs(cfg: Config, size: int | None = None, batch: int = 1,
                   dtype: Any = jnp.float32) -> dict[str, tuple[Any, ...]]:
  """Shape-only positional inputs of each network (for ``jax.eval_shape(module.init, rng, *inputs)``)."""
  size = size or min_image_size(cfg)
  sds = lambda *shape: jax.ShapeDtypeStruct(shape, dtype)  # noqa: E731
  kp = {"value": sds(batch, cfg.num_kp, 2)}
  if cfg.estimate_jacobian:
    kp["jacobian"] = sds(batch, cfg.num_kp, 2, 2)
  img = sds(batch, size, size, cfg.num_channels)
  return {"depth": (sds(batch, size, size, 3),),
          "kp_detector": (sds(batch, size, size, cfg.kp_channels),),
          "generator": (img, kp, kp, sds(batch, size, size, 1)),
          "discriminator": (img, kp)}


def _placeholder(s: jax.ShapeDtypeStruct) -> jax.Array:
  if s.shape[-2:] == (2, 2):  # keypoint Jacobians: identity (invertible)
    return jnp.broadcast_to(jnp.eye(2, dtype=s.dtype), s.shape)
  return jnp.full(s.shape, 0.5, s.dtype)


def init_variables(nets: DaGAN, cfg: Config, rng: jax.Array, size: int | None = None,
                   names: tuple[str, ...] = ("depth", "kp_detector", "generator", "discriminator")) -> dict[str, Any]:
  """Freshly initialised variables of the networks in ``names`` (default all four); each network draws from its
  own ``fold_in(rng, i)``, so a subset gets the same values as the full set."""
  inputs = example_inputs(cfg, size)
  out = {}
  for i, name in enumerate(("depth", "kp_detector", "generator", "discriminator")):
    if name not in names:
      continue
    concrete = jax.tree_util.tree_map(_placeholder, inputs[name])
    out[name] = init_jit(getattr(nets, name).init)(jax.random.fold_in(rng, i), *concrete)  # jit: one compile
  return out


__all__ = ["Config", "KPDetectorParams", "GeneratorParams", "DenseMotionParams", "DiscriminatorParams", "DaGAN",
           "build", "normalize_kp", "example_inputs", "init_variables", "min_image_size", "kp2gaussian",
           "image_pyramid", "Transform", "DepthNet", "KPDetector", "DepthAwareGenerator", "SPADEDepthAwareGenerator",
           "MultiScaleDiscriminator"]

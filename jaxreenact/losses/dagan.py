"""DaGAN's non-perceptual losses (modules/model.py GeneratorFullModel / DiscriminatorFullModel) in JAX.

The discriminator outputs are the dicts of :class:`MultiScaleDiscriminator` ('prediction_map_<s>',
'feature_maps_<s>'); ``scales`` are the discriminator scales (DaGAN: [1]).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from jaxreenact.losses import at_least_f32
from jaxreenact.models.dagan.utils import Keypoints, Transform, scale_key


def generator_gan_loss(maps_generated: Mapping[str, Any], scales: Sequence[float], weight: float = 1.0) -> jax.Array:
  """LSGAN generator term: Σ_s weight·mean((1 − D_s(fake))²)."""
  total = jnp.zeros((), jnp.float32)
  maps_generated = at_least_f32(maps_generated)
  for s in scales:
    total = total + weight * jnp.mean((1 - maps_generated[f"prediction_map_{scale_key(s)}"]) ** 2)
  return total


def discriminator_gan_loss(maps_real: Mapping[str, Any], maps_generated: Mapping[str, Any], scales: Sequence[float],
                           weight: float = 1.0) -> jax.Array:
  """LSGAN discriminator term: Σ_s weight·mean((1 − D_s(real))² + D_s(fake)²)."""
  total = jnp.zeros((), jnp.float32)
  maps_real, maps_generated = at_least_f32((maps_real, maps_generated))
  for s in scales:
    key = f"prediction_map_{scale_key(s)}"
    total = total + weight * jnp.mean((1 - maps_real[key]) ** 2 + maps_generated[key] ** 2)
  return total


def feature_matching_loss(maps_real: Mapping[str, Any], maps_generated: Mapping[str, Any], scales: Sequence[float],
                          weights: Sequence[float]) -> jax.Array:
  """Σ_s Σ_i weights[i]·mean|F_i(real) − F_i(fake)| over discriminator layers (zero weights skipped, as official).

  The official code does not detach the real features; pass stop-gradient'ed maps if that is wanted.
  """
  total = jnp.zeros((), jnp.float32)
  maps_real, maps_generated = at_least_f32((maps_real, maps_generated))
  for s in scales:
    key = f"feature_maps_{scale_key(s)}"
    for i, (a, b) in enumerate(zip(maps_real[key], maps_generated[key])):
      if weights[i] == 0:
        continue
      total = total + weights[i] * jnp.mean(jnp.abs(a - b))
  return total


def equivariance_value_loss(kp_driving: Keypoints, transformed_kp: Keypoints, transform: Transform,
                            weight: float = 1.0) -> jax.Array:
  """weight·mean|kp_d − T(kp of the transformed frame)|."""
  return weight * jnp.mean(jnp.abs(kp_driving["value"] - transform.warp_coordinates(transformed_kp["value"])))


def equivariance_jacobian_loss(kp_driving: Keypoints, transformed_kp: Keypoints, transform: Transform,
                               weight: float = 1.0) -> jax.Array:
  """weight·mean|I − J_d⁻¹·(∇T(kp_T)·J_T)|."""
  jac_t = jnp.matmul(transform.jacobian(transformed_kp["value"]), transformed_kp["jacobian"])
  value = jnp.matmul(jnp.linalg.inv(kp_driving["jacobian"]), jac_t)
  return weight * jnp.mean(jnp.abs(jnp.eye(2, dtype=value.dtype) - value))

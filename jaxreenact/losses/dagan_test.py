"""Non-perceptual DaGAN losses on hand-computable inputs."""
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.losses import dagan as losses
from jaxreenact.models.dagan import utils


def test_lsgan_terms():
  fake = {"prediction_map_1": jnp.full((2, 3, 3, 1), 0.25)}
  real = {"prediction_map_1": jnp.full((2, 3, 3, 1), 0.5)}
  np.testing.assert_allclose(losses.generator_gan_loss(fake, [1], weight=2.0), 2 * 0.75 ** 2)
  np.testing.assert_allclose(losses.discriminator_gan_loss(real, fake, [1]), 0.5 ** 2 + 0.25 ** 2)


def test_feature_matching_skips_zero_weights():
  real = {"feature_maps_1": [jnp.zeros((1, 4, 4, 2)), jnp.ones((1, 2, 2, 2))]}
  fake = {"feature_maps_1": [jnp.ones((1, 4, 4, 2)), jnp.full((1, 2, 2, 2), 3.0)]}
  np.testing.assert_allclose(losses.feature_matching_loss(real, fake, [1], [10, 10]), 10 * 1 + 10 * 2)
  np.testing.assert_allclose(losses.feature_matching_loss(real, fake, [1], [0, 10]), 10 * 2)


def test_equivariance_losses_vanish_for_consistent_keypoints():
  t = utils.Transform.random(jax.random.key(0), 2, 0.05, 0.005, 5)
  kp_t = {"value": jax.random.uniform(jax.random.key(1), (2, 4, 2), minval=-0.8, maxval=0.8),
          "jacobian": jnp.eye(2) + 0.1 * jax.random.normal(jax.random.key(2), (2, 4, 2, 2))}
  # Keypoints that transform exactly: kp_d = T(kp_T), J_d = ∇T(kp_T)·J_T.
  kp_d = {"value": t.warp_coordinates(kp_t["value"]),
          "jacobian": jnp.matmul(t.jacobian(kp_t["value"]), kp_t["jacobian"])}
  np.testing.assert_allclose(losses.equivariance_value_loss(kp_d, kp_t, t, 10), 0.0, atol=1e-6)
  np.testing.assert_allclose(losses.equivariance_jacobian_loss(kp_d, kp_t, t, 10), 0.0, atol=1e-5)
  moved = dict(kp_d, value=kp_d["value"] + 0.1)
  np.testing.assert_allclose(losses.equivariance_value_loss(moved, kp_t, t, 10), 10 * 0.1, rtol=1e-4)

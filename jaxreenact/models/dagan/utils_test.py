"""Unit tests of the DaGAN helpers: kp2gaussian, image pyramid, Transform, convex hull, normalize_kp."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import ConvexHull

from jaxreenact.models.dagan import utils


def test_kp2gaussian_peaks_at_keypoint():
  kp = jnp.array([[[-1.0, -1.0], [1.0, 1.0], [0.0, -1.0]]])  # (1, 3, 2) exactly on grid points of a 5×5 grid
  heat = utils.kp2gaussian({"value": kp}, (5, 5), 0.01)
  assert heat.shape == (1, 5, 5, 3)
  np.testing.assert_allclose(heat[0, 0, 0, 0], 1.0)
  np.testing.assert_allclose(heat[0, 4, 4, 1], 1.0)
  np.testing.assert_allclose(heat[0, 0, 2, 2], 1.0)  # x = 0 -> column 2, y = -1 -> row 0
  # one grid step (0.5) away: exp(-0.5 * 0.25 / 0.01)
  np.testing.assert_allclose(heat[0, 0, 1, 0], np.exp(-0.5 * 0.25 / 0.01), rtol=1e-6)


def test_image_pyramid_shapes_and_identity():
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  pyr = utils.image_pyramid(x, [1, 0.5, 0.25, 0.125])
  assert sorted(pyr) == ["prediction_0.125", "prediction_0.25", "prediction_0.5", "prediction_1"]
  assert pyr["prediction_0.5"].shape == (2, 16, 16, 3)
  assert pyr["prediction_0.125"].shape == (2, 4, 4, 3)
  np.testing.assert_array_equal(pyr["prediction_1"], x)
  # A constant image stays constant away from the zero-padded border.
  c = utils.image_pyramid(jnp.ones((1, 64, 64, 1)), [0.25])["prediction_0.25"]
  np.testing.assert_allclose(c[0, 4:-4, 4:-4, 0], 1.0, atol=1e-6)


def _random_transform(key, b=2, tps=True):
  return utils.Transform.random(key, b, sigma_affine=0.05, sigma_tps=0.005 if tps else None,
                                points_tps=5 if tps else None)


def test_transform_identity():
  t = utils.Transform(jnp.broadcast_to(jnp.eye(2, 3), (2, 2, 3)))
  pts = jax.random.uniform(jax.random.key(1), (2, 7, 2), minval=-1, maxval=1)
  np.testing.assert_allclose(t.warp_coordinates(pts), pts, atol=1e-7)
  np.testing.assert_allclose(t.jacobian(pts), jnp.broadcast_to(jnp.eye(2), (2, 7, 2, 2)), atol=1e-7)
  # (FOMM's (w-1) grid sampled with align_corners=False is not an exact identity resample; see parity tests.)
  img = jnp.ones((2, 8, 8, 3))
  np.testing.assert_allclose(t.transform_frame(img), img, atol=1e-6)  # reflection padding keeps constants


def test_transform_affine_matches_matrix():
  t = _random_transform(jax.random.key(3), tps=False)
  assert t.control_params is None
  pts = jax.random.uniform(jax.random.key(4), (2, 5, 2), minval=-1, maxval=1)
  want = jnp.einsum("bij,bnj->bni", t.theta[:, :, :2], pts) + t.theta[:, None, :, 2]
  np.testing.assert_allclose(t.warp_coordinates(pts), want, atol=1e-6)
  np.testing.assert_allclose(t.jacobian(pts), jnp.broadcast_to(t.theta[:, None, :, :2], (2, 5, 2, 2)), atol=1e-6)


def test_transform_jacobian_matches_finite_differences():
  t = _random_transform(jax.random.key(5))
  t = t.replace(control_params=t.control_params * 20)  # make the TPS part visible
  pts = jax.random.uniform(jax.random.key(6), (2, 4, 2), minval=-0.9, maxval=0.9)
  jac = np.asarray(jax.jit(lambda tr, p: tr.jacobian(p))(t, pts))
  warp = jax.jit(lambda tr, p: tr.warp_coordinates(p))
  eps = 1e-3
  for d in range(2):
    step = jnp.zeros(2).at[d].set(eps)
    fd = (warp(t, pts + step) - warp(t, pts - step)) / (2 * eps)  # (B, N, 2) column d
    np.testing.assert_allclose(jac[..., :, d], fd, atol=2e-3)


def test_transform_is_a_pytree_and_jits():
  t = _random_transform(jax.random.key(7))
  pts = jnp.zeros((2, 3, 2))
  out = jax.jit(lambda tr, p: tr.jacobian(p))(t, pts)
  assert out.shape == (2, 3, 2, 2)


@pytest.mark.parametrize("seed", range(5))
def test_convex_hull_area_matches_scipy(seed):
  rng = np.random.default_rng(seed)
  pts = rng.uniform(-1, 1, (3, 15, 2)).astype(np.float32)
  got = np.asarray(jax.jit(utils.convex_hull_area)(pts))
  want = [ConvexHull(p).volume for p in pts]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_convex_hull_area_degenerate_sets():
  area = jax.jit(utils.convex_hull_area)
  square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
  with_collinear = np.concatenate([square, [[0.5, 0], [1, 0.25], [0.5, 0.5]]]).astype(np.float32)
  with_duplicates = np.concatenate([square, square[:2], [[0.3, 0.3]]]).astype(np.float32)
  np.testing.assert_allclose(area(square), 1.0, rtol=1e-6)
  np.testing.assert_allclose(area(with_collinear), 1.0, rtol=1e-6)
  np.testing.assert_allclose(area(with_duplicates), 1.0, rtol=1e-6)
  line = np.array([[0, 0], [1, 1], [2, 2]], np.float32)
  np.testing.assert_allclose(area(line), 0.0, atol=1e-7)


def _kp(key, b=2, k=5):
  k1, k2 = jax.random.split(key)
  return {"value": jax.random.uniform(k1, (b, k, 2), minval=-0.8, maxval=0.8),
          "jacobian": jnp.eye(2) + 0.2 * jax.random.normal(k2, (b, k, 2, 2))}


def test_normalize_kp_relative_motion():
  ks, kd, k0 = (_kp(jax.random.key(i)) for i in range(3))
  out = utils.normalize_kp(ks, kd, k0, use_relative_movement=True, use_relative_jacobian=True)
  np.testing.assert_allclose(out["value"], ks["value"] + kd["value"] - k0["value"], atol=1e-6)
  want_j = np.linalg.solve(np.swapaxes(np.asarray(k0["jacobian"]), -1, -2),
                           np.swapaxes(np.asarray(kd["jacobian"]), -1, -2))  # (J_d J_0^-1)^T
  want_j = np.swapaxes(want_j, -1, -2) @ np.asarray(ks["jacobian"])
  np.testing.assert_allclose(out["jacobian"], want_j, atol=1e-5)
  # Driving frame == initial frame -> the source keypoints come back.
  same = utils.normalize_kp(ks, k0, k0, use_relative_movement=True, use_relative_jacobian=True)
  np.testing.assert_allclose(same["value"], ks["value"], atol=1e-6)
  np.testing.assert_allclose(same["jacobian"], ks["jacobian"], atol=1e-5)
  # Without relative movement the driving keypoints pass through.
  plain = utils.normalize_kp(ks, kd, k0, use_relative_movement=False)
  np.testing.assert_array_equal(plain["value"], kd["value"])
  # Defaults: DaGAN's animate_params (relative movement and Jacobian, no scale adaptation).
  np.testing.assert_array_equal(utils.normalize_kp(ks, kd, k0)["jacobian"], out["jacobian"])


def test_normalize_kp_adapt_movement_scale():
  ks, kd, k0 = (_kp(jax.random.key(10 + i), b=1) for i in range(3))
  ks = dict(ks, value=ks["value"] * 0.5)
  out = jax.jit(utils.normalize_kp, static_argnames=("adapt_movement_scale", "use_relative_movement"))(
      ks, kd, k0, adapt_movement_scale=True, use_relative_movement=True)
  s = np.sqrt(ConvexHull(np.asarray(ks["value"][0])).volume) / np.sqrt(ConvexHull(np.asarray(k0["value"][0])).volume)
  np.testing.assert_allclose(out["value"], ks["value"] + s * (kd["value"] - k0["value"]), atol=1e-5)

"""Geometry and photometric losses of the self-supervised depth training (hand-checkable cases)."""
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.losses import depth as L


def _k(b=2, f=40.0, c=(30.0, 20.0)):
  return jnp.broadcast_to(jnp.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]]), (b, 3, 3))


def test_rotation_and_inverse_transform():
  aa = jnp.array([[[0.1, -0.2, 0.3]], [[0.0, 0.0, 0.0]]])
  t = jnp.array([[[0.5, 0.1, -0.2]], [[1.0, 2.0, 3.0]]])
  r = L.rot_from_axisangle(aa)
  np.testing.assert_allclose(np.asarray(r[:, :3, :3] @ jnp.swapaxes(r[:, :3, :3], 1, 2)), np.eye(3)[None].repeat(2, 0),
                             atol=1e-6)
  np.testing.assert_allclose(np.asarray(r[1]), np.eye(4), atol=1e-7)  # zero angle: identity, finite gradient
  g = jax.grad(lambda v: L.rot_from_axisangle(v).sum())(jnp.zeros((1, 1, 3)))
  assert np.all(np.isfinite(np.asarray(g)))
  # Rodrigues: rotation by θ about z.
  rz = L.rot_from_axisangle(jnp.array([[[0.0, 0.0, 0.3]]]))[0]
  np.testing.assert_allclose(np.asarray(rz[:2, :2]), [[np.cos(.3), -np.sin(.3)], [np.sin(.3), np.cos(.3)]], atol=1e-6)
  fwd = L.transformation_from_parameters(aa, t)
  inv = L.transformation_from_parameters(aa, t, invert=True)
  np.testing.assert_allclose(np.asarray(fwd @ inv), np.eye(4)[None].repeat(2, 0), atol=1e-6)
  np.testing.assert_allclose(np.asarray(fwd[1, :3, 3]), [1, 2, 3])


def test_backproject_project_round_trip_uses_size_minus_one_grid():
  b, h, w = 2, 8, 12
  depth = jnp.full((b, h, w, 1), 3.0)
  k = _k(b)
  pts = L.backproject(depth, jnp.linalg.inv(k))
  assert pts.shape == (b, 4, h * w)
  np.testing.assert_allclose(np.asarray(pts[:, 2]), 3.0, rtol=1e-6)  # z = depth
  grid = L.project(pts, k, jnp.broadcast_to(jnp.eye(4), (b, 4, 4)), h, w)
  xs, ys = np.meshgrid(np.arange(w), np.arange(h))
  # pixel / (size − 1), then (· − 0.5)·2: the official normalisation
  np.testing.assert_allclose(np.asarray(grid[0, ..., 0]), (xs / (w - 1) - 0.5) * 2, atol=1e-5)
  np.testing.assert_allclose(np.asarray(grid[0, ..., 1]), (ys / (h - 1) - 0.5) * 2, atol=1e-5)
  # A pure translation along x by tx at depth z moves pixels by f·tx/z.
  t = L.transformation_from_parameters(jnp.zeros((b, 1, 3)), jnp.array([[[0.3, 0, 0]]] * b))
  moved = L.project(pts, k, t, h, w)
  dx = (np.asarray(moved[0, ..., 0]) - np.asarray(grid[0, ..., 0])) / 2 * (w - 1)
  np.testing.assert_allclose(dx, 40.0 * 0.3 / 3.0, rtol=1e-5)


def test_ssim_smoothness_reprojection():
  x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
  np.testing.assert_allclose(np.asarray(L.ssim(x, x)), 0.0, atol=1e-6)
  assert float(L.ssim(x, 1 - x).mean()) > 0.3
  r = L.reprojection_loss(x, x + 0.1)
  assert r.shape == (2, 16, 16, 1)
  # identical SSIM structure (constant shift changes only the luminance term a little): L1 part is exactly 0.015
  np.testing.assert_allclose(np.asarray(L.reprojection_loss(x, x + 0.1, ssim_weight=0)), 0.1, rtol=1e-5)
  assert float(L.smooth_loss(jnp.ones((2, 16, 16, 1)), x)) == 0.0
  ramp = jnp.broadcast_to(jnp.arange(16.0)[None, None, :, None], (1, 16, 16, 1))
  flat = jnp.zeros((1, 16, 16, 3))
  np.testing.assert_allclose(float(L.smooth_loss(ramp, flat)), 1.0, rtol=1e-6)  # |∂x| = 1, exp(0) = 1, ∂y = 0


def test_disp_to_depth_range_and_pyramid():
  scaled, depth = L.disp_to_depth(jnp.array([0.0, 1.0]), 0.1, 100.0)
  np.testing.assert_allclose(np.asarray(depth), [100.0, 0.1], rtol=1e-6)
  pyr = L.color_pyramid(jnp.ones((1, 64, 32, 3)), 4)
  assert [p.shape[1:3] for p in pyr] == [(64, 32), (32, 16), (16, 8), (8, 4)]


def test_truncated_intrinsics_block_their_gradient():
  k = _k(1, f=40.7, c=(30.4, 20.6))
  kt = L.scale_intrinsics(k, 0, trunc=True)
  np.testing.assert_array_equal(np.asarray(kt[0]), [[40, 0, 30], [0, 40, 20], [0, 0, 1]])
  np.testing.assert_allclose(np.asarray(L.scale_intrinsics(k, 1, trunc=False)[0, 0]), [20.35, 0, 15.2], rtol=1e-6)
  img = jax.random.uniform(jax.random.key(0), (1, 32, 32, 3))
  depth = jnp.full((1, 32, 32, 1), 2.0)
  t = L.transformation_from_parameters(jnp.zeros((1, 1, 3)), jnp.array([[[0.05, 0.0, 0.0]]]))

  def loss(k, trunc):
    kk = L.scale_intrinsics(k, 0, trunc)
    return L.warp(img, depth, t, kk).mean()
  # Rows 0–1 hold the predicted focal lengths and principal point (row 2 is the constant [0, 0, 1]).
  assert float(jnp.abs(jax.grad(loss)(k, True)[:, :2]).max()) == 0.0  # official: the intrinsics head never learns
  assert float(jnp.abs(jax.grad(loss)(k, False)[:, :2]).max()) > 0.0


def test_min_reprojection_and_automasking():
  b, h, w = 1, 32, 32
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  tex = lambda s: jnp.asarray(np.stack([np.sin(0.4 * (xx + s)), np.cos(0.3 * yy + 0.2 * (xx + s)),  # noqa: E731
                                        np.sin(0.2 * (xx + s) + 0.5 * yy)], -1)[None] * 0.25 + 0.5, jnp.float32)
  frames = {-1: tex(-2.0), 0: tex(0.0), 1: tex(2.0)}
  disps = [jnp.full((b, h // 2 ** s, w // 2 ** s, 1), 0.3) for s in range(4)]
  eye = jnp.broadcast_to(jnp.eye(4), (b, 4, 4))
  k = _k(b, f=30.0, c=(16.0, 16.0))
  loss = jax.jit(L.self_supervised_loss, static_argnames=("automasking",))
  total, m = loss(disps, frames, {-1: eye, 1: eye}, k)
  # Zero motion: warping only resamples each source, so static-camera pixels are auto-masked in favour of
  # the identity term for most pixels; every term is finite and the total is the mean of the per-scale losses.
  assert np.isfinite(float(total))
  np.testing.assert_allclose(float(total), np.mean([float(m[f"loss/{s}"]) for s in range(4)]), rtol=1e-6)
  assert abs(float(m["smoothness/0"])) < 1e-6  # constant disparity (XLA's vectorised division: last-bit noise)
  # Sources identical to the target: the identity reprojection is 0 everywhere (to float32 round-off of SSIM's
  # E[x²] − μ² under XLA fusion), so every pixel keeps the identity term and the loss is 0.
  same = {f: frames[0] for f in (-1, 0, 1)}
  total0, m0 = loss(disps, same, {-1: eye, 1: eye}, k, automasking=True)
  assert abs(float(total0)) < 1e-6 and float(m0["automask/0"]) == 0.0
  # Without auto-masking the same case keeps the (w−1)-grid resampling error of the warp.
  total1, _ = loss(disps, same, {-1: eye, 1: eye}, k, automasking=False)
  assert float(total1) > 0.0
  # The tie-break noise is an input: it shifts the identity terms by 1e-5·N(0, 1).
  noise = jnp.ones((b, 4, h, w, 2))
  total2, _ = loss(disps, same, {-1: eye, 1: eye}, k, noise)
  np.testing.assert_allclose(float(total2), 1e-5, rtol=1e-2)


def test_take_min_routes_gradient_to_first_minimum():
  g = jax.grad(lambda x: L._take_min(x)[0].sum())(jnp.array([[1.0, 1.0, 2.0]]))
  np.testing.assert_array_equal(np.asarray(g), [[1.0, 0.0, 0.0]])

"""FOMM/DaGAN helpers in JAX (NHWC): keypoint Gaussians, image pyramid, equivariance Transform, normalize_kp."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import chex
import flax.struct
import jax
import jax.numpy as jnp

from jaxreenact.layers.antialias import anti_alias_downsample
from jaxreenact.layers.warp import grid_sample, make_coordinate_grid

Keypoints = Mapping[str, jax.Array]  # {"value": (B, K, 2), "jacobian": (B, K, 2, 2)}


def kp_value(kp: Keypoints | jax.Array) -> jax.Array:
  return kp["value"] if isinstance(kp, Mapping) else kp


def kp2gaussian(kp: Keypoints | jax.Array, spatial_size: tuple[int, int], kp_variance: float) -> jax.Array:
  """Gaussian blob per keypoint (FOMM ``kp2gaussian``), channels last.

  Args:
    kp: keypoint dict (or its ``value``) with value (B, K, 2), (x, y) in [-1, 1].
    spatial_size: (H, W).
    kp_variance: variance of the blob (0.01 in DaGAN).
  Returns:
    (B, H, W, K) = exp(-0.5·|grid - kp|² / kp_variance).
  """
  mean = kp_value(kp)
  chex.assert_rank(mean, 3)
  h, w = spatial_size
  grid = make_coordinate_grid(h, w, mean.dtype)  # (H, W, 2)
  diff = grid[None, :, :, None, :] - mean[:, None, None, :, :]  # (B, H, W, K, 2)
  return jnp.exp(-0.5 * jnp.sum(diff ** 2, axis=-1) / kp_variance)


def scale_key(scale: float) -> str:
  """FOMM's dict key for a pyramid scale: str(scale) ('1', '0.5', ...)."""
  return str(scale)


def image_pyramid(x: jax.Array, scales: Sequence[float]) -> dict[str, jax.Array]:
  """FOMM ``ImagePyramide``: {'prediction_<scale>': AntiAliasInterpolation2d(scale)(x)}; x (B, H, W, C)."""
  chex.assert_rank(x, 4)
  return {f"prediction_{scale_key(s)}": anti_alias_downsample(x, s) for s in scales}


@flax.struct.dataclass
class Transform:
  """FOMM's random affine + TPS warp (equivariance losses) with its random parameters as inputs.

  theta: (B, 2, 3) affine (official: I + N(0, sigma_affine)); control_params: (B, 1, P²) TPS weights
  (official: N(0, sigma_tps)) or None; points_tps: P (control points = the P×P coordinate grid).
  """
  theta: jax.Array
  control_params: jax.Array | None = None
  points_tps: int | None = flax.struct.field(pytree_node=False, default=None)

  @classmethod
  def random(cls, rng: jax.Array, batch_size: int, sigma_affine: float, sigma_tps: float | None = None,
             points_tps: int | None = None, dtype: Any = jnp.float32) -> "Transform":
    """Draws the official distribution (JAX RNG; it cannot reproduce torch's stream)."""
    k1, k2 = jax.random.split(rng)
    theta = sigma_affine * jax.random.normal(k1, (batch_size, 2, 3), dtype) + jnp.eye(2, 3, dtype=dtype)[None]
    params = None
    if sigma_tps is not None and points_tps is not None:
      params = sigma_tps * jax.random.normal(k2, (batch_size, 1, points_tps ** 2), dtype)
    return cls(theta, params, points_tps if params is not None else None)

  @property
  def batch_size(self) -> int:
    return self.theta.shape[0]

  def _control_points(self, dtype) -> jax.Array:
    return make_coordinate_grid(self.points_tps, self.points_tps, dtype).reshape(-1, 2)  # (P², 2)

  def warp_coordinates(self, coordinates: jax.Array) -> jax.Array:
    """Applies the warp to points: (B or 1, N, 2) -> (B, N, 2)."""
    chex.assert_rank(coordinates, 3)
    theta = self.theta.astype(coordinates.dtype)[:, None]  # (B, 1, 2, 3)
    # torch.matmul(theta[..., :2], coords[..., None]) + theta[..., 2:]
    out = jnp.sum(theta[..., :2] * coordinates[..., None, :], axis=-1) + theta[..., 2]  # (B, N, 2)
    if self.control_params is not None:
      cp = self._control_points(coordinates.dtype)
      dist = jnp.sum(jnp.abs(coordinates[:, :, None, :] - cp[None, None]), axis=-1)  # L1 distance (B|1, N, P²)
      radial = dist ** 2 * jnp.log(dist + 1e-6) * self.control_params.astype(coordinates.dtype)
      out = out + jnp.sum(radial, axis=2)[..., None]
    return out

  def jacobian(self, coordinates: jax.Array) -> jax.Array:
    """d warp / d point at each point: (B, N, 2) -> (B, N, 2, 2), rows = output (x, y) (torch autograd layout)."""
    chex.assert_rank(coordinates, 3)
    if coordinates.shape[0] != self.batch_size:
      raise ValueError(f"Transform.jacobian: coordinates must be (B={self.batch_size}, N, 2), got {coordinates.shape}")

    def warp_point(theta, params, p):  # theta (2, 3), params (1, P²) | None, p (2,) -> (2,)
      t = Transform(theta[None], None if params is None else params[None], self.points_tps)
      return t.warp_coordinates(p[None, None])[0, 0]

    per_point = jax.vmap(jax.jacfwd(warp_point, argnums=2), in_axes=(None, None, 0))
    return jax.vmap(per_point)(self.theta, self.control_params, coordinates)

  def transform_frame(self, frame: jax.Array) -> jax.Array:
    """Warps a frame (B, H, W, C) with grid_sample(padding_mode='reflection'), as FOMM."""
    chex.assert_rank(frame, 4)
    b, h, w, _ = frame.shape
    grid = make_coordinate_grid(h, w, frame.dtype).reshape(1, h * w, 2)
    grid = self.warp_coordinates(grid).reshape(self.batch_size, h, w, 2)
    return grid_sample(frame, grid, padding_mode="reflection", align_corners=False)


def convex_hull_area(points: jax.Array) -> jax.Array:
  """Area of the convex hull of each point set (= scipy ConvexHull(p).volume in 2-D), jit-able.

  A directed pair (i, j) is a counter-clockwise hull edge when no point lies strictly to its right and every
  point on its line lies within the segment; the area is the shoelace sum over those edges. Duplicate points
  are counted once (only their first occurrence may be an edge end).

  Args:
    points: (..., K, 2).
  Returns:
    (...,) areas (0 for degenerate sets).
  """
  p = points
  k = p.shape[-2]
  pi = p[..., :, None, None, :]  # (..., K, 1, 1, 2) edge start i
  pj = p[..., None, :, None, :]  # (..., 1, K, 1, 2) edge end j
  pk = p[..., None, None, :, :]  # (..., 1, 1, K, 2) tested point
  e = pj - pi
  r = pk - pi
  cross = e[..., 0] * r[..., 1] - e[..., 1] * r[..., 0]  # (..., K, K, K): > 0 left of i->j
  length2 = jnp.sum(e * e, axis=-1)  # (..., K, K, 1)
  scale = jnp.sqrt(length2) * jnp.sqrt(jnp.sum(r * r, axis=-1)) + 1e-30
  tol = 1e-6
  on_line = jnp.abs(cross) <= tol * scale
  t = jnp.sum(r * e, axis=-1) / jnp.maximum(length2, 1e-30)
  ok = (cross > 0) | (on_line & (t >= -tol) & (t <= 1 + tol))
  same = jnp.all(p[..., :, None, :] == p[..., None, :, :], axis=-1)  # (..., K, K)
  first = ~jnp.any(same & jnp.tril(jnp.ones((k, k), bool), -1), axis=-1)  # no earlier duplicate
  edge = jnp.all(ok, axis=-1) & (length2[..., 0] > 0) & first[..., :, None] & first[..., None, :]  # (..., K, K)
  xi, yi = p[..., :, None, 0], p[..., :, None, 1]
  xj, yj = p[..., None, :, 0], p[..., None, :, 1]
  shoelace = xi * yj - xj * yi  # (..., K, K)
  return 0.5 * jnp.sum(jnp.where(edge, shoelace, 0.0), axis=(-2, -1))


def normalize_kp(kp_source: Keypoints, kp_driving: Keypoints, kp_driving_initial: Keypoints,
                 adapt_movement_scale: bool = False, use_relative_movement: bool = True,
                 use_relative_jacobian: bool = True) -> dict[str, jax.Array]:
  """FOMM relative motion transfer (animate.py ``normalize_kp``).

  Defaults are DaGAN's ``animate_params.normalization_params`` (the official function defaults all three
  flags to False).

  kp_new = kp_source + (kp_driving − kp_driving_initial)·s, J_new = (J_d·J_d0⁻¹)·J_s, with
  s = sqrt(area(hull kp_source) / area(hull kp_driving_initial)) when ``adapt_movement_scale`` else 1.
  The official code takes both hull areas from batch element 0 and applies that scale to the whole batch;
  here each batch element gets its own scale (identical for batch 1, the demo's case).
  """
  chex.assert_rank(kp_value(kp_source), 3)
  kp_new = dict(kp_driving)
  if use_relative_movement:
    diff = kp_driving["value"] - kp_driving_initial["value"]  # (B, K, 2)
    if adapt_movement_scale:
      scale = jnp.sqrt(convex_hull_area(kp_source["value"])) / jnp.sqrt(convex_hull_area(kp_driving_initial["value"]))
      diff = diff * scale[:, None, None].astype(diff.dtype)
    kp_new["value"] = diff + kp_source["value"]
    if use_relative_jacobian:
      jd = jnp.matmul(kp_driving["jacobian"], jnp.linalg.inv(kp_driving_initial["jacobian"]))
      kp_new["jacobian"] = jnp.matmul(jd, kp_source["jacobian"])
  return kp_new

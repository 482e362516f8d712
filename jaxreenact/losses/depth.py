"""Self-supervised depth losses of Face-Depth-Network (monodepth2 with predicted intrinsics), NHWC.

The target frame t is reconstructed from t−1 and t+1 by back-projecting its predicted depth with the inverse of the
predicted intrinsics, moving the points with the predicted pose and projecting them back; the photometric error
0.85·SSIM + 0.15·L1 is minimised per pixel over the source frames, with auto-masking (identity reprojection of the
unwarped source frames, plus 1e-5·N(0, 1) to break ties) and an edge-aware smoothness term 1e-3 on the
mean-normalised disparity, at 4 scales whose disparities are upsampled to full resolution (monodepth2's default).

Geometry matrices keep torch's layout: intrinsics (B, 3, 3), poses (B, 4, 4), points (B, 4, H·W).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.layers.resample import avg_pool, resize_bilinear
from jaxreenact.layers.warp import grid_sample

_HI = jax.lax.Precision.HIGHEST  # geometry is tiny: keep it exact on every backend


def disp_to_depth(disp: jax.Array, min_depth: float = 0.1, max_depth: float = 100.0) -> tuple[jax.Array, jax.Array]:
  """monodepth2 ``disp_to_depth``: sigmoid output -> (scaled disparity in [1/max, 1/min], depth = 1/scaled)."""
  min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
  scaled = min_disp + (max_disp - min_disp) * disp
  return scaled, 1.0 / scaled


def _safe_norm(v: jax.Array, axis: int) -> jax.Array:
  """``torch.norm(v, 2, axis, keepdim=True)`` with torch's zero gradient at v = 0 (jnp.linalg.norm gives NaN)."""
  sq = jnp.sum(jnp.square(v), axis=axis, keepdims=True)
  pos = sq > 0
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def rot_from_axisangle(vec: jax.Array) -> jax.Array:
  """monodepth2 ``rot_from_axisangle``: (B, 1, 3) axis-angle -> (B, 4, 4) homogeneous rotation."""
  chex.assert_rank(vec, 3)
  angle = _safe_norm(vec, axis=2)  # (B, 1, 1)
  axis = vec / (angle + 1e-7)
  ca, sa = jnp.cos(angle)[:, 0, 0], jnp.sin(angle)[:, 0, 0]  # (B,)
  c = 1 - ca
  x, y, z = axis[:, 0, 0], axis[:, 0, 1], axis[:, 0, 2]
  xs, ys, zs = x * sa, y * sa, z * sa
  xc, yc, zc = x * c, y * c, z * c
  xyc, yzc, zxc = x * yc, y * zc, z * xc
  zero, one = jnp.zeros_like(x), jnp.ones_like(x)
  rows = [jnp.stack([x * xc + ca, xyc - zs, zxc + ys, zero], -1),
          jnp.stack([xyc + zs, y * yc + ca, yzc - xs, zero], -1),
          jnp.stack([zxc - ys, yzc + xs, z * zc + ca, zero], -1),
          jnp.stack([zero, zero, zero, one], -1)]
  return jnp.stack(rows, axis=1)  # (B, 4, 4)


def translation_matrix(t: jax.Array) -> jax.Array:
  """monodepth2 ``get_translation_matrix``: (B, 1, 3) -> (B, 4, 4) identity with the translation column."""
  b = t.shape[0]
  m = jnp.broadcast_to(jnp.eye(4, dtype=t.dtype), (b, 4, 4))
  return m.at[:, :3, 3].set(t.reshape(b, 3))


def transformation_from_parameters(axisangle: jax.Array, translation: jax.Array, invert: bool = False) -> jax.Array:
  """monodepth2: (B, 1, 3) axis-angle and translation -> (B, 4, 4) T·R, or Rᵀ·T(−t) when ``invert``."""
  r = rot_from_axisangle(axisangle)
  t = translation
  if invert:
    r = jnp.swapaxes(r, 1, 2)
    t = -t
  tm = translation_matrix(t)
  return jnp.matmul(r, tm, precision=_HI) if invert else jnp.matmul(tm, r, precision=_HI)


def scale_intrinsics(k: jax.Array, scale: int = 0, trunc: bool = True) -> jax.Array:
  """Face-Depth-Network's ``K[:, :2, :] = (K[:, :2, :] / 2**scale).trunc()`` (done in place in its layers).

  ``trunc`` rounds the focal lengths and principal point towards zero, which also cuts their gradient (d trunc = 0):
  in the official trainer the intrinsics head therefore never learns. ``trunc=False`` keeps them differentiable.
  """
  top = k[:, :2, :] / (2 ** scale)
  if trunc:
    top = jnp.trunc(top)  # zero gradient, as torch.trunc
  return jnp.concatenate([top, k[:, 2:, :]], axis=1)


def pixel_grid(h: int, w: int, dtype) -> jax.Array:
  """BackprojectDepth's homogeneous pixel coordinates (3, H·W): rows x (column index), y (row index), 1."""
  xs, ys = np.meshgrid(np.arange(w), np.arange(h), indexing="xy")
  grid = np.stack([xs.reshape(-1), ys.reshape(-1), np.ones(h * w)], 0)
  return jnp.asarray(grid, dtype=dtype)


def backproject(depth: jax.Array, inv_k: jax.Array) -> jax.Array:
  """monodepth2 ``BackprojectDepth``: depth (B, H, W, 1), inverse intrinsics (B, 3, 3) -> points (B, 4, H·W)."""
  chex.assert_rank(depth, 4)
  b, h, w, _ = depth.shape
  pix = pixel_grid(h, w, depth.dtype)
  cam = jnp.matmul(inv_k[:, :3, :3], pix, precision=_HI)  # (B, 3, H·W)
  cam = depth.reshape(b, 1, h * w) * cam  # row-major over (H, W), as depth.view(B, 1, -1) in NCHW
  return jnp.concatenate([cam, jnp.ones((b, 1, h * w), cam.dtype)], axis=1)


def project(points: jax.Array, k: jax.Array, t: jax.Array, h: int, w: int, eps: float = 1e-7) -> jax.Array:
  """monodepth2 ``Project3D``: points (B, 4, H·W) -> grid_sample coordinates (B, H, W, 2) in [-1, 1] (x, y).

  Pixels are normalised with the (size − 1) convention of the official code, as it feeds grid_sample.
  """
  b = points.shape[0]
  k4 = jnp.zeros((b, 4, 4), k.dtype).at[:, :3, :3].set(k).at[:, 3, 3].set(1.0)  # cat zero column, [0, 0, 0, 1]
  p = jnp.matmul(k4, t, precision=_HI)[:, :3, :]
  cam = jnp.matmul(p, points, precision=_HI)  # (B, 3, H·W)
  pix = cam[:, :2, :] / (cam[:, 2:3, :] + eps)
  pix = jnp.transpose(pix.reshape(b, 2, h, w), (0, 2, 3, 1))  # (B, H, W, 2)
  pix = pix / jnp.asarray([w - 1, h - 1], pix.dtype)
  return (pix - 0.5) * 2


def _torch_clamp01(x: jax.Array) -> jax.Array:
  """``torch.clamp(x, 0, 1)``: gradient 1 on the closed interval (jnp.clip halves it at the bounds)."""
  return jnp.where(x < 0, jnp.zeros_like(x), jnp.where(x > 1, jnp.ones_like(x), x))


def _avg3(x: jax.Array) -> jax.Array:
  """``nn.AvgPool2d(3, 1)`` (valid): (B, H+2, W+2, C) -> (B, H, W, C)."""
  s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), "VALID")
  return s / 9.0


def ssim(x: jax.Array, y: jax.Array) -> jax.Array:
  """monodepth2 ``SSIM`` dissimilarity: clamp((1 − SSIM)/2, 0, 1) per pixel and channel, 3×3 box, reflection pad."""
  chex.assert_equal_shape([x, y])
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  x = jnp.pad(x, pad, mode="reflect")  # nn.ReflectionPad2d(1)
  y = jnp.pad(y, pad, mode="reflect")
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  mu_x, mu_y = _avg3(x), _avg3(y)
  sigma_x = _avg3(x ** 2) - mu_x ** 2
  sigma_y = _avg3(y ** 2) - mu_y ** 2
  sigma_xy = _avg3(x * y) - mu_x * mu_y
  n = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
  d = (mu_x ** 2 + mu_y ** 2 + c1) * (sigma_x + sigma_y + c2)
  return _torch_clamp01((1 - n / d) / 2)


def reprojection_loss(pred: jax.Array, target: jax.Array, ssim_weight: float = 0.85) -> jax.Array:
  """monodepth2 ``compute_reprojection_loss``: (B, H, W, 3) pair -> (B, H, W, 1); ssim_weight 0 = L1 only."""
  l1 = jnp.mean(jnp.abs(target - pred), axis=-1, keepdims=True)
  if ssim_weight == 0:
    return l1
  return ssim_weight * jnp.mean(ssim(pred, target), axis=-1, keepdims=True) + (1 - ssim_weight) * l1


def smooth_loss(disp: jax.Array, img: jax.Array) -> jax.Array:
  """monodepth2 ``get_smooth_loss``: edge-aware |∇disp|·exp(−|∇img|) (mean over channels), x plus y means."""
  gdx = jnp.abs(disp[:, :, :-1] - disp[:, :, 1:])
  gdy = jnp.abs(disp[:, :-1] - disp[:, 1:])
  gix = jnp.mean(jnp.abs(img[:, :, :-1] - img[:, :, 1:]), axis=-1, keepdims=True)
  giy = jnp.mean(jnp.abs(img[:, :-1] - img[:, 1:]), axis=-1, keepdims=True)
  return jnp.mean(gdx * jnp.exp(-gix)) + jnp.mean(gdy * jnp.exp(-giy))


def color_pyramid(img: jax.Array, num_scales: int) -> list[jax.Array]:
  """Colour images at 1/2^s for the smoothness term.

  monodepth2's loader resizes each scale from the previous one with PIL LANCZOS; the frames arrive here at full
  resolution only, so each scale is a 2×2 average of the previous one (both frameworks do the same).
  """
  out = [img]
  for _ in range(1, num_scales):
    out.append(avg_pool(out[-1], 2))
  return out


def _take_min(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``torch.min(x, dim=-1)`` values with the gradient routed to the first minimum (jnp.min splits it on ties)."""
  idx = jnp.argmin(x, axis=-1)[..., None]
  return jnp.take_along_axis(x, idx, axis=-1)[..., 0], idx[..., 0]


def warp(source: jax.Array, depth: jax.Array, t: jax.Array, k: jax.Array, inv_k: jax.Array | None = None) -> jax.Array:
  """Source frame (B, H, W, 3) seen from the target camera: backproject depth with K⁻¹, move by T, project with K.

  ``k`` must already be the (truncated) intrinsics at this resolution (``inv_k`` its inverse, computed when None).
  grid_sample: bilinear, border padding (monodepth2), align_corners=False (torch's default, which the official
  call relies on).
  """
  b, h, w, _ = source.shape
  inv_k = jnp.linalg.inv(k) if inv_k is None else inv_k  # torch.linalg.inv(K)
  points = backproject(depth, inv_k)
  grid = project(points, k, t, h, w)
  return grid_sample(source, grid, padding_mode="border", align_corners=False)


def self_supervised_loss(disps: Sequence[jax.Array], frames: Mapping[int, jax.Array], poses: Mapping[int, jax.Array],
                         intrinsics: jax.Array, identity_noise: jax.Array | None = None, *,
                         min_depth: float = 0.1, max_depth: float = 100.0, disparity_smoothness: float = 1e-3,
                         ssim_weight: float = 0.85, automasking: bool = True, avg_reprojection: bool = False,
                         trunc_intrinsics: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Face-Depth-Network ``generate_images_pred`` + ``compute_losses`` (monodepth2 defaults, no v1 multiscale).

  The 2 source frames × S scales are warped as one batch (same arithmetic per element as the official loops;
  one grid_sample/SSIM in the graph keeps XLA compile time low).

  Args:
    disps: sigmoid disparities of the target frame, scale 0 first: (B, H/2^s, W/2^s, 1) for s = 0..S−1.
    frames: the non-augmented colour frames {−1: (B, H, W, 3), 0: target, 1: next} in [0, 1].
    poses: {−1: (B, 4, 4), 1: (B, 4, 4)} target→source camera transforms (``transformation_from_parameters``).
    intrinsics: (B, 3, 3) predicted K (the official trainer uses the one predicted from the (0, +1) pair).
    identity_noise: (B, S, H, W, 2) standard normal draws for the auto-masking tie break (scaled by 1e-5 here;
      last axis 1 with ``avg_reprojection``); None adds none.
  Returns:
    (total loss = mean over scales, metrics {'loss/s', 'reprojection/s', 'smoothness/s', 'automask/s'}).
  """
  target = frames[0]
  chex.assert_rank(target, 4)
  b, h, w, c = target.shape
  source_ids = (-1, 1)  # opt.frame_ids[1:]
  nf, ns = len(source_ids), len(disps)
  for s, disp in enumerate(disps):
    chex.assert_shape(disp, (b, h // 2 ** s, w // 2 ** s, 1))
  k = scale_intrinsics(intrinsics, 0, trunc_intrinsics)  # source_scale is always 0
  inv_k = jnp.linalg.inv(k)  # torch.linalg.inv(K)
  # generate_images_pred: every scale's disparity upsampled to full resolution, then depth.
  disp_full = jnp.stack([resize_bilinear(d, (h, w), align_corners=False) for d in disps])  # (S, B, H, W, 1)
  _, depth = disp_to_depth(disp_full, min_depth, max_depth)
  # Batch-major (B, F, S) flattening keeps the data-parallel sharding of B a contiguous block of the merged axis.
  bfs = (b, nf, ns)
  bcast = lambda x, shape: jnp.broadcast_to(x, bfs + shape).reshape((b * nf * ns,) + shape)  # noqa: E731
  src = jnp.stack([frames[f] for f in source_ids], axis=1)[:, :, None]  # (B, F, 1, H, W, 3)
  t = jnp.stack([poses[f] for f in source_ids], axis=1)[:, :, None]  # (B, F, 1, 4, 4)
  dep = jnp.swapaxes(depth, 0, 1)[:, None]  # (B, 1, S, H, W, 1)
  kk, ik = k[:, None, None], inv_k[:, None, None]  # (B, 1, 1, 3, 3)
  warped = warp(bcast(src, (h, w, c)), bcast(dep, (h, w, 1)), bcast(t, (4, 4)), bcast(kk, (3, 3)),
                bcast(ik, (3, 3)))  # (B·F·S, H, W, 3)
  reproj = reprojection_loss(warped, bcast(target[:, None, None], (h, w, c)), ssim_weight).reshape(bfs + (h, w))
  reproj = jnp.transpose(reproj, (2, 0, 3, 4, 1))  # (S, B, H, W, F): channel order = frame_ids[1:]
  if avg_reprojection:
    reproj = reproj.mean(-1, keepdims=True)
  if automasking:
    identity = jnp.concatenate([reprojection_loss(frames[f], target, ssim_weight) for f in source_ids], -1)
    if avg_reprojection:
      identity = identity.mean(-1, keepdims=True)
    identity = jnp.broadcast_to(identity, (ns,) + identity.shape)  # (S, B, H, W, F or 1)
    if identity_noise is not None:
      identity = identity + jnp.moveaxis(identity_noise, 1, 0).astype(identity.dtype) * 1e-5
    combined = jnp.concatenate([identity, reproj], -1)  # torch.cat((identity, reprojection), dim=1)
  else:
    combined = reproj
  if combined.shape[-1] == 1:
    to_optimise, idx = combined[..., 0], None
  else:
    to_optimise, idx = _take_min(combined)  # (S, B, H, W)
  colors = color_pyramid(target, ns)
  total, metrics = 0.0, {}
  for s, disp in enumerate(disps):
    rep = to_optimise[s].mean()
    mean_disp = disp.mean(axis=(1, 2), keepdims=True)
    norm_disp = disp / (mean_disp + 1e-7)
    smooth = smooth_loss(norm_disp, colors[s])
    loss = rep + disparity_smoothness * smooth / (2 ** s)
    total = total + loss
    metrics[f"loss/{s}"] = loss
    metrics[f"reprojection/{s}"] = rep
    metrics[f"smoothness/{s}"] = smooth
    if automasking and idx is not None:
      # identity_selection: share of pixels where a warped frame beat the unwarped ones
      metrics[f"automask/{s}"] = jnp.mean((idx[s] > identity.shape[-1] - 1).astype(jnp.float32))
  return total / ns, metrics

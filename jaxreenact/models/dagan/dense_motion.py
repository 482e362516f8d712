"""FOMM dense motion network (modules/dense_motion.py) in Flax, NHWC."""
from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.layers.antialias import anti_alias_downsample
from jaxreenact.layers.conv import Conv2d
from jaxreenact.layers.warp import grid_sample, make_coordinate_grid
from jaxreenact.models.dagan.blocks import Hourglass
from jaxreenact.models.dagan.utils import Keypoints, kp2gaussian


def sparse_motions(h: int, w: int, kp_driving: Keypoints, kp_source: Keypoints) -> jax.Array:
  """FOMM Eq. 4: T_k(z) = J_s·J_d⁻¹·(z − kp_d) + kp_s per keypoint, identity first.

  Returns:
    (B, K+1, h, w, 2) sampling grids (x, y).
  """
  vd, vs = kp_driving["value"], kp_source["value"]  # (B, K, 2)
  b, k, _ = vd.shape
  identity = make_coordinate_grid(h, w, vs.dtype)[None, None]  # (1, 1, h, w, 2)
  coords = identity - vd[:, :, None, None, :]  # (B, K, h, w, 2)
  if "jacobian" in kp_driving:
    jac = jnp.matmul(kp_source["jacobian"], jnp.linalg.inv(kp_driving["jacobian"]))  # (B, K, 2, 2)
    # torch.matmul(jac (B,K,h,w,2,2), coords[..., None]) as an explicit 2x2 product.
    coords = jnp.sum(jac[:, :, None, None, :, :] * coords[..., None, :], axis=-1)
  driving_to_source = coords + vs[:, :, None, None, :]
  return jnp.concatenate([jnp.broadcast_to(identity, (b, 1, h, w, 2)), driving_to_source], axis=1)


class DenseMotionNetwork(nn.Module):
  """Dense backward flow and occlusion from keypoints.

  ``__call__(source_image (B, H, W, C), kp_driving, kp_source, train=False)`` -> dict with, at the
  downsampled resolution h×w: sparse_deformed (B, K+1, h, w, C), mask (B, h, w, K+1) (softmax over K+1),
  deformation (B, h, w, 2), occlusion_map (B, h, w, 1) when estimated.
  """
  block_expansion: int
  num_blocks: int
  max_features: int
  num_kp: int
  num_channels: int
  estimate_occlusion_map: bool = False
  scale_factor: float = 1
  kp_variance: float = 0.01
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, source_image: jax.Array, kp_driving: Keypoints, kp_source: Keypoints,
               train: bool = False) -> dict[str, jax.Array]:
    chex.assert_rank(source_image, 4)
    chex.assert_shape([kp_driving["value"], kp_source["value"]], (source_image.shape[0], self.num_kp, 2))
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if self.scale_factor != 1:
      source_image = anti_alias_downsample(source_image, self.scale_factor)  # torch buffer `down.weight`
    b, h, w, c = source_image.shape
    k1 = self.num_kp + 1
    heat = (kp2gaussian(kp_driving, (h, w), self.kp_variance)
            - kp2gaussian(kp_source, (h, w), self.kp_variance))  # (B, h, w, K)
    heat = jnp.concatenate([jnp.zeros_like(heat[..., :1]), heat], axis=-1)  # background first
    motions = sparse_motions(h, w, kp_driving, kp_source)  # (B, K+1, h, w, 2)
    rep = jnp.broadcast_to(source_image[:, None], (b, k1, h, w, c)).reshape(b * k1, h, w, c)
    deformed = grid_sample(rep, motions.reshape(b * k1, h, w, 2)).reshape(b, k1, h, w, c)
    # torch cat([heatmap (B,K+1,1,h,w), deformed (B,K+1,C,h,w)], 2).view(B, -1, h, w): channel = k·(C+1) + c.
    inp = jnp.concatenate([heat.transpose(0, 3, 1, 2)[..., None], deformed], axis=-1)  # (B, K+1, h, w, C+1)
    inp = inp.transpose(0, 2, 3, 1, 4).reshape(b, h, w, k1 * (c + 1))
    prediction = Hourglass(self.block_expansion, self.num_blocks, self.max_features, name="hourglass",
                           **kw)(inp, train)
    mask = jax.nn.softmax(Conv2d(k1, 7, padding=3, name="mask", **kw)(prediction), axis=-1)  # (B, h, w, K+1)
    deformation = jnp.sum(motions.transpose(0, 2, 3, 1, 4) * mask[..., None], axis=3)  # (B, h, w, 2)
    out = {"sparse_deformed": deformed, "mask": mask, "deformation": deformation}
    if self.estimate_occlusion_map:
      out["occlusion_map"] = jax.nn.sigmoid(Conv2d(1, 7, padding=3, name="occlusion", **kw)(prediction))
    return out

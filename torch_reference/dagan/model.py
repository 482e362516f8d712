"""DaGAN/FOMM training pieces: image pyramid, equivariance Transform, non-perceptual losses, normalize_kp.

Our own PyTorch code following modules/model.py and animate.py of harlanhong/CVPR2022-DaGAN. The random
Transform is refactored so that its random parameters are inputs (``Transform.random`` draws them).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import grad

from torch_reference.dagan.util import AntiAliasInterpolation2d, make_coordinate_grid


class ImagePyramide(nn.Module):
  """{'prediction_<scale>': anti-aliased downsample of x} for every scale."""

  def __init__(self, scales, num_channels):
    super().__init__()
    self.downs = nn.ModuleDict({str(s).replace(".", "-"): AntiAliasInterpolation2d(num_channels, s) for s in scales})

  def forward(self, x):
    return {"prediction_" + key.replace("-", "."): down(x) for key, down in self.downs.items()}


class Transform:
  """Random affine + thin-plate-spline warp used by the equivariance losses.

  Args:
    theta: (B, 2, 3) affine matrix (official: I + N(0, sigma_affine)).
    control_params: (B, 1, P*P) TPS weights (official: N(0, sigma_tps)) or None for affine only.
    points_tps: P; control points are the P x P coordinate grid.
  """

  def __init__(self, theta: torch.Tensor, control_params: torch.Tensor | None = None, points_tps: int | None = None):
    self.theta = theta
    self.bs = theta.shape[0]
    self.tps = control_params is not None
    if self.tps:
      self.control_points = make_coordinate_grid((points_tps, points_tps), theta.dtype, theta.device).unsqueeze(0)
      self.control_params = control_params

  @classmethod
  def random(cls, bs: int, sigma_affine: float, sigma_tps: float | None = None, points_tps: int | None = None,
             generator: torch.Generator | None = None, device=None) -> "Transform":
    """Draws the official distribution (on the generator's device, then moved to ``device``)."""
    theta = sigma_affine * torch.randn(bs, 2, 3, generator=generator) + torch.eye(2, 3).view(1, 2, 3)
    params = None
    if sigma_tps is not None and points_tps is not None:
      params = sigma_tps * torch.randn(bs, 1, points_tps ** 2, generator=generator)
      params = params.to(device) if device is not None else params
    theta = theta.to(device) if device is not None else theta
    return cls(theta, params, points_tps)

  def transform_frame(self, frame):
    h, w = frame.shape[2:]
    grid = make_coordinate_grid((h, w), frame.dtype, frame.device).view(1, h * w, 2)
    grid = self.warp_coordinates(grid).view(self.bs, h, w, 2)
    return F.grid_sample(frame, grid, padding_mode="reflection", align_corners=False)

  def warp_coordinates(self, coordinates):
    """coordinates (B or 1, N, 2) -> (B, N, 2)."""
    theta = self.theta.to(coordinates.dtype).unsqueeze(1)  # (B, 1, 2, 3)
    out = (torch.matmul(theta[:, :, :, :2], coordinates.unsqueeze(-1)) + theta[:, :, :, 2:]).squeeze(-1)
    if self.tps:
      cp = self.control_points.to(coordinates.dtype)
      params = self.control_params.to(coordinates.dtype)
      dist = torch.abs(coordinates.view(coordinates.shape[0], -1, 1, 2) - cp.view(1, 1, -1, 2)).sum(-1)  # L1
      radial = dist ** 2 * torch.log(dist + 1e-6) * params
      out = out + radial.sum(dim=2).view(self.bs, coordinates.shape[1], 1)
    return out

  def jacobian(self, coordinates):
    """d warp / d coordinates at each point: (B, N, 2, 2) (rows: output x, y)."""
    if not coordinates.requires_grad:
      coordinates = coordinates.detach().requires_grad_(True)
    new = self.warp_coordinates(coordinates)
    gx = grad(new[..., 0].sum(), coordinates, create_graph=True)[0]
    gy = grad(new[..., 1].sum(), coordinates, create_graph=True)[0]
    return torch.stack([gx, gy], dim=-2)


def generator_gan_loss(maps_generated: dict, scales, weight: float = 1.0):
  """LSGAN generator term: sum over D scales of weight * mean((1 - D(fake))^2)."""
  total = 0
  for s in scales:
    total = total + weight * ((1 - maps_generated[f"prediction_map_{s}"]) ** 2).mean()
  return total


def discriminator_gan_loss(maps_real: dict, maps_generated: dict, scales, weight: float = 1.0):
  """LSGAN discriminator term: weight * mean((1 - D(real))^2 + D(fake)^2) per scale."""
  total = 0
  for s in scales:
    key = f"prediction_map_{s}"
    total = total + weight * ((1 - maps_real[key]) ** 2 + maps_generated[key] ** 2).mean()
  return total


def feature_matching_loss(maps_real: dict, maps_generated: dict, scales, weights):
  """Sum over scales and D layers of weights[i] * mean|f_real - f_fake| (zero weights skipped)."""
  total = 0
  for s in scales:
    key = f"feature_maps_{s}"
    for i, (a, b) in enumerate(zip(maps_real[key], maps_generated[key])):
      if weights[i] == 0:
        continue
      total = total + weights[i] * torch.abs(a - b).mean()
  return total


def equivariance_value_loss(kp_driving, transformed_kp, transform: Transform, weight: float = 1.0):
  return weight * torch.abs(kp_driving["value"] - transform.warp_coordinates(transformed_kp["value"])).mean()


def equivariance_jacobian_loss(kp_driving, transformed_kp, transform: Transform, weight: float = 1.0):
  jac_t = torch.matmul(transform.jacobian(transformed_kp["value"]), transformed_kp["jacobian"])
  value = torch.matmul(torch.inverse(kp_driving["jacobian"]), jac_t)
  eye = torch.eye(2, dtype=value.dtype, device=value.device).view(1, 1, 2, 2)
  return weight * torch.abs(eye - value).mean()


def normalize_kp(kp_source, kp_driving, kp_driving_initial, adapt_movement_scale=False, use_relative_movement=False,
                 use_relative_jacobian=False):
  """FOMM relative motion transfer (animate.py); hull areas of batch element 0, as in the official code."""
  if adapt_movement_scale:
    from scipy.spatial import ConvexHull

    source_area = ConvexHull(kp_source["value"][0].detach().cpu().numpy()).volume
    driving_area = ConvexHull(kp_driving_initial["value"][0].detach().cpu().numpy()).volume
    scale = np.sqrt(source_area) / np.sqrt(driving_area)
  else:
    scale = 1
  kp_new = dict(kp_driving)
  if use_relative_movement:
    kp_new["value"] = (kp_driving["value"] - kp_driving_initial["value"]) * scale + kp_source["value"]
    if use_relative_jacobian:
      diff = torch.matmul(kp_driving["jacobian"], torch.inverse(kp_driving_initial["jacobian"]))
      kp_new["jacobian"] = torch.matmul(diff, kp_source["jacobian"])
  return kp_new

"""FOMM dense motion network (sparse motions, heatmap differences, mask, occlusion); our own PyTorch code."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_reference.dagan.util import AntiAliasInterpolation2d, Hourglass, kp2gaussian, make_coordinate_grid


class DenseMotionNetwork(nn.Module):
  """Predicts a dense backward flow (and occlusion) from keypoints of source and driving frames."""

  def __init__(self, block_expansion, num_blocks, max_features, num_kp, num_channels, estimate_occlusion_map=False,
               scale_factor=1, kp_variance=0.01):
    super().__init__()
    self.hourglass = Hourglass(block_expansion=block_expansion, in_features=(num_kp + 1) * (num_channels + 1),
                               max_features=max_features, num_blocks=num_blocks)
    self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=(7, 7), padding=(3, 3))
    self.occlusion = (nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=(7, 7), padding=(3, 3))
                      if estimate_occlusion_map else None)
    self.num_kp = num_kp
    self.scale_factor = scale_factor
    self.kp_variance = kp_variance
    if scale_factor != 1:
      self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

  def create_heatmap_representations(self, source_image, kp_driving, kp_source):
    size = source_image.shape[2:]
    heat = (kp2gaussian(kp_driving, size, self.kp_variance) - kp2gaussian(kp_source, size, self.kp_variance))
    zeros = torch.zeros_like(heat[:, :1])  # background channel
    return torch.cat([zeros, heat], dim=1).unsqueeze(2)  # (B, K+1, 1, h, w)

  def create_sparse_motions(self, source_image, kp_driving, kp_source):
    b, _, h, w = source_image.shape
    identity = make_coordinate_grid((h, w), kp_source["value"].dtype, source_image.device).view(1, 1, h, w, 2)
    coords = identity - kp_driving["value"].view(b, self.num_kp, 1, 1, 2)
    if "jacobian" in kp_driving:
      jac = torch.matmul(kp_source["jacobian"], torch.inverse(kp_driving["jacobian"]))  # (B, K, 2, 2)
      jac = jac.view(b, self.num_kp, 1, 1, 2, 2).expand(b, self.num_kp, h, w, 2, 2)
      coords = torch.matmul(jac, coords.unsqueeze(-1)).squeeze(-1)
    driving_to_source = coords + kp_source["value"].view(b, self.num_kp, 1, 1, 2)
    return torch.cat([identity.expand(b, 1, h, w, 2), driving_to_source], dim=1)  # (B, K+1, h, w, 2)

  def create_deformed_source_image(self, source_image, sparse_motions):
    b, c, h, w = source_image.shape
    k1 = self.num_kp + 1
    rep = source_image.unsqueeze(1).expand(b, k1, c, h, w).reshape(b * k1, c, h, w)
    warped = F.grid_sample(rep, sparse_motions.reshape(b * k1, h, w, 2), align_corners=False)
    return warped.view(b, k1, c, h, w)

  def forward(self, source_image, kp_driving, kp_source):
    if self.scale_factor != 1:
      source_image = self.down(source_image)
    b, _, h, w = source_image.shape
    out = {}
    heatmap = self.create_heatmap_representations(source_image, kp_driving, kp_source)
    sparse_motion = self.create_sparse_motions(source_image, kp_driving, kp_source)
    deformed = self.create_deformed_source_image(source_image, sparse_motion)
    out["sparse_deformed"] = deformed
    inp = torch.cat([heatmap, deformed], dim=2).view(b, -1, h, w)
    prediction = self.hourglass(inp)
    mask = F.softmax(self.mask(prediction), dim=1)  # (B, K+1, h, w)
    out["mask"] = mask
    deformation = (sparse_motion.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1)  # (B, 2, h, w)
    out["deformation"] = deformation.permute(0, 2, 3, 1)
    if self.occlusion is not None:
      out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction))
    return out

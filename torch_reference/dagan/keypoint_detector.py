"""FOMM keypoint detector as used by DaGAN (RGB-D input with ``--rgbd``); our own PyTorch code."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_reference.dagan.util import AntiAliasInterpolation2d, Hourglass, make_coordinate_grid


class KPDetector(nn.Module):
  """Heatmap keypoints (soft-argmax with temperature) and per-keypoint Jacobians."""

  def __init__(self, block_expansion, num_kp, num_channels, max_features, num_blocks, temperature,
               estimate_jacobian=False, scale_factor=1, single_jacobian_map=False, pad=0):
    super().__init__()
    self.predictor = Hourglass(block_expansion, in_features=num_channels, max_features=max_features,
                               num_blocks=num_blocks)
    self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=(7, 7), padding=pad)
    if estimate_jacobian:
      self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
      self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=(7, 7),
                                padding=pad)
      # Official init: zero weights, identity-Jacobian bias.
      with torch.no_grad():
        self.jacobian.weight.zero_()
        self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
    else:
      self.jacobian = None
    self.temperature = temperature
    self.scale_factor = scale_factor
    if scale_factor != 1:
      self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

  def forward(self, x):
    if self.scale_factor != 1:
      x = self.down(x)
    feature_map = self.predictor(x)
    logits = self.kp(feature_map)  # (B, K, h, w)
    b, k, h, w = logits.shape
    heatmap = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
    grid = make_coordinate_grid((h, w), heatmap.dtype, heatmap.device)  # (h, w, 2)
    out = {"value": (heatmap.unsqueeze(-1) * grid.view(1, 1, h, w, 2)).sum(dim=(2, 3))}
    if self.jacobian is not None:
      jmap = self.jacobian(feature_map).reshape(b, self.num_jacobian_maps, 4, h, w)
      jac = (heatmap.unsqueeze(2) * jmap).view(b, k, 4, -1).sum(dim=-1)
      out["jacobian"] = jac.view(b, k, 2, 2)
    return out

"""FOMM multi-scale discriminator with keypoint-heatmap conditioning; our own PyTorch code."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_reference.dagan.util import kp2gaussian


class DownBlock2d(nn.Module):
  """Conv 4x4 (no padding) -> [InstanceNorm affine] -> LeakyReLU 0.2 -> [avg pool 2]."""

  def __init__(self, in_features, out_features, norm=False, kernel_size=4, pool=False, sn=False):
    super().__init__()
    self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size)
    if sn:
      self.conv = nn.utils.spectral_norm(self.conv)
    self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
    self.pool = pool

  def forward(self, x):
    out = self.conv(x)
    if self.norm is not None:
      out = self.norm(out)
    out = F.leaky_relu(out, 0.2)
    if self.pool:
      out = F.avg_pool2d(out, (2, 2))
    return out


class Discriminator(nn.Module):
  """Pix2Pix-like patch discriminator; returns (feature_maps, prediction_map)."""

  def __init__(self, num_channels=3, block_expansion=64, num_blocks=4, max_features=512, sn=False, use_kp=False,
               num_kp=10, kp_variance=0.01, **kwargs):
    super().__init__()
    blocks = []
    for i in range(num_blocks):
      cin = num_channels + num_kp * use_kp if i == 0 else min(max_features, block_expansion * 2 ** i)
      blocks.append(DownBlock2d(cin, min(max_features, block_expansion * 2 ** (i + 1)), norm=(i != 0), kernel_size=4,
                                pool=(i != num_blocks - 1), sn=sn))
    self.down_blocks = nn.ModuleList(blocks)
    cout = min(max_features, block_expansion * 2 ** num_blocks)
    self.conv = nn.Conv2d(cout, 1, kernel_size=1)
    if sn:
      self.conv = nn.utils.spectral_norm(self.conv)
    self.use_kp = use_kp
    self.kp_variance = kp_variance

  def forward(self, x, kp=None):
    out = x
    if self.use_kp:
      out = torch.cat([out, kp2gaussian(kp, x.shape[2:], self.kp_variance)], dim=1)
    feature_maps = []
    for block in self.down_blocks:
      out = block(out)
      feature_maps.append(out)
    return feature_maps, self.conv(out)


class MultiScaleDiscriminator(nn.Module):
  """One Discriminator per scale; input dict {'prediction_<scale>': image}."""

  def __init__(self, scales=(), **kwargs):
    super().__init__()
    self.scales = scales
    self.discs = nn.ModuleDict({str(s).replace(".", "-"): Discriminator(**kwargs) for s in scales})

  def forward(self, x, kp=None):
    out = {}
    for key, disc in self.discs.items():
      scale = key.replace("-", ".")
      feature_maps, prediction_map = disc(x["prediction_" + scale], kp)
      out["feature_maps_" + scale] = feature_maps
      out["prediction_map_" + scale] = prediction_map
    return out

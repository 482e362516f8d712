"""DaGAN generators (DepthAwareGenerator, SPADEDepthAwareGenerator) with DepthAwareAttention; our own PyTorch code."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_reference.dagan.dense_motion import DenseMotionNetwork
from torch_reference.dagan.util import DownBlock2d, ResBlock2d, SameBlock2d, SPADEResnetBlock, UpBlock2d


class DepthAwareAttention(nn.Module):
  """Cross-modal attention: queries from source-depth features, keys/values from warped RGB features."""

  def __init__(self, in_dim: int, activation: nn.Module):
    super().__init__()
    self.chanel_in = in_dim
    self.activation = activation
    self.query_conv = nn.Conv2d(in_dim, in_dim // 8, kernel_size=1)
    self.key_conv = nn.Conv2d(in_dim, in_dim // 8, kernel_size=1)
    self.value_conv = nn.Conv2d(in_dim, in_dim, kernel_size=1)
    self.gamma = nn.Parameter(torch.zeros(1))
    self.softmax = nn.Softmax(dim=-1)

  def forward(self, source, feat):
    b, c, h, w = source.shape
    q = self.activation(self.query_conv(source)).view(b, -1, h * w).permute(0, 2, 1)  # (B, N, C/8)
    k = self.activation(self.key_conv(feat)).view(b, -1, h * w)  # (B, C/8, N)
    attention = self.softmax(torch.bmm(q, k))  # (B, N, N), softmax over keys
    v = self.activation(self.value_conv(feat)).view(b, -1, h * w)  # (B, C, N)
    out = torch.bmm(v, attention.permute(0, 2, 1)).view(b, c, h, w)
    return self.gamma * out + feat, attention


def _deform_input(inp, deformation):
  """grid_sample inp with a (B, h, w, 2) flow, bilinearly resized (align_corners=False) to inp's size."""
  _, h_old, w_old, _ = deformation.shape
  _, _, h, w = inp.shape
  if (h_old, w_old) != (h, w):
    deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                                align_corners=False).permute(0, 2, 3, 1)
  return F.grid_sample(inp, deformation, align_corners=False)


class _DepthAwareEncoders(nn.Module):
  """Shared constructor of both generators: dense motion, RGB encoder, source-depth encoder, attention."""

  def _build_encoders(self, num_channels, num_kp, block_expansion, max_features, num_down_blocks,
                      estimate_occlusion_map, dense_motion_params):
    if dense_motion_params is not None:
      self.dense_motion_network = DenseMotionNetwork(num_kp=num_kp, num_channels=num_channels,
                                                     estimate_occlusion_map=estimate_occlusion_map,
                                                     **dense_motion_params)
    else:
      self.dense_motion_network = None
    self.first = SameBlock2d(num_channels, block_expansion, kernel_size=(7, 7), padding=(3, 3))
    self.down_blocks = nn.ModuleList([
        DownBlock2d(min(max_features, block_expansion * 2 ** i), min(max_features, block_expansion * 2 ** (i + 1)),
                    kernel_size=(3, 3), padding=(1, 1)) for i in range(num_down_blocks)])
    self.src_first = SameBlock2d(1, block_expansion, kernel_size=(7, 7), padding=(3, 3))
    self.src_down_blocks = nn.ModuleList([
        DownBlock2d(min(max_features, block_expansion * 2 ** i), min(max_features, block_expansion * 2 ** (i + 1)),
                    kernel_size=(3, 3), padding=(1, 1)) for i in range(num_down_blocks)])
    bottleneck_features = min(max_features, block_expansion * 2 ** num_down_blocks)
    self.AttnModule = DepthAwareAttention(bottleneck_features, nn.ReLU())
    self.estimate_occlusion_map = estimate_occlusion_map
    self.num_channels = num_channels
    return bottleneck_features

  def _encode_and_warp(self, source_image, kp_driving, kp_source, source_depth):
    out = self.first(source_image)
    for block in self.down_blocks:
      out = block(out)
    src_out = self.src_first(source_depth)
    for block in self.src_down_blocks:
      src_out = block(src_out)
    output = {}
    occlusion_map = None
    deformed = None
    if self.dense_motion_network is not None:
      motion = self.dense_motion_network(source_image=source_image, kp_driving=kp_driving, kp_source=kp_source)
      output["mask"] = motion["mask"]
      output["sparse_deformed"] = motion["sparse_deformed"]
      occlusion_map = motion.get("occlusion_map")
      if occlusion_map is not None:
        output["occlusion_map"] = occlusion_map
      deformation = motion["deformation"]
      out = _deform_input(out, deformation)
      if occlusion_map is not None:
        if out.shape[2:] != occlusion_map.shape[2:]:
          occlusion_map = F.interpolate(occlusion_map, size=out.shape[2:], mode="bilinear", align_corners=False)
        out = out * occlusion_map
      out, attention = self.AttnModule(src_out, out)
      deformed = _deform_input(source_image, deformation)
      output["deformed"] = deformed
      output["attention"] = attention
    return out, output, occlusion_map, deformed


class DepthAwareGenerator(_DepthAwareEncoders):
  """Warp encoded source features by the dense motion, attend with source depth, decode (sigmoid output)."""

  def __init__(self, num_channels, num_kp, block_expansion, max_features, num_down_blocks, num_bottleneck_blocks,
               estimate_occlusion_map=False, dense_motion_params=None, estimate_jacobian=False):
    super().__init__()
    in_features = self._build_encoders(num_channels, num_kp, block_expansion, max_features, num_down_blocks,
                                       estimate_occlusion_map, dense_motion_params)
    self.up_blocks = nn.ModuleList([
        UpBlock2d(min(max_features, block_expansion * 2 ** (num_down_blocks - i)),
                  min(max_features, block_expansion * 2 ** (num_down_blocks - i - 1)),
                  kernel_size=(3, 3), padding=(1, 1)) for i in range(num_down_blocks)])
    self.bottleneck = nn.Sequential()
    for i in range(num_bottleneck_blocks):
      self.bottleneck.add_module(f"r{i}", ResBlock2d(in_features, kernel_size=(3, 3), padding=(1, 1)))
    self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=(7, 7), padding=(3, 3))

  def forward(self, source_image, kp_driving, kp_source, source_depth, driving_depth=None):
    out, output, _, _ = self._encode_and_warp(source_image, kp_driving, kp_source, source_depth)
    out = self.bottleneck(out)
    for block in self.up_blocks:
      out = block(out)
    output["prediction"] = torch.sigmoid(self.final(out))
    return output


class SPADEGenerator(nn.Module):
  """SPADE decoder of the SPADE DaGAN variant. Official hard-codes ic=256, cc=4, oc=64, nhidden=128."""

  def __init__(self, ic: int = 256, cc: int = 4, oc: int = 64, nhidden: int = 128, image_channels: int = 3):
    super().__init__()
    norm_G = "spadespectralinstance"
    label_nc = image_channels + cc
    self.compress = nn.Conv2d(ic, cc, 3, padding=1)
    self.fc = nn.Conv2d(ic, 2 * ic, 3, padding=1)
    self.G_middle_0 = SPADEResnetBlock(2 * ic, 2 * ic, norm_G, label_nc, nhidden=nhidden)
    self.G_middle_1 = SPADEResnetBlock(2 * ic, 2 * ic, norm_G, label_nc, nhidden=nhidden)
    self.G_middle_2 = SPADEResnetBlock(2 * ic, 2 * ic, norm_G, label_nc, nhidden=nhidden)
    self.up_0 = SPADEResnetBlock(2 * ic, ic, norm_G, label_nc, nhidden=nhidden)
    self.up_1 = SPADEResnetBlock(ic, oc, norm_G, label_nc, nhidden=nhidden)
    self.conv_img = nn.Conv2d(oc, image_channels, 3, padding=1)
    self.up = nn.Upsample(scale_factor=2)

  def forward(self, feature, image):
    cp = self.compress(feature)
    seg = torch.cat((F.interpolate(cp, size=image.shape[2:]), image), dim=1)  # nearest resize
    x = self.fc(feature)
    x = self.G_middle_0(x, seg)
    x = self.G_middle_1(x, seg)
    x = self.G_middle_2(x, seg)
    x = self.up_0(self.up(x), seg)
    x = self.up_1(self.up(x), seg)
    return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))


class SPADEDepthAwareGenerator(_DepthAwareEncoders):
  """DepthAwareGenerator encoders + SPADE decoder conditioned on the occlusion-masked deformed source."""

  def __init__(self, num_channels, num_kp, block_expansion, max_features, num_down_blocks, num_bottleneck_blocks,
               estimate_occlusion_map=False, dense_motion_params=None, estimate_jacobian=False,
               spade_hidden: int = 128, spade_out: int = 64):
    super().__init__()
    in_features = self._build_encoders(num_channels, num_kp, block_expansion, max_features, num_down_blocks,
                                       estimate_occlusion_map, dense_motion_params)
    self.decoder = SPADEGenerator(ic=in_features, oc=spade_out, nhidden=spade_hidden, image_channels=num_channels)

  def forward(self, source_image, kp_driving, kp_source, source_depth, driving_depth=None):
    out, output, occlusion_map, deformed = self._encode_and_warp(source_image, kp_driving, kp_source, source_depth)
    if occlusion_map is not None:
      if deformed.shape[2:] != occlusion_map.shape[2:]:
        occlusion_map = F.interpolate(occlusion_map, size=deformed.shape[2:], mode="bilinear", align_corners=False)
      deformed = deformed * occlusion_map
    output["prediction"] = self.decoder(out, deformed)
    return output

"""monodepth2 depth network as DaGAN uses it (depth/resnet_encoder.py, depth/depth_decoder.py), our own code.

``ResnetEncoder`` re-implements the torchvision ResNet layout (torchvision cannot be imported beside this
torch), so its state_dict keys are the official ``encoder.conv1.weight``, ``encoder.layer1.0.bn1.*``, …,
``encoder.fc.*`` (fc is kept, unused, so parameter counts and files match). ``DepthDecoder`` keeps the
official ``decoder.{i}`` ModuleList order: ten ConvBlocks (upconv 4,0 · 4,1 · … · 0,1) then one Conv3x3
per scale.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# torchvision presets: block type and blocks per stage.
RESNET_PRESETS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
                  101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}
EXPANSION = {"basic": 1, "bottleneck": 4}


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
  return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class BasicBlock(nn.Module):
  """torchvision BasicBlock: 3×3(stride)-BN-ReLU-3×3-BN + identity/downsample, ReLU."""
  expansion = 1

  def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
    super().__init__()
    self.conv1 = _conv(cin, planes, 3, stride)
    self.bn1 = nn.BatchNorm2d(planes)
    self.relu = nn.ReLU(inplace=True)
    self.conv2 = _conv(planes, planes, 3)
    self.bn2 = nn.BatchNorm2d(planes)
    self.downsample = downsample

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    identity = x if self.downsample is None else self.downsample(x)
    return self.relu(out + identity)


class Bottleneck(nn.Module):
  """torchvision Bottleneck (v1.5: stride on the 3×3): 1×1-3×3(stride)-1×1(×4), BN after each."""
  expansion = 4

  def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
    super().__init__()
    self.conv1 = _conv(cin, planes, 1)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = _conv(planes, planes, 3, stride)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = _conv(planes, planes * 4, 1)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = downsample

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    identity = x if self.downsample is None else self.downsample(x)
    return self.relu(out + identity)


class ResNet(nn.Module):
  """torchvision ResNet (conv1 7×7/2, bn1, relu, maxpool 3/2, layer1..4, avgpool, fc) with its init."""

  def __init__(self, block: str, layers: Sequence[int], widths: Sequence[int] = (64, 128, 256, 512),
               num_classes: int = 1000):
    super().__init__()
    cls = {"basic": BasicBlock, "bottleneck": Bottleneck}[block]
    self.inplanes = widths[0]
    self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False)
    self.bn1 = nn.BatchNorm2d(widths[0])
    self.relu = nn.ReLU(inplace=True)
    self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    for i, (n, w) in enumerate(zip(layers, widths)):
      setattr(self, f"layer{i + 1}", self._make_layer(cls, w, n, stride=1 if i == 0 else 2))
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    self.fc = nn.Linear(widths[3] * cls.expansion, num_classes)
    for m in self.modules():  # torchvision init
      if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
      elif isinstance(m, nn.BatchNorm2d):
        nn.init.constant_(m.weight, 1)
        nn.init.constant_(m.bias, 0)

  def _make_layer(self, cls, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or self.inplanes != planes * cls.expansion:
      downsample = nn.Sequential(_conv(self.inplanes, planes * cls.expansion, 1, stride),
                                 nn.BatchNorm2d(planes * cls.expansion))
    mods = [cls(self.inplanes, planes, stride, downsample)]
    self.inplanes = planes * cls.expansion
    mods += [cls(self.inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*mods)

  def forward(self, x: torch.Tensor) -> torch.Tensor:  # classifier path (unused by monodepth2)
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(torch.flatten(self.avgpool(x), 1))


class ResnetEncoder(nn.Module):
  """monodepth2 ResnetEncoder (single input image): five feature maps at 1/2 … 1/32."""

  def __init__(self, num_layers: int, pretrained: bool = False, block: str | None = None,
               layers: Sequence[int] | None = None, widths: Sequence[int] = (64, 128, 256, 512)):
    super().__init__()
    if pretrained:
      raise ValueError("ResnetEncoder(pretrained=True): ImageNet weights are never downloaded here; "
                       "load a state_dict instead")
    if num_layers not in RESNET_PRESETS and (block is None or layers is None):
      raise ValueError(f"ResnetEncoder: num_layers must be one of {sorted(RESNET_PRESETS)}, got {num_layers}")
    preset_block, preset_layers = RESNET_PRESETS.get(num_layers, (None, None))
    block = block or preset_block
    layers = tuple(layers or preset_layers)
    self.encoder = ResNet(block, layers, widths)
    e = EXPANSION[block]
    self.num_ch_enc = [widths[0], widths[0] * e, widths[1] * e, widths[2] * e, widths[3] * e]

  def forward(self, input_image: torch.Tensor) -> list[torch.Tensor]:
    x = (input_image - 0.45) / 0.225  # monodepth2 input normalisation
    enc = self.encoder
    feats = [enc.relu(enc.bn1(enc.conv1(x)))]
    feats.append(enc.layer1(enc.maxpool(feats[-1])))
    feats.append(enc.layer2(feats[-1]))
    feats.append(enc.layer3(feats[-1]))
    feats.append(enc.layer4(feats[-1]))
    return feats


class Conv3x3(nn.Module):
  """ReflectionPad2d(1) + Conv2d 3×3 (monodepth2 Conv3x3, use_refl=True)."""

  def __init__(self, cin: int, cout: int):
    super().__init__()
    self.pad = nn.ReflectionPad2d(1)
    self.conv = nn.Conv2d(int(cin), int(cout), 3)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.conv(self.pad(x))


class ConvBlock(nn.Module):
  """Conv3x3 + ELU (monodepth2 ConvBlock)."""

  def __init__(self, cin: int, cout: int):
    super().__init__()
    self.conv = Conv3x3(cin, cout)
    self.nonlin = nn.ELU(inplace=True)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.nonlin(self.conv(x))


class DepthDecoder(nn.Module):
  """monodepth2 DepthDecoder: returns {('disp', s): sigmoid disparity at 1/2^s}."""

  def __init__(self, num_ch_enc: Sequence[int], scales=range(4), num_output_channels: int = 1,
               use_skips: bool = True, num_ch_dec: Sequence[int] = (16, 32, 64, 128, 256)):
    super().__init__()
    self.scales = list(scales)
    self.use_skips = use_skips
    self.num_ch_enc = list(num_ch_enc)
    self.num_ch_dec = list(num_ch_dec)
    blocks, self.index = [], {}
    for i in range(4, -1, -1):
      cin = self.num_ch_enc[-1] if i == 4 else self.num_ch_dec[i + 1]
      self.index[("upconv", i, 0)] = len(blocks)
      blocks.append(ConvBlock(cin, self.num_ch_dec[i]))
      cin = self.num_ch_dec[i] + (self.num_ch_enc[i - 1] if use_skips and i > 0 else 0)
      self.index[("upconv", i, 1)] = len(blocks)
      blocks.append(ConvBlock(cin, self.num_ch_dec[i]))
    for s in self.scales:
      self.index[("dispconv", s)] = len(blocks)
      blocks.append(Conv3x3(self.num_ch_dec[s], num_output_channels))
    self.decoder = nn.ModuleList(blocks)
    self.sigmoid = nn.Sigmoid()

  def forward(self, input_features: Sequence[torch.Tensor]) -> dict:
    outputs = {}
    x = input_features[-1]
    for i in range(4, -1, -1):
      x = self.decoder[self.index[("upconv", i, 0)]](x)
      x = [F.interpolate(x, scale_factor=2, mode="nearest")]
      if self.use_skips and i > 0:
        x.append(input_features[i - 1])
      x = self.decoder[self.index[("upconv", i, 1)]](torch.cat(x, 1))
      if i in self.scales:
        outputs[("disp", i)] = self.sigmoid(self.decoder[self.index[("dispconv", i)]](x))
    return outputs

"""FOMM / DaGAN building blocks (modules/util.py of harlanhong/CVPR2022-DaGAN), our own PyTorch code.

Attribute names follow the official modules so that state_dict keys are identical. BatchNorm is plain
``nn.BatchNorm2d`` (the official code uses SyncBatchNorm, whose keys and eval semantics are the same).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(spatial_size, dtype=torch.float32, device=None) -> torch.Tensor:
  """(H, W, 2) grid of (x, y) in [-1, 1] with the (size - 1) convention of FOMM."""
  h, w = spatial_size
  xs = 2 * (torch.arange(w, dtype=dtype, device=device) / (w - 1)) - 1
  ys = 2 * (torch.arange(h, dtype=dtype, device=device) / (h - 1)) - 1
  xx = xs.view(1, w).expand(h, w)
  yy = ys.view(h, 1).expand(h, w)
  return torch.stack([xx, yy], dim=2)


def kp2gaussian(kp, spatial_size, kp_variance: float) -> torch.Tensor:
  """Gaussian blob per keypoint: value (..., K, 2) -> (..., K, H, W)."""
  mean = kp["value"] if isinstance(kp, dict) else kp
  grid = make_coordinate_grid(spatial_size, mean.dtype, mean.device)  # (H, W, 2)
  lead = mean.dim() - 1
  diff = grid.view((1,) * lead + grid.shape) - mean.view(mean.shape[:lead] + (1, 1, 2))
  return torch.exp(-0.5 * (diff ** 2).sum(-1) / kp_variance)


def gaussian_kernel(channels: int, scale: float) -> torch.Tensor:
  """Depthwise Gaussian weight of AntiAliasInterpolation2d: (channels, 1, k, k)."""
  sigma = (1 / scale - 1) / 2
  size = 2 * round(sigma * 4) + 1
  coords = torch.arange(size, dtype=torch.float32)
  g = torch.exp(-(coords - (size - 1) / 2) ** 2 / (2 * sigma ** 2))
  kernel = g.view(-1, 1) * g.view(1, -1)
  kernel = kernel / kernel.sum()
  return kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1)


class AntiAliasInterpolation2d(nn.Module):
  """Gaussian blur (zero pad) then strided subsampling; buffer ``weight``."""

  def __init__(self, channels: int, scale: float):
    super().__init__()
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    self.ka = size // 2
    self.kb = self.ka - 1 if size % 2 == 0 else self.ka
    self.register_buffer("weight", gaussian_kernel(channels, scale))
    self.groups = channels
    self.scale = scale
    self.int_inv_scale = int(1 / scale)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.scale == 1.0:
      return x
    out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
    out = F.conv2d(out, self.weight, groups=self.groups)
    return out[:, :, ::self.int_inv_scale, ::self.int_inv_scale]


class ResBlock2d(nn.Module):
  """Pre-activation residual block (BN -> ReLU -> conv) x 2, identity shortcut."""

  def __init__(self, in_features: int, kernel_size, padding):
    super().__init__()
    self.conv1 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
    self.conv2 = nn.Conv2d(in_features, in_features, kernel_size, padding=padding)
    self.norm1 = nn.BatchNorm2d(in_features, affine=True)
    self.norm2 = nn.BatchNorm2d(in_features, affine=True)

  def forward(self, x):
    h = self.conv1(F.relu(self.norm1(x)))
    h = self.conv2(F.relu(self.norm2(h)))
    return h + x


class UpBlock2d(nn.Module):
  """Nearest x2 -> conv -> BN -> ReLU."""

  def __init__(self, in_features, out_features, kernel_size=3, padding=1, groups=1):
    super().__init__()
    self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding, groups=groups)
    self.norm = nn.BatchNorm2d(out_features, affine=True)

  def forward(self, x):
    return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2))))


class DownBlock2d(nn.Module):
  """conv -> BN -> ReLU -> avg pool 2."""

  def __init__(self, in_features, out_features, kernel_size=3, padding=1, groups=1):
    super().__init__()
    self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding, groups=groups)
    self.norm = nn.BatchNorm2d(out_features, affine=True)
    self.pool = nn.AvgPool2d(kernel_size=(2, 2))

  def forward(self, x):
    return self.pool(F.relu(self.norm(self.conv(x))))


class SameBlock2d(nn.Module):
  """conv -> BN -> ReLU at constant resolution."""

  def __init__(self, in_features, out_features, groups=1, kernel_size=3, padding=1):
    super().__init__()
    self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding, groups=groups)
    self.norm = nn.BatchNorm2d(out_features, affine=True)

  def forward(self, x):
    return F.relu(self.norm(self.conv(x)))


class Encoder(nn.Module):
  """Hourglass encoder; returns the input and every block output."""

  def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
    super().__init__()
    blocks = []
    for i in range(num_blocks):
      cin = in_features if i == 0 else min(max_features, block_expansion * 2 ** i)
      blocks.append(DownBlock2d(cin, min(max_features, block_expansion * 2 ** (i + 1)), kernel_size=3, padding=1))
    self.down_blocks = nn.ModuleList(blocks)

  def forward(self, x):
    outs = [x]
    for block in self.down_blocks:
      outs.append(block(outs[-1]))
    return outs


class Decoder(nn.Module):
  """Hourglass decoder with skip concatenation."""

  def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
    super().__init__()
    blocks = []
    for i in reversed(range(num_blocks)):
      cin = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1))
      blocks.append(UpBlock2d(cin, min(max_features, block_expansion * 2 ** i), kernel_size=3, padding=1))
    self.up_blocks = nn.ModuleList(blocks)
    self.out_filters = block_expansion + in_features

  def forward(self, feats):
    feats = list(feats)
    out = feats.pop()
    for block in self.up_blocks:
      out = torch.cat([block(out), feats.pop()], dim=1)
    return out


class Hourglass(nn.Module):
  def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
    super().__init__()
    self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
    self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
    self.out_filters = self.decoder.out_filters

  def forward(self, x):
    return self.decoder(self.encoder(x))


class SPADE(nn.Module):
  """Spatially-adaptive normalisation: IN(x)·(1 + γ(seg)) + β(seg); seg resized nearest to x."""

  def __init__(self, norm_nc: int, label_nc: int, nhidden: int = 128):
    super().__init__()
    self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
    self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, kernel_size=3, padding=1), nn.ReLU())
    self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)
    self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)

  def forward(self, x, segmap):
    seg = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
    actv = self.mlp_shared(seg)
    return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
  """SPADE residual block with spectral-norm convs and a learned shortcut when fin != fout."""

  def __init__(self, fin: int, fout: int, norm_G: str, label_nc: int, use_se: bool = False, dilation: int = 1,
               nhidden: int = 128):
    super().__init__()
    self.learned_shortcut = fin != fout
    fmiddle = min(fin, fout)
    self.use_se = use_se
    self.conv_0 = nn.Conv2d(fin, fmiddle, kernel_size=3, padding=dilation, dilation=dilation)
    self.conv_1 = nn.Conv2d(fmiddle, fout, kernel_size=3, padding=dilation, dilation=dilation)
    if self.learned_shortcut:
      self.conv_s = nn.Conv2d(fin, fout, kernel_size=1, bias=False)
    if "spectral" in norm_G:
      self.conv_0 = nn.utils.spectral_norm(self.conv_0)
      self.conv_1 = nn.utils.spectral_norm(self.conv_1)
      if self.learned_shortcut:
        self.conv_s = nn.utils.spectral_norm(self.conv_s)
    self.norm_0 = SPADE(fin, label_nc, nhidden)
    self.norm_1 = SPADE(fmiddle, label_nc, nhidden)
    if self.learned_shortcut:
      self.norm_s = SPADE(fin, label_nc, nhidden)

  def forward(self, x, seg):
    x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
    dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
    dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
    return x_s + dx


def count_params(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())

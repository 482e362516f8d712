"""PyTorch FAN landmark network of StarGAN v2 (``core/wing.py``), our own code with the official state_dict.

The network is the AdaptiveWing hourglass (one stack, depth 4) that predicts 98 WFLW landmark heatmaps plus a boundary
map at 64x64 from a 256x256 image in [0, 1]. StarGAN v2 only uses it (frozen, BatchNorm in eval mode) to build the two
face masks of the ``w_hpf > 0`` generator: :meth:`FAN.get_heatmap` followed by :func:`preprocess`.

State-dict keys are exactly those of the official ``FAN`` (``conv1.conv.*``, ``bn1.*``, ``conv2..conv4.*``,
``m0.coordconv.conv.*``, ``m0.b{1,2,3}_{1..4}.*``, ``m0.b2_plus_1.*``, ``top_m_0.*``, ``conv_last0.*``, ``bn_end0.*``,
``l0.*``): 6,333,603 parameters and 15,031 BatchNorm buffer elements.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

_log = logging.getLogger(__name__)


def coord_channels(height: int, width: int, with_r: bool, dtype=torch.float32) -> torch.Tensor:
  """CoordConv channels (1, 2 or 3, H, W): row coordinate, column coordinate in [-1, 1] [, radius / max radius]."""
  rows = torch.arange(height, dtype=dtype)[:, None].expand(height, width)
  cols = torch.arange(width, dtype=dtype)[None, :].expand(height, width)
  rows = rows / (height - 1) * 2 - 1
  cols = cols / (width - 1) * 2 - 1
  chans = [rows, cols]
  if with_r:
    radius = torch.sqrt(rows * rows + cols * cols)
    chans.append(radius / radius.max())
  return torch.stack(chans, 0)[None]


class AddCoordsTh(nn.Module):
  """Appends CoordConv channels to the input (no parameters, nothing in the state_dict).

  The official class builds the coordinate grid for one fixed size at construction; here it is built for the input's
  size (identical values at the only sizes the official FAN accepts: 256 for ``conv1``, 64 in the hourglass). The
  ``with_boundary`` branch of the official class only fires when a heatmap is passed, which FAN never does
  (``tmp_out`` is None), so it is not implemented.
  """

  def __init__(self, with_r: bool = False):
    super().__init__()
    self.with_r = with_r

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    coords = coord_channels(x.shape[2], x.shape[3], self.with_r).to(device=x.device, dtype=x.dtype)
    return torch.cat([x, coords.expand(x.shape[0], -1, -1, -1)], dim=1)


class CoordConvTh(nn.Module):
  """CoordConv: concat coordinate channels, then ``self.conv``; also returns the last two concatenated channels."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
               with_r: bool = True):
    super().__init__()
    self.addcoords = AddCoordsTh(with_r)
    self.conv = nn.Conv2d(in_channels + 2 + int(with_r), out_channels, kernel_size, stride, padding)

  def forward(self, x: torch.Tensor):
    ret = self.addcoords(x)
    return self.conv(ret), ret[:, -2:]


class ConvBlock(nn.Module):
  """Pre-activation block: three BN-ReLU-conv3x3 stages (C/2, C/4, C/4 channels) concatenated, plus the shortcut."""

  def __init__(self, in_planes: int, out_planes: int):
    super().__init__()
    half, quarter = out_planes // 2, out_planes // 4
    self.bn1 = nn.BatchNorm2d(in_planes)
    self.conv1 = nn.Conv2d(in_planes, half, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(half)
    self.conv2 = nn.Conv2d(half, quarter, 3, 1, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(quarter)
    self.conv3 = nn.Conv2d(quarter, quarter, 3, 1, 1, bias=False)
    self.downsample = None
    if in_planes != out_planes:
      self.downsample = nn.Sequential(nn.BatchNorm2d(in_planes), nn.ReLU(), nn.Conv2d(in_planes, out_planes, 1,
                                                                                       bias=False))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    out1 = self.conv1(F.relu(self.bn1(x)))
    out2 = self.conv2(F.relu(self.bn2(out1)))
    out3 = self.conv3(F.relu(self.bn3(out2)))
    shortcut = x if self.downsample is None else self.downsample(x)
    return torch.cat([out1, out2, out3], dim=1) + shortcut


class HourGlass(nn.Module):
  """Recursive hourglass of ``depth`` levels on 256 channels, preceded by a 1x1 CoordConv (259 -> 256)."""

  def __init__(self, depth: int = 4, num_features: int = 256):
    super().__init__()
    self.depth = depth
    self.coordconv = CoordConvTh(num_features, num_features, kernel_size=1, with_r=True)
    self._build(depth, num_features)

  def _build(self, level: int, c: int) -> None:
    # Registration order matches the official recursion (b1_L, b2_L, [deeper], b3_L): state_dict order is identical.
    self.add_module(f"b1_{level}", ConvBlock(c, c))
    self.add_module(f"b2_{level}", ConvBlock(c, c))
    if level > 1:
      self._build(level - 1, c)
    else:
      self.add_module(f"b2_plus_{level}", ConvBlock(c, c))
    self.add_module(f"b3_{level}", ConvBlock(c, c))

  def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
    up = self._modules[f"b1_{level}"](x)
    low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))  # pools the level input, not ``up``
    if level > 1:
      low = self._level(level - 1, low)
    else:
      low = self._modules[f"b2_plus_{level}"](low)
    low = self._modules[f"b3_{level}"](low)
    return up + F.interpolate(low, scale_factor=2, mode="nearest")

  def forward(self, x: torch.Tensor):
    x, last_channels = self.coordconv(x)
    return self._level(self.depth, x), last_channels


class LoadReport(NamedTuple):
  ignored: list[str]  # keys in the file that FAN does not have (dropped, as the official loader does)
  missing: list[str]  # FAN keys absent from the file (they keep their current values, as the official loader does)


class FAN(nn.Module):
  """StarGAN v2's FAN(num_modules=1, end_relu=False, num_landmarks=98); input (B, 3, 256, 256) in [0, 1].

  ``forward`` returns ``([heatmaps (B, num_landmarks + 1, 64, 64)], [coord channels (B, 2, 64, 64)])`` like the
  official one (lists of one element: only one stack is ever built, whatever ``num_modules`` says).
  """

  def __init__(self, num_modules: int = 1, end_relu: bool = False, num_landmarks: int = 98,
               fname_pretrained: str | None = None):
    super().__init__()
    self.num_modules = num_modules
    self.end_relu = end_relu
    self.conv1 = CoordConvTh(3, 64, kernel_size=7, stride=2, padding=3, with_r=True)
    self.bn1 = nn.BatchNorm2d(64)
    self.conv2 = ConvBlock(64, 128)
    self.conv3 = ConvBlock(128, 128)
    self.conv4 = ConvBlock(128, 256)
    self.m0 = HourGlass(depth=4, num_features=256)
    self.top_m_0 = ConvBlock(256, 256)
    self.conv_last0 = nn.Conv2d(256, 256, 1)
    self.bn_end0 = nn.BatchNorm2d(256)
    self.l0 = nn.Conv2d(256, num_landmarks + 1, 1)
    if fname_pretrained is not None:
      load_wing_checkpoint(self, fname_pretrained)

  def forward(self, x: torch.Tensor):
    x, _ = self.conv1(x)
    x = F.relu(self.bn1(x))
    x = F.avg_pool2d(self.conv2(x), 2, stride=2)
    x = self.conv4(self.conv3(x))
    ll, boundary = self.m0(x)
    ll = self.top_m_0(ll)
    ll = F.relu(self.bn_end0(self.conv_last0(ll)))
    out = self.l0(ll)
    if self.end_relu:
      out = F.relu(out)
    return [out], [boundary]

  @torch.no_grad()
  def get_heatmap(self, x: torch.Tensor, b_preprocess: bool = True):
    """x (B, 3, H, W) in [-1, 1] -> masks ``(m, m2)`` each (B, 1, 256, 256), or raw (B, 98, 64, 64) heatmaps."""
    x = F.interpolate(x, size=256, mode="bilinear", align_corners=False)  # official: default align_corners
    outputs, _ = self(x * 0.5 + 0.5)
    heatmaps = outputs[-1][:, :-1]  # drop the boundary channel
    factor = x.shape[2] // heatmaps.shape[2]
    if b_preprocess:
      heatmaps = F.interpolate(heatmaps, scale_factor=factor, mode="bilinear", align_corners=True)
      heatmaps = preprocess(heatmaps)
    return heatmaps


# --------------------------------------------------------------------------------------------------------------------
# Heatmaps -> masks (official ``preprocess`` and its helpers).

# WFLW landmark ranges [start, end) used by the mask recipe.
CHIN = (8, 25)
EYEBROWS = (33, 51)
EYEBROWS_EDGES = (33, 46)
NOSE = (51, 55)
NOSTRILS = (55, 60)
EYES = (60, 76)
LIP_EDGES = (76, 82)
LIP_UPPER = (77, 82)
LIP_LOWER = (83, 88)
LIP_INNER = (88, 96)


def truncate(x: torch.Tensor, thres: float = 0.1) -> torch.Tensor:
  return torch.where(x < thres, torch.zeros_like(x), x)


def normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
  """Per (sample, channel) min-max normalisation over H, W."""
  n, c, h, w = x.shape
  flat = x.reshape(n * c, h * w)
  lo = flat.min(dim=1, keepdim=True).values
  hi = flat.max(dim=1, keepdim=True).values
  return ((flat - lo) / (hi - lo + eps)).reshape(n, c, h, w)


def shift(x: torch.Tensor, n: int) -> torch.Tensor:
  """Cyclic shift along H: output row i is input row (i + n) mod H (n > 0 moves content up)."""
  h = x.shape[2]
  index = (torch.arange(h) + n) % h
  return x[:, :, index.to(x.device), :]


def preprocess(x: torch.Tensor):
  """Heatmaps (N, 98, H, W) at 256 px -> (mask, mask without face line/mouth/eyebrows), each (N, 1, H, W)."""
  x = normalize(truncate(x)).clone()
  sw = x.shape[2] // 256
  # (range, shift, power) applied in this order, each to its own channel range
  for (start, end), n, power in ((CHIN, 0, 3), (EYEBROWS, -7 * sw, 2), (NOSTRILS, 8 * sw, 4),
                                 (LIP_UPPER, -8 * sw, 4), (LIP_LOWER, 8 * sw, 4), (LIP_INNER, -2 * sw, 3)):
    x[:, start:end] = shift(x[:, start:end], n) ** power

  zero_out = list(range(0, CHIN[0])) + list(range(CHIN[1], 33)) + [EYEBROWS_EDGES[0], EYEBROWS_EDGES[1],
                                                                    LIP_EDGES[0], LIP_EDGES[1]]
  x[:, zero_out] = 0

  start, end = NOSE
  x[:, start + 1:end] = shift(x[:, start + 1:end], 4 * sw)  # the official follows this with a no-op ``** 1``

  start, end = EYES
  eyes = x[:, start:end]
  x[:, start:end] = shift(eyes, -8) ** 3 + shift(eyes, -24)  # official: fixed -8 / -24, not scaled by sw

  x2 = x.clone()
  x2[:, CHIN[0]:CHIN[1]] = 0
  x2[:, LIP_EDGES[0]:LIP_INNER[1]] = 0
  x2[:, EYEBROWS[0]:EYEBROWS[1]] = 0

  x = x.sum(dim=1, keepdim=True)
  x2 = x2.sum(dim=1, keepdim=True)
  x = torch.where(torch.isnan(x), torch.zeros_like(x), x)
  # The official code zeroes x2 where the *already cleaned* x is NaN, i.e. never: x2 keeps any NaN.
  x2 = torch.where(torch.isnan(x), torch.zeros_like(x2), x2)
  return x.clamp(0, 1), x2.clamp(0, 1)


# --------------------------------------------------------------------------------------------------------------------
# Checkpoint loading.


def read_wing_state_dict(path: str) -> dict[str, torch.Tensor]:
  """Reads ``wing.ckpt`` (tensors nested under ``state_dict``; a bare state_dict is accepted too)."""
  ckpt = torch.load(path, map_location="cpu", weights_only=True)
  if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
    ckpt = ckpt["state_dict"]
  if not isinstance(ckpt, dict):
    raise ValueError(f"{path}: expected a dict (optionally nesting 'state_dict'), found {type(ckpt).__name__}")
  return ckpt


def load_wing_checkpoint(model: FAN, path: str) -> LoadReport:
  """Loads ``wing.ckpt`` the way the official ``FAN.load_pretrained_weights`` does: non-strictly.

  Keys the model lacks are ignored; model keys the file lacks keep their current values; shapes must agree. Both lists
  are logged and returned.
  """
  state = read_wing_state_dict(path)
  current = model.state_dict()
  ignored = sorted(k for k in state if k not in current)
  missing = sorted(k for k in current if k not in state)
  merged = dict(current)
  merged.update({k: v for k, v in state.items() if k in current})
  model.load_state_dict(merged)
  if ignored:
    _log.warning("%s: ignored %d keys FAN does not have: %s", path, len(ignored), ignored)
  if missing:
    _log.warning("%s: %d FAN keys absent from the file kept their current values: %s", path, len(missing), missing)
  return LoadReport(ignored, missing)


def count_parameters(model: nn.Module) -> tuple[int, int]:
  """(parameter elements, BatchNorm buffer elements incl. num_batches_tracked)."""
  params = sum(p.numel() for p in model.parameters())
  buffers = sum(b.numel() for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                for b in m.buffers())
  return params, buffers

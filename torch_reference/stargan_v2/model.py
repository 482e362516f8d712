"""PyTorch StarGAN v2 reference with the official state_dict layout (clovaai/stargan-v2 core/model.py).

Written for parity tests and DeepSpeed profiling; attribute names are chosen so that ``state_dict()`` keys equal the
official ones, and a released ``*_nets_ema.ckpt`` loads with ``load_state_dict(strict=True)``.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def _lrelu(x):
  return F.leaky_relu(x, 0.2)


class ResBlk(nn.Module):
  def __init__(self, dim_in: int, dim_out: int, normalize: bool = False, downsample: bool = False):
    super().__init__()
    self.normalize, self.downsample = normalize, downsample
    self.learned_sc = dim_in != dim_out
    self.conv1 = nn.Conv2d(dim_in, dim_in, kernel_size=3, padding=1)
    self.conv2 = nn.Conv2d(dim_in, dim_out, kernel_size=3, padding=1)
    if normalize:
      self.norm1 = nn.InstanceNorm2d(dim_in, affine=True)
      self.norm2 = nn.InstanceNorm2d(dim_in, affine=True)
    if self.learned_sc:
      self.conv1x1 = nn.Conv2d(dim_in, dim_out, kernel_size=1, bias=False)

  def forward(self, x):
    sc = self.conv1x1(x) if self.learned_sc else x
    if self.downsample:
      sc = F.avg_pool2d(sc, 2)
    h = self.norm1(x) if self.normalize else x
    h = self.conv1(_lrelu(h))
    if self.downsample:
      h = F.avg_pool2d(h, 2)
    if self.normalize:
      h = self.norm2(h)
    h = self.conv2(_lrelu(h))
    return (sc + h) / SQRT2


class AdaIN(nn.Module):
  def __init__(self, style_dim: int, num_features: int):
    super().__init__()
    self.norm = nn.InstanceNorm2d(num_features, affine=False)
    self.fc = nn.Linear(style_dim, 2 * num_features)

  def forward(self, x, s):
    gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
    return (1 + gamma) * self.norm(x) + beta


class AdainResBlk(nn.Module):
  def __init__(self, dim_in: int, dim_out: int, style_dim: int = 64, w_hpf: float = 0, upsample: bool = False):
    super().__init__()
    self.w_hpf, self.upsample = w_hpf, upsample
    self.learned_sc = dim_in != dim_out
    self.conv1 = nn.Conv2d(dim_in, dim_out, kernel_size=3, padding=1)
    self.conv2 = nn.Conv2d(dim_out, dim_out, kernel_size=3, padding=1)
    self.norm1 = AdaIN(style_dim, dim_in)
    self.norm2 = AdaIN(style_dim, dim_out)
    if self.learned_sc:
      self.conv1x1 = nn.Conv2d(dim_in, dim_out, kernel_size=1, bias=False)

  def forward(self, x, s):
    h = _lrelu(self.norm1(x, s))
    if self.upsample:
      h = F.interpolate(h, scale_factor=2, mode="nearest")
    h = self.conv2(_lrelu(self.norm2(self.conv1(h), s)))
    if self.w_hpf > 0:  # official: residual only, the shortcut weights are never used
      return h
    sc = F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x
    if self.learned_sc:
      sc = self.conv1x1(sc)
    return (h + sc) / SQRT2


class HighPass(nn.Module):
  def __init__(self, w_hpf: float):
    super().__init__()
    k = torch.full((3, 3), -1.0)
    k[1, 1] = 8.0
    self.register_buffer("filter", k / w_hpf)

  def forward(self, x):
    c = x.shape[1]
    return F.conv2d(x, self.filter.expand(c, 1, 3, 3), padding=1, groups=c)


def _log2(n: int) -> int:
  return int(math.log2(n))


class Generator(nn.Module):
  def __init__(self, img_size: int = 256, style_dim: int = 64, max_conv_dim: int = 512, w_hpf: float = 1,
               base_dim: int | None = None):
    super().__init__()
    dim = 2**14 // img_size if base_dim is None else base_dim  # base_dim: our knob for cheap configs
    self.img_size = img_size
    self.from_rgb = nn.Conv2d(3, dim, kernel_size=3, padding=1)
    self.encode, self.decode = nn.ModuleList(), nn.ModuleList()
    self.to_rgb = nn.Sequential(nn.InstanceNorm2d(dim, affine=True), nn.LeakyReLU(0.2), nn.Conv2d(dim, 3, 1))
    dim_out = dim
    for _ in range(_log2(img_size) - 4 + (1 if w_hpf > 0 else 0)):
      dim_out = min(2 * dim, max_conv_dim)
      self.encode.append(ResBlk(dim, dim_out, normalize=True, downsample=True))
      self.decode.insert(0, AdainResBlk(dim_out, dim, style_dim, w_hpf=w_hpf, upsample=True))
      dim = dim_out
    for _ in range(2):
      self.encode.append(ResBlk(dim_out, dim_out, normalize=True))
      self.decode.insert(0, AdainResBlk(dim_out, dim_out, style_dim, w_hpf=w_hpf))
    if w_hpf > 0:
      self.hpf = HighPass(w_hpf)

  def forward(self, x, s, masks=None):
    x = self.from_rgb(x)
    skips = {}
    for blk in self.encode:
      if masks is not None and x.shape[2] in (32, 64, 128):
        skips[x.shape[2]] = x
      x = blk(x)
    for blk in self.decode:
      x = blk(x, s)
      size = x.shape[2]
      if masks is not None and size in (32, 64, 128):
        m = F.interpolate(masks[0] if size == 32 else masks[1], size=size, mode="bilinear")
        x = x + self.hpf(m * skips[size])
    return self.to_rgb(x)


def _gather_domain(out, y):
  return out[torch.arange(y.shape[0], device=y.device), y]


class MappingNetwork(nn.Module):
  def __init__(self, latent_dim: int = 16, style_dim: int = 64, num_domains: int = 2):
    super().__init__()
    dims = [latent_dim, 512, 512, 512, 512]
    shared = []
    for a, b in zip(dims[:-1], dims[1:]):
      shared += [nn.Linear(a, b), nn.ReLU()]
    self.shared = nn.Sequential(*shared)
    self.unshared = nn.ModuleList(
        nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512),
                      nn.ReLU(), nn.Linear(512, style_dim)) for _ in range(num_domains))

  def forward(self, z, y):
    h = self.shared(z)
    return _gather_domain(torch.stack([head(h) for head in self.unshared], dim=1), y)


def _trunk(img_size: int, max_conv_dim: int, base_dim: int | None = None):
  dim = 2**14 // img_size if base_dim is None else base_dim
  layers = [nn.Conv2d(3, dim, 3, 1, 1)]
  dim_out = dim
  for _ in range(_log2(img_size) - 2):
    dim_out = min(2 * dim, max_conv_dim)
    layers.append(ResBlk(dim, dim_out, downsample=True))
    dim = dim_out
  layers += [nn.LeakyReLU(0.2), nn.Conv2d(dim_out, dim_out, 4, 1, 0), nn.LeakyReLU(0.2)]
  return layers, dim_out


class StyleEncoder(nn.Module):
  def __init__(self, img_size: int = 256, style_dim: int = 64, num_domains: int = 2, max_conv_dim: int = 512,
               base_dim: int | None = None):
    super().__init__()
    layers, dim_out = _trunk(img_size, max_conv_dim, base_dim)
    self.shared = nn.Sequential(*layers)
    self.unshared = nn.ModuleList(nn.Linear(dim_out, style_dim) for _ in range(num_domains))

  def forward(self, x, y):
    h = self.shared(x).flatten(1)
    return _gather_domain(torch.stack([head(h) for head in self.unshared], dim=1), y)


class Discriminator(nn.Module):
  def __init__(self, img_size: int = 256, num_domains: int = 2, max_conv_dim: int = 512,
               base_dim: int | None = None):
    super().__init__()
    layers, dim_out = _trunk(img_size, max_conv_dim, base_dim)
    self.main = nn.Sequential(*layers, nn.Conv2d(dim_out, num_domains, 1, 1, 0))

  def forward(self, x, y):
    return _gather_domain(self.main(x).flatten(1), y)


def he_init(module: nn.Module) -> None:
  """core/utils.he_init: kaiming_normal (fan_in, relu) weights, zero biases for Conv2d and Linear."""
  if isinstance(module, (nn.Conv2d, nn.Linear)):
    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    if module.bias is not None:
      nn.init.zeros_(module.bias)


def build_nets(img_size=256, num_domains=2, latent_dim=16, style_dim=64, max_conv_dim=512, w_hpf=1,
               he: bool = True, base_dim: int | None = None) -> dict[str, nn.Module]:
  """The four trainable networks (FAN lives in ``wing.py``)."""
  nets = {
      "generator": Generator(img_size, style_dim, max_conv_dim, w_hpf, base_dim),
      "mapping_network": MappingNetwork(latent_dim, style_dim, num_domains),
      "style_encoder": StyleEncoder(img_size, style_dim, num_domains, max_conv_dim, base_dim),
      "discriminator": Discriminator(img_size, num_domains, max_conv_dim, base_dim),
  }
  if he:
    for n in nets.values():
      n.apply(he_init)
  return nets


def build_nets_from_config(cfg, he: bool = True) -> dict[str, nn.Module]:
  """``build_nets`` from a config object with fields ``img_size``, ``num_domains``, ``latent_dim``, ``style_dim``,
  ``max_conv_dim``, ``w_hpf`` and optionally ``base_dim`` (duck-typed: only these are read)."""
  return build_nets(cfg.img_size, cfg.num_domains, cfg.latent_dim, cfg.style_dim, cfg.max_conv_dim, cfg.w_hpf,
                    he=he, base_dim=getattr(cfg, "base_dim", None))

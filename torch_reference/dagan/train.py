"""PyTorch DaGAN training iteration (our rendering of GeneratorFullModel / DiscriminatorFullModel and train.py)."""
from __future__ import annotations

import torch
from torch import nn

from torch_reference.dagan import model as M


class VGGFeatures(nn.Module):
  """torchvision-layout VGG trunk (``features.{i}``) returning the five ReLU taps used by the perceptual loss."""

  _CFG = {"vgg19": ([64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512], (1, 6, 11, 20, 29)),
          "vgg16": ([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512], (3, 8, 15, 22, 29))}

  def __init__(self, arch: str = "vgg19", width_divisor: int = 1):
    super().__init__()
    layers, cin = [], 3
    widths, self.taps = self._CFG[arch]
    for w in widths:
      if w == "M":
        layers.append(nn.MaxPool2d(2, 2))
      else:
        layers += [nn.Conv2d(cin, w // width_divisor, 3, padding=1), nn.ReLU(inplace=False)]
        cin = w // width_divisor
    self.features = nn.Sequential(*layers[:self.taps[-1] + 1])
    self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
    self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
    self.requires_grad_(False)  # official Vgg19(requires_grad=False): a frozen loss network

  def forward(self, x):
    x = (x - self.mean) / self.std
    outs = []
    for i, layer in enumerate(self.features):
      x = layer(x)
      if i in self.taps:
        outs.append(x)
    return outs


def make_optimizers(nets, lr=2e-4, betas=(0.5, 0.999)):
  return {name: torch.optim.Adam(nets[name].parameters(), lr=lr, betas=betas)
          for name in ("generator", "kp_detector", "discriminator")}


def _depth(nets, x):
  with torch.no_grad():
    return nets["depth_decoder"](nets["depth_encoder"](x))[("disp", 0)]


def generator_full(nets, vgg, batch, transform: M.Transform, hp, rgbd=True):
  """Returns (loss dict, generated, kp_driving)."""
  source, driving = batch["source"], batch["driving"]
  kp = lambda x, d: nets["kp_detector"](torch.cat([x, d], 1) if rgbd else x)  # noqa: E731
  d_src, d_drv = _depth(nets, source), _depth(nets, driving)
  kp_src, kp_drv = kp(source, d_src), kp(driving, d_drv)
  generated = nets["generator"](source, kp_driving=kp_drv, kp_source=kp_src, source_depth=d_src, driving_depth=d_drv)
  losses = {}
  pyramid = M.ImagePyramide(hp.scales, 3).to(source.dtype)
  pyr_real, pyr_gen = pyramid(driving), pyramid(generated["prediction"])
  if sum(hp.perceptual):
    total = 0
    for s in hp.scales:
      x_vgg, y_vgg = vgg(pyr_gen[f"prediction_{s}"]), vgg(pyr_real[f"prediction_{s}"])
      for i, w in enumerate(hp.perceptual):
        total = total + w * torch.abs(x_vgg[i] - y_vgg[i].detach()).mean()
    losses["perceptual"] = total
  scales = nets["discriminator"].scales
  kp_det = {k: v.detach() for k, v in kp_drv.items()}
  if hp.generator_gan:
    maps_gen = nets["discriminator"](pyr_gen, kp=kp_det)
    maps_real = nets["discriminator"](pyr_real, kp=kp_det)
    losses["gen_gan"] = M.generator_gan_loss(maps_gen, scales, hp.generator_gan)
    if sum(hp.feature_matching):
      losses["feature_matching"] = M.feature_matching_loss(maps_real, maps_gen, scales, hp.feature_matching)
  if hp.equivariance_value + hp.equivariance_jacobian:
    transformed = transform.transform_frame(driving)
    kp_t = kp(transformed, _depth(nets, transformed))
    if hp.equivariance_value:
      losses["equivariance_value"] = M.equivariance_value_loss(kp_drv, kp_t, transform, hp.equivariance_value)
    if hp.equivariance_jacobian:
      losses["equivariance_jacobian"] = M.equivariance_jacobian_loss(kp_drv, kp_t, transform, hp.equivariance_jacobian)
  if hp.kp_distance:
    k = kp_src["value"].shape[1]
    eye = torch.eye(k, dtype=source.dtype)

    def term(v):
      d = v.unsqueeze(2) - v.unsqueeze(1)
      return (-torch.sign(torch.sqrt((d * d).sum(-1) + 1e-8) + eye * 0.2 - 0.2) + 1).mean()
    losses["kp_distance"] = hp.kp_distance * (term(kp_src["value"]) + term(kp_drv["value"]))
  return losses, generated, kp_drv


def train_iteration(nets, vgg, optims, batch, transform, hp, rgbd=True):
  """train.py: backward of the summed G losses -> step G and KP; then the D loss -> step D. Returns floats."""
  for m in ("kp_detector", "generator", "discriminator"):
    nets[m].train()
  losses, generated, kp_drv = generator_full(nets, vgg, batch, transform, hp, rgbd)
  total = sum(v.mean() for v in losses.values())
  total.backward()
  optims["generator"].step()
  optims["generator"].zero_grad()
  optims["kp_detector"].step()
  optims["kp_detector"].zero_grad()
  out = {f"G/{k}": float(v.detach()) for k, v in losses.items()}
  out["G/total"] = float(total.detach())
  if hp.generator_gan:
    optims["discriminator"].zero_grad()
    pyramid = M.ImagePyramide(hp.scales, 3).to(batch["source"].dtype)
    kp_det = {k: v.detach() for k, v in kp_drv.items()}
    maps_gen = nets["discriminator"](pyramid(generated["prediction"].detach()), kp=kp_det)
    maps_real = nets["discriminator"](pyramid(batch["driving"]), kp=kp_det)
    d_loss = M.discriminator_gan_loss(maps_real, maps_gen, nets["discriminator"].scales, hp.discriminator_gan)
    d_loss.backward()
    optims["discriminator"].step()
    optims["discriminator"].zero_grad()
    out["D/disc_gan"] = float(d_loss.detach())
  return out

"""PyTorch reference of DaGAN's depth-network training (harlanhong/Face-Depth-Network), our own code.

The four networks keep the official model names and state_dict keys: ``encoder`` / ``depth`` (monodepth2
ResnetEncoder / DepthDecoder, from :mod:`torch_reference.dagan.depth`), ``pose_encoder`` (the same ResNet with a
6-channel conv1, as ``ResNetMultiImageInput``: keys ``encoder.*``) and ``pose`` (``PoseDecoder`` with the intrinsics
head: keys ``net.{0..5}.*`` = squeeze, pose 0, pose 1, pose 2, focal, offset). ``train_iteration`` is trainer.py's
``process_batch`` + one optimiser step, device-agnostic (no ``.cuda()``), with the random auto-masking tie break
optionally fed in. One deliberate difference, mirrored in JAX: the smoothness term's low-resolution colour images
are 2×2 averages of the full-resolution frame (the official loader resizes with PIL LANCZOS).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from torch_reference.dagan.depth import DepthDecoder, ResnetEncoder

FRAME_IDS = (0, -1, 1)
NETWORKS = ("encoder", "depth", "pose_encoder", "pose")


class PoseDecoder(nn.Module):
  """Face-Depth-Network ``PoseDecoder``: axis-angle, translation and intrinsics (focal, principal point)."""

  def __init__(self, num_ch_enc: Sequence[int], num_input_features: int, num_frames_to_predict_for: int | None = None,
               stride: int = 1, height: int = 256, width: int = 256):
    super().__init__()
    self.num_input_features = num_input_features
    self.num_frames_to_predict_for = num_frames_to_predict_for or num_input_features - 1
    self.height, self.width = height, width
    n = self.num_frames_to_predict_for
    # Official OrderedDict order -> ModuleList `net`: squeeze, pose 0, pose 1, pose 2, focal, offset.
    self.net = nn.ModuleList([
        nn.Conv2d(int(num_ch_enc[-1]), 256, 1),
        nn.Conv2d(num_input_features * 256, 256, 3, stride, 1),
        nn.Conv2d(256, 256, 3, stride, 1),
        nn.Conv2d(256, 6 * n, 1),
        nn.Conv2d(256, 2, kernel_size=3, stride=1, padding=1),
        nn.Conv2d(256, 2, kernel_size=3, stride=1, padding=1),
    ])
    self.relu = nn.ReLU()

  def forward(self, input_features):
    squeeze, pose0, pose1, pose2, focal_conv, offset_conv = self.net
    feat = torch.cat([self.relu(squeeze(f[-1])) for f in input_features], 1)
    feat = self.relu(pose1(self.relu(pose0(feat))))
    out = pose2(feat).mean(3).mean(2)
    out = 0.01 * out.view(-1, self.num_frames_to_predict_for, 1, 6)
    axisangle, translation = out[..., :3], out[..., 3:]
    scales = torch.tensor([self.width, self.height], dtype=feat.dtype, device=feat.device)
    focals = F.softplus(focal_conv(feat)).mean(3).mean(2) * scales
    offset = (F.softplus(offset_conv(feat)).mean(3).mean(2) + 0.5) * scales
    b = focals.shape[0]
    intrin = torch.diag_embed(focals)  # focals·eye(2), as the official expand/multiply
    intrin = torch.cat([intrin, offset.view(b, 2, 1)], -1)
    pad = torch.tensor([0.0, 0.0, 1.0], dtype=feat.dtype, device=feat.device).view(1, 1, 3).expand(b, 1, 3)
    return axisangle, translation, torch.cat([intrin, pad], 1)


def pose_encoder(num_layers: int = 18, block: str | None = None, layers: Sequence[int] | None = None,
                 widths: Sequence[int] = (64, 128, 256, 512), num_input_images: int = 2) -> ResnetEncoder:
  """monodepth2 ``ResnetEncoder(num_input_images=2)``: conv1 takes 3·n channels (ResNetMultiImageInput init)."""
  enc = ResnetEncoder(num_layers, pretrained=False, block=block, layers=layers, widths=widths)
  enc.encoder.conv1 = nn.Conv2d(3 * num_input_images, widths[0], 7, stride=2, padding=3, bias=False)
  nn.init.kaiming_normal_(enc.encoder.conv1.weight, mode="fan_out", nonlinearity="relu")
  return enc


def build_models(img_size: int = 256, num_layers: int = 18, block: str | None = None,
                 layers: Sequence[int] | None = None, widths: Sequence[int] = (64, 128, 256, 512),
                 num_ch_dec: Sequence[int] = (16, 32, 64, 128, 256), scales: Sequence[int] = (0, 1, 2, 3)
                 ) -> dict[str, nn.Module]:
  """trainer.py's ``self.models`` for pose_model_type='separate_resnet', weights_init='scratch'."""
  if img_size % 32 or img_size < 64:
    raise ValueError(f"build_models: img_size must be a multiple of 32 and >= 64 (monodepth2), got {img_size}")
  enc = ResnetEncoder(num_layers, pretrained=False, block=block, layers=layers, widths=widths)
  penc = pose_encoder(num_layers, block, layers, widths)
  return {"encoder": enc, "depth": DepthDecoder(enc.num_ch_enc, scales=scales, num_ch_dec=num_ch_dec),
          "pose_encoder": penc,
          "pose": PoseDecoder(penc.num_ch_enc, num_input_features=1, num_frames_to_predict_for=2, height=img_size,
                              width=img_size)}


def make_optimizer(models: Mapping[str, nn.Module], lr: float = 1e-4, betas=(0.9, 0.999), eps: float = 1e-8,
                   weight_decay: float = 0.0) -> torch.optim.Adam:
  """One Adam over encoder, depth, pose_encoder, pose parameters (official ``parameters_to_train`` order)."""
  params = [p for name in NETWORKS for p in models[name].parameters()]
  return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def step_lr_lambda(steps_per_epoch: int, step_size: int = 15, gamma: float = 0.1, at_epoch_start: bool = True):
  """Per-iteration factor equal to the official per-epoch StepLR (stepped at the start of each epoch)."""
  def factor(it: int) -> float:
    epoch = it // steps_per_epoch + (1 if at_epoch_start else 0)
    return gamma ** (epoch // step_size)
  return factor


# --- layers.py geometry and losses ---------------------------------------------------------------------------


def disp_to_depth(disp, min_depth: float, max_depth: float):
  min_disp, max_disp = 1 / max_depth, 1 / min_depth
  scaled = min_disp + (max_disp - min_disp) * disp
  return scaled, 1 / scaled


def rot_from_axisangle(vec):
  """(B, 1, 3) -> (B, 4, 4)."""
  angle = torch.norm(vec, 2, 2, True)
  axis = vec / (angle + 1e-7)
  ca, sa = torch.cos(angle), torch.sin(angle)
  c = 1 - ca
  x, y, z = (axis[..., i].unsqueeze(1) for i in range(3))
  xs, ys, zs = x * sa, y * sa, z * sa
  xc, yc, zc = x * c, y * c, z * c
  xyc, yzc, zxc = x * yc, y * zc, z * xc
  rot = torch.zeros((vec.shape[0], 4, 4), dtype=vec.dtype, device=vec.device)
  rot[:, 0, 0] = torch.squeeze(x * xc + ca)
  rot[:, 0, 1] = torch.squeeze(xyc - zs)
  rot[:, 0, 2] = torch.squeeze(zxc + ys)
  rot[:, 1, 0] = torch.squeeze(xyc + zs)
  rot[:, 1, 1] = torch.squeeze(y * yc + ca)
  rot[:, 1, 2] = torch.squeeze(yzc - xs)
  rot[:, 2, 0] = torch.squeeze(zxc - ys)
  rot[:, 2, 1] = torch.squeeze(yzc + xs)
  rot[:, 2, 2] = torch.squeeze(z * zc + ca)
  rot[:, 3, 3] = 1
  return rot


def get_translation_matrix(t):
  m = torch.zeros(t.shape[0], 4, 4, dtype=t.dtype, device=t.device)
  m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = m[:, 3, 3] = 1
  m[:, :3, 3, None] = t.contiguous().view(-1, 3, 1)
  return m


def transformation_from_parameters(axisangle, translation, invert: bool = False):
  r = rot_from_axisangle(axisangle)
  t = translation.clone()
  if invert:
    r = r.transpose(1, 2)
    t = t * -1
  tm = get_translation_matrix(t)
  return torch.matmul(r, tm) if invert else torch.matmul(tm, r)


def truncated_intrinsics(k, scale: int = 0, trunc: bool = True):
  """The official ``K[:, :2, :] = (K[:, :2, :] / 2**scale).trunc()`` (in place there; same values and gradient)."""
  top = k[:, :2, :] / (2 ** scale)
  return torch.cat([top.trunc() if trunc else top, k[:, 2:, :]], 1)


def backproject(depth, inv_k):
  """BackprojectDepth: depth (B, 1, H, W) -> (B, 4, H·W)."""
  b, _, h, w = depth.shape
  ys, xs = torch.meshgrid(torch.arange(h, dtype=depth.dtype), torch.arange(w, dtype=depth.dtype), indexing="ij")
  pix = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(h * w, dtype=depth.dtype)], 0).to(depth.device)
  cam = torch.matmul(inv_k[:, :3, :3], pix.unsqueeze(0).expand(b, 3, h * w))
  cam = depth.view(b, 1, -1) * cam
  return torch.cat([cam, torch.ones(b, 1, h * w, dtype=depth.dtype, device=depth.device)], 1)


def project(points, k, t, h: int, w: int, eps: float = 1e-7):
  """Project3D -> (B, H, W, 2) grid in [-1, 1] ((size − 1) convention of the official code)."""
  b = k.shape[0]
  k4 = torch.cat([k, torch.zeros(b, 3, 1, dtype=k.dtype, device=k.device)], -1)
  last_row = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=k.dtype, device=k.device).view(1, 1, 4).expand(b, 1, 4)
  k4 = torch.cat([k4, last_row], 1)
  p = torch.matmul(k4, t)[:, :3, :]
  cam = torch.matmul(p, points)
  pix = cam[:, :2, :] / (cam[:, 2, :].unsqueeze(1) + eps)
  pix = pix.view(b, 2, h, w).permute(0, 2, 3, 1)
  pix = pix / torch.tensor([w - 1, h - 1], dtype=pix.dtype, device=pix.device)
  return (pix - 0.5) * 2


class SSIM(nn.Module):
  """monodepth2 SSIM dissimilarity (3×3 average pools, reflection pad 1)."""

  def __init__(self):
    super().__init__()
    self.mu_x_pool, self.mu_y_pool = nn.AvgPool2d(3, 1), nn.AvgPool2d(3, 1)
    self.sig_x_pool, self.sig_y_pool, self.sig_xy_pool = nn.AvgPool2d(3, 1), nn.AvgPool2d(3, 1), nn.AvgPool2d(3, 1)
    self.refl = nn.ReflectionPad2d(1)
    self.C1, self.C2 = 0.01 ** 2, 0.03 ** 2

  def forward(self, x, y):
    x, y = self.refl(x), self.refl(y)
    mu_x, mu_y = self.mu_x_pool(x), self.mu_y_pool(y)
    sigma_x = self.sig_x_pool(x ** 2) - mu_x ** 2
    sigma_y = self.sig_y_pool(y ** 2) - mu_y ** 2
    sigma_xy = self.sig_xy_pool(x * y) - mu_x * mu_y
    n = (2 * mu_x * mu_y + self.C1) * (2 * sigma_xy + self.C2)
    d = (mu_x ** 2 + mu_y ** 2 + self.C1) * (sigma_x + sigma_y + self.C2)
    return torch.clamp((1 - n / d) / 2, 0, 1)


def get_smooth_loss(disp, img):
  gdx = torch.abs(disp[:, :, :, :-1] - disp[:, :, :, 1:])
  gdy = torch.abs(disp[:, :, :-1, :] - disp[:, :, 1:, :])
  gix = torch.mean(torch.abs(img[:, :, :, :-1] - img[:, :, :, 1:]), 1, keepdim=True)
  giy = torch.mean(torch.abs(img[:, :, :-1, :] - img[:, :, 1:, :]), 1, keepdim=True)
  return (gdx * torch.exp(-gix)).mean() + (gdy * torch.exp(-giy)).mean()


_SSIM = SSIM()


def compute_reprojection_loss(pred, target, ssim_weight: float = 0.85):
  l1 = torch.abs(target - pred).mean(1, True)
  if ssim_weight == 0:
    return l1
  return ssim_weight * _SSIM(pred, target).mean(1, True) + (1 - ssim_weight) * l1


# --- one iteration -----------------------------------------------------------------------------------------------


def to_torch_batch(batch: Mapping[str, Any], device: Any = "cpu", dtype=torch.float32) -> dict:
  """depth_pipeline batch (``frames``/``frames_aug`` (B, 3, H, W, 3) numpy, t−1, t, t+1) -> the official
  ``inputs`` keys ("color", f, 0) / ("color_aug", f, 0) as NCHW tensors."""
  out = {}
  for key, name in (("frames", "color"), ("frames_aug", "color_aug")):
    x = torch.as_tensor(batch[key]).to(device=device, dtype=dtype)  # (B, 3, H, W, 3)
    for i, f in enumerate((-1, 0, 1)):
      out[(name, f, 0)] = x[:, i].permute(0, 3, 1, 2).contiguous()
  return out


def process_batch(models: Mapping[str, nn.Module], inputs: Mapping, noise: Sequence[torch.Tensor] | None = None, *,
                  scales: Sequence[int] = (0, 1, 2, 3), min_depth: float = 0.1, max_depth: float = 100.0,
                  disparity_smoothness: float = 1e-3, ssim_weight: float = 0.85, automasking: bool = True,
                  avg_reprojection: bool = False, trunc_intrinsics: bool = True):
  """trainer.py ``process_batch`` (separate_resnet pose, pairs, PoseDecoder) -> (outputs, losses).

  ``noise``: per scale a (B, 2, H, W) standard normal tensor for the auto-masking tie break (official:
  ``torch.randn`` drawn here); None draws it.
  """
  color = {f: inputs[("color", f, 0)] for f in (-1, 0, 1)}
  aug = {f: inputs[("color_aug", f, 0)] for f in (-1, 0, 1)}
  b, _, h, w = color[0].shape
  outputs = models["depth"](models["encoder"](aug[0]))
  for f in FRAME_IDS[1:]:
    pair = [aug[f], aug[0]] if f < 0 else [aug[0], aug[f]]
    axisangle, translation, intrinsics = models["pose"]([models["pose_encoder"](torch.cat(pair, 1))])
    outputs[("axisangle", 0, f)], outputs[("translation", 0, f)] = axisangle, translation
    outputs["K"] = intrinsics  # overwritten per pair: the (0, +1) pair's K is used for both warps
    outputs[("cam_T_cam", 0, f)] = transformation_from_parameters(axisangle[:, 0], translation[:, 0], invert=f < 0)

  # generate_images_pred (source_scale 0 for every scale)
  k = truncated_intrinsics(outputs["K"], 0, trunc_intrinsics)
  inv_k = torch.linalg.inv(k)
  for s in scales:
    disp = F.interpolate(outputs[("disp", s)], [h, w], mode="bilinear", align_corners=False)
    _, depth = disp_to_depth(disp, min_depth, max_depth)
    outputs[("depth", 0, s)] = depth
    for f in FRAME_IDS[1:]:
      grid = project(backproject(depth, inv_k), k, outputs[("cam_T_cam", 0, f)], h, w)
      outputs[("sample", f, s)] = grid
      outputs[("color", f, s)] = F.grid_sample(color[f], grid, padding_mode="border", align_corners=False)

  # compute_losses
  losses, total = {}, 0
  target = color[0]
  scaled = [target]
  for _ in range(1, len(scales)):
    scaled.append(F.avg_pool2d(scaled[-1], 2))  # stands in for the loader's LANCZOS pyramid (see module doc)
  for i, s in enumerate(scales):
    reproj = torch.cat([compute_reprojection_loss(outputs[("color", f, s)], target, ssim_weight)
                        for f in FRAME_IDS[1:]], 1)
    if avg_reprojection:
      reproj = reproj.mean(1, keepdim=True)
    if automasking:
      identity = torch.cat([compute_reprojection_loss(color[f], target, ssim_weight) for f in FRAME_IDS[1:]], 1)
      if avg_reprojection:
        identity = identity.mean(1, keepdim=True)
      eps_noise = noise[i] if noise is not None else torch.randn(identity.shape, dtype=identity.dtype,
                                                                 device=identity.device)
      identity = identity + eps_noise.to(identity.dtype) * 0.00001
      combined = torch.cat((identity, reproj), dim=1)
    else:
      combined = reproj
    if combined.shape[1] == 1:
      to_optimise = combined
    else:
      to_optimise, idxs = torch.min(combined, dim=1)
      if automasking:
        outputs[f"identity_selection/{s}"] = (idxs > identity.shape[1] - 1).float()
    rep = to_optimise.mean()
    disp = outputs[("disp", s)]
    norm_disp = disp / (disp.mean(2, True).mean(3, True) + 1e-7)
    smooth = get_smooth_loss(norm_disp, scaled[i])
    loss = rep + disparity_smoothness * smooth / (2 ** s)
    total = total + loss
    losses[f"loss/{s}"] = loss
    losses[f"reprojection/{s}"] = rep
    losses[f"smoothness/{s}"] = smooth
  losses["loss"] = total / len(scales)
  return outputs, losses


def train_iteration(models: Mapping[str, nn.Module], optimizers: Mapping[str, Any] | Sequence[Any], inputs: Mapping,
                    noise: Sequence[torch.Tensor] | None = None, **loss_kwargs) -> dict[str, float]:
  """One official iteration: forward in train mode, zero_grad, backward of ``losses['loss']``, optimiser step(s).

  ``optimizers``: anything with ``zero_grad()`` / ``step()`` — the official single Adam (as a one-item list), one
  per network, or DeepSpeed engines. Returns the losses as floats.
  """
  for m in models.values():
    m.train()
  opts = list(optimizers.values()) if isinstance(optimizers, Mapping) else list(optimizers)
  _, losses = process_batch(models, inputs, noise, **loss_kwargs)
  for o in opts:
    o.zero_grad()
  losses["loss"].backward()
  for o in opts:
    o.step()
  return {k: float(v.detach()) for k, v in losses.items()}


def count_parameters(models: Mapping[str, nn.Module]) -> dict[str, int]:
  return {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}


__all__ = ["PoseDecoder", "pose_encoder", "build_models", "make_optimizer", "step_lr_lambda", "process_batch",
           "train_iteration", "to_torch_batch", "SSIM", "transformation_from_parameters", "backproject", "project",
           "disp_to_depth", "get_smooth_loss", "count_parameters"]

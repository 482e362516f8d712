"""Shared set-up of the DaGAN parity tests: tiny config, randomised torch reference, converted Flax variables."""
from __future__ import annotations

import jax.numpy as jnp

from jaxreenact.models import dagan
from jaxreenact.testing import nchw_to_nhwc, randomize_torch_module

B, S = 2, 64  # batch, image size


def tiny_config(**overrides) -> dagan.Config:
  return dagan.Config.tiny(depth_widths=(8, 16, 16, 32), **overrides)


def converge_spectral_norm(module, iters: int = 30) -> None:
  """Run torch's power iteration to convergence on every spectral-norm conv (random u, v make sigma tiny and
  blow activations up, which would only test float32 amplification)."""
  import torch
  import torch.nn.functional as F

  with torch.no_grad():
    for m in module.modules():
      if hasattr(m, "weight_orig"):
        w = m.weight_orig.reshape(m.weight_orig.shape[0], -1)
        u = m.weight_u
        for _ in range(iters):
          v = F.normalize(w.t() @ u, dim=0)
          u = F.normalize(w @ v, dim=0)
        m.weight_u.copy_(u)
        m.weight_v.copy_(v)


def torch_networks(cfg: dagan.Config, seed: int = 0, depth: bool = True):
  """The reference networks (eval mode), every parameter and BN statistic randomised."""
  from torch_reference.dagan.factory import build_torch

  nets = build_torch(cfg, depth=depth)
  for i, m in enumerate(nets.values()):
    randomize_torch_module(m, seed + i)
    converge_spectral_norm(m)
  return nets


def state_dicts(nets) -> dict:
  return {name: m.state_dict() for name, m in nets.items()}


def random_kp(seed: int, batch: int, num_kp: int):
  """Synthetic keypoints (torch dict, jnp dict) with well-conditioned Jacobians."""
  import torch

  g = torch.Generator().manual_seed(seed)
  value = torch.rand(batch, num_kp, 2, generator=g) * 1.4 - 0.7
  jac = torch.eye(2) + 0.2 * torch.randn(batch, num_kp, 2, 2, generator=g)
  t = {"value": value, "jacobian": jac}
  return t, {k: jnp.asarray(v.numpy()) for k, v in t.items()}


def nhwc(x) -> jnp.ndarray:
  return jnp.asarray(nchw_to_nhwc(x))

"""Helpers shared by unit and parity tests (NCHW <-> NHWC at the torch boundary)."""
from __future__ import annotations

import numpy as np


def nchw_to_nhwc(x) -> np.ndarray:
  x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
  return np.transpose(x, (0, 2, 3, 1))


def nhwc_to_nchw(x) -> np.ndarray:
  return np.ascontiguousarray(np.transpose(np.asarray(x), (0, 3, 1, 2)))


def to_numpy(x) -> np.ndarray:
  return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def randomize_torch_module(module, seed: int = 0, scale: float = 0.5) -> None:
  """Fill every parameter and float buffer with non-trivial values (biases, norm affines included)."""
  import torch

  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in list(module.named_parameters()) + list(module.named_buffers()):
      if not p.dtype.is_floating_point:
        continue
      if name.endswith("running_var"):
        p.copy_(torch.rand(p.shape, generator=g) + 0.5)
      elif name.endswith(("norm1.weight", "norm2.weight", "norm.weight")) or ".bn" in name:
        p.copy_(1.0 + scale * torch.randn(p.shape, generator=g))
      elif name.endswith("filter") or name.endswith("down.weight"):
        continue  # fixed buffers keep their defined values
      else:
        fan_in = max(1, int(np.prod(p.shape[1:]))) if p.ndim > 1 else 1
        std = scale / np.sqrt(fan_in) if p.ndim > 1 else scale * 0.2
        p.copy_(std * torch.randn(p.shape, generator=g))

"""Builds the PyTorch reference networks from a config object with fields ``num_kp``, ``num_channels``,
``estimate_jacobian``, ``rgbd``, ``generator`` (class name), ``kp_detector_params``, ``generator_params``,
``discriminator_params`` (dataclasses or mappings), ``depth_layers`` and ``depth_widths`` (duck-typed: only these
are read).

Mirrors run.py: generator and discriminator get ``num_channels`` (RGB); the keypoint detector gets
``num_channels + 1`` under ``--rgbd``; ``--kp_num`` overrides num_kp everywhere.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from torch_reference.dagan.discriminator import MultiScaleDiscriminator
from torch_reference.dagan.generator import DepthAwareGenerator, SPADEDepthAwareGenerator
from torch_reference.dagan.keypoint_detector import KPDetector


def _asdict(x: Any) -> dict[str, Any]:
  return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else dict(x)


def build_torch(cfg: Any, depth: bool = True) -> dict[str, nn.Module]:
  """{'kp_detector', 'generator', 'discriminator'[, 'depth_encoder', 'depth_decoder']} in eval mode."""
  common = dict(num_kp=cfg.num_kp, num_channels=cfg.num_channels, estimate_jacobian=cfg.estimate_jacobian)
  kpp = _asdict(cfg.kp_detector_params)
  kp_detector = KPDetector(**kpp, **dict(common, num_channels=cfg.num_channels + 1 if cfg.rgbd else cfg.num_channels))
  gp = _asdict(cfg.generator_params)
  spade = {k: gp.pop(k) for k in ("spade_compress", "spade_out", "spade_hidden")}
  if cfg.generator == "SPADEDepthAwareGenerator":
    if spade["spade_compress"] != 4:
      raise ValueError("torch reference SPADEGenerator: compress width other than 4 is not supported")
    generator = SPADEDepthAwareGenerator(**gp, **common, spade_hidden=spade["spade_hidden"],
                                         spade_out=spade["spade_out"])
  else:
    generator = DepthAwareGenerator(**gp, **common)
  dp = _asdict(cfg.discriminator_params)
  dp["scales"] = list(dp["scales"])
  discriminator = MultiScaleDiscriminator(**dp, **common)
  out = {"kp_detector": kp_detector, "generator": generator, "discriminator": discriminator}
  if depth:
    from torch_reference.dagan.depth import DepthDecoder, ResnetEncoder
    widths = tuple(cfg.depth_widths) if cfg.depth_widths else (64, 128, 256, 512)
    enc = ResnetEncoder(cfg.depth_layers, False, widths=widths)
    out["depth_encoder"] = enc
    out["depth_decoder"] = DepthDecoder(num_ch_enc=enc.num_ch_enc, scales=range(4))
  for m in out.values():
    m.eval()
  return out

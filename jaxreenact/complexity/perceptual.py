"""VGG19 feature trunk of FOMM/DaGAN's perceptual loss (modules/model.py ``Vgg19``), for FLOP accounting only.

torchvision ``vgg19().features[:30]`` (conv1_1 … relu5_1) after ImageNet normalisation, returning the five ReLU
outputs relu1_1, relu2_1, relu3_1, relu4_1, relu5_1. Weights are never loaded here (no package ships VGG19 ImageNet
weights, REFERENCE.md §5): the complexity report needs shapes only. Flax names mirror the torchvision indices
(``features_0`` …) so that a converter could map ``features.<i>.weight`` later.

If ``jaxreenact/models/vgg.py`` appears, the report should use it instead (one definition per network).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.layers.conv import Conv2d

# torchvision vgg19 'E' configuration up to relu5_1: (features index of the conv, output channels); 'M' = max pool.
VGG19_TO_RELU5_1: tuple[Any, ...] = ((0, 64), "out", (2, 64), "M", (5, 128), "out", (7, 128), "M", (10, 256), "out",
                                     (12, 256), (14, 256), (16, 256), "M", (19, 512), "out", (21, 512), (23, 512),
                                     (25, 512), "M", (28, 512), "out")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _max_pool(x: jax.Array) -> jax.Array:
  # torch nn.MaxPool2d(kernel_size=2, stride=2)
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


class Vgg19Features(nn.Module):
  """x (B, H, W, 3) in [0, 1] -> [relu1_1, relu2_1, relu3_1, relu4_1, relu5_1] (NHWC).

  ``width_divisor`` > 1 thins every layer (tiny test configs only; the perceptual loss uses 1).
  """
  width_divisor: int = 1
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    mean = jnp.asarray(IMAGENET_MEAN, x.dtype)
    std = jnp.asarray(IMAGENET_STD, x.dtype)
    h = (x - mean) / std  # the official module's mean/std parameters (frozen)
    outs = []
    for item in VGG19_TO_RELU5_1:
      if item == "M":
        h = _max_pool(h)
      elif item == "out":
        outs.append(h)
      else:
        idx, feats = item
        h = nn.relu(Conv2d(feats // self.width_divisor, 3, padding=1, name=f"features_{idx}", dtype=self.dtype,
                           param_dtype=self.param_dtype)(h))
    return outs


def vgg19_torch(width_divisor: int = 1):
  """The same trunk in PyTorch (torchvision layer indices, torch default init, no weights downloaded)."""
  import torch
  from torch import nn as tnn

  class Vgg19(tnn.Module):

    def __init__(self):
      super().__init__()
      layers: list[tnn.Module] = []
      self.taps: list[int] = []
      cin = 3
      for item in VGG19_TO_RELU5_1:
        if item == "M":
          layers.append(tnn.MaxPool2d(2, 2))
        elif item == "out":
          self.taps.append(len(layers) - 1)
        else:
          idx, feats = item
          assert idx == len(layers), (idx, len(layers))
          layers += [tnn.Conv2d(cin, feats // width_divisor, 3, padding=1), tnn.ReLU(inplace=True)]
          cin = feats // width_divisor
      self.features = tnn.Sequential(*layers)
      self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
      self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
      self.requires_grad_(False)  # official Vgg19(requires_grad=False)

    def forward(self, x):
      h = (x - self.mean) / self.std
      outs = []
      for i, layer in enumerate(self.features):
        h = layer(h)
        if i in self.taps:
          outs.append(h)
      return outs

  return Vgg19()


def pyramid_vgg(vgg_apply, image_pyramid_fn, x: jax.Array, scales: Sequence[float]) -> list[list[jax.Array]]:
  """VGG features of every level of the image pyramid (the perceptual loss's forward for one image)."""
  pyr = image_pyramid_fn(x, scales)
  return [vgg_apply(pyr[f"prediction_{s}"]) for s in scales]

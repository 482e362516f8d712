"""Images as a person sees them: float model tensors to uint8 pixels, one rounding rule everywhere."""
from __future__ import annotations

import numpy as np


def to_uint8(images, value_range: tuple[float, float] | None = (-1.0, 1.0)) -> np.ndarray:
  """(…, H, W, C) images -> uint8, rounding like torchvision.utils.save_image (x·255 + 0.5, clamped).

  Args:
    images: uint8 images (returned unchanged) or float images spanning ``value_range``.
    value_range: (low, high) of float images, mapped to (0, 255): (-1, 1) for StarGAN v2 tensors (the default),
      (0, 1) for DaGAN frames and depth maps. None accepts uint8 images only.

  Returns:
    uint8 array of the same shape.
  """
  x = np.asarray(images)
  if x.dtype == np.uint8:
    return x
  if value_range is None:
    raise ValueError("float images need value_range, e.g. (-1, 1) or (0, 1)")
  lo, hi = value_range
  x = (x.astype(np.float32) - lo) / (hi - lo)  # float32 like the torch tensors save_image receives
  return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

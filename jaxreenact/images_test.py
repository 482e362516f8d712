"""The one uint8 conversion: save_image rounding, both value ranges, uint8 passthrough, the missing-range error."""
import numpy as np
import pytest

from jaxreenact.images import to_uint8


def test_rounds_like_save_image():
  x = np.array([[[[-1.0, 0.0, 1.0]]]], np.float32)
  np.testing.assert_array_equal(to_uint8(x, (-1, 1)), [[[[0, 128, 255]]]])
  np.testing.assert_array_equal(to_uint8(x), [[[[0, 128, 255]]]])  # (-1, 1) is the default
  with pytest.raises(ValueError, match="value_range"):
    to_uint8(x, None)


def test_unit_range_and_clamping():
  x = np.array([-0.2, 0.0, 0.5, 1.0, 1.3, 0.25], np.float32)
  # x·255 + 0.5 truncated: 0.25 -> 64.25 -> 64; out-of-range values clamp to 0 and 255
  np.testing.assert_array_equal(to_uint8(x, (0.0, 1.0)), [0, 0, 128, 255, 255, 64])


def test_every_former_variant_agrees_on_float32_images():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1.3, 1.3, (4, 8, 8, 3)).astype(np.float32)
  # evaluation/fid.py: normalise, then clamp x·255 + 0.5 to [0, 255]
  fid_style = np.clip((x + 1) / 2 * 255.0 + 0.5, 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(to_uint8(x, (-1, 1)), fid_style)
  # inference/reenact.py (frames in [0, 1]): clamp to [0, 1], then x·255 + 0.5
  u = (x + 1) / 2
  np.testing.assert_array_equal(to_uint8(u, (0.0, 1.0)), (np.clip(u, 0, 1) * 255 + 0.5).astype(np.uint8))


def test_uint8_passes_through_unchanged():
  u = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
  np.testing.assert_array_equal(to_uint8(u, None), u)
  assert to_uint8(u, None).dtype == np.uint8
  np.testing.assert_array_equal(to_uint8(u, (0.0, 1.0)), u)

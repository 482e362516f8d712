"""Augmentation statistics and pixel semantics against the official loaders' definitions."""
import math

import numpy as np
import pytest
from PIL import Image

from jaxreenact.data import augment


def _rate(flags):
  return float(np.mean(flags))


def test_random_resized_crop_box_ranges():
  rng = np.random.default_rng(0)
  h, w = 200, 210
  areas, ratios = [], []
  for _ in range(3000):
    top, left, ch, cw = augment.random_resized_crop_box(rng, h, w)
    assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w
    areas.append(ch * cw / (h * w))
    ratios.append(cw / ch)
  areas, ratios = np.array(areas), np.array(ratios)
  # Rounding w and h to integers moves area/ratio by at most ~1 px worth.
  assert areas.min() >= 0.8 - 0.01 and areas.max() <= 1.0
  assert ratios.min() >= 0.9 - 0.01 and ratios.max() <= 1.1 + 0.01
  # Only draws that fit are kept, so large areas are under-represented vs uniform: mean stays inside the range.
  assert 0.82 < areas.mean() < 0.9
  # log-uniform ratio → mean log ratio ≈ 0 (for draws that fit).
  assert abs(np.log(ratios).mean()) < 0.02


def test_random_resized_crop_fallback_is_central():
  rng = np.random.default_rng(0)
  top, left, ch, cw = augment.random_resized_crop_box(rng, 10, 1000)  # no 0.9–1.1 crop of ≥80% area fits
  assert (ch, cw) == (10, 11) and top == 0 and left == (1000 - 11) // 2


def test_stargan_v2_crop_and_flip_rates():
  rng = np.random.default_rng(1)
  img = Image.fromarray(np.random.default_rng(2).integers(0, 255, (40, 48, 3), dtype=np.uint8))
  crops, flips = [], []
  n = 3000
  for _ in range(n):
    rec = {}
    out = augment.stargan_v2_augment(img, rng, 32, record=rec)
    crops.append(rec["crop"] is not None)
    flips.append(rec["flip"])
  assert out.shape == (32, 32, 3) and out.dtype == np.float32
  assert out.min() >= -1.0 and out.max() <= 1.0
  tol = 4 * math.sqrt(0.25 / n)  # 4 sigma of a Bernoulli(0.5) mean
  assert abs(_rate(crops) - 0.5) < tol
  assert abs(_rate(flips) - 0.5) < tol
  both = np.logical_and(crops, flips)
  assert abs(_rate(both) - 0.25) < tol  # independent draws


def test_stargan_v2_flip_and_normalization_pixels():
  arr = np.random.default_rng(3).integers(0, 255, (16, 16, 3), dtype=np.uint8)
  img = Image.fromarray(arr)
  expected = arr.astype(np.float32) / 127.5 - 1.0
  seen = set()
  rng = np.random.default_rng(4)
  while len(seen) < 2:
    rec = {}
    out = augment.stargan_v2_augment(img, rng, 16, record=rec)
    if rec["crop"] is None:
      ref = expected[:, ::-1] if rec["flip"] else expected
      np.testing.assert_allclose(out, ref, atol=1e-6)
      seen.add(rec["flip"])
  np.testing.assert_allclose(augment.stargan_v2_eval(img, 16), expected, atol=1e-6)


def test_fomm_clip_flip_rates_and_shared_jitter():
  rng = np.random.default_rng(5)
  arr = np.random.default_rng(6).integers(0, 255, (12, 12, 3), dtype=np.uint8)
  a, b = Image.fromarray(arr), Image.fromarray(arr[::-1].copy())
  tflip, hflip, orders = [], [], set()
  n = 2000
  for i in range(n):
    rec = {}
    out = augment.fomm_augment_clip([a, b], rng, record=rec)
    tflip.append(rec["time_flip"])
    hflip.append(rec["hflip"])
    assert not (rec["time_flip"] and rec["hflip"])  # horizontal flip only when not time-flipped
    names = [name for name, _ in rec["jitter"]]
    orders.add(tuple(names))
    for name, f in rec["jitter"]:
      lo, hi = (-0.1, 0.1) if name == "hue" else (0.9, 1.1)
      assert lo <= f <= hi
    if i < 50:  # the same draw is applied to both frames
      first, second = (b, a) if rec["time_flip"] else (a, b)
      if rec["hflip"]:
        first, second = first.transpose(Image.FLIP_LEFT_RIGHT), second.transpose(Image.FLIP_LEFT_RIGHT)
      np.testing.assert_array_equal(np.asarray(out[0]), np.asarray(augment.apply_color_jitter(first, rec["jitter"])))
      np.testing.assert_array_equal(np.asarray(out[1]), np.asarray(augment.apply_color_jitter(second, rec["jitter"])))
  tol = 4 * math.sqrt(0.25 / n)
  assert abs(_rate(tflip) - 0.5) < tol
  assert abs(_rate(hflip) - 0.25) < tol  # 0.5 · 0.5
  assert len(orders) == 24  # all orders of the four ops occur


def test_color_jitter_ops_match_torchvision_pil_semantics():
  arr = np.zeros((4, 4, 3), np.uint8)
  arr[..., 0] = 200
  arr[..., 1] = 100
  arr[..., 2] = 50
  img = Image.fromarray(arr)
  bright = np.asarray(augment.apply_color_jitter(img, [("brightness", 0.5)]))
  np.testing.assert_array_equal(bright[0, 0], [100, 50, 25])  # blend with black
  gray = np.asarray(augment.apply_color_jitter(img, [("saturation", 0.0)]))
  assert np.all(gray[..., 0] == gray[..., 1]) and np.all(gray[..., 1] == gray[..., 2])
  flat = np.asarray(augment.apply_color_jitter(img, [("contrast", 0.0)]))
  assert np.ptp(flat) <= 1  # contrast 0 → the mean gray level everywhere
  same = np.asarray(augment.apply_color_jitter(img, [("hue", 0.0)]))
  assert np.abs(same.astype(int) - arr).max() <= 3  # HSV round trip
  red = Image.fromarray(np.tile(np.array([255, 0, 0], np.uint8), (2, 2, 1)))
  cyan = np.asarray(augment.apply_color_jitter(red, [("hue", 0.5)]))
  assert cyan[0, 0, 0] < 10 and cyan[0, 0, 1] > 240 and cyan[0, 0, 2] > 240  # half a turn of hue
  back = np.asarray(augment.adjust_hue(red, -0.25))
  assert back[0, 0, 2] > 240 and back[0, 0, 0] > 0  # negative shifts wrap around (red → purple/blue)
  with pytest.raises(ValueError, match="unknown"):
    augment.apply_color_jitter(img, [("gamma", 1.0)])


def test_monodepth_augment_rates():
  rng = np.random.default_rng(7)
  frames = [Image.fromarray(np.full((6, 6, 3), v, np.uint8)) for v in (10, 20, 30)]
  flips, colors = [], []
  n = 2000
  for _ in range(n):
    rec = {}
    f, aug = augment.monodepth_augment(frames, rng, record=rec)
    flips.append(rec["flip"])
    colors.append(rec["color_aug"])
    assert len(f) == len(aug) == 3
    if not rec["color_aug"]:
      assert aug is f
    else:
      for name, v in rec["jitter"]:
        lo, hi = (-0.1, 0.1) if name == "hue" else (0.8, 1.2)
        assert lo <= v <= hi
  tol = 4 * math.sqrt(0.25 / n)
  assert abs(_rate(flips) - 0.5) < tol and abs(_rate(colors) - 0.5) < tol

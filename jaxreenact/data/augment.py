"""Training augmentations of the official loaders, on PIL images with an explicit numpy Generator.

StarGAN v2 (core/data_loader.py): with p=0.5 RandomResizedCrop(scale 0.8–1, ratio 0.9–1.1), Resize, horizontal
flip p=0.5, normalize to [-1, 1]. DaGAN/FOMM (augmentation.py): time flip p=0.5 else horizontal flip p=0.5, then
ColorJitter(0.1, 0.1, 0.1, 0.1) drawn once per clip. Depth (monodepth2 / Face-Depth-Network mono_dataset.py):
flip p=0.5 for all frames, colour augmentation p=0.5 with ColorJitter((0.8, 1.2)×3, hue (−0.1, 0.1)).
The PIL operations are the ones torchvision's functional API runs on PIL images, so pixels match the originals.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance

RRC_SCALE = (0.8, 1.0)
RRC_RATIO = (0.9, 1.1)


def random_resized_crop_box(rng: np.random.Generator, height: int, width: int,
                            scale: tuple[float, float] = RRC_SCALE,
                            ratio: tuple[float, float] = RRC_RATIO) -> tuple[int, int, int, int]:
  """(top, left, h, w) of a random crop — torchvision RandomResizedCrop.get_params (10 tries, then centre crop)."""
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target_area = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
    w = int(round(math.sqrt(target_area * aspect)))
    h = int(round(math.sqrt(target_area / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return top, left, h, w
  in_ratio = width / height  # torchvision fallback: central crop clamped to the ratio range
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    h, w = height, int(round(height * max(ratio)))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def to_unit_float(img: Image.Image) -> np.ndarray:
  """PIL RGB → (H, W, 3) float32 in [0, 1] (torchvision ToTensor / skimage img_as_float32)."""
  return np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)


def to_signed_float(img: Image.Image) -> np.ndarray:
  """PIL RGB → (H, W, 3) float32 in [-1, 1] (ToTensor then Normalize(mean 0.5, std 0.5))."""
  return np.asarray(img, dtype=np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def resize(img: Image.Image, size: int, resample: int = Image.BILINEAR) -> Image.Image:
  """Square resize; PIL's bilinear filter widens its support when shrinking, like torchvision on PIL images."""
  return img if img.size == (size, size) else img.resize((size, size), resample)


def stargan_v2_augment(img: Image.Image, rng: np.random.Generator, img_size: int, prob: float = 0.5,
                       record: dict | None = None) -> np.ndarray:
  """Official StarGAN v2 training transform → (img_size, img_size, 3) float32 in [-1, 1].

  `record`, when given, receives {"crop": box or None, "flip": bool} (used by the statistics tests).
  """
  box = None
  if rng.random() < prob:  # transforms.Lambda(lambda x: crop(x) if random.random() < prob else x)
    top, left, h, w = random_resized_crop_box(rng, img.height, img.width)
    box = (top, left, h, w)
    img = img.crop((left, top, left + w, top + h)).resize((img_size, img_size), Image.BILINEAR)
  img = resize(img, img_size)  # transforms.Resize([img_size, img_size])
  flip = bool(rng.random() < 0.5)  # RandomHorizontalFlip(p=0.5)
  if flip:
    img = img.transpose(Image.FLIP_LEFT_RIGHT)
  if record is not None:
    record.update(crop=box, flip=flip)
  return to_signed_float(img)


def stargan_v2_eval(img: Image.Image, img_size: int) -> np.ndarray:
  """Official test/eval transform (Resize, Normalize) → float32 in [-1, 1]."""
  return to_signed_float(resize(img, img_size))


# ---------------------------------------------------------------------------------------------------------------
# colour jitter


def color_jitter_params(rng: np.random.Generator, brightness: tuple[float, float] | None,
                        contrast: tuple[float, float] | None, saturation: tuple[float, float] | None,
                        hue: tuple[float, float] | None) -> list[tuple[str, float]]:
  """Factors drawn once, in a random order — one draw per clip (FOMM ColorJitter.get_params + shuffle)."""
  ops = []
  for name, rng_range in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation),
                          ("hue", hue)):
    if rng_range is not None:
      ops.append((name, float(rng.uniform(rng_range[0], rng_range[1]))))
  order = rng.permutation(len(ops))
  return [ops[i] for i in order]


def jitter_ranges(b: float, c: float, s: float, h: float):
  """torchvision's scalar → range convention: factor in [max(0, 1−v), 1+v], hue in [−h, h]; 0 disables."""
  f = lambda v: (max(0.0, 1.0 - v), 1.0 + v) if v > 0 else None  # noqa: E731
  return f(b), f(c), f(s), ((-h, h) if h > 0 else None)


def adjust_hue(img: Image.Image, hue_factor: float) -> Image.Image:
  """torchvision F.adjust_hue on PIL: shift the uint8 H channel of PIL's HSV by hue_factor·255, wrapping."""
  h, s, v = img.convert("HSV").split()
  shift = int(hue_factor * 255) % 256  # np.uint8(hue_factor * 255) wrap-around, truncating toward zero
  np_h = (np.asarray(h, dtype=np.uint16) + shift) % 256
  return Image.merge("HSV", (Image.fromarray(np_h.astype(np.uint8), "L"), s, v)).convert("RGB")


def apply_color_jitter(img: Image.Image, params: Sequence[tuple[str, float]]) -> Image.Image:
  """torchvision F.adjust_{brightness,contrast,saturation,hue} on PIL, i.e. ImageEnhance blends + HSV hue shift."""
  for name, factor in params:
    if name == "brightness":
      img = ImageEnhance.Brightness(img).enhance(factor)
    elif name == "contrast":
      img = ImageEnhance.Contrast(img).enhance(factor)
    elif name == "saturation":
      img = ImageEnhance.Color(img).enhance(factor)
    elif name == "hue":
      img = adjust_hue(img, factor)
    else:
      raise ValueError(f"unknown colour-jitter op {name!r}")
  return img


# ---------------------------------------------------------------------------------------------------------------
# DaGAN / FOMM clip augmentation

FOMM_JITTER = jitter_ranges(0.1, 0.1, 0.1, 0.1)  # vox-adv-256.yaml jitter_param


def fomm_augment_clip(frames: Sequence[Image.Image], rng: np.random.Generator,
                      record: dict | None = None) -> list[Image.Image]:
  """FOMM AllAugmentationTransform(flip_param{time, horizontal}, jitter_param 0.1): flip, then colour jitter."""
  frames = list(frames)
  time_flip = bool(rng.random() < 0.5)  # RandomFlip: `if random() < 0.5 and time_flip: return clip[::-1]`
  hflip = False
  if time_flip:
    frames = frames[::-1]
  else:
    hflip = bool(rng.random() < 0.5)  # only reached when the clip was not time-flipped
    if hflip:
      frames = [f.transpose(Image.FLIP_LEFT_RIGHT) for f in frames]
  params = color_jitter_params(rng, *FOMM_JITTER)  # one draw for the whole clip
  frames = [apply_color_jitter(f, params) for f in frames]
  if record is not None:
    record.update(time_flip=time_flip, hflip=hflip, jitter=params)
  return frames


# ---------------------------------------------------------------------------------------------------------------
# depth (monodepth2)

MONODEPTH_JITTER = ((0.8, 1.2), (0.8, 1.2), (0.8, 1.2), (-0.1, 0.1))


def monodepth_augment(frames: Sequence[Image.Image], rng: np.random.Generator,
                      record: dict | None = None) -> tuple[list[Image.Image], list[Image.Image]]:
  """(frames, frames_aug): flip p=0.5 on all frames; colour-augmented copies with p=0.5, one draw per item."""
  do_color_aug = bool(rng.random() > 0.5)  # mono_dataset: `do_color_aug = is_train and random.random() > 0.5`
  do_flip = bool(rng.random() > 0.5)  # `do_flip = is_train and random.random() > 0.5`
  frames = list(frames)
  if do_flip:
    frames = [f.transpose(Image.FLIP_LEFT_RIGHT) for f in frames]
  if do_color_aug:
    params = color_jitter_params(rng, *MONODEPTH_JITTER)
    aug = [apply_color_jitter(f, params) for f in frames]
  else:
    params = []
    aug = frames
  if record is not None:
    record.update(flip=do_flip, color_aug=do_color_aug, jitter=params)
  return frames, aug

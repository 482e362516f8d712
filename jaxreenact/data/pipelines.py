"""grain pipelines over the prepared TFDS datasets: StarGAN v2, DaGAN and the depth stage.

Each pipeline is `MapDataset` (an index plan) → `.map(decode + augment)` → `.to_iter_dataset()` → `.batch()`
[→ `.mp_prefetch()`], returned as a grain `DatasetIterator`: deterministic for a seed, checkpointable with
`get_state()` / `set_state()`, and sharded per process by a strided slice of the global index plan, so the
union of all processes' batches is the same stream whatever the process count. Every example draws its
randomness from `np.random.default_rng((seed, stream, global_index))`, independent of threads and workers.

`batch_size` is the global batch; each process yields `batch_size // process_count` examples per batch
(feed them to `jax.make_array_from_process_local_data`).
"""
from __future__ import annotations

import os
from typing import Any

import grain
import numpy as np
from PIL import Image

from jaxreenact.data import augment, builders, media

_INFINITE = 2**62  # the StarGAN v2 samplers draw with replacement forever
# Independent random streams (first word after the seed).
_STREAM_STARGAN, _STREAM_REF2, _STREAM_DAGAN, _STREAM_DEPTH = 1, 2, 3, 4


def _with_global_index(global_index: int, value: int) -> tuple[int, int]:
  return global_index, value


def _process_defaults(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # only needed to fill in defaults

    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} must be in [0, process_count={process_count})")
  return process_index, process_count


def _local_batch(batch_size: int, process_count: int) -> int:
  if batch_size < 1 or batch_size % process_count:
    raise ValueError(f"batch_size={batch_size} (global) must be a positive multiple of process_count={process_count}")
  return batch_size // process_count


def _finish(ds: grain.MapDataset, batch_size: int, process_index: int, process_count: int, num_threads: int | None,
            prefetch: int | None, num_workers: int) -> grain.DatasetIterator:
  ds = ds[process_index::process_count]
  local = _local_batch(batch_size, process_count)
  threads = num_threads if num_threads is not None else min(8, max(1, os.cpu_count() or 1))
  read = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch if prefetch is not None else 2 * local)
  it_ds = ds.to_iter_dataset(read).batch(local, drop_remainder=True)
  if num_workers > 0:
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain's worker processes read absl flags; outside absl.app nobody parsed them
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return iter(it_ds)


class _LazySource:
  """Opens the TFDS split on first use, so the callable pickles cheaply into grain worker processes."""

  def __init__(self, data_dir: str, split: str):
    self.data_dir, self.split = os.fspath(data_dir), split
    self._view = None

  def __getstate__(self):
    return {"data_dir": self.data_dir, "split": self.split, "_view": None}


class _ImagesView(_LazySource):
  @property
  def view(self) -> builders.ImageDomainsSplit:
    if self._view is None:
      self._view = builders.load_image_domains(self.data_dir, self.split)
    return self._view

  def image(self, index: int) -> Image.Image:
    return media.decode_rgb(self.view.source[int(index)]["image"])


class _VideosView(_LazySource):
  @property
  def view(self) -> builders.TalkingHeadsSplit:
    if self._view is None:
      self._view = builders.load_talking_heads(self.data_dir, self.split)
    return self._view

  def frames(self, records: list[int]) -> list[Image.Image]:
    items = self.view.source.__getitems__([int(r) for r in records])
    return [media.decode_rgb(it["image"]) for it in items]


# ---------------------------------------------------------------------------------------------------------------
# StarGAN v2


def second_reference_table(domain_ranges: list[tuple[int, int]], seed: int) -> np.ndarray:
  """record → its fixed second reference: a random permutation within each domain, drawn once
  (the official ReferenceDataset pairs `fnames` with `random.sample(cls_fnames, len(cls_fnames))`)."""
  total = sum(c for _, c in domain_ranges)
  table = np.arange(total, dtype=np.int64)
  rng = np.random.default_rng((seed, _STREAM_REF2))
  for start, count in domain_ranges:
    table[start:start + count] = start + rng.permutation(count)
  return table


class _StarGANExample:
  """global index → {x_src, y_src, x_ref, x_ref2, y_ref}; class-balanced, with replacement, for both streams."""

  def __init__(self, data_dir: str, split: str, img_size: int, seed: int, augment_images: bool, crop_prob: float):
    self.images = _ImagesView(data_dir, split)
    self.img_size, self.seed, self.augment, self.crop_prob = img_size, seed, augment_images, crop_prob
    view = self.images.view
    self.ranges = view.domain_ranges
    self.classes = np.array([k for k, (_, c) in enumerate(self.ranges) if c > 0], dtype=np.int32)
    if len(self.classes) == 0:
      raise ValueError(f"image_domains split {view.split!r} in {data_dir} has no examples")
    self.ref2 = second_reference_table(self.ranges, seed)

  def _draw(self, rng: np.random.Generator) -> tuple[int, int]:
    # WeightedRandomSampler with weights 1/class_count ≡ uniform class, then uniform image within it.
    label = int(self.classes[rng.integers(len(self.classes))])
    start, count = self.ranges[label]
    return label, start + int(rng.integers(count))

  def _transform(self, index: int, rng: np.random.Generator) -> np.ndarray:
    img = self.images.image(index)
    if self.augment:
      return augment.stargan_v2_augment(img, rng, self.img_size, self.crop_prob)
    return augment.stargan_v2_eval(img, self.img_size)

  def __call__(self, global_index: int) -> dict[str, Any]:
    rng = np.random.default_rng((self.seed, _STREAM_STARGAN, int(global_index)))
    y_src, i_src = self._draw(rng)  # source stream (ImageFolder + balanced sampler)
    y_ref, i_ref = self._draw(rng)  # reference stream (ReferenceDataset + balanced sampler), y_trg ⟂ y_org
    i_ref2 = int(self.ref2[i_ref])
    return {
        "x_src": self._transform(i_src, rng),  # (H, W, 3) in [-1, 1]
        "y_src": np.int32(y_src),
        "x_ref": self._transform(i_ref, rng),
        "x_ref2": self._transform(i_ref2, rng),
        "y_ref": np.int32(y_ref),
    }


def stargan_v2_pipeline(data_dir: str | os.PathLike, split: str, img_size: int, batch_size: int, seed: int, *,
                        process_index: int | None = None, process_count: int | None = None, augment_images: bool = True,
                        crop_prob: float = 0.5, num_threads: int | None = None, prefetch: int | None = None,
                        num_workers: int = 0) -> grain.DatasetIterator:
  """Endless StarGAN v2 training batches from a prepared `image_domains` dataset.

  Args:
    data_dir: TFDS data_dir holding `image_domains/` (see `launch.prepare_data images` or `sample_data_dir()`).
    split: 'train' (or 'val'/'validation'/'test').
    img_size: output side in pixels.
    batch_size: global batch size (a multiple of process_count).
    seed: fixes sampling, augmentation and the second-reference pairing.
    process_index, process_count: this host's shard (default: jax.process_index() / jax.process_count()).
    augment_images: official training augmentation (False: resize + normalize only).
    crop_prob: probability of the RandomResizedCrop (official 0.5).
    num_threads, prefetch: grain ReadOptions (defaults: min(8, cpus) threads, 2 local batches).
    num_workers: >0 adds `mp_prefetch` with that many worker processes.

  Returns:
    A grain iterator of dicts: x_src, x_ref, x_ref2 (B, H, W, 3) float32 in [-1, 1]; y_src, y_ref (B,) int32,
    B = batch_size // process_count.
  """
  process_index, process_count = _process_defaults(process_index, process_count)
  fn = _StarGANExample(os.fspath(data_dir), split, img_size, seed, augment_images, crop_prob)
  ds = grain.MapDataset.range(_INFINITE).map(fn)
  return _finish(ds, batch_size, process_index, process_count, num_threads, prefetch, num_workers)


# ---------------------------------------------------------------------------------------------------------------
# DaGAN


class _DaGANExample:
  """(global index, identity or video) → {source, driving}: a random video, two sorted random frames, FOMM aug."""

  def __init__(self, data_dir: str, split: str, img_size: int, seed: int, augment_clip: bool, id_sampling: bool):
    self.videos = _VideosView(data_dir, split)
    self.img_size, self.seed, self.augment, self.id_sampling = img_size, seed, augment_clip, id_sampling

  def __call__(self, item: tuple[int, int]) -> dict[str, Any]:
    global_index, unit = item
    view = self.videos.view
    rng = np.random.default_rng((self.seed, _STREAM_DAGAN, int(global_index)))
    if self.id_sampling:  # FramesDataset(id_sampling=True): an identity, then one of its videos at random
      candidates = view.videos_of_identity[unit]
      video = candidates[int(rng.integers(len(candidates)))]
    else:
      video = unit
    _, _, start, n = view.videos[video]
    idx = np.sort(rng.choice(n, size=2, replace=True))  # np.sort(np.random.choice(num_frames, replace=True, size=2))
    frames = [augment.resize(f, self.img_size) for f in self.videos.frames([start + int(i) for i in idx])]
    if self.augment:
      frames = augment.fomm_augment_clip(frames, rng)
    return {"source": augment.to_unit_float(frames[0]), "driving": augment.to_unit_float(frames[1])}  # (H, W, 3)


def dagan_pipeline(data_dir: str | os.PathLike, split: str, img_size: int, batch_size: int, seed: int, *,
                   process_index: int | None = None, process_count: int | None = None, augment_clip: bool = True,
                   id_sampling: bool | None = None, num_threads: int | None = None, prefetch: int | None = None,
                   num_workers: int = 0) -> grain.DatasetIterator:
  """Endless DaGAN training pairs from a prepared `talking_heads` dataset.

  Epochs run over identities in a fresh random order (FOMM's shuffled DataLoader over `id_sampling` ids,
  repeated); each step picks a random video of that identity and two frames sorted in time.

  Args:
    data_dir: TFDS data_dir holding `talking_heads/`.
    split: 'train' or 'test'.
    img_size: output side (frames are resized with PIL bilinear when they differ).
    batch_size: global batch size.
    seed: fixes the identity order, frame choice and augmentation.
    process_index, process_count: this host's shard.
    augment_clip: time flip p=0.5 else horizontal flip p=0.5, colour jitter 0.1 (one draw per clip).
    id_sampling: sample identities (default: True for the train split, as in vox-adv-256.yaml), else videos.
    num_threads, prefetch, num_workers: as in `stargan_v2_pipeline`.

  Returns:
    A grain iterator of dicts: source, driving (B, H, W, 3) float32 in [0, 1].
  """
  process_index, process_count = _process_defaults(process_index, process_count)
  data_dir = os.fspath(data_dir)
  fn = _DaGANExample(data_dir, split, img_size, seed, augment_clip, True)
  view = fn.videos.view
  if id_sampling is None:
    id_sampling = view.split == "train"
  fn.id_sampling = id_sampling
  units = len(view.identities) if id_sampling else len(view.videos)
  ds = grain.MapDataset.range(units).shuffle(seed=seed).repeat(None)  # reshuffled every epoch
  ds = ds.map_with_index(_with_global_index).map(fn)
  return _finish(ds, batch_size, process_index, process_count, num_threads, prefetch, num_workers)


# ---------------------------------------------------------------------------------------------------------------
# depth


def triplet_centers(videos: list[tuple[str, str, int, int]], stride: int) -> tuple[np.ndarray, np.ndarray]:
  """Per video the number of valid centre frames (those with t−stride and t+stride), and its cumulative sum."""
  valid = np.array([max(0, n - 2 * stride) for _, _, _, n in videos], dtype=np.int64)
  return valid, np.cumsum(valid)


class _DepthExample:
  """(global index, flat centre) → {frames, frames_aug} for frames (t−s, t, t+s)."""

  def __init__(self, data_dir: str, split: str, img_size: int, seed: int, augment_frames: bool, stride: int):
    self.videos = _VideosView(data_dir, split)
    self.img_size, self.seed, self.augment, self.stride = img_size, seed, augment_frames, stride
    self.valid, self.cum = triplet_centers(self.videos.view.videos, stride)

  def __call__(self, item: tuple[int, int]) -> dict[str, Any]:
    global_index, flat = item
    v = int(np.searchsorted(self.cum, flat, side="right"))
    offset = flat - (self.cum[v] - self.valid[v])
    _, _, start, _ = self.videos.view.videos[v]
    t = start + self.stride + int(offset)
    # monodepth2 resizes with Image.ANTIALIAS (= LANCZOS) to the training size.
    frames = [augment.resize(f, self.img_size, Image.LANCZOS)
              for f in self.videos.frames([t - self.stride, t, t + self.stride])]
    if self.augment:
      rng = np.random.default_rng((self.seed, _STREAM_DEPTH, int(global_index)))
      frames, aug = augment.monodepth_augment(frames, rng)
    else:
      aug = frames
    return {"frames": np.stack([augment.to_unit_float(f) for f in frames]),  # (3, H, W, 3) t−1, t, t+1
            "frames_aug": np.stack([augment.to_unit_float(f) for f in aug])}


def depth_pipeline(data_dir: str | os.PathLike, split: str, img_size: int, batch_size: int, seed: int, *,
                   process_index: int | None = None, process_count: int | None = None, augment_frames: bool = True,
                   stride: int = 1, num_threads: int | None = None, prefetch: int | None = None,
                   num_workers: int = 0) -> grain.DatasetIterator:
  """Endless frame triplets (t−1, t, t+1) for self-supervised depth training, from `talking_heads`.

  Epochs run over every frame that has both neighbours, in a fresh random order (monodepth2's shuffled loader).

  Returns:
    A grain iterator of dicts: frames (B, 3, H, W, 3) float32 in [0, 1] (flipped with p=0.5, used by the
    photometric loss) and frames_aug (same, colour-jittered with p=0.5, fed to the depth/pose networks).
  """
  process_index, process_count = _process_defaults(process_index, process_count)
  if stride < 1:
    raise ValueError(f"stride must be >= 1, got {stride}")
  fn = _DepthExample(os.fspath(data_dir), split, img_size, seed, augment_frames, stride)
  total = int(fn.cum[-1]) if len(fn.cum) else 0
  if total == 0:
    raise ValueError(f"talking_heads split {split!r} in {data_dir} has no video with {2 * stride + 1}+ frames "
                     f"(needed for triplets at stride {stride})")
  ds = grain.MapDataset.range(total).shuffle(seed=seed).repeat(None)
  ds = ds.map_with_index(_with_global_index).map(fn)
  return _finish(ds, batch_size, process_index, process_count, num_threads, prefetch, num_workers)


def video_frames(data_dir: str | os.PathLike, split: str, video: int | str, img_size: int) -> np.ndarray:
  """All frames of one prepared video, (T, H, W, 3) float32 in [0, 1] — for reconstruction/evaluation."""
  view = builders.load_talking_heads(data_dir, split)
  if isinstance(video, str):
    names = [v[0] for v in view.videos]
    if video not in names:
      raise KeyError(f"no video {video!r} in talking_heads/{view.split} under {data_dir} (have {names[:5]}…)")
    video = names.index(video)
  _, _, start, n = view.videos[video]
  items = view.source.__getitems__(list(range(start, start + n)))
  return np.stack([augment.to_unit_float(augment.resize(media.decode_rgb(it["image"]), img_size)) for it in items])

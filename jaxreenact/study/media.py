"""Reenactment a person can look at: same-identity and cross-identity videos with source | driving | result | depth.

- Same identity (reconstruction): the training clip's first frame driven by the held-out clip, absolute keypoints
  (the driving frames are the ground truth for the result).
- Cross identity (the study's use): the astronaut photo driven by the held-out clip with relative motion (the
  demo's default), so the astronaut's face keeps its shape and takes the speaker's motion.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from jaxreenact.train import samples

Progress = Callable[[int, int], None]


def astronaut(size: int) -> np.ndarray:
  """The embedded sample data's aligned astronaut face, (size, size, 3) in [0, 1]."""
  from jaxreenact.data import media, sample_data_dir  # imports tensorflow_datasets (data builders)
  from jaxreenact.inference import reenact  # imports jax: keeps this module jax-free
  path = os.path.join(sample_data_dir().root, "raw", "images", "train", "photo", "astronaut.png")
  return reenact.resize_frames([media.read_image_file(path)], size, "the astronaut photo")[0]


def held_out_clips(data_dir: str | None, size: int) -> dict[str, np.ndarray]:
  """{'train': first training clip, 'test': first held-out clip}, frames (T, size, size, 3) in [0, 1]."""
  from jaxreenact.data import load_talking_heads, sample_data_dir, video_frames  # imports tensorflow_datasets
  data_dir = data_dir or sample_data_dir().dagan
  out = {}
  for split in ("train", "test"):
    view = load_talking_heads(data_dir, split)
    out[split] = video_frames(data_dir, split, view.videos[0][0], size)
  return out


def dagan_media(systems: Sequence[Any], *, out_dir: str, size: int, data_dir: str | None = None,
                depth_files: tuple[str, str] | None = None, fps: float = 12.5,
                progress: Progress | None = None) -> dict[str, Any]:
  """Writes, per system, the same- and cross-identity videos (MP4) and previews (PNG); returns their paths.

  Args:
    systems: ``quality.System`` models (checkpoint specs), e.g. the model trained here and the shipped weights.
    fps: the sample clip is 25 fps; half speed makes a 64-px result easier to follow.
  """
  from jaxreenact.inference import reenact, video  # imports jax: keeps this module jax-free
  from jaxreenact.study import quality  # imports jax: keeps this module jax-free

  os.makedirs(out_dir, exist_ok=True)
  clips = held_out_clips(data_dir, size)
  cases = {
      "same_identity": (clips["train"][0], clips["test"], reenact.Options(relative=False, batch_size=4),
                        "training clip's first frame driven by the held-out clip (absolute keypoints)"),
      "cross_identity": (astronaut(size), clips["test"], reenact.Options(relative=True, batch_size=4),
                         "astronaut driven by the held-out clip (relative motion)"),
  }
  results: dict[str, Any] = {"systems": {}, "cases": {k: v[3] for k, v in cases.items()}, "size": size}
  total, done = len(systems) * len(cases), 0
  for s in systems:
    loaded = quality.load_checkpoint("dagan", s.spec, depth_files)
    model = reenact.Reenactor(loaded.config, loaded.variables)
    entry: dict[str, Any] = {}
    for case, (source, driving, opts, _) in cases.items():
      out = model.run(source, driving, opts, progress=False)
      frames = reenact.side_by_side(source, driving, out["prediction"], out["depth"])
      stem = f"{quality.safe_name(s.name)}_{case}"
      written = video.write_video(os.path.join(out_dir, f"{stem}.mp4"), frames, fps)
      idx = sorted({0, len(frames) // 3, 2 * len(frames) // 3, len(frames) - 1})
      preview = samples.save_png(os.path.join(out_dir, f"{stem}.png"),
                                 samples.grid([[np.repeat(np.repeat(frames[i], 2, 0), 2, 1)] for i in idx]))
      entry[case] = {"video": written["path"], "frames": written["frames"], "fps": written["fps"],
                     "preview": preview}
      done += 1
      if progress:
        progress(done, total)
    results["systems"][s.name] = entry
  return results

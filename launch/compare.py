r"""The study's question, answered correctly: StarGAN v2 vs DaGAN in training time, complexity and quality.

  python -m launch.compare --workdir runs/compare            # embedded sample data, tiny models, 2 CPU cores
  python -m launch.compare --workdir runs/compare --rerun speed_dagan     # re-time one stage, reuse the rest
  python -m launch.compare --workdir runs/compare --steps 500 --stargan_data TFDS --dagan_data TFDS \
      --dagan_depth_encoder encoder.pth --dagan_depth_decoder depth.pth --devices 4

Stages (cached under WORKDIR/stages/<name>.json; a failing stage is reported in its section, the rest still runs,
and the command exits 1): train_stargan_v2, train_dagan, speed_stargan_v2, speed_dagan, complexity,
quality_stargan_v2, quality_dagan, media — see jaxreenact/study/compare.py. Writes WORKDIR/report.md,
report.html (figures embedded), report.json and PNG charts.
"""
from __future__ import annotations

import sys

from absl import app, flags

from jaxreenact.study import compare
from launch import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Output directory (report.md/html/json, stages/, runs).")
flags.DEFINE_integer("steps", None, "Training steps per model (default: 60 StarGAN v2, 30 DaGAN at tiny).")
flags.DEFINE_string("stargan_data", None, "Prepared image_domains TFDS dir (default: embedded sample data).")
flags.DEFINE_string("dagan_data", None, "Prepared talking_heads TFDS dir (default: embedded sample data).")
flags.DEFINE_string("stargan_ckpt", None, "StarGAN v2 checkpoint evaluated instead of the model trained here "
                    "(workdir, Orbax dir, official .ckpt or shipped:<name>).")
flags.DEFINE_string("dagan_ckpt", None, "DaGAN checkpoint evaluated instead of the model trained here.")
flags.DEFINE_string("dagan_depth_encoder", None, "Official depth encoder.pth (with --dagan_depth_decoder).")
flags.DEFINE_string("dagan_depth_decoder", None, "Official depth.pth.")
flags.DEFINE_enum("config_variant", "tiny", ["tiny", "full"], "Train the tiny configs or the paper ones (afhq, vox256).")
flags.DEFINE_integer("devices", 1, "Device count to extrapolate time-to-train to (and to train on when available).")
flags.DEFINE_integer("dagan_identities", 1211, "Identities in the DaGAN training set for the official schedule "
                     "(VoxCeleb1 dev: 1,211).")
flags.DEFINE_bool("fresh", False, "Recompute every stage.")
flags.DEFINE_list("rerun", [], f"Recompute these stages, reuse the others ({', '.join(compare.STAGES)}).")
flags.DEFINE_list("skip", [], "Stages to skip.")
flags.DEFINE_integer("stage_timeout_s", 900, "Per-stage time limit for the stages that run a command.")
flags.DEFINE_bool("progress", True, "Show the overall progress line.")


def main(argv):
  del argv  # cli.run refuses positional arguments
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required")
  opts = compare.Options(
      workdir=FLAGS.workdir, steps=FLAGS.steps, stargan_data=FLAGS.stargan_data, dagan_data=FLAGS.dagan_data,
      stargan_ckpt=FLAGS.stargan_ckpt, dagan_ckpt=FLAGS.dagan_ckpt, dagan_depth_encoder=FLAGS.dagan_depth_encoder,
      dagan_depth_decoder=FLAGS.dagan_depth_decoder, config_variant=FLAGS.config_variant, devices=FLAGS.devices,
      dagan_identities=FLAGS.dagan_identities, fresh=FLAGS.fresh, rerun=tuple(FLAGS.rerun), skip=tuple(FLAGS.skip),
      stage_timeout_s=FLAGS.stage_timeout_s, progress=FLAGS.progress)
  try:
    opts.validate()
  except ValueError as e:
    raise app.UsageError(str(e))
  out = compare.run(opts)
  failed = out["failed"]
  print(f"[compare] report: {out['report']['html']} ({out['wall_s'] / 60:.1f} min; {len(failed)} failed stage(s)"
        f"{': ' + ', '.join(failed) if failed else ''})", flush=True)
  if failed:
    sys.exit(1)


if __name__ == "__main__":
  cli.run(main)

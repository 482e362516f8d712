r"""StarGAN v2 samples: reference-guided grid, latent-guided grids per domain, interpolation videos.

  python -m launch.sample --checkpoint runs/sg_tiny --out_dir samples/sg_tiny          # embedded sample data
  python -m launch.sample --checkpoint ckpt/celeba_hq --src_dir assets/src --ref_dir assets/ref --out_dir out
  python -m launch.sample --checkpoint 100000_nets_ema.ckpt --wing_ckpt wing.ckpt --src_dir … --ref_dir … --out_dir out

--checkpoint: a training workdir (EMA networks of its latest good checkpoint), an Orbax directory from
launch.convert, an official ``*_nets_ema.ckpt`` (converted on the fly), ``random:<preset>`` or ``shipped:<name>``.
--src_dir/--ref_dir: ROOT/<domain>/<images>, one folder per domain of the model (sorted names = labels); default:
the embedded sample data's val split.

Writes to --out_dir: reference.png (first row: sources; each row: a reference, then its translations),
latent_<domain>_psi<ψ>.png, video_ref.mp4, video_latent.mp4, results.json and README.md. The command itself is
jaxreenact/inference/stargan_v2_samples.py.
"""
from __future__ import annotations

import json

from absl import app, flags

from jaxreenact import compile_cache
from launch import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Training workdir, launch.convert Orbax directory, *_nets_ema.ckpt, "
                    "random:<preset> or shipped:<name>.")
flags.DEFINE_string("out_dir", None, "Where the grids, videos and reports go.")
flags.DEFINE_string("wing_ckpt", None, "FAN weights (official wing.ckpt); needed when w_hpf > 0 and the checkpoint "
                    "has no 'fan'.")
flags.DEFINE_integer("step", None, "Training workdir: checkpoint step (default: latest).")
flags.DEFINE_string("src_dir", None, "Source images ROOT/<domain>/*; default: embedded sample data (val).")
flags.DEFINE_string("ref_dir", None, "Reference images ROOT/<domain>/*; default: same as the sources.")
flags.DEFINE_integer("num_src", 6, "Source images in the grids/videos (taken round-robin over domains).")
flags.DEFINE_integer("num_ref", 8, "Reference images in the reference grid/video (grouped by domain).")
flags.DEFINE_integer("num_latent", 10, "Latent codes per domain in the latent grids (official num_outs_per_domain).")
flags.DEFINE_list("psi", ["1.0"], "Truncation ψ values for the latent grids (official debug images: 0.5,0.7,1.0).")
flags.DEFINE_integer("seed", 777, "Seed of the latent codes.")
flags.DEFINE_bool("videos", True, "Also write the interpolation videos.")
flags.DEFINE_integer("video_latent_codes", 4, "Latent codes interpolated per domain in video_latent.mp4.")
flags.DEFINE_float("fps", 15.0, "Video frame rate (the official 30 fps with setpts=2*PTS plays at 15).")
flags.DEFINE_integer("batch_size", 8, "Images per jitted call.")


def main(argv):
  del argv  # positional arguments are refused by cli.run
  # jax and the models load here, after flag parsing: --help and flag errors answer at once
  from jaxreenact.checkpoint.naming import ConversionError
  from jaxreenact.data.media import VideoWriteError
  from jaxreenact.inference import stargan_v2_samples
  from jaxreenact.inference.loading import CheckpointError
  try:
    psi = tuple(float(p) for p in FLAGS.psi)
  except ValueError:
    raise app.UsageError(f"--psi={','.join(FLAGS.psi)}: expected comma-separated numbers, e.g. 0.5,0.7,1.0")
  names = ("checkpoint", "out_dir", "wing_ckpt", "step", "src_dir", "ref_dir", "num_src", "num_ref", "num_latent",
           "seed", "videos", "video_latent_codes", "fps", "batch_size")
  opts = stargan_v2_samples.Options(psi=psi, **{name: getattr(FLAGS, name) for name in names})
  try:
    opts.validate()  # required flags and a writable --out_dir, before the model is loaded or run
  except ValueError as e:
    raise app.UsageError(str(e))
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  try:
    result = stargan_v2_samples.run(opts)
  except (CheckpointError, ConversionError) as e:
    raise app.UsageError(str(e) if str(e).startswith("--checkpoint") else f"--checkpoint={FLAGS.checkpoint}: {e}")
  except (FileNotFoundError, ValueError) as e:  # a missing folder, wrong domain count, unreadable image (named)
    raise app.UsageError(str(e))
  except VideoWriteError as e:
    cli.error(str(e))
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  cli.run(main)

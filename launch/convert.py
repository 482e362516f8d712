r"""Convert official PyTorch checkpoints to Orbax (and back).

StarGAN v2 (a ``*_nets.ckpt`` / ``*_nets_ema.ckpt`` file; the config is read off the weights unless --config):
  python -m launch.convert --model stargan_v2 --torch_ckpt 100000_nets_ema.ckpt --out ckpt/celeba_hq \
      [--config configs/stargan_v2.py:celeba_hq] [--wing_ckpt wing.ckpt]
DaGAN (``DaGAN_vox_adv_256.pth.tar`` with the ResNet-18 depth files):
  python -m launch.convert --model dagan --torch_ckpt DaGAN_vox_adv_256.pth.tar \
      --depth_encoder encoder.pth --depth_decoder depth.pth --config configs/dagan.py:vox256 --out ckpt/dagan
Inference weights of a training run (no optimiser state, discriminators or frozen VGG), e.g. to ship them:
  python -m launch.convert --model dagan --from_workdir runs/dagan_tiny --out jaxreenact/shipped/dagan_tiny \
      [--metadata_json provenance.json]
Reverse (Orbax -> official PyTorch layout):
  python -m launch.convert --model stargan_v2 --to_torch --orbax_dir ckpt/celeba_hq --out back_nets_ema.ckpt

The conversion itself is jaxreenact/inference/convert.py.
"""
from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags

from launch import cli

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", None, ["stargan_v2", "dagan"], "Which model the checkpoint holds.")
flags.DEFINE_string("torch_ckpt", None, "PyTorch checkpoint to convert (official layout).")
flags.DEFINE_string("wing_ckpt", None, "StarGAN v2 only: FAN weights (wing.ckpt) to include as the 'fan' entry.")
flags.DEFINE_string("depth_encoder", None, "DaGAN only: depth encoder weights (encoder.pth).")
flags.DEFINE_string("depth_decoder", None, "DaGAN only: depth decoder weights (depth.pth).")
flags.DEFINE_string("out", None, "Output: an Orbax directory (to JAX) or a .ckpt/.pth.tar file (--to_torch).")
flags.DEFINE_bool("to_torch", False, "Convert an Orbax directory (--orbax_dir) back to the official PyTorch layout.")
flags.DEFINE_string("orbax_dir", None, "With --to_torch: directory written by this tool or by training.")
flags.DEFINE_string("from_workdir", None, "Export the inference networks of this training workdir's latest checkpoint "
                    "(StarGAN v2: EMA networks; DaGAN: depth, kp detector, generator) to --out.")
flags.DEFINE_string("metadata_json", None, "With --from_workdir: a JSON object merged into the exported metadata "
                    "(e.g. {\"provenance\": {...}}).")
config_flags.DEFINE_config_file("config", None, "Model config file with variant, e.g. configs/stargan_v2.py:afhq. "
                                 "StarGAN v2: optional (inferred from the weights).", lock_config=True)


def main(argv):
  del argv  # cli.run refuses positional arguments
  from jaxreenact.inference import convert  # jax and the models load here: --help and flag errors answer at once
  names = ("model", "out", "torch_ckpt", "wing_ckpt", "depth_encoder", "depth_decoder", "to_torch", "orbax_dir",
           "from_workdir", "metadata_json", "config")
  opts = convert.Options(**{name: getattr(FLAGS, name) for name in names})
  try:
    opts.validate()
  except ValueError as e:
    raise app.UsageError(str(e))
  cli.require_writable_dir("out", opts.out_dir)
  try:
    summary = convert.run(opts)
  except (ValueError, FileNotFoundError) as e:  # ConversionError and CheckpointError among them
    raise app.UsageError(str(e))
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  cli.run(main)

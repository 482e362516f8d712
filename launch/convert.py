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
"""
from __future__ import annotations

import dataclasses
import json
import os

from absl import app, flags, logging
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


def _stargan_cfg_from_flags(state_dicts=None):
  from jaxreenact.checkpoint import torch_convert
  from jaxreenact.models import stargan_v2
  if FLAGS.config is not None:
    return stargan_v2.Config(**dict(FLAGS.config.model))
  if state_dicts is None:
    raise app.UsageError("--config is required")
  cfg = torch_convert.infer_stargan_v2_config(state_dicts, source=FLAGS.torch_ckpt)
  logging.info("config inferred from %s: %s", FLAGS.torch_ckpt, cfg)
  return cfg


def _stargan_to_jax() -> dict:
  from jaxreenact.checkpoint import orbax_io, stargan_v2_convert, torch_convert
  obj = stargan_v2_convert.read_torch_file(FLAGS.torch_ckpt)
  obj = {k: v for k, v in obj.items() if k != "fan" or FLAGS.wing_ckpt is None}
  cfg = _stargan_cfg_from_flags({k: v for k, v in obj.items() if k != "fan"})
  variables = torch_convert.stargan_v2_from_torch(obj, cfg, source=FLAGS.torch_ckpt)
  if FLAGS.wing_ckpt:
    from jaxreenact.checkpoint import fan_convert
    variables["fan"] = fan_convert.load_wing_checkpoint(FLAGS.wing_ckpt)
  meta = {"model": "stargan_v2", "config": dataclasses.asdict(cfg), "source": os.path.abspath(FLAGS.torch_ckpt),
          "modules": sorted(variables)}
  orbax_io.save_variables(FLAGS.out, variables, meta)
  return meta


def _dagan_cfg():
  from jaxreenact.models import dagan
  if FLAGS.config is None:
    return dagan.Config.vox256()
  from jaxreenact.train.dagan_runner import model_config
  return model_config(FLAGS.config)


def _dagan_to_jax() -> dict:
  from jaxreenact.checkpoint import orbax_io, torch_convert
  cfg = _dagan_cfg()
  variables = torch_convert.load_dagan_checkpoint(FLAGS.torch_ckpt, cfg, depth_encoder_path=FLAGS.depth_encoder,
                                                  depth_decoder_path=FLAGS.depth_decoder)
  meta = {"model": "dagan", "config": json.loads(json.dumps(dataclasses.asdict(cfg))),
          "source": os.path.abspath(FLAGS.torch_ckpt), "modules": sorted(variables)}
  orbax_io.save_variables(FLAGS.out, variables, meta)
  return meta


def _to_torch() -> dict:
  import numpy as np
  import torch
  from jaxreenact.checkpoint import orbax_io, torch_convert
  from jaxreenact.inference import checkpoints
  if checkpoints.is_training_workdir(FLAGS.orbax_dir):  # its latest good step, inference networks
    load = checkpoints.load_stargan_v2 if FLAGS.model == "stargan_v2" else checkpoints.load_dagan
    loaded = load(FLAGS.orbax_dir)
    variables, meta = loaded.variables, {"model": FLAGS.model}
    cfg = loaded.config
  else:
    variables, meta = orbax_io.load_variables(FLAGS.orbax_dir)
  if meta.get("model", FLAGS.model) != FLAGS.model:
    raise app.UsageError(f"{FLAGS.orbax_dir} holds a {meta['model']} checkpoint, not {FLAGS.model}")
  if FLAGS.model == "stargan_v2":
    from jaxreenact.models import stargan_v2
    if "config" in meta:
      cfg = stargan_v2.Config(**meta["config"])
    elif not checkpoints.is_training_workdir(FLAGS.orbax_dir):
      cfg = _stargan_cfg_from_flags()
    sds = torch_convert.stargan_v2_to_torch(variables, cfg)
  else:
    if FLAGS.config is not None:
      cfg = _dagan_cfg()
    elif not checkpoints.is_training_workdir(FLAGS.orbax_dir):
      cfg = checkpoints.dagan_config_from_dict(meta.get("config"))
    sds = torch_convert.dagan_to_torch(variables, cfg)
  as_torch = lambda sd: {k: v if hasattr(v, "detach") else torch.from_numpy(np.array(v)) for k, v in sd.items()}  # noqa: E731
  out_dir = os.path.dirname(os.path.abspath(FLAGS.out))
  os.makedirs(out_dir, exist_ok=True)
  written = [os.path.abspath(FLAGS.out)]
  if FLAGS.model == "stargan_v2":
    obj = {name: as_torch(sd) for name, sd in sds.items()}
  else:  # official layout: the .pth.tar holds the three networks; the depth net is two separate files
    obj = {name: as_torch(sds[name]) for name in ("generator", "kp_detector", "discriminator") if name in sds}
    obj["epoch"] = 0
    for name, fname in (("depth_encoder", "encoder.pth"), ("depth_decoder", "depth.pth")):
      if name in sds:
        path = os.path.join(out_dir, fname)
        torch.save(as_torch(sds[name]), path)
        written.append(path)
  torch.save(obj, FLAGS.out)
  return {"model": FLAGS.model, "written": written, "modules": sorted(k for k in obj if k != "epoch")}


def _export_workdir() -> dict:
  from jaxreenact.inference import checkpoints
  extra = {}
  if FLAGS.metadata_json:
    try:
      with open(FLAGS.metadata_json) as f:
        extra = json.load(f)
    except (OSError, ValueError) as e:
      raise app.UsageError(f"--metadata_json={FLAGS.metadata_json}: {e}")
    if not isinstance(extra, dict):
      raise app.UsageError(f"--metadata_json={FLAGS.metadata_json}: expected a JSON object")
  load = checkpoints.load_stargan_v2 if FLAGS.model == "stargan_v2" else checkpoints.load_dagan
  try:
    loaded = load(FLAGS.from_workdir)
  except checkpoints.CheckpointError as e:
    raise app.UsageError(f"--from_workdir: {e}")
  if loaded.kind != "workdir":
    raise app.UsageError(f"--from_workdir={FLAGS.from_workdir}: not a training workdir (found a {loaded.kind} "
                         f"checkpoint)")
  return checkpoints.export_inference_weights(loaded, FLAGS.out, **extra)


def main(argv):
  del argv  # cli.run refuses positional arguments
  if FLAGS.model is None or FLAGS.out is None:
    raise app.UsageError("--model and --out are required")
  out_dir = os.path.dirname(os.path.abspath(FLAGS.out)) if FLAGS.to_torch else FLAGS.out
  cli.require_writable_dir("out", out_dir)
  from jaxreenact.checkpoint.naming import ConversionError
  from jaxreenact.inference.checkpoints import CheckpointError
  try:
    summary = _convert()
  except (ConversionError, CheckpointError, FileNotFoundError) as e:
    raise app.UsageError(str(e))
  print(json.dumps(summary, indent=2))


def _convert() -> dict:
  if FLAGS.from_workdir:
    summary = _export_workdir()
  elif FLAGS.to_torch:
    if not FLAGS.orbax_dir:
      raise app.UsageError("--to_torch needs --orbax_dir")
    summary = _to_torch()
  else:
    if not FLAGS.torch_ckpt:
      raise app.UsageError("--torch_ckpt is required (or use --to_torch --orbax_dir)")
    if FLAGS.model == "stargan_v2":
      summary = _stargan_to_jax()
    else:
      summary = _dagan_to_jax()
  return summary


if __name__ == "__main__":
  cli.run(main)

"""Checkpoint conversion, the ``launch.convert`` command as a library call: official PyTorch files -> Orbax, Orbax or
a training workdir -> the official PyTorch layout, and a workdir's inference networks -> an Orbax directory.

The name tables and layout rules live in ``jaxreenact/checkpoint/``; this module picks the direction, reads and
writes the files and returns a summary. User errors raise ``ValueError`` / ``FileNotFoundError`` naming the option
(``loading.CheckpointError`` and ``naming.ConversionError`` are ``ValueError`` too).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
from absl import logging  # the launch commands' log (stderr), as before the move

from jaxreenact.checkpoint import fan_convert, orbax_io, stargan_v2_convert, torch_convert
from jaxreenact.inference import loading
from jaxreenact.models import dagan, stargan_v2
from jaxreenact.train.dagan_runner import model_config as dagan_model_config

MODELS = ("stargan_v2", "dagan")


@dataclasses.dataclass
class Options:
  """What ``launch.convert`` converts; its flags fill this one to one (see the flags' help)."""
  model: str
  out: str
  torch_ckpt: str | None = None
  wing_ckpt: str | None = None
  depth_encoder: str | None = None
  depth_decoder: str | None = None
  to_torch: bool = False
  orbax_dir: str | None = None
  from_workdir: str | None = None
  metadata_json: str | None = None
  config: Any = None  # a launch config (ml_collections, e.g. configs/stargan_v2.py:afhq) or None

  def validate(self) -> None:
    """ValueError naming the option when a required one is missing."""
    if self.model is None or self.out is None:
      raise ValueError("--model and --out are required")
    if self.model not in MODELS:
      raise ValueError(f"--model={self.model!r}: choose one of {', '.join(MODELS)}")

  @property
  def out_dir(self) -> str:
    """The directory that must be writable: --out itself, or the folder of the --to_torch file."""
    return os.path.dirname(os.path.abspath(self.out)) if self.to_torch else self.out


def run(opts: Options) -> dict:
  """Converts as ``opts`` says; returns the summary (model, files written, modules)."""
  opts.validate()
  if opts.from_workdir:
    return export_workdir(opts)
  if opts.to_torch:
    if not opts.orbax_dir:
      raise ValueError("--to_torch needs --orbax_dir")
    return to_torch(opts)
  if not opts.torch_ckpt:
    raise ValueError("--torch_ckpt is required (or use --to_torch --orbax_dir)")
  return stargan_v2_to_jax(opts) if opts.model == "stargan_v2" else dagan_to_jax(opts)


def _stargan_v2_config(opts: Options, state_dicts=None) -> stargan_v2.Config:
  """--config's model, else the config read off the weights."""
  if opts.config is not None:
    return stargan_v2.Config(**dict(opts.config.model))
  if state_dicts is None:
    raise ValueError("--config is required")
  cfg = torch_convert.infer_stargan_v2_config(state_dicts, source=opts.torch_ckpt)
  logging.info("config inferred from %s: %s", opts.torch_ckpt, cfg)
  return cfg


def stargan_v2_to_jax(opts: Options) -> dict:
  obj = stargan_v2_convert.read_torch_file(opts.torch_ckpt)
  obj = {k: v for k, v in obj.items() if k != "fan" or opts.wing_ckpt is None}
  cfg = _stargan_v2_config(opts, {k: v for k, v in obj.items() if k != "fan"})
  variables = torch_convert.stargan_v2_from_torch(obj, cfg, source=opts.torch_ckpt)
  if opts.wing_ckpt:
    variables["fan"] = fan_convert.load_wing_checkpoint(opts.wing_ckpt)
  meta = {"model": "stargan_v2", "config": dataclasses.asdict(cfg), "source": os.path.abspath(opts.torch_ckpt),
          "modules": sorted(variables)}
  orbax_io.save_variables(opts.out, variables, meta)
  return meta


def _dagan_config(opts: Options) -> dagan.Config:
  """--config's model, else the official vox256 one."""
  if opts.config is None:
    return dagan.Config.vox256()
  return dagan_model_config(opts.config)


def dagan_to_jax(opts: Options) -> dict:
  cfg = _dagan_config(opts)
  variables = torch_convert.load_dagan_checkpoint(opts.torch_ckpt, cfg, depth_encoder_path=opts.depth_encoder,
                                                  depth_decoder_path=opts.depth_decoder)
  meta = {"model": "dagan", "config": json.loads(json.dumps(dataclasses.asdict(cfg))),
          "source": os.path.abspath(opts.torch_ckpt), "modules": sorted(variables)}
  orbax_io.save_variables(opts.out, variables, meta)
  return meta


def to_torch(opts: Options) -> dict:
  """An Orbax directory (this tool's or a training workdir's latest good step) -> the official PyTorch files."""
  import torch  # optional: only this direction needs it
  model = opts.model
  if loading.is_training_workdir(opts.orbax_dir):  # its latest good step, inference networks
    load = loading.load_stargan_v2 if model == "stargan_v2" else loading.load_dagan
    loaded = load(opts.orbax_dir)
    variables, meta = loaded.variables, {"model": model}
    cfg = loaded.config
  else:
    variables, meta = orbax_io.load_variables(opts.orbax_dir)
  if meta.get("model", model) != model:
    raise ValueError(f"{opts.orbax_dir} holds a {meta['model']} checkpoint, not {model}")
  if model == "stargan_v2":
    if "config" in meta:
      cfg = stargan_v2.Config(**meta["config"])
    elif not loading.is_training_workdir(opts.orbax_dir):
      cfg = _stargan_v2_config(opts)
    sds = torch_convert.stargan_v2_to_torch(variables, cfg)
  else:
    if opts.config is not None:
      cfg = _dagan_config(opts)
    elif not loading.is_training_workdir(opts.orbax_dir):
      cfg = loading.dagan_config_from_dict(meta.get("config"))
    sds = torch_convert.dagan_to_torch(variables, cfg)
  as_torch = lambda sd: {k: v if hasattr(v, "detach") else torch.from_numpy(np.array(v)) for k, v in sd.items()}  # noqa: E731
  out_dir = os.path.dirname(os.path.abspath(opts.out))
  os.makedirs(out_dir, exist_ok=True)
  written = [os.path.abspath(opts.out)]
  if model == "stargan_v2":
    obj = {name: as_torch(sd) for name, sd in sds.items()}
  else:  # official layout: the .pth.tar holds the three networks; the depth net is two separate files
    obj = {name: as_torch(sds[name]) for name in ("generator", "kp_detector", "discriminator") if name in sds}
    obj["epoch"] = 0
    for name, fname in (("depth_encoder", "encoder.pth"), ("depth_decoder", "depth.pth")):
      if name in sds:
        path = os.path.join(out_dir, fname)
        torch.save(as_torch(sds[name]), path)
        written.append(path)
  torch.save(obj, opts.out)
  return {"model": model, "written": written, "modules": sorted(k for k in obj if k != "epoch")}


def export_workdir(opts: Options) -> dict:
  """The inference networks of a training workdir's latest good step -> an Orbax directory (e.g. to ship them)."""
  extra = {}
  if opts.metadata_json:
    try:
      with open(opts.metadata_json) as f:
        extra = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"--metadata_json={opts.metadata_json}: {e}") from None
    if not isinstance(extra, dict):
      raise ValueError(f"--metadata_json={opts.metadata_json}: expected a JSON object")
  load = loading.load_stargan_v2 if opts.model == "stargan_v2" else loading.load_dagan
  try:
    loaded = load(opts.from_workdir)
  except loading.CheckpointError as e:
    raise ValueError(f"--from_workdir: {e}") from None
  if loaded.kind != "workdir":
    raise ValueError(f"--from_workdir={opts.from_workdir}: not a training workdir (found a {loaded.kind} "
                     f"checkpoint)")
  return loading.export_inference_weights(loaded, opts.out, **extra)

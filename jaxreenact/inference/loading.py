"""``--checkpoint`` for every inference command: a training workdir, a ``launch.convert`` Orbax directory, or an
official PyTorch file (converted on the fly).

- Training workdir (``WORKDIR/config.json`` + ``WORKDIR/checkpoints/<step>/state``): the newest step that restores
  (or ``step``), reading only the entries inference uses (Orbax partial restore; no optimiser state): StarGAN v2
  the EMA networks (as the official sampler/evaluator does) and the frozen FAN; DaGAN ``params`` (kp_detector,
  generator) and the frozen ``depth`` network.
- Orbax directory written by ``launch.convert`` (``variables/`` + ``jaxreenact_metadata.json``); ``shipped:<name>``
  is such a directory inside the package (``jaxreenact.shipped``).
- PyTorch: StarGAN v2 ``*_nets_ema.ckpt`` (config read off the weights), DaGAN ``*.pth.tar`` plus the depth
  ``encoder.pth`` / ``depth.pth``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from jaxreenact import shipped
from jaxreenact.checkpoint import depth_convert, orbax_io, stargan_v2_convert, torch_convert
from jaxreenact.checkpoint.fan_convert import load_wing_checkpoint
from jaxreenact.checkpoint.runs import CheckpointError, restore_training_state  # noqa: F401 - part of this API
from jaxreenact.models import dagan, stargan_v2

STARGAN_MODULES = ("generator", "mapping_network", "style_encoder")
# What inference reads of a training checkpoint (never the optimiser states, the step counter or the rng).
STARGAN_ITEMS = ("ema", "fan")  # the EMA networks (as the official sampler) and the frozen FAN
DAGAN_ITEMS = ("params", "depth")  # kp_detector, generator (discriminator unused) and the frozen depth network


@dataclasses.dataclass
class Loaded:
  """Variables of the inference networks and where they came from."""
  model: str  # "stargan_v2" | "dagan"
  config: Any  # stargan_v2.Config | dagan.Config
  variables: dict[str, Any]  # {module: Flax variables}
  source: str
  kind: str  # "workdir" | "orbax" | "torch"
  step: int | None = None


RANDOM_PREFIX = "random:"


def random_variant(path: str | os.PathLike) -> str | None:
  """'tiny' for ``--checkpoint=random:tiny`` (freshly initialised weights, for pipeline checks), else None."""
  s = os.fspath(path)
  return s[len(RANDOM_PREFIX):] if s.startswith(RANDOM_PREFIX) else None


def _kind(path: Path) -> str:
  if path.is_file():
    return "torch"
  if (path / "variables").is_dir():
    return "orbax"
  if (path / "checkpoints").is_dir() or (path / "config.json").is_file():
    return "workdir"
  raise CheckpointError(f"--checkpoint={path}: not a training workdir (config.json + checkpoints/), an Orbax "
                        f"directory from launch.convert (variables/), nor a PyTorch checkpoint file")


def is_training_workdir(path: str | os.PathLike) -> bool:
  """True for a ``launch.train`` workdir (``checkpoints/`` or ``config.json``, no converted ``variables/``)."""
  p = Path(path)
  return p.is_dir() and not (p / "variables").is_dir() and ((p / "checkpoints").is_dir() or
                                                            (p / "config.json").is_file())


def _existing(path: str | os.PathLike) -> tuple[Path, str]:
  """(path, kind) of a checkpoint path that must exist; ``shipped:<name>`` names weights inside the package."""
  name = shipped.name_of(path)
  if name is not None:
    try:
      return shipped.path(name), "orbax"
    except (ValueError, FileNotFoundError) as e:
      raise CheckpointError(str(e)) from None
  p = Path(path)
  if not p.exists():
    raise CheckpointError(f"--checkpoint={path}: does not exist")
  return p, _kind(p)


def _restore_run(p: Path, step: int | None, model_name: str, label: str,
                 items: Sequence[str]) -> tuple[int, dict, dict]:
  """``restore_training_state`` (only ``items``) of a run directory that must have trained ``model_name``."""
  step, state, cfg_json = restore_training_state(p, step, items)
  if cfg_json.get("model_name", model_name) != model_name:
    raise CheckpointError(f"{p}: a {cfg_json.get('model_name')} run, not {label}")
  return step, state, cfg_json


def _drop_none(d: dict) -> dict:
  return {k: v for k, v in d.items() if v is not None}


# ------------------------------------------------------------------------------------------------------------
# StarGAN v2


def load_stargan_v2(path: str | os.PathLike, *, wing_ckpt: str | None = None, step: int | None = None,
                    config: Any = None) -> Loaded:
  """Generator, mapping network, style encoder (+ FAN when w_hpf > 0) ready for sampling.

  Args:
    path: workdir, Orbax directory or ``*_nets_ema.ckpt``.
    wing_ckpt: official ``wing.ckpt`` (FAN) — needed for w_hpf > 0 unless the checkpoint already holds ``fan``.
    step: workdir step (default: latest).
    config: a ``stargan_v2.Config`` overriding the one found with the weights.
  """
  variant = random_variant(path)
  if variant is not None:
    if variant not in stargan_v2.PRESETS and config is None:
      raise CheckpointError(f"--checkpoint=random:{variant}: unknown preset; use random:<"
                            f"{'|'.join(stargan_v2.PRESETS)}>")
    cfg = config or stargan_v2.Config.preset(variant)
    nets = stargan_v2.build(cfg)
    inputs = stargan_v2.dummy_inputs(cfg)
    rng = np.random.default_rng(0)
    variables = {m: jax.tree_util.tree_map_with_path(
        lambda p, s: _fresh_leaf(p, s, rng, gain=2.0),  # official he_init: kaiming normal, fan_in, relu gain
        jax.eval_shape(getattr(nets, m).init, jax.random.key(0), *inputs[m])) for m in STARGAN_MODULES}
    if cfg.w_hpf > 0 and not wing_ckpt:
      raise CheckpointError("a random w_hpf > 0 model still needs --wing_ckpt (FAN weights) for its masks")
    if wing_ckpt:
      variables["fan"] = load_wing_checkpoint(wing_ckpt)
    return Loaded("stargan_v2", cfg, variables, os.fspath(path), "random", None)
  p, kind = _existing(path)
  if kind == "workdir":
    step, state, cfg_json = _restore_run(p, step, "stargan_v2", "StarGAN v2", STARGAN_ITEMS)
    if "ema" not in state:
      raise CheckpointError(f"{p}: checkpoint state has no 'ema' entry (found {sorted(state)})")
    variables = {m: state["ema"][m] for m in STARGAN_MODULES}
    if state.get("fan") is not None:
      variables["fan"] = state["fan"]
    cfg = config or stargan_v2.Config(**_drop_none(dict(cfg_json.get("model", {}))))
  elif kind == "orbax":
    tree, meta = orbax_io.load_variables(p)
    if meta.get("model", "stargan_v2") != "stargan_v2":
      raise CheckpointError(f"{p}: holds a {meta['model']} checkpoint, not StarGAN v2")
    if config is None and "config" not in meta:
      raise CheckpointError(f"{p}: no config in {orbax_io.METADATA}; pass the config explicitly")
    cfg = config or stargan_v2.Config(**meta["config"])
    missing = [m for m in STARGAN_MODULES if m not in tree]
    if missing:
      raise CheckpointError(f"{p}: missing modules {missing} (found {sorted(tree)}); sampling needs "
                            f"{list(STARGAN_MODULES)}")
    variables = {m: tree[m] for m in (*STARGAN_MODULES, "fan") if m in tree}
  else:
    obj = stargan_v2_convert.read_torch_file(p)
    missing = [m for m in STARGAN_MODULES if m not in obj]
    if missing:
      raise CheckpointError(f"{p}: missing modules {missing} (found {sorted(obj)}); use the *_nets_ema.ckpt file")
    nets_only = {k: v for k, v in obj.items() if k in (*STARGAN_MODULES, "fan")}
    cfg = config or stargan_v2_convert.infer_config({k: v for k, v in nets_only.items() if k != "fan"},
                                                    source=os.fspath(p))
    variables = stargan_v2_convert.stargan_v2_from_torch(nets_only, cfg, source=os.fspath(p))
  if cfg.w_hpf > 0 and wing_ckpt:
    variables["fan"] = load_wing_checkpoint(wing_ckpt)
  if cfg.w_hpf > 0 and variables.get("fan") is None:
    raise CheckpointError(f"{p}: w_hpf={cfg.w_hpf} needs the FAN weights for the high-pass masks: pass "
                          f"--wing_ckpt=/path/to/wing.ckpt (the official file; nothing is downloaded)")
  return Loaded("stargan_v2", cfg, variables, os.fspath(p), kind, step)


# ------------------------------------------------------------------------------------------------------------
# DaGAN


def dagan_config_from_dict(d: dict | None, default: Any = None):
  """A dagan.Config from a config.json / metadata dict (nested sections), or ``default`` (vox256)."""
  if not d:
    return default or dagan.Config.vox256()
  d = dict(d)
  sections = {"kp_detector_params": dagan.KPDetectorParams, "discriminator_params": dagan.DiscriminatorParams}
  kw: dict[str, Any] = {}
  for k, v in d.items():
    if k in sections and isinstance(v, dict):
      kw[k] = sections[k](**_tuples(v))
    elif k == "generator_params" and isinstance(v, dict):
      g = dict(v)
      dm = g.pop("dense_motion_params", None)
      kw[k] = dagan.GeneratorParams(**_tuples(g), dense_motion_params=(
          None if dm is None else dagan.DenseMotionParams(**_tuples(dm)) if isinstance(dm, dict) else dm))
    elif k == "depth_widths" and v is not None:
      kw[k] = tuple(v)
    else:
      kw[k] = v
  return dagan.Config(**kw)


def random_dagan_variables(cfg, seed: int = 0) -> dict[str, Any]:
  """Freshly drawn variables for depth, kp_detector and generator without compiling the modules' ``init``.

  Shapes come from ``jax.eval_shape(init)``; values follow the init rules that matter for inference: conv
  kernels N(0, 1/fan_in), zero biases, unit norm scales, BatchNorm running stats (0, 1), the keypoint Jacobian
  head at its official init (zero kernel, identity bias, so Jacobians are invertible), attention γ = 0.
  (On a busy 2-core CPU the jitted ``init`` of the tiny networks takes about a minute; this takes a second.)
  """
  nets = dagan.build(cfg)
  size = max(64, dagan.min_image_size(cfg))  # DepthNet needs >= 64 px
  inputs = dagan.example_inputs(cfg, size)
  rng = np.random.default_rng(seed)
  out = {}
  for name in ("depth", "kp_detector", "generator"):
    shapes = jax.eval_shape(getattr(nets, name).init, jax.random.key(0), *inputs[name])
    out[name] = jax.tree_util.tree_map_with_path(lambda p, s: _fresh_leaf(p, s, rng), shapes)
  return out


def _fresh_leaf(path, s, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
  names = [getattr(k, "key", str(k)) for k in path]
  leaf, shape = names[-1], tuple(s.shape)
  if names[0] == "batch_stats":
    return np.ones(shape, np.float32) if leaf == "var" else np.zeros(shape, np.float32)
  if "jacobian" in names:
    if leaf == "bias":
      return np.tile(np.array([1.0, 0.0, 0.0, 1.0], np.float32), shape[0] // 4)
    return np.zeros(shape, np.float32)
  if leaf == "kernel":
    fan_in = int(np.prod(shape[:-1])) or 1
    return (rng.standard_normal(shape) * np.sqrt(gain / fan_in)).astype(np.float32)
  if leaf == "scale":
    return np.ones(shape, np.float32)
  if leaf in ("weight_u", "weight_v"):
    v = rng.standard_normal(shape).astype(np.float32)
    return v / (np.linalg.norm(v) + 1e-12)
  return np.zeros(shape, np.float32)  # biases, attention gamma


def _tuples(d: dict) -> dict:
  return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def load_dagan(path: str | os.PathLike, *, depth_encoder: str | None = None, depth_decoder: str | None = None,
               step: int | None = None, config: Any = None) -> Loaded:
  """Depth network, keypoint detector and generator ready for reenactment.

  Args:
    path: workdir, Orbax directory or official ``.pth.tar``.
    depth_encoder, depth_decoder: the depth files (``encoder.pth``, ``depth.pth``) — needed with a PyTorch
      checkpoint (the official .pth.tar does not hold the depth network) unless the checkpoint has ``depth``.
    config: a ``dagan.Config`` (default: the one stored with the weights, else ``Config.vox256()``).
  """
  variant = random_variant(path)
  if variant is not None:
    if variant not in dagan.PRESETS and config is None:
      raise CheckpointError(f"--checkpoint=random:{variant}: unknown preset; use random:<{'|'.join(dagan.PRESETS)}>")
    cfg = config or dagan.Config.preset(variant)
    return Loaded("dagan", cfg, random_dagan_variables(cfg), os.fspath(path), "random", None)
  p, kind = _existing(path)
  if kind == "workdir":
    step, state, cfg_json = _restore_run(p, step, "dagan", "DaGAN", DAGAN_ITEMS)
    params = state.get("params", {})
    variables = {k: params[k] for k in ("kp_detector", "generator") if k in params}
    if state.get("depth") is not None:
      variables["depth"] = state["depth"]
    model_dict = cfg_json.get("model")
    notes = p / "run_notes.json"  # launch.train writes the resolved dagan.Config there (config.json has a preset)
    if notes.is_file():
      import json
      with open(notes) as f:
        model_dict = json.load(f).get("model_config", model_dict)
    cfg = config or dagan_config_from_dict(model_dict)
  elif kind == "orbax":
    tree, meta = orbax_io.load_variables(p)
    if meta.get("model", "dagan") != "dagan":
      raise CheckpointError(f"{p}: holds a {meta['model']} checkpoint, not DaGAN")
    cfg = config or dagan_config_from_dict(meta.get("config"))
    variables = {k: tree[k] for k in ("depth", "kp_detector", "generator") if k in tree}
  else:
    cfg = config or dagan.Config.vox256()
    variables = torch_convert.load_dagan_checkpoint(p, cfg)
    variables.pop("discriminator", None)
  if depth_encoder or depth_decoder:
    if not (depth_encoder and depth_decoder):
      raise CheckpointError("give both --depth_encoder (encoder.pth) and --depth_decoder (depth.pth)")
    variables["depth"], _ = depth_convert.load_depth_files(os.fspath(depth_encoder), os.fspath(depth_decoder),
                                                           dagan.build(cfg).depth)
  missing = [k for k in ("kp_detector", "generator") if k not in variables]
  if missing:
    raise CheckpointError(f"{p}: missing networks {missing} (found {sorted(variables)})")
  if "depth" not in variables:
    raise CheckpointError(f"{p}: no depth network: pass --depth_encoder=encoder.pth --depth_decoder=depth.pth "
                          f"(the ResNet-18 files released with DaGAN; nothing is downloaded)")
  return Loaded("dagan", cfg, variables, os.fspath(p), kind, step)


# ------------------------------------------------------------------------------------------------------------
# export


def export_inference_weights(loaded: Loaded, out_dir: str | os.PathLike, **metadata: Any) -> dict[str, Any]:
  """Writes the inference networks of ``loaded`` as a ``launch.convert`` Orbax directory (no optimiser state, no
  discriminator, no frozen VGG) that every inference command reads; returns the metadata written."""
  config = json.loads(json.dumps(dataclasses.asdict(loaded.config), default=str))
  meta = {"model": loaded.model, "config": config, "source": loaded.source, "source_kind": loaded.kind,
          "step": loaded.step, "modules": sorted(loaded.variables), **metadata}
  orbax_io.save_variables(out_dir, loaded.variables, meta)
  return meta

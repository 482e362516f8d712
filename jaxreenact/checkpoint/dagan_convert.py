"""DaGAN: official PyTorch state_dicts / ``.pth.tar`` checkpoints <-> Flax variables.

Naming rule (STYLE.md): torch ``dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight`` is Flax
``params/dense_motion_network/hourglass/encoder/down_blocks_0/conv/kernel``; numeric parts (and the
discriminator's scale keys after ``discs``) join the previous name with ``_``. Leaves:

==========================  ==============================================  =========================
torch leaf                  Flax                                            transform
==========================  ==============================================  =========================
``weight`` (4-D)            ``params/.../kernel``                           OIHW -> HWIO
``weight`` (1-D, norms)     ``params/.../scale``                            copy
``bias``, ``gamma``         ``params/.../bias``, ``params/.../gamma``       copy
``running_mean/var``        ``batch_stats/.../mean|var``                    copy
``num_batches_tracked``     dropped (re-created as 0 on export)
``weight_orig``             ``params/.../kernel`` (spectral-norm conv)      OIHW -> HWIO
``weight_u`` / ``weight_v`` ``spectral/.../weight_u|weight_v``             copy (torch layout)
``down.weight`` buffers     checked against the fixed Gaussian, dropped     (recomputed on export)
==========================  ==============================================  =========================

The depth network (``encoder.pth`` / ``depth.pth``) goes through :mod:`jaxreenact.checkpoint.depth_convert`.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.checkpoint import depth_convert, torch_io
from jaxreenact.checkpoint.naming import ConversionError, strip_prefix, to_numpy
from jaxreenact.layers.antialias import gaussian_kernel
from jaxreenact.models import dagan

NETWORKS = ("kp_detector", "generator", "discriminator")
STATE_DICT_NAMES = ("depth_encoder", "depth_decoder", *NETWORKS)
# Flax module names whose "_<digits>" suffix is part of the torch attribute name (SPADE decoder), not an index.
_LITERAL_UNDERSCORE = {"G_middle", "up", "conv", "norm"}


# ---------------------------------------------------------------------------------------------- naming
def torch_key_to_path(key: str, ndim: int) -> tuple[tuple[str, ...], Any] | None:
  """torch key -> ((collection, *modules, leaf), transform) or None for dropped entries."""
  parts = key.split(".")
  leaf, mods = parts[-1], []
  for p in parts[:-1]:
    if mods and (p.isdigit() or mods[-1] == "discs"):
      mods[-1] = f"{mods[-1]}_{p}"
    else:
      mods.append(p)
  oihw = lambda w: np.transpose(w, (2, 3, 1, 0))  # noqa: E731
  same = lambda w: w  # noqa: E731
  if leaf == "num_batches_tracked":
    return None
  if leaf == "weight":
    if ndim == 4:
      return ("params", *mods, "kernel"), oihw
    if ndim == 1:
      return ("params", *mods, "scale"), same
  if leaf == "weight_orig" and ndim == 4:
    return ("params", *mods, "kernel"), oihw
  if leaf in ("weight_u", "weight_v"):
    return ("spectral", *mods, leaf), same
  if leaf == "running_mean":
    return ("batch_stats", *mods, "mean"), same
  if leaf == "running_var":
    return ("batch_stats", *mods, "var"), same
  if leaf in ("bias", "gamma"):
    return ("params", *mods, leaf), same
  return ("params", *mods, leaf), same  # unknown leaves fail the expected-path check


def _module_to_torch(mods: tuple[str, ...]) -> str:
  out = []
  for m in mods:
    head, sep, tail = m.rpartition("_")
    if sep and head and (tail.isdigit() or head == "discs") and head not in _LITERAL_UNDERSCORE:
      out.append(f"{head}.{tail}")
    else:
      out.append(m)
  return ".".join(out)


def path_to_torch_key(path: tuple[str, ...], spectral_kernels: set[tuple[str, ...]]) -> tuple[str, Any]:
  """(collection, *modules, leaf) -> (torch key, transform from the Flax array)."""
  collection, mods, leaf = path[0], path[1:-1], path[-1]
  prefix = _module_to_torch(mods)
  hwio = lambda w: np.transpose(w, (3, 2, 0, 1))  # noqa: E731
  same = lambda w: w  # noqa: E731
  if collection == "batch_stats":
    return f"{prefix}.running_{leaf}", same
  if collection == "spectral":
    return f"{prefix}.{leaf}", same
  if leaf == "kernel":
    name = "weight_orig" if mods in spectral_kernels else "weight"
    return f"{prefix}.{name}", hwio
  if leaf == "scale":
    return f"{prefix}.weight", same
  return f"{prefix}.{leaf}", same


def _gaussian_buffers(cfg: dagan.Config, network: str) -> dict[str, np.ndarray]:
  """The fixed AntiAliasInterpolation2d buffers a network's torch state_dict carries."""
  if network == "kp_detector" and cfg.kp_detector_params.scale_factor != 1:
    return {"down.weight": gaussian_kernel(cfg.kp_channels, cfg.kp_detector_params.scale_factor)}
  dm = cfg.generator_params.dense_motion_params
  if network == "generator" and dm is not None and dm.scale_factor != 1:
    return {"dense_motion_network.down.weight": gaussian_kernel(cfg.num_channels, dm.scale_factor)}
  return {}


def expected_variables(cfg: dagan.Config) -> dict[str, Any]:
  """Shapes of the kp_detector / generator / discriminator Flax variables (``jax.eval_shape``; no compute)."""
  nets = dagan.build(cfg)
  inputs = dagan.example_inputs(cfg)
  return {name: jax.eval_shape(getattr(nets, name).init, jax.random.key(0), *inputs[name])
          for name in NETWORKS}


# ------------------------------------------------------------------------------------------ torch -> flax
def network_from_torch(state_dict: Mapping[str, Any], expected: Mapping[str, Any], cfg: dagan.Config, network: str,
                       source: str) -> dict[str, Any]:
  """One network's torch state_dict -> Flax variables, validated against ``expected`` shapes.

  Raises:
    ConversionError (a ValueError) naming ``source``, the key(s), expected and found shapes.
  """
  want = {p: tuple(v.shape) for p, v in flax.traverse_util.flatten_dict(dict(expected)).items()}
  spectral_kernels = {p[1:-1] for p in want if p[0] == "spectral"}
  buffers = _gaussian_buffers(cfg, network)
  found: dict[tuple[str, ...], np.ndarray] = {}
  mismatch: list[str] = []
  unknown: list[str] = []
  other: list[str] = []
  seen_buffers = set()
  mismatched: set[tuple[str, ...]] = set()
  for key, value in strip_prefix(state_dict).items():
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
      unknown.append(f"{key} (not a tensor: {type(value).__name__})")
      continue
    arr = to_numpy(value)
    if key in buffers:
      seen_buffers.add(key)
      ref = buffers[key]
      if arr.shape != ref.shape:
        mismatch.append(f"{key}: expected {ref.shape}, found {arr.shape}")
      elif not np.allclose(arr, ref, rtol=1e-5, atol=1e-7):
        other.append(f"{key}: fixed Gaussian anti-alias kernel differs from the expected one "
                     f"(max abs diff {np.abs(arr - ref).max():.3g})")
      continue
    rule = torch_key_to_path(key, arr.ndim)
    if rule is None:
      continue
    path, fn = rule
    if path[0] == "params" and path[-1] == "kernel" and key.endswith(".weight") and path[1:-1] in spectral_kernels:
      unknown.append(f"{key} (this conv is spectral-normalised: expected {key}_orig, _u, _v)")
      continue
    if path not in want:
      unknown.append(f"{key} (shape {tuple(arr.shape)})")
      continue
    conv = fn(arr)
    if tuple(conv.shape) != want[path]:
      mismatched.add(path)
      mismatch.append(f"{key}: expected {_torch_shape(path, want[path])}, found {tuple(arr.shape)}")
      continue
    found[path] = np.ascontiguousarray(conv, dtype=np.float32)
  missing = [f"{path_to_torch_key(path, spectral_kernels)[0]} (expected shape {_torch_shape(path, shape)})"
             for path, shape in want.items() if path not in found and path not in mismatched]
  missing += [f"{key} (expected shape {ref.shape})" for key, ref in buffers.items() if key not in seen_buffers]
  if mismatch or unknown or missing or other:
    parts = [_listing("shape mismatch", mismatch), _listing("unknown key", unknown), _listing("missing key", missing),
             *other]
    hint = ""
    if network == "generator" and any(u.startswith("decoder.") for u in unknown) and \
        cfg.generator == "DepthAwareGenerator":
      hint = " (hint: decoder.* keys belong to the SPADE model: Config.generator='SPADEDepthAwareGenerator')"
    elif network == "generator" and any(m.startswith("decoder.") for m in missing):
      hint = " (hint: this looks like a DepthAwareGenerator checkpoint: Config.generator='DepthAwareGenerator')"
    elif any(m.startswith(("kp.", "dense_motion_network.hourglass.encoder.down_blocks.0.conv.",
                           "discs.1.down_blocks.0.conv.")) for m in mismatch):
      hint = " (hint: check Config.num_kp / --kp_num and rgbd)"
    raise ConversionError(f"{source}: " + "; ".join(p for p in parts if p) + hint)
  return jax.tree.map(jnp.asarray, flax.traverse_util.unflatten_dict(found))


def _torch_shape(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
  """The torch shape of a Flax leaf (HWIO kernels back to OIHW)."""
  if path[-1] == "kernel" and len(shape) == 4:
    return (shape[3], shape[2], shape[0], shape[1])
  return tuple(shape)


def _listing(what: str, items: list[str], limit: int = 8) -> str:
  if not items:
    return ""
  more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
  return f"{what} " + ", ".join(items[:limit]) + more


def dagan_from_torch(state_dicts: Mapping[str, Mapping[str, Any]], cfg: dagan.Config,
                     source: str = "state_dicts") -> dict[str, Any]:
  """{"depth_encoder", "depth_decoder", "kp_detector", "generator", "discriminator": state_dict} -> variables.

  Any subset may be given (the depth pair together). Returns {"depth", "kp_detector", "generator",
  "discriminator": Flax variables} for the networks present.
  """
  unknown = sorted(set(state_dicts) - set(STATE_DICT_NAMES))
  if unknown:
    raise ConversionError(f"{source}: unknown entries {unknown}; expected a subset of {list(STATE_DICT_NAMES)}")
  if ("depth_encoder" in state_dicts) != ("depth_decoder" in state_dicts):
    raise ConversionError(f"{source}: depth_encoder and depth_decoder must be given together")
  expected = expected_variables(cfg)
  out: dict[str, Any] = {}
  if "depth_encoder" in state_dicts:
    out["depth"], _ = depth_convert.depth_from_torch(
        state_dicts["depth_encoder"], state_dicts["depth_decoder"], dagan.build(cfg).depth,
        source_names=(f"{source}[depth_encoder]", f"{source}[depth_decoder]"))
  for name in NETWORKS:
    if name in state_dicts:
      out[name] = network_from_torch(state_dicts[name], expected[name], cfg, name, f"{source}[{name}]")
  return out


# ------------------------------------------------------------------------------------------ flax -> torch
def network_to_torch(variables: Mapping[str, Any], cfg: dagan.Config, network: str) -> dict[str, Any]:
  """One network's Flax variables -> torch state_dict (torch tensors, official keys, buffers re-created)."""
  import torch

  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables) if hasattr(variables, "unfreeze")
                                         else dict(variables))
  spectral_kernels = {p[1:-1] for p in flat if p[0] == "spectral"}
  sd: dict[str, Any] = {}
  for path, value in flat.items():
    key, fn = path_to_torch_key(path, spectral_kernels)
    sd[key] = torch.from_numpy(np.array(fn(np.asarray(value, dtype=np.float32))))  # a writable copy
    if path[0] == "batch_stats" and path[-1] == "mean":
      sd[key.rsplit(".", 1)[0] + ".num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
  for key, ref in _gaussian_buffers(cfg, network).items():
    scale = cfg.kp_detector_params.scale_factor if network == "kp_detector" else \
        cfg.generator_params.dense_motion_params.scale_factor
    sd[key] = _torch_gaussian_kernel(ref.shape[0], scale)
  return sd


def _torch_gaussian_kernel(channels: int, scale: float):
  """The AntiAliasInterpolation2d buffer computed with torch ops, bit-identical to the official module
  (numpy's exp differs from torch's by up to 1 ulp, which is fine for import checks but not for export)."""
  import torch

  sigma = (1 / scale - 1) / 2
  size = 2 * round(sigma * 4) + 1
  axis = torch.arange(size, dtype=torch.float32)
  g = torch.exp(-(axis - (size - 1) / 2) ** 2 / (2 * sigma ** 2))  # per-axis Gaussian, float32
  kernel = g.view(-1, 1) * g.view(1, -1)
  kernel = kernel / torch.sum(kernel)
  return kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1)


def dagan_to_torch(variables: Mapping[str, Any], cfg: dagan.Config) -> dict[str, dict[str, Any]]:
  """Inverse of :func:`dagan_from_torch`: {"depth_encoder", "depth_decoder", "kp_detector", "generator",
  "discriminator": torch state_dict} for the networks present in ``variables``."""
  out: dict[str, dict[str, Any]] = {}
  unknown = sorted(set(variables) - {"depth", *NETWORKS})
  if unknown:
    raise ConversionError(f"dagan_to_torch: unknown networks {unknown}; expected a subset of "
                          f"{['depth', *NETWORKS]}")
  if "depth" in variables:
    enc, dec = depth_convert.depth_to_torch(variables["depth"], dagan.build(cfg).depth)
    out["depth_encoder"], out["depth_decoder"] = enc, dec
  for name in NETWORKS:
    if name in variables:
      out[name] = network_to_torch(variables[name], cfg, name)
  return out


# -------------------------------------------------------------------------------------------- files
def load_dagan_checkpoint(ckpt_path: str | os.PathLike, cfg: dagan.Config,
                          depth_encoder_path: str | os.PathLike | None = None,
                          depth_decoder_path: str | os.PathLike | None = None) -> dict[str, Any]:
  """Loads an official DaGAN ``.pth.tar`` (+ optionally the depth ``encoder.pth``/``depth.pth``) into Flax variables.

  The checkpoint is the dict written by the official Logger: {generator, discriminator, kp_detector,
  optimizer_*, epoch}; optimizer states and the epoch are ignored, DDP ``module.`` prefixes stripped.
  Loaded with ``torch.load(weights_only=True)``.

  Returns:
    {"kp_detector", "generator", ["discriminator" if the file has it], ["depth" if both depth files given]}.
  """

  path = os.fspath(ckpt_path)
  ckpt = torch_io.load(path, "a DaGAN checkpoint (.pth.tar)")
  for required in ("kp_detector", "generator"):
    if required not in ckpt:
      raise ConversionError(f"{path}: no '{required}' entry (found {sorted(ckpt)}); expected the official DaGAN "
                            f"checkpoint layout {{generator, discriminator, kp_detector, optimizer_*, epoch}}")
  state_dicts = {name: ckpt[name] for name in NETWORKS if name in ckpt}
  if (depth_encoder_path is None) != (depth_decoder_path is None):
    raise ConversionError(f"{path}: give both depth_encoder_path and depth_decoder_path, or neither")
  out = dagan_from_torch(state_dicts, cfg, source=path)
  if depth_encoder_path is not None:
    out["depth"], _ = depth_convert.load_depth_files(os.fspath(depth_encoder_path), os.fspath(depth_decoder_path),
                                                     dagan.build(cfg).depth)
  return out

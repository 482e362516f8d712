"""StarGAN v2: official PyTorch checkpoints <-> Flax variables."""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import numpy as np

from jaxreenact.checkpoint import fan_convert, torch_io
from jaxreenact.checkpoint.naming import ConversionError, convert_from_torch, convert_to_torch, strip_prefix, to_numpy
from jaxreenact.layers.filters import HIGH_PASS_KERNEL
from jaxreenact.models import stargan_v2

log = logging.getLogger(__name__)
KNOWN_MODULES = (*stargan_v2.MODULES, "fan")


def stargan_v2_from_torch(state_dicts: Mapping[str, Mapping[str, Any]], cfg: stargan_v2.Config,
                          source: str = "state_dicts") -> dict[str, Any]:
  """{module: torch state_dict} -> {module: Flax variables}, validated against ``cfg``.

  Handles the released files' quirks: ``module.`` prefixes, the CelebA-HQ generator without ``hpf.filter``
  (synthesised from ``w_hpf``), and a ``fan`` entry (converted with the FAN converter).
  """
  unknown = sorted(set(state_dicts) - set(KNOWN_MODULES))
  if unknown:
    raise ConversionError(f"{source}: unknown modules {unknown}; expected a subset of {list(KNOWN_MODULES)}")
  nets = stargan_v2.build(cfg)
  inputs = stargan_v2.dummy_inputs(cfg)
  import jax
  out = {}
  for name, sd in state_dicts.items():
    where = f"{source}[{name}]"
    if name == "fan":
      out["fan"] = fan_convert.fan_from_torch(sd, source=where)
      continue
    module = nets.modules()[name]
    expected = jax.eval_shape(module.init, jax.random.key(0), *inputs[name])
    sd = strip_prefix(sd)
    skip = ()
    if name == "generator":
      skip = ("hpf.filter",)
      _check_hpf_filter(sd, cfg, where)
    out[name] = convert_from_torch(sd, expected, where, skip=skip)
  return out


def _check_hpf_filter(sd: Mapping[str, Any], cfg: stargan_v2.Config, where: str) -> None:
  if "hpf.filter" not in sd:
    if cfg.w_hpf > 0:
      log.info("%s: no 'hpf.filter' buffer (released CelebA-HQ file); synthesising it from w_hpf=%s", where, cfg.w_hpf)
    return
  if cfg.w_hpf <= 0:
    raise ConversionError(f"{where}: unknown key hpf.filter — the checkpoint has a high-pass filter but the config "
                          f"says w_hpf={cfg.w_hpf}")
  found = to_numpy(sd["hpf.filter"])
  want = HIGH_PASS_KERNEL / cfg.w_hpf
  if found.shape != want.shape:
    raise ConversionError(f"{where}: shape mismatch: hpf.filter: expected {want.shape}, found {found.shape}")
  if not np.allclose(found, want, atol=1e-6):
    raise ConversionError(f"{where}: hpf.filter {found.tolist()} is not the official kernel / w_hpf={cfg.w_hpf}; "
                          f"check --config w_hpf")


def stargan_v2_to_torch(variables: Mapping[str, Any], cfg: stargan_v2.Config) -> dict[str, dict[str, np.ndarray]]:
  """{module: Flax variables} -> {module: torch-layout state_dict of numpy arrays} (official keys)."""
  out = {}
  for name, v in variables.items():
    if name == "fan":
      out["fan"] = fan_convert.fan_to_torch(v)
      continue
    if name not in stargan_v2.MODULES:
      raise ConversionError(f"unknown module {name!r}; expected one of {list(KNOWN_MODULES)}")
    sd = convert_to_torch(v)
    if name == "generator" and cfg.w_hpf > 0:
      sd["hpf.filter"] = (HIGH_PASS_KERNEL / cfg.w_hpf).astype(np.float32)
    out[name] = sd
  return out


def read_torch_file(path: str | os.PathLike) -> dict[str, Any]:
  """torch.load(weights_only=True) with a clear error; returns the top-level dict."""
  return dict(torch_io.load(path, "a StarGAN v2 checkpoint (a dict of state_dicts, *_nets_ema.ckpt)"))


def load_stargan_v2_checkpoint(path: str | os.PathLike, cfg: stargan_v2.Config) -> dict[str, Any]:
  """Loads an official ``*_nets.ckpt`` / ``*_nets_ema.ckpt`` ({module: state_dict}) into Flax variables."""
  obj = read_torch_file(path)
  for k, v in obj.items():
    if not isinstance(v, dict):
      raise ConversionError(f"{os.fspath(path)}[{k}]: expected a state_dict, found {type(v).__name__} "
                            f"(is this an _optims.ckpt file?)")
  return stargan_v2_from_torch(obj, cfg, source=os.fspath(path))


def infer_config(state_dicts: Mapping[str, Mapping[str, Any]], source: str = "checkpoint") -> stargan_v2.Config:
  """Reads img_size, num_domains, latent_dim, style_dim, max_conv_dim and w_hpf off the weight shapes."""
  sds = {k: strip_prefix(v) for k, v in state_dicts.items()}

  def shape(mod, key):
    try:
      return tuple(to_numpy(sds[mod][key]).shape)
    except KeyError:
      raise ConversionError(f"{source}: cannot infer the config: missing {mod}.{key}") from None

  ref = "generator" if "generator" in sds else ("style_encoder" if "style_encoder" in sds else "discriminator")
  if ref == "generator":
    dim_in = shape("generator", "from_rgb.weight")[0]
  else:
    dim_in = shape(ref, ("shared" if ref == "style_encoder" else "main") + ".0.weight")[0]
  img_size = 2**14 // dim_in
  for mod, prefix in (("style_encoder", "shared"), ("discriminator", "main")):
    if mod in sds:  # the E/D trunk has log2(img_size) - 2 ResBlks: img_size without assuming the base width
      n_blocks = len({k.split(".")[1] for k in sds[mod] if k.startswith(prefix + ".") and ".conv1." in k})
      img_size = 2**(n_blocks + 2)
      break
  kw: dict[str, Any] = {"img_size": img_size}
  if dim_in != 2**14 // img_size:
    kw["base_dim"] = dim_in
  if "mapping_network" in sds:
    mn = sds["mapping_network"]
    kw["latent_dim"] = shape("mapping_network", "shared.0.weight")[1]
    kw["style_dim"] = shape("mapping_network", "unshared.0.6.weight")[0]
    kw["num_domains"] = len({k.split(".")[1] for k in mn if k.startswith("unshared.")})
  elif "discriminator" in sds:
    kw["num_domains"] = shape("discriminator", f"main.{int(np.log2(img_size)) + 2}.weight")[0]
  # The bottleneck width is min(max_conv_dim, 1024) in G and min(max_conv_dim, 4096) in E/D.
  n_trunk = int(np.log2(img_size)) - 2
  widths = []
  if "generator" in sds:
    n_enc = len({k.split(".")[1] for k in sds["generator"] if k.startswith("encode.")})
    widths.append(shape("generator", f"encode.{n_enc - 1}.conv2.weight")[0])
  for mod, prefix in (("style_encoder", "shared"), ("discriminator", "main")):
    if mod in sds:
      widths.append(shape(mod, f"{prefix}.{n_trunk + 2}.weight")[0])
  kw["max_conv_dim"] = max(widths)
  if "generator" in sds:
    g = sds["generator"]
    n_enc = len({k.split(".")[1] for k in g if k.startswith("encode.")})
    has_hpf = n_enc - 2 > int(np.log2(img_size)) - 4
    w_hpf = 0.0
    if has_hpf:
      w_hpf = float(8.0 / to_numpy(g["hpf.filter"])[1, 1]) if "hpf.filter" in g else 1.0
    kw["w_hpf"] = w_hpf
    if "style_dim" not in kw:
      kw["style_dim"] = shape("generator", "decode.0.norm1.fc.weight")[1]
  return stargan_v2.Config(**kw)

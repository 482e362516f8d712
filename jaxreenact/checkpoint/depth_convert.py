"""monodepth2 depth weights used by DaGAN (``encoder.pth`` + ``depth.pth``) <-> Flax ``DepthNet`` variables.

Naming follows ``jaxreenact.checkpoint.naming`` with one prefix per file: ``encoder.pth`` key
``encoder.layer1.0.bn1.running_mean`` -> ``batch_stats/encoder/encoder/layer1_0/bn1/mean``; ``depth.pth`` key
``decoder.10.conv.weight`` -> ``params/decoder/decoder_10/conv/kernel``. ``num_batches_tracked`` and the
non-tensor entries ``height``/``width``/``use_stereo`` that monodepth2 writes into ``encoder.pth`` are not
variables: they are returned as metadata and written back by :func:`depth_to_torch`, so a round trip is exact.
"""
from __future__ import annotations

import collections
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.checkpoint import torch_io
from jaxreenact.checkpoint.naming import ConversionError, convert_from_torch, convert_to_torch, strip_prefix, to_numpy
from jaxreenact.models.dagan.depth import EXPANSION, RESNET_PRESETS, DepthNet

ENCODER_EXTRAS = ("height", "width", "use_stereo")  # monodepth2 trainer.save_model adds these to encoder.pth
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def depth_net(cfg_or_fields: Any = None) -> DepthNet:
  """A ``DepthNet`` from an instance, a mapping / ConfigDict of its fields, or None (ResNet-18 defaults).

  Keys that are not DepthNet fields (e.g. checkpoint paths in a config section) are ignored.
  """
  if isinstance(cfg_or_fields, DepthNet):
    return cfg_or_fields
  if cfg_or_fields is None:
    return DepthNet()
  fields = cfg_or_fields.to_dict() if hasattr(cfg_or_fields, "to_dict") else dict(cfg_or_fields)
  known = set(DepthNet.__dataclass_fields__) - {"parent", "name"}
  kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in fields.items() if k in known}
  return DepthNet(**kwargs)


def infer_depth_fields(encoder_sd: Mapping[str, Any], decoder_sd: Mapping[str, Any] | None = None,
                       source_names: Sequence[str] = ("encoder.pth", "depth.pth")) -> dict[str, Any]:
  """DepthNet fields read off official state dicts (block type, blocks per stage, widths, decoder widths)."""
  keys = set(strip_prefix(encoder_sd))
  if "encoder.conv1.weight" not in keys:
    raise ConversionError(f"{source_names[0]}: key 'encoder.conv1.weight' not found; not a monodepth2 ResnetEncoder")
  block = "bottleneck" if "encoder.layer1.0.conv3.weight" in keys else "basic"
  layers = tuple(len({k.split(".")[2] for k in keys if k.startswith(f"encoder.layer{i}.")}) for i in range(1, 5))
  for i in range(1, 5):
    for key in (f"encoder.layer{i}.0.conv1.weight", "encoder.fc.weight"):
      if key not in keys:
        raise ConversionError(f"{source_names[0]}: key {key!r} not found; cannot infer the ResNet layout")
  # conv1 of either block type outputs the stage's `planes`
  widths = tuple(int(to_numpy(encoder_sd[f"encoder.layer{i}.0.conv1.weight"]).shape[0]) for i in range(1, 5))
  fields: dict[str, Any] = {"block": block, "layers": layers, "widths": widths,
                            "num_classes": int(to_numpy(encoder_sd["encoder.fc.weight"]).shape[0])}
  fields["num_layers"] = next((n for n, p in RESNET_PRESETS.items() if p == (block, layers)), 0)
  if decoder_sd is not None:
    dec = strip_prefix(decoder_sd)
    for i in range(5):
      if f"decoder.{2 * (4 - i)}.conv.conv.weight" not in dec:
        raise ConversionError(f"{source_names[1]}: key 'decoder.{2 * (4 - i)}.conv.conv.weight' not found; "
                              "cannot infer the decoder widths")
    fields["num_ch_dec"] = tuple(int(to_numpy(dec[f"decoder.{2 * (4 - i)}.conv.conv.weight"]).shape[0])
                                 for i in range(5))
    idx = {int(k.split(".")[1]) for k in dec if k.startswith("decoder.") and k.split(".")[1].isdigit()}
    n_disp = len({i for i in idx if i >= 10})
    fields["scales"] = tuple(range(n_disp))  # official: scales=range(4)
  return fields


def torch_key_order(net: DepthNet) -> tuple[list[str], list[str]]:
  """Official ``state_dict()`` key order of (ResnetEncoder, DepthDecoder) for this architecture."""
  block, layers = net.resolved()
  e = EXPANSION[block]
  w = tuple(net.widths)
  bn = lambda p: [f"{p}.{leaf}" for leaf in _BN]
  enc = ["encoder.conv1.weight"] + bn("encoder.bn1")
  cin = w[0]
  for i, (n, width) in enumerate(zip(layers, w)):
    for j in range(n):
      p = f"encoder.layer{i + 1}.{j}"
      convs = ("conv1", "conv2") if block == "basic" else ("conv1", "conv2", "conv3")
      for k, c in enumerate(convs):
        enc += [f"{p}.{c}.weight"] + bn(f"{p}.bn{k + 1}")
      stride = 2 if (i > 0 and j == 0) else 1
      if stride != 1 or cin != width * e:
        enc += [f"{p}.downsample.0.weight"] + bn(f"{p}.downsample.1")
      cin = width * e
  enc += ["encoder.fc.weight", "encoder.fc.bias"]
  dec = []
  for idx in range(10):
    dec += [f"decoder.{idx}.conv.conv.weight", f"decoder.{idx}.conv.conv.bias"]
  for k in range(len(tuple(net.scales))):
    dec += [f"decoder.{10 + k}.conv.weight", f"decoder.{10 + k}.conv.bias"]
  return enc, dec


def _expected(net: DepthNet) -> dict[str, Any]:
  return jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3), jnp.float32))


def _split(tree: Mapping[str, Any], part: str) -> dict[str, Any]:
  return {col: tree[col][part] for col in ("params", "batch_stats") if part in tree.get(col, {})}


def _layout_hint(net: DepthNet, encoder_sd: Mapping[str, Any], decoder_sd: Mapping[str, Any]) -> str:
  """A hint naming the inferred DepthNet when the state dicts describe another layout than ``net`` (else '')."""
  try:
    fields = infer_depth_fields(encoder_sd, decoder_sd)
  except (ConversionError, KeyError, ValueError, AttributeError):
    return ""
  same = all(tuple(getattr(net, k)) == tuple(v) if isinstance(v, tuple) else getattr(net, k) == v
             for k, v in fields.items() if k not in ("num_layers", "block", "layers"))
  if same and net.resolved() == (fields["block"], fields["layers"]):
    return ""
  order = ("num_layers", "block", "layers", "widths", "num_classes", "num_ch_dec", "scales")
  desc = ", ".join(f"{k}={fields[k]!r}" for k in order if k in fields)
  return f" | inferred from the state dicts: DepthNet({desc}); pass cfg_or_fields=None to use it"


def depth_from_torch(encoder_sd: Mapping[str, Any], decoder_sd: Mapping[str, Any], cfg_or_fields: Any = None,
                     source_names: Sequence[str] = ("encoder.pth", "depth.pth")) -> tuple[dict, dict]:
  """Official depth state dicts -> (Flax variables, metadata).

  Args:
    encoder_sd: ``ResnetEncoder.state_dict()`` as saved in encoder.pth (tensors or arrays; may hold the
      non-tensor height/width/use_stereo entries).
    decoder_sd: ``DepthDecoder.state_dict()`` (depth.pth).
    cfg_or_fields: DepthNet, its fields (mapping/ConfigDict) or None to infer them from the state dicts.
    source_names: file names used in error messages.
  Returns:
    variables {'params', 'batch_stats'} (float32 jnp arrays) for ``DepthNet``, and metadata
    {'fields': the DepthNet fields used, 'height'/'width'/'use_stereo' when present,
     'num_batches_tracked': {'encoder'|'decoder': {torch key: int}}}.
  Raises:
    ConversionError (a ValueError) naming the file, key, expected and found shapes.
  """
  enc_name, dec_name = source_names
  encoder_sd, decoder_sd = strip_prefix(encoder_sd), strip_prefix(decoder_sd)
  if cfg_or_fields is None:
    cfg_or_fields = infer_depth_fields(encoder_sd, decoder_sd, source_names)
  net = depth_net(cfg_or_fields)
  expected = _expected(net)
  metadata: dict[str, Any] = {"num_batches_tracked": {}}
  for name in ENCODER_EXTRAS:
    if name in encoder_sd:
      value = encoder_sd[name]
      metadata[name] = value.item() if hasattr(value, "item") else value
  variables: dict[str, dict] = {"params": {}, "batch_stats": {}}
  for part, sd, fname in (("encoder", encoder_sd, enc_name), ("decoder", decoder_sd, dec_name)):
    extras = [k for k in ENCODER_EXTRAS if k in sd] if part == "encoder" else []
    counts = {k: int(to_numpy(v)) for k, v in sd.items() if k.endswith(".num_batches_tracked")}
    metadata["num_batches_tracked"][part] = counts
    try:
      converted = convert_from_torch(sd, _split(expected, part), source=f"{fname} (DepthNet {part})", skip=extras)
    except ConversionError as err:
      raise ConversionError(f"{err}{_layout_hint(net, encoder_sd, decoder_sd)}") from None
    for col, tree in converted.items():
      variables[col][part] = jax.tree.map(jnp.asarray, tree)
  metadata["fields"] = {k: getattr(net, k) for k in ("num_layers", "block", "layers", "widths", "scales",
                                                    "num_ch_dec", "num_classes")}
  return variables, metadata


def depth_to_torch(variables: Mapping[str, Any], cfg_or_fields: Any = None,
                   metadata: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
  """Flax DepthNet variables -> (encoder.pth dict, depth.pth dict) of torch tensors in official key order.

  ``num_batches_tracked`` and height/width/use_stereo come from ``metadata`` (as returned by
  :func:`depth_from_torch`; counts default to 0, extras are omitted when absent). ``cfg_or_fields``
  defaults to ``metadata['fields']``, else ResNet-18.
  """
  import torch

  metadata = dict(metadata or {})
  if cfg_or_fields is None:
    cfg_or_fields = metadata.get("fields")
  net = depth_net(cfg_or_fields)
  enc_order, dec_order = torch_key_order(net)
  counts = metadata.get("num_batches_tracked", {})
  enc_counts, dec_counts = counts.get("encoder", {}), counts.get("decoder", {})
  out = []
  for part, order, nbt in (("encoder", enc_order, enc_counts), ("decoder", dec_order, dec_counts)):
    flat = convert_to_torch(_split(variables, part))
    sd = collections.OrderedDict()
    for key in order:
      if key.endswith(".num_batches_tracked"):
        sd[key] = torch.tensor(int(nbt.get(key, 0)), dtype=torch.long)
        continue
      if key not in flat:
        raise ConversionError(f"DepthNet {part} variables: missing the entry for torch key {key!r} "
                              f"(expected by DepthNet{net.resolved()})")
      sd[key] = torch.from_numpy(np.array(flat.pop(key)))
    if flat:
      raise ConversionError(f"DepthNet {part} variables: unexpected entries {sorted(flat)}")
    out.append(sd)
  for name in ENCODER_EXTRAS:
    if name in metadata:
      out[0][name] = metadata[name]
  return out[0], out[1]


def load_depth_files(encoder_path: str, decoder_path: str, cfg_or_fields: Any = None) -> tuple[dict, dict]:
  """Loads ``encoder.pth`` and ``depth.pth`` (``torch.load(weights_only=True)``) -> (variables, metadata)."""

  encoder_sd = torch_io.load(encoder_path, "the depth encoder state_dict (encoder.pth)")
  decoder_sd = torch_io.load(decoder_path, "the depth decoder state_dict (depth.pth)")
  return depth_from_torch(encoder_sd, decoder_sd, cfg_or_fields,
                          source_names=(os.fspath(encoder_path), os.fspath(decoder_path)))

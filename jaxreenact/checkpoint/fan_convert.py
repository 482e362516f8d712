"""StarGAN v2 FAN (``core/wing.py``) weights: torch state_dict <-> Flax variables, and ``wing.ckpt`` loading.

Naming rule: a torch key split at dots, numeric parts joined to the previous name with ``_``
(``conv2.downsample.0.running_mean`` -> ``conv2/downsample_0/mean``); leaves: conv ``weight`` (OIHW) -> ``kernel``
(HWIO), BatchNorm ``weight`` -> ``scale``, ``bias`` -> ``bias``, ``running_mean``/``running_var`` -> ``batch_stats``
``mean``/``var``; ``num_batches_tracked`` is dropped on import and written back as 0 on export.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Iterator, Mapping

import jax.numpy as jnp
import numpy as np

from jaxreenact.checkpoint import torch_io

_log = logging.getLogger(__name__)

_BN_LEAVES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str, c: int) -> Iterator[tuple[str, tuple[int, ...]]]:
  for leaf in _BN_LEAVES:
    yield f"{prefix}.{leaf}", (() if leaf == "num_batches_tracked" else (c,))


def _conv_block(prefix: str, cin: int, cout: int) -> Iterator[tuple[str, tuple[int, ...]]]:
  half, quarter = cout // 2, cout // 4
  yield from _bn(f"{prefix}.bn1", cin)
  yield f"{prefix}.conv1.weight", (half, cin, 3, 3)
  yield from _bn(f"{prefix}.bn2", half)
  yield f"{prefix}.conv2.weight", (quarter, half, 3, 3)
  yield from _bn(f"{prefix}.bn3", quarter)
  yield f"{prefix}.conv3.weight", (quarter, quarter, 3, 3)
  if cin != cout:
    yield from _bn(f"{prefix}.downsample.0", cin)
    yield f"{prefix}.downsample.2.weight", (cout, cin, 1, 1)


@functools.lru_cache(maxsize=None)
def fan_torch_shapes(num_landmarks: int = 98) -> dict[str, tuple[int, ...]]:
  """Official FAN state_dict keys, in state_dict order, with their torch shapes (336 keys for 98 landmarks)."""
  keys: list[tuple[str, tuple[int, ...]]] = [("conv1.conv.weight", (64, 6, 7, 7)), ("conv1.conv.bias", (64,))]
  keys += _bn("bn1", 64)
  keys += _conv_block("conv2", 64, 128)
  keys += _conv_block("conv3", 128, 128)
  keys += _conv_block("conv4", 128, 256)
  keys += [("m0.coordconv.conv.weight", (256, 259, 1, 1)), ("m0.coordconv.conv.bias", (256,))]
  # official HourGlass registers b1_L, b2_L, recurses, then b3_L (b2_plus_1 at the bottom)
  for lvl in range(4, 0, -1):
    keys += _conv_block(f"m0.b1_{lvl}", 256, 256)
    keys += _conv_block(f"m0.b2_{lvl}", 256, 256)
  keys += _conv_block("m0.b2_plus_1", 256, 256)
  for lvl in range(1, 5):
    keys += _conv_block(f"m0.b3_{lvl}", 256, 256)
  keys += _conv_block("top_m_0", 256, 256)
  keys += [("conv_last0.weight", (256, 256, 1, 1)), ("conv_last0.bias", (256,))]
  keys += _bn("bn_end0", 256)
  keys += [("l0.weight", (num_landmarks + 1, 256, 1, 1)), ("l0.bias", (num_landmarks + 1,))]
  return dict(keys)


def flax_path(key: str, ndim: int) -> tuple[str, tuple[str, ...]]:
  """Torch key -> (collection, flax path); ``ndim`` of the torch value tells a conv weight from a BN weight."""
  *mods, leaf = key.split(".")
  path: list[str] = []
  for part in mods:
    if part.isdigit() and path:
      path[-1] = f"{path[-1]}_{part}"  # torch Sequential index joins the attribute name
    else:
      path.append(part)
  if leaf == "weight":
    return "params", (*path, "kernel" if ndim == 4 else "scale")
  if leaf == "bias":
    return "params", (*path, "bias")
  if leaf == "running_mean":
    return "batch_stats", (*path, "mean")
  if leaf == "running_var":
    return "batch_stats", (*path, "var")
  raise ValueError(f"FAN key {key!r}: unknown leaf {leaf!r}")


def _to_numpy(value: Any) -> np.ndarray:
  if hasattr(value, "detach"):  # torch tensor
    value = value.detach().cpu().numpy()
  return np.asarray(value)


def fan_from_torch(state_dict: Mapping[str, Any], source: str = "state_dict",
                   num_landmarks: int = 98) -> dict[str, Any]:
  """Torch FAN state_dict -> ``{"params": ..., "batch_stats": ...}`` for ``FAN.apply``.

  Args:
    state_dict: official FAN keys -> torch tensors or numpy arrays (``num_batches_tracked`` optional, dropped).
    source: file or module name used in error messages.
    num_landmarks: 98 for the StarGAN v2 ``wing.ckpt``.
  Returns:
    Nested dicts of float32 jax arrays (conv kernels HWIO).
  Raises:
    ValueError: unknown key, missing key, or shape mismatch (naming ``source``, the key and both shapes).
  """
  expected = fan_torch_shapes(num_landmarks)
  unknown = [k for k in state_dict if k not in expected]
  if unknown:
    raise ValueError(f"{source}: unknown FAN keys {unknown[:10]}{' ...' if len(unknown) > 10 else ''} "
                     f"({len(unknown)} in all); expected the official core/wing.py FAN keys")
  missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
  if missing:
    raise ValueError(f"{source}: missing FAN keys {missing[:10]}{' ...' if len(missing) > 10 else ''} "
                     f"({len(missing)} in all)")
  variables: dict[str, dict] = {"params": {}, "batch_stats": {}}
  for key, want in expected.items():
    if key not in state_dict:
      continue  # only num_batches_tracked may be absent
    value = _to_numpy(state_dict[key])
    if tuple(value.shape) != want:
      raise ValueError(f"{source}: key {key!r} has shape {tuple(value.shape)}, expected {want}")
    if key.endswith("num_batches_tracked"):
      continue  # eval-mode BatchNorm never reads it
    collection, path = flax_path(key, value.ndim)
    if value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)  # torch OIHW -> flax HWIO
    node = variables[collection]
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = jnp.asarray(value, jnp.float32)
  return variables


def fan_to_torch(variables: Mapping[str, Any], num_landmarks: int = 98) -> dict[str, np.ndarray]:
  """Flax FAN variables -> official torch state_dict (numpy values, state_dict order; num_batches_tracked = 0)."""
  out: dict[str, np.ndarray] = {}
  for key, want in fan_torch_shapes(num_landmarks).items():
    if key.endswith("num_batches_tracked"):
      out[key] = np.zeros((), np.int64)
      continue
    collection, path = flax_path(key, len(want))
    node: Any = variables.get(collection, {})
    try:
      for part in path:
        node = node[part]
    except (KeyError, TypeError):
      raise ValueError(f"Flax FAN variables: missing {collection}/{'/'.join(path)} (torch key {key!r})") from None
    value = np.asarray(node)
    if value.ndim == 4:
      value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    if tuple(value.shape) != want:
      raise ValueError(f"Flax FAN variables: {collection}/{'/'.join(path)} gives torch shape {value.shape} for "
                       f"key {key!r}, expected {want}")
    out[key] = value
  return out


def load_wing_checkpoint(path: str, ignore_unknown: bool = True, num_landmarks: int = 98) -> dict[str, Any]:
  """Reads a ``wing.ckpt`` (or any file holding a FAN state_dict) into Flax variables.

  Accepts the official nesting ``{"state_dict": {...}}``, a bare state_dict, and a DataParallel ``module.`` prefix.
  Loads with ``torch.load(weights_only=True)``.

  Args:
    path: checkpoint file.
    ignore_unknown: drop keys FAN does not have, as the official loader does (it copies only matching keys), but
      log every one by name; ``False`` refuses them. Missing keys are always refused (the official loader would
      leave those layers randomly initialised, silently).
    num_landmarks: 98 for StarGAN v2.
  Returns:
    ``{"params": ..., "batch_stats": ...}``.
  """

  ckpt = torch_io.load(path, "the FAN weights (wing.ckpt)")
  if isinstance(ckpt, Mapping) and isinstance(ckpt.get("state_dict"), Mapping):
    ckpt = ckpt["state_dict"]
  if not isinstance(ckpt, Mapping):
    raise ValueError(f"{path}: expected a FAN state_dict (optionally under 'state_dict'), found {type(ckpt).__name__}")
  state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in ckpt.items()}
  if ignore_unknown:
    expected = fan_torch_shapes(num_landmarks)
    ignored = sorted(k for k in state if k not in expected)
    if ignored:
      _log.warning("%s: ignoring %d keys FAN does not have: %s", path, len(ignored), ignored)
    state = {k: v for k, v in state.items() if k in expected}
  return fan_from_torch(state, source=path, num_landmarks=num_landmarks)

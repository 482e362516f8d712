"""Generic PyTorch state_dict <-> Flax variables conversion by naming rule.

Rule (STYLE.md): a torch key ``encode.0.conv1.weight`` is the Flax path ``encode_0/conv1/kernel``: numeric parts are
joined with ``_`` to the name before them; leaves map ``weight``→``kernel`` (conv OIHW→HWIO, linear (out,in)→(in,out))
or ``scale`` (1-D norm weights), ``bias``→``bias``, BatchNorm ``running_mean``/``running_var``→``batch_stats``
``mean``/``var``; ``num_batches_tracked`` is dropped. Expected shapes come from ``jax.eval_shape`` of the Flax module,
so every unknown, missing or mis-shaped key is refused with the file and key named.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import flax
import numpy as np

Path = tuple[str, ...]  # (collection, *module path, leaf)


class ConversionError(ValueError):
  """A checkpoint does not match the architecture it is loaded into."""


def to_numpy(value: Any) -> np.ndarray:
  if hasattr(value, "detach"):
    return value.detach().cpu().numpy()
  return np.asarray(value)


def strip_prefix(state_dict: Mapping[str, Any], prefix: str = "module.") -> dict[str, Any]:
  """Removes a DataParallel/DDP ``module.`` prefix (all keys or none carry it)."""
  keys = list(state_dict)
  if keys and all(k.startswith(prefix) for k in keys):
    return {k[len(prefix):]: v for k, v in state_dict.items()}
  return dict(state_dict)


def torch_module_path(key: str) -> tuple[list[str], str]:
  """'unshared.0.6.weight' -> (['unshared_0_6'], 'weight')."""
  parts = key.split(".")
  leaf, mods = parts[-1], []
  for p in parts[:-1]:
    if p.isdigit() and mods:
      mods[-1] = f"{mods[-1]}_{p}"
    else:
      mods.append(p)
  return mods, leaf


def flax_module_to_torch(mods: Iterable[str]) -> str:
  """['unshared_0_6'] -> 'unshared.0.6' (trailing numeric tokens become dotted indices)."""
  out = []
  for m in mods:
    tokens = m.split("_")
    i = len(tokens)
    while i > 1 and tokens[i - 1].isdigit():
      i -= 1
    out.append(".".join(["_".join(tokens[:i])] + tokens[i:]))
  return ".".join(out)


def _leaf_to_flax(leaf: str, ndim: int) -> tuple[str, str, Callable[[np.ndarray], np.ndarray]] | None:
  if leaf == "weight":
    if ndim == 4:
      return "params", "kernel", lambda w: np.transpose(w, (2, 3, 1, 0))
    if ndim == 2:
      return "params", "kernel", lambda w: np.transpose(w, (1, 0))
    if ndim == 1:
      return "params", "scale", lambda w: w
    return "params", "weight", lambda w: w
  if leaf == "bias":
    return "params", "bias", lambda w: w
  if leaf == "running_mean":
    return "batch_stats", "mean", lambda w: w
  if leaf == "running_var":
    return "batch_stats", "var", lambda w: w
  if leaf == "num_batches_tracked":
    return None
  return "params", leaf, lambda w: w


def _leaf_to_torch(collection: str, leaf: str, ndim: int) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
  if collection == "batch_stats":
    return {"mean": "running_mean", "var": "running_var"}[leaf], lambda w: w
  if leaf == "kernel":
    if ndim == 4:
      return "weight", lambda w: np.transpose(w, (3, 2, 0, 1))
    return "weight", lambda w: np.transpose(w, (1, 0))
  if leaf == "scale":
    return "weight", lambda w: w
  return leaf, lambda w: w


def flatten_shapes(tree: Mapping[str, Any]) -> dict[Path, tuple[int, ...]]:
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(tree) if hasattr(tree, "unfreeze") else dict(tree))
  return {k: tuple(v.shape) for k, v in flat.items()}


def convert_from_torch(state_dict: Mapping[str, Any], expected: Mapping[str, Any], source: str,
                       skip: Iterable[str] = ()) -> dict[str, Any]:
  """Converts one module's torch state_dict to Flax variables, validated against ``expected`` shapes.

  Args:
    state_dict: torch key -> tensor/array (a ``module.`` prefix is stripped).
    expected: the module's variables (arrays or ``jax.ShapeDtypeStruct``), e.g. from ``jax.eval_shape(m.init, ...)``.
    source: what to name in errors (file and module, e.g. ``'100000_nets_ema.ckpt[generator]'``).
    skip: torch keys consumed by the caller (buffers handled specially).
  Returns:
    Nested dict of float32 numpy arrays with the same structure as ``expected``.
  Raises:
    ConversionError: naming ``source`` and the offending key(s) with expected and found shapes.
  """
  want = flatten_shapes(expected)
  by_path: dict[Path, np.ndarray] = {}
  unknown, mismatched = [], []
  skip = set(skip)
  for key, value in strip_prefix(state_dict).items():
    if key in skip:
      continue
    arr = to_numpy(value)
    mods, leaf = torch_module_path(key)
    rule = _leaf_to_flax(leaf, arr.ndim)
    if rule is None:
      continue
    collection, fleaf, fn = rule
    path = (collection, *mods, fleaf)
    if path not in want:
      unknown.append(f"{key} (shape {tuple(arr.shape)})")
      continue
    conv = fn(arr)
    if tuple(conv.shape) != want[path]:
      torch_shape = tuple(_leaf_to_torch(collection, fleaf, len(want[path]))[1](np.empty(want[path])).shape)
      mismatched.append(f"{key}: expected {torch_shape}, found {tuple(arr.shape)}")
      continue
    by_path[path] = np.ascontiguousarray(conv, dtype=np.float32)
  missing = [flax_module_to_torch(p[1:-1]) + "." + _leaf_to_torch(p[0], p[-1], len(s))[0]
             for p, s in want.items() if p not in by_path]
  problems = []
  if mismatched:
    problems.append("shape mismatch: " + "; ".join(mismatched))
  if unknown:
    problems.append("unknown keys: " + ", ".join(unknown))
  if missing:
    problems.append("missing keys: " + ", ".join(missing))
  if problems:
    raise ConversionError(f"{source}: " + " | ".join(problems))
  return flax.traverse_util.unflatten_dict(by_path)


def convert_to_torch(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Inverse of :func:`convert_from_torch` (num_batches_tracked not re-created; callers add it)."""
  flat = flax.traverse_util.flatten_dict(dict(variables))
  out = {}
  for path, value in flat.items():
    arr = np.asarray(value)
    collection, mods, leaf = path[0], path[1:-1], path[-1]
    tleaf, fn = _leaf_to_torch(collection, leaf, arr.ndim)
    out[f"{flax_module_to_torch(mods)}.{tleaf}"] = np.ascontiguousarray(fn(arr))
  return out

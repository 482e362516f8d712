"""A run directory's ``config.json``: what a resume may change, checked before anything in the run is written.

A resume restores parameters, optimiser state and the data position from the checkpoint; a config that shapes any
of them differently (a model field, the image size, the batch, the data) either fails inside Orbax with dozens of
tracebacks or silently trains something else. Only the fields below, which set how long the run goes and what it
logs, may differ from the stored config; everything else, including fields the stored config lacks, must match.
"""
from __future__ import annotations

import json
import os
from typing import Any

# Fields a resume may change: run length, logging, checkpoint cadence, host-side prefetch depth, and the number of
# devices (the restore follows the new mesh; the global batch and the data order do not depend on it).
RESUMABLE = frozenset({"total_steps", "checkpoint_every", "sample_every", "log_every", "keep_checkpoints",
                       "prefetch", "num_devices"})

_ABSENT = object()


class ConfigMismatchError(ValueError):
  """The requested config changes fields a resume must keep; ``str(e)`` is one line naming each of them."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{'model.style_dim': 16, ...} of a JSON object (lists are leaves)."""
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def changed_fields(stored: dict, requested: dict) -> dict[str, tuple[Any, Any]]:
  """{dotted key: (stored value, requested value)} for every field that differs (missing fields included)."""
  a, b = flatten(stored), flatten(requested)
  return {k: (a.get(k, _ABSENT), b.get(k, _ABSENT)) for k in sorted(set(a) | set(b))
          if a.get(k, _ABSENT) != b.get(k, _ABSENT)}


def _show(v) -> str:
  return "(absent)" if v is _ABSENT else json.dumps(v)


def has_checkpoint(workdir: str) -> bool:
  """Whether ``workdir/checkpoints`` holds a committed step (Orbax names step folders by the step number)."""
  ckpt = os.path.join(workdir, "checkpoints")
  return os.path.isdir(ckpt) and any(d.isdigit() for d in os.listdir(ckpt))


def check_resume(workdir: str, requested_json: str) -> dict[str, tuple[Any, Any]]:
  """Compares the requested config with ``workdir/config.json`` when the workdir holds a checkpoint.

  Reads only; returns the allowed changes ({key: (stored, requested)}, empty for a fresh run).

  Raises:
    ConfigMismatchError: a field outside RESUMABLE differs, or the stored config.json cannot be read.
  """
  path = os.path.join(workdir, "config.json")
  if not has_checkpoint(workdir) or not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      stored = json.load(f)
  except (OSError, ValueError) as e:
    raise ConfigMismatchError(f"{path}: cannot read the config of the run to resume ({e}); "
                              f"use a new --workdir") from None
  changes = changed_fields(stored, json.loads(requested_json))
  refused = {k: v for k, v in changes.items() if k not in RESUMABLE}
  if refused:
    listed = "; ".join(f"{k}: {_show(a)} in the run, {_show(b)} requested" for k, (a, b) in refused.items())
    raise ConfigMismatchError(
        f"{path}: a resume cannot change {', '.join(refused)} ({listed}); only "
        f"{', '.join(sorted(RESUMABLE))} may differ. Use a new --workdir for a different run")
  return changes


def write(workdir: str, config_json: str) -> None:
  """Writes ``workdir/config.json`` atomically (a crash mid-write leaves the old file, never half of one)."""
  path = os.path.join(workdir, "config.json")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config_json)
  os.replace(tmp, path)

"""Inference weights trained by this project on the embedded sample data and shipped inside the package.

``--checkpoint shipped:<name>`` in every inference command (``launch.reenact``, ``launch.sample``,
``launch.evaluate``) and ``checkpoints.load_*("shipped:<name>")`` read them; each is a ``launch.convert`` Orbax
directory whose ``jaxreenact_metadata.json`` holds the model config and the provenance (command, seed, steps,
wall time, machine, data). Only inference networks are kept: no optimiser state, no discriminator, no frozen VGG.

| name | model | what |
|---|---|---|
| ``dagan_tiny`` | DaGAN | ``configs/dagan.py:tiny`` (64 px) trained on the sample clip (carphone train split) |
| ``stargan_v2_tiny`` | StarGAN v2 | ``configs/stargan_v2.py:tiny`` (32 px) trained on the sample image domains (EMA networks) |
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PREFIX = "shipped:"
MODELS = {"dagan_tiny": "dagan", "stargan_v2_tiny": "stargan_v2"}
ROOT = Path(__file__).resolve().parent


def name_of(spec: str | os.PathLike) -> str | None:
  """'dagan_tiny' for ``shipped:dagan_tiny``, else None."""
  s = os.fspath(spec)
  return s[len(PREFIX):] if s.startswith(PREFIX) else None


def path(name: str) -> Path:
  """Directory of shipped weights ``name``; a clear error for an unknown or missing one."""
  if name not in MODELS:
    raise ValueError(f"{PREFIX}{name}: unknown shipped weights; choose one of "
                     f"{', '.join(PREFIX + n for n in MODELS)}")
  p = ROOT / name
  if not (p / "variables").is_dir():
    raise FileNotFoundError(f"{PREFIX}{name}: {p} is missing from this installation (the package was built "
                            f"without its weights)")
  return p


def provenance(name: str) -> dict[str, Any]:
  """The provenance block of shipped weights ``name`` (command, seed, steps, wall time, machine, data)."""
  with open(path(name) / "jaxreenact_metadata.json") as f:
    return json.load(f).get("provenance", {})

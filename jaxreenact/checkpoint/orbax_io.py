"""Orbax read/write of converted variable trees (with a JSON metadata file a person can read)."""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

METADATA = "jaxreenact_metadata.json"


def save_variables(directory: str | os.PathLike, variables: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
  """Writes ``variables`` under ``directory/variables`` (Orbax) and ``metadata`` as JSON. Overwrites."""
  directory = os.path.abspath(os.fspath(directory))
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, "variables")
  tree = jax.tree.map(np.asarray, dict(variables))
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, tree, force=True)
    ckptr.wait_until_finished()
  with open(os.path.join(directory, METADATA), "w") as f:
    json.dump(dict(metadata), f, indent=2, sort_keys=True)
  return path


def load_variables(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
  """Returns (variables as numpy, metadata)."""
  directory = os.path.abspath(os.fspath(directory))
  path = os.path.join(directory, "variables")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{directory}: no Orbax 'variables' directory (write one with launch.convert)")
  meta_path = os.path.join(directory, METADATA)
  metadata = {}
  if os.path.isfile(meta_path):
    with open(meta_path) as f:
      metadata = json.load(f)
  with ocp.StandardCheckpointer() as ckptr:
    tree = ckptr.restore(path)
  return jax.tree.map(np.asarray, tree), metadata

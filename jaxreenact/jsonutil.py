"""JSON-safe results: one conversion for every JSON file the package writes (reports, stage results, data states)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np


def jsonable(obj: Any) -> Any:
  """``obj`` with mappings as str-keyed dicts, tuples as lists, numpy scalars as Python numbers, bytes as latin-1
  text and non-finite floats as ``"inf"`` / ``"-inf"`` / ``"nan"`` (not JSON); anything else unchanged."""
  if isinstance(obj, Mapping):
    return {str(k): jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [jsonable(v) for v in obj]
  if isinstance(obj, np.generic):
    return jsonable(obj.item())
  if isinstance(obj, bytes):
    return obj.decode("latin1")  # one char per byte: grain iterator states round-trip exactly
  if isinstance(obj, float) and not math.isfinite(obj):
    return str(obj)
  return obj

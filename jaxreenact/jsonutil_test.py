"""The one JSON-safe conversion: what each former copy handled, and a json.dumps round trip."""
import json
import math

import numpy as np

from jaxreenact.jsonutil import jsonable


def test_containers_numpy_scalars_bytes_and_non_finite_floats():
  obj = {1: (np.int64(3), np.float32(0.5), np.bool_(True)), "b": b"\x00\xff", "x": [math.inf, -math.inf, math.nan],
         "s": "text", "n": None}
  got = jsonable(obj)
  assert got == {"1": [3, 0.5, True], "b": "\x00\xff", "x": ["inf", "-inf", "nan"], "s": "text", "n": None}
  assert type(got["1"][0]) is int and type(got["1"][1]) is float and type(got["1"][2]) is bool
  assert json.loads(json.dumps(got, allow_nan=False)) == got  # strict JSON
  assert got["b"].encode("latin1") == b"\x00\xff"  # bytes round-trip


def test_numpy_non_finite_scalars_become_strings():
  assert jsonable(np.float64("nan")) == "nan" and jsonable([np.float32("inf")]) == ["inf"]

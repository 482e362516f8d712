"""machine.describe: the common fields every report and benchmark writes, requested libraries only when importable."""
import json

from jaxreenact import machine


def test_describe_common_fields_and_requested_libraries():
  m = machine.describe(("numpy", "no_such_module_xyz"))
  for key in ("host", "platform", "processor", "cpu_count", "cpu_cores_visible", "python", "date_utc"):
    assert key in m, key
  assert 1 <= m["cpu_cores_visible"] <= m["cpu_count"]
  assert m["numpy"] and "no_such_module_xyz" not in m and "jax" not in m and "torch_threads" not in m
  json.dumps(m)  # written into reports as is


def test_describe_default_names_jax_and_the_torch_threads_when_torch_imports():
  m = machine.describe()
  assert m["jax"] and m["flax"] and m["jaxlib"]
  try:
    import torch
  except ImportError:
    return
  assert m["torch"] == torch.__version__ and m["torch_threads"] == torch.get_num_threads()

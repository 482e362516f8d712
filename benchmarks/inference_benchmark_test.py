"""Smoke run of benchmarks.inference_benchmark at the tiny configs: the JSON it writes, and JAX = PyTorch outputs.

Runs in a subprocess (the benchmark's absl flags would clash with other modules' in a shared pytest worker) with a
fresh compile-cache directory. No timing assertions: figures from a test machine mean nothing.
"""
import json
import math
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _positive(x) -> bool:
  return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_tiny_smoke_run_writes_the_figures_and_outputs_agree(tmp_path):
  out = tmp_path / "inference.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1",  # one torch thread: faster on shared cores
             JAXREENACT_COMPILE_CACHE=str(tmp_path / "xla"))
  res = subprocess.run([sys.executable, "-m", "benchmarks.inference_benchmark", "--config", "tiny", "--batches", "1,2",
                        "--cli_batch", "2", "--repeats", "2", "--warmup", "1", "--stargan", "tiny", "--stargan_batch",
                        "2", "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert res.returncode == 0, res.stderr[-3000:]
  assert "machine:" in res.stdout and "ms/frame" in res.stdout
  r = json.loads(out.read_text())
  m = r["machine"]
  assert m["cpu_count"] >= 1 and m["jax"] and m["torch"] and m["device"] and m["date_utc"]

  d = r["dagan"]
  assert (d["config"], d["size"], d["cli_batch"]) == ("tiny", 64, 2)
  assert _positive(d["jax_first_frame_s"]) and _positive(d["torch_first_frame_s"])
  # a fresh cache directory: the first frame compiled and wrote its programs there
  assert d["compile_cache"]["dir"] == str(tmp_path / "xla") and d["compile_cache"]["entries"] >= 1
  assert d["compile_cache"]["lookups_during_first_frame"]["misses"] >= 1
  assert d["max_abs_diff"]["prediction"] < 1e-4 and d["max_abs_diff"]["depth"] < 1e-4
  for fw in ("jax", "torch"):
    assert d["prepare"][fw]["repeats"] == 2 and _positive(d["prepare"][fw]["ms"])
  assert sorted(d["batches"]) == ["1", "2"]
  for row in d["batches"].values():
    for fw in ("jax", "torch"):
      s = row[fw]
      assert s["repeats"] == 2 and s["ms_min"] <= s["ms"] <= s["ms_max"]
      assert s["per_s"] == pytest.approx(1e3 / s["ms"])
    assert row["torch_over_jax"] == pytest.approx(row["torch"]["ms"] / row["jax"]["ms"])

  s = r["stargan_v2"]
  assert (s["preset"], s["batch"]) == ("tiny", 2) and s["max_abs_diff"] < 1e-4
  assert _positive(s["per_batch"]["jax"]["ms"]) and _positive(s["per_batch"]["torch"]["ms"])


def test_usage_errors_name_the_flag():
  res = subprocess.run([sys.executable, "-m", "benchmarks.inference_benchmark", "--batches", "1,x"], cwd=ROOT,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True, timeout=300)
  assert res.returncode != 0 and "--batches=1,x" in res.stderr

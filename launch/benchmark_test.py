"""launch.benchmark at the tiny configs on CPU: a smoke test of the whole measurement (no timing assertions)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.parametrize("model,precision", [("stargan_v2", "bf16"), ("dagan", "fp32")])
def test_benchmark_writes_the_comparison(tmp_path, model, precision):
  """Both models, both precisions between them (DaGAN's bf16 step runs in benchmarks/precision_check_test.py)."""
  pytest.importorskip("torch")
  out = tmp_path / f"{model}.json"
  # Unoptimised XLA backend: about half the compile time; the timings are meaningless here and not asserted.
  env = {**os.environ, "XLA_FLAGS": "--xla_backend_optimization_level=0", "JAX_PLATFORMS": "cpu"}
  p = subprocess.run([sys.executable, "-m", "launch.benchmark", "--model", model, "--config", "tiny", "--batch", "2", "--precision", precision,
                      "--repeats", "2", "--warmup", "1", "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=900)
  assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
  r = json.loads(out.read_text())
  for key in ("jax_ms_per_iter", "torch_ms_per_iter", "speedup", "achieved_tflops", "mfu", "device",
              "jax_compile_s", "jax_peak_memory_mib", "xla_flops_per_iter", "measured_peak_tflops"):
    assert r[key] is not None, key
  assert r["device"].startswith("cpu") and r["model"] == model and r["batch"] == 2 and r["precision"] == precision
  assert r["jax_ms_per_iter"] > 0 and r["torch_ms_per_iter"] > 0
  assert r["speedup"] == pytest.approx(r["torch_ms_per_iter"] / r["jax_ms_per_iter"])
  assert r["xla_flops_per_iter"] > 1e6  # XLA counted the whole iteration (forward + backward + updates)
  assert r["achieved_tflops"] == pytest.approx(r["xla_flops_per_iter"] / (r["jax_ms_per_iter"] / 1e3) / 1e12)
  assert 0 < r["mfu"] == pytest.approx(r["achieved_tflops"] / r["measured_peak_tflops"])
  assert r["xla_memory_mib"]["alias"] > 0  # the state is donated: XLA aliases it with the new state
  assert "repeat 2: jax" in p.stdout  # progress is printed per repeat


def test_benchmark_help_and_bad_flag():
  p = subprocess.run([sys.executable, "-m", "launch.benchmark", "--help"], cwd=ROOT, capture_output=True, text=True,
                     timeout=120)
  assert "--precision" in p.stdout and "torch_compile" in p.stdout and "alternated" in p.stdout  # absl exits 1
  p = subprocess.run([sys.executable, "-m", "launch.benchmark", "--model", "cyclegan"], cwd=ROOT, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode != 0 and "model" in p.stderr

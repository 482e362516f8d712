"""The op-by-op reenactment profile: its trace arithmetic and attribution, and a tiny run through the benchmark CLI
(no timing assertions: figures from a test machine mean nothing)."""
import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks import reenact_profile as rp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_self_time_subtracts_nested_events_per_thread():
  ev = [{"ph": "X", "name": "while", "ts": 0, "dur": 100, "pid": 1, "tid": 1},
        {"ph": "X", "name": "body_a", "ts": 10, "dur": 20, "pid": 1, "tid": 1},
        {"ph": "X", "name": "body_b", "ts": 40, "dur": 10, "pid": 1, "tid": 1},
        {"ph": "X", "name": "other", "ts": 20, "dur": 50, "pid": 1, "tid": 2},  # another thread: not nested
        {"ph": "i", "name": "instant", "ts": 5, "pid": 1, "tid": 1}]
  assert sorted(rp.self_times(ev)) == [("body_a", 20), ("body_b", 10), ("other", 50), ("while", 70)]


def test_hlo_instructions_and_stages():
  hlo = ('  %fusion.3 = f32[1,8]{1,0} fusion(f32[1,8]{1,0} %p), kind=kLoop, calls=%fused, '
         'metadata={op_name="jit(_step_fn)/DepthAwareGenerator/up_blocks_1/conv/add" source_file="x.py"}\n'
         '  ROOT %custom-call.2 = f32[4]{0} custom-call(f32[4]{0} %a), custom_call_target="lapack_sgetrf_ffi", '
         'metadata={op_name="jit(_step_fn)/jit(inv)/lu"}\n'
         '  %convolution.7 = f32[1,4,4,8]{3,2,1,0} convolution(%x, %w), window={size=3x3}, '
         'metadata={op_name="jit(_step_fn)/DepthNet/encoder/layer1_0/conv_general_dilated"}\n')
  ins = rp.hlo_instructions(hlo)
  assert ins["fusion.3"]["kind"] == "fusion:kLoop"
  assert ins["custom-call.2"]["kind"] == "custom-call:lapack_sgetrf_ffi"
  assert ins["convolution.7"]["kind"] == "convolution"
  assert rp.stage_of(ins["fusion.3"]["op_name"]) == "DepthAwareGenerator/up_blocks"
  assert rp.stage_of(ins["convolution.7"]["op_name"]) == "DepthNet/encoder"
  assert rp.stage_of(ins["custom-call.2"]["op_name"]) == "(between networks)"
  assert rp.stage_of("jit(f)/KPDetector/conv_general_dilated") == "KPDetector"  # a primitive is not a sub-module
  assert rp.stage_of("jit(f)/G/G._encode_and_warp/dense_motion_network/hourglass/mul") == "G/dense_motion_network"


@pytest.mark.slow
def test_tiny_profile_through_the_benchmark_cli(tmp_path):
  pytest.importorskip("torch")
  out = tmp_path / "prof.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1")
  res = subprocess.run([sys.executable, "-m", "benchmarks.inference_benchmark", "--profile", "--config", "tiny",
                        "--batches", "2", "--repeats", "1", "--top", "5", "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
  assert res.returncode == 0, res.stderr[-3000:]
  r = json.loads(out.read_text())
  assert (r["config"], r["size"]) == ("tiny", 64) and len(r["profiles"]) == 1
  p = r["profiles"][0]
  assert (p["batch"], p["repeats"]) == (2, 1)
  j = p["jax"]
  total = j["thunk_ms_per_frame"]
  assert total > 0 and math.isfinite(j["wall_ms_per_frame"]) and j["thunks_executed_per_call"] >= 10
  assert sum(j["by_stage"].values()) == pytest.approx(total) and sum(j["by_kind"].values()) == pytest.approx(total)
  for stage in ("DepthNet/encoder", "DepthNet/decoder", "KPDetector", "DepthAwareGenerator/dense_motion_network"):
    assert j["by_stage"].get(stage, 0) > 0, (stage, j["by_stage"])  # every network of the per-frame path ran
  ms = [o["ms"] for o in j["ops"]]
  assert ms == sorted(ms, reverse=True) and all(o["kind"] and o["stage"] for o in j["ops"])
  t = p["torch"]
  mods = t["by_module"]
  for m in ("depth_encoder", "depth_decoder", "kp_detector", "generator", "generator/dense_motion_network"):
    assert mods.get(m, 0) > 0, (m, mods)
  assert mods["generator"] >= mods["generator/dense_motion_network"]  # a child's time is inside its parent's
  assert t["op_self_ms_per_frame"] > 0 and any(o["op"] == "aten::mkldnn_convolution" or "conv" in o["op"]
                                                for o in t["ops"][:5])
  md = (tmp_path / "prof.md").read_text()
  assert "JAX by network stage" in md and "PyTorch top 5 operators" in md and "DepthNet/decoder" in md

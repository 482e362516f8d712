"""launch/complexity.py: --help, --dry_run, and the CI report at the tiny config (files written, JSON schema)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=300):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
  return subprocess.run([sys.executable, "-m", "launch.complexity", *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=timeout)


def test_help_lists_the_flags():
  out = _run("--helpfull")
  assert out.returncode in (0, 1), out.stderr  # absl exits 1 after printing help
  for flag in ("--model", "--out", "--tiny", "--skip_torch", "--skip_latency", "--stargan_config", "--dagan_config"):
    assert flag in out.stdout


def test_dry_run_prints_options(tmp_path):
  out = _run("--model", "all", "--tiny", "--dry_run", "--out", str(tmp_path))
  assert out.returncode == 0, out.stderr
  data = json.loads(out.stdout)
  assert data["models"] == {"stargan_v2": "tiny", "dagan": "tiny"}
  assert not os.listdir(tmp_path)


def test_missing_out_is_a_usage_error():
  out = _run("--model", "stargan_v2")
  assert out.returncode != 0
  assert "--out" in out.stderr


@pytest.mark.slow
def test_tiny_report_for_both_models(tmp_path):
  pytest.importorskip("torch")
  pytest.importorskip("deepspeed")
  pytest.importorskip("matplotlib")
  out = _run("--model", "all", "--tiny", "--skip_compile", "--out", str(tmp_path), timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "complexity report finished in" in out.stdout
  for name in ("complexity.json", "complexity.md", "flops_by_tool.png", "scaling.png", "models_side_by_side.png",
               "table10.png"):
    assert (tmp_path / name).stat().st_size > 0, name
  data = json.loads((tmp_path / "complexity.json").read_text())
  assert set(data["models"]) == {"stargan_v2", "dagan"}
  assert set(data["models"]["dagan"]["modules"]) == {"depth", "kp_detector", "dense_motion", "generator",
                                                     "discriminator", "vgg19_pyramid"}
  for model in data["models"].values():
    for rec in list(model["modules"].values()) + [model["train_iteration"]]:
      for key in ("params", "analytic_macs_naive", "analytic_macs_padx", "xla_flops_fwd", "deepspeed_flops_fwd",
                  "flopcounter_flops_fwd"):
        assert key in rec
    assert model["table10"]["rows"][0]["measure"] == "fwd flops per GPU"
    assert model["table10"]["setting"]["warning"]  # tiny is not the study's setting
    tr = model["train_iteration"]
    assert tr["identities"]["xla_conv_dot == 2*analytic_padx"] is True
    assert tr["identities"]["flopcounter == 2*torch_analytic_naive (official loop)"] is True
    assert tr["flopcounter_flops_official"] > tr["flopcounter_flops_matched"]
    for name, rec in model["modules"].items():
      ids = rec["identities"]
      for key in ("deepspeed_macs == torch_analytic_naive", "flopcounter == 2*torch_analytic_naive",
                  "xla_conv_dot == 2*jax_analytic_padx"):
        assert ids[key] is True, (name, key)
  sg = data["models"]["stargan_v2"]
  assert all(all(v is True for v in r["identities"].values()) for r in sg["modules"].values())
  assert sg["train_iteration"]["deepspeed_flops_fwd"] == sg["train_iteration"]["deepspeed_flops_fwd_composed"]
  assert sg["scaling"]["checks"]["analytic_linear_in_batch"]
  assert data["environment"]["jax_device_count"] == 4
  md = (tmp_path / "complexity.md").read_text()
  assert "Table 10" in md and "Reconciliation" in md and "one implementation only" in md

"""DeepSpeed reference training: 2 official iterations of each model at the tiny configs on CPU, with profiles;
the launcher's --help; torch_reference's independence from the JAX package."""
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

from jaxreenact.complexity import deepspeed_train

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_help_lists_the_flags():
  out = subprocess.run([sys.executable, "-m", "launch.deepspeed_train", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
  assert out.returncode == 1, out.stderr  # absl's --help handler exits with 1 after printing the usage
  for flag in ("--model", "--steps", "--flops_profiler", "--out", "stargan_v2", "depth"):
    assert flag in out.stdout


def test_launcher_refuses_an_unknown_model_in_one_line(tmp_path):
  out = subprocess.run([sys.executable, "-m", "launch.deepspeed_train", "--model=stylegan", f"--out={tmp_path}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert out.returncode != 0 and "--model" in out.stderr and "stargan_v2" in out.stderr, out.stderr


def test_launcher_models_are_the_adapters():
  # in a subprocess: launch modules define absl flags at import, and another launcher's --data_dir would clash
  code = ("from launch import deepspeed_train as launcher; from jaxreenact.complexity import deepspeed_train; "
          "print(sorted(launcher.MODELS) == sorted(deepspeed_train.ADAPTERS))")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0 and out.stdout.strip() == "True", (out.stdout, out.stderr[-2000:])


def test_importing_the_driver_needs_neither_torch_nor_deepspeed():
  code = ("import sys; import jaxreenact.complexity.deepspeed_train; "
          "print(sorted(m for m in ('torch', 'deepspeed') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr)


def test_torch_reference_imports_nothing_from_the_jax_package():
  # the reference is what the JAX code is checked against: it must not share code with it
  hits = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "torch_reference").rglob("*.py"))
          for n, line in enumerate(p.read_text().splitlines(), 1) if "jaxreenact" in line]
  assert not hits, hits


@pytest.mark.parametrize("model, lr_bound", [("stargan_v2", 1e-4), ("depth", 1e-4), ("dagan", 2e-4)])
def test_two_iterations_train_and_profile(tmp_path, model, lr_bound):
  pytest.importorskip("torch")
  pytest.importorskip("deepspeed")
  out = str(tmp_path / model)
  s = deepspeed_train.run(model, out, steps=2, batch_size=2, flops_profiler=True, progress=False)
  networks = list(s["adapter"].networks)
  spi = s["adapter"].steps_per_iteration
  assert s["iterations"] == 2 + len(networks)  # 2 timed + one profiled iteration per network
  # Every engine took its official number of optimiser steps (StarGAN v2: D and G twice per iteration).
  assert s["optimizer_steps"] == {n: spi[n] * s["iterations"] for n in networks}
  # Losses are finite in every iteration.
  rows = [json.loads(line) for line in open(os.path.join(out, "losses.jsonl"))]
  assert len(rows) == s["iterations"]
  for row in rows:
    losses = {k: v for k, v in row.items() if k not in ("iteration", "ms", "profiled")}
    assert losses and all(math.isfinite(v) for v in losses.values()), row
  # Parameters moved, by at most ~lr per Adam step (|m̂/√v̂| < 1/√(1−β2) = 10 for StarGAN v2's β2 0.99; its
  # mapping network uses f_lr = 1e-6, 100× less: a wrong lr would break the bound).
  for n in networks:
    lr = 1e-6 if n == "mapping_network" else lr_bound
    assert 0 < s["max_parameter_change"][n] <= 10 * lr * spi[n] * s["iterations"], (n, s["max_parameter_change"])
  # timing.json and one DeepSpeed profile per network with non-zero MACs.
  timing = json.load(open(os.path.join(out, "timing.json")))
  assert timing["timed_iterations"] == 1 and timing["median_ms"] > 0 and timing["machine"]["accelerator"] == "cpu"
  for n in networks:
    text = open(os.path.join(out, f"flops_profile_{n}.txt")).read()
    assert "DeepSpeed Flops Profiler" in text and f"network '{n}'" in text
    macs = re.search(r"fwd MACs per GPU:\s+([\d.]+)\s*([KMGT]?)MACs", text)
    assert macs and float(macs.group(1)) > 0, text[:800]

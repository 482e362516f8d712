"""DeepSpeed reference training: 2 official iterations of each model at the tiny configs on CPU, with profiles."""
import json
import math
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("deepspeed")
from torch_reference import deepspeed_train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_lists_the_flags():
  out = subprocess.run([sys.executable, "-m", "torch_reference.deepspeed_train", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
  assert out.returncode == 0, out.stderr
  for flag in ("--model", "--steps", "--flops_profiler", "--out", "stargan_v2", "depth"):
    assert flag in out.stdout


@pytest.mark.parametrize("model, lr_bound", [("stargan_v2", 1e-4), ("depth", 1e-4), ("dagan", 2e-4)])
def test_two_iterations_train_and_profile(tmp_path, model, lr_bound):
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

"""launch.convert on a training workdir: --from_workdir exports the inference networks (what the shipped weights
are made with) and --to_torch --orbax_dir WORKDIR writes the official layout; bad inputs end in one line."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

from conftest import STARGAN_RUN_GROUP

# only the workdir test needs conftest's stargan_run; it runs on the worker that builds it
_run_group = pytest.mark.xdist_group(STARGAN_RUN_GROUP)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *args, timeout=900):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


@pytest.fixture
def workdir(stargan_run):
  return stargan_run  # conftest's finished tiny run (read-only here)


@_run_group
@pytest.mark.slow
def test_export_and_to_torch_from_a_training_workdir(workdir, tmp_path):
  from jaxreenact.inference import loading
  meta = tmp_path / "meta.json"
  meta.write_text('{"provenance": {"steps": 1, "command": "test"}}')
  out = tmp_path / "exported"
  res = _run("launch.convert", "--model", "stargan_v2", "--from_workdir", str(workdir), "--out", str(out),
             "--metadata_json", str(meta))
  assert res.returncode == 0, res.stderr[-3000:]
  direct = loading.load_stargan_v2(workdir)
  exported = loading.load_stargan_v2(out)
  assert exported.kind == "orbax" and exported.config == direct.config
  assert set(exported.variables) == {"generator", "mapping_network", "style_encoder"}  # EMA nets only
  for a, b in zip(jax.tree.leaves(direct.variables), jax.tree.leaves(exported.variables)):
    np.testing.assert_array_equal(a, b)
  import json
  assert json.loads((out / "jaxreenact_metadata.json").read_text())["provenance"]["steps"] == 1  # from meta.json
  back = tmp_path / "back_nets_ema.ckpt"
  res = _run("launch.convert", "--model", "stargan_v2", "--to_torch", "--orbax_dir", str(workdir), "--out", str(back))
  assert res.returncode == 0, res.stderr[-3000:]
  obj = torch.load(back, weights_only=True)
  assert set(obj) == {"generator", "mapping_network", "style_encoder"}
  from torch_reference.stargan_v2.model import Generator
  Generator(img_size=32, style_dim=16, max_conv_dim=32, w_hpf=0, base_dim=8).load_state_dict(obj["generator"],
                                                                                              strict=True)


@pytest.mark.parametrize("args,needle", [
    (["--model", "dagan", "--torch_ckpt", "{tmp}/text.pth.tar", "--out", "{tmp}/o"], "text.pth.tar"),
    (["--model", "dagan", "--torch_ckpt", "{tmp}/missing.pth.tar", "--out", "{tmp}/o"], "missing.pth.tar"),
    (["--model", "stargan_v2", "--from_workdir", "{tmp}/nope", "--out", "{tmp}/o"], "nope"),
    (["--model", "stargan_v2", "--torch_ckpt", "{tmp}/text.pth.tar", "--out", "/proc/o"], "--out=/proc/o"),
])
def test_convert_errors_are_one_line_naming_the_file(tmp_path, args, needle):
  (tmp_path / "text.pth.tar").write_text("not a checkpoint")
  res = _run("launch.convert", *[a.format(tmp=tmp_path) for a in args], timeout=300)
  assert res.returncode != 0
  lines = res.stderr.strip().splitlines()
  assert len(lines) == 1 and needle in lines[0], res.stderr[-2000:]
  assert "weights_only=False" not in res.stderr and "Traceback" not in res.stderr

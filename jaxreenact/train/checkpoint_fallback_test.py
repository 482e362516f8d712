"""A damaged newest checkpoint: inference and conversion fall back to the newest step that restores (naming the
damaged one, touching nothing); a resumed training run continues from it and moves the damaged step aside."""
import json
import shutil
import subprocess

import pytest

from conftest import STARGAN_RUN_GROUP, STARGAN_RUN_STEPS
from jaxreenact.train.stargan_v2_train_test import ROOT, _env, _train_cmd

pytestmark = pytest.mark.xdist_group(STARGAN_RUN_GROUP)  # the worker that builds conftest's stargan_run
LAST = STARGAN_RUN_STEPS  # the run's checkpoints: steps 1, 5 and LAST


def _train(workdir, total):
  """conftest's stargan_run command (same XLA flags: its compiled step is read from the cache)."""
  cmd = _train_cmd(workdir, total) + ["--config.log_every=1"]
  return subprocess.run(cmd, cwd=ROOT, env=_env(workdir.parent / "xla"), capture_output=True, text=True, timeout=900)


def _damage(workdir, step):
  """Deletes the array data of a step's saved state (what an interrupted copy or a disk error leaves): every
  network's values are gone, so any reader, full or partial (inference reads only the EMA networks), fails."""
  data = [p for p in (workdir / "checkpoints" / str(step) / "state").glob("ocdbt.process_*/d/*") if p.is_file()]
  assert data, f"no OCDBT data files under step {step}"
  for p in data:
    p.unlink()
  return data


@pytest.fixture
def run2(stargan_run):
  return stargan_run


@pytest.mark.slow
def test_inference_falls_back_to_the_previous_step_and_changes_nothing(run2, tmp_path, caplog):
  from jaxreenact.inference import loading
  wd = tmp_path / "wd"
  shutil.copytree(run2, wd)
  _damage(wd, LAST)
  before = sorted(str(p.relative_to(wd)) for p in wd.rglob("*"))
  with caplog.at_level("WARNING"):
    loaded = loading.load_stargan_v2(wd)
  assert loaded.step == 5
  assert any(f"step {LAST} is damaged" in r.getMessage() for r in caplog.records)
  assert sorted(str(p.relative_to(wd)) for p in wd.rglob("*")) == before  # read-only use: nothing moved
  _damage(wd, 5)
  _damage(wd, 1)
  with pytest.raises(loading.CheckpointError, match=f"no checkpoint restores: step {LAST}: .*; step 5: .*; step 1: "):
    loading.load_stargan_v2(wd)


@pytest.mark.slow
def test_resume_continues_from_the_newest_good_step(run2, tmp_path):
  wd = tmp_path / "wd"
  shutil.copytree(run2, wd)
  _damage(wd, LAST)
  res = _train(wd, LAST)
  assert res.returncode == 0, res.stderr[-3000:]
  assert f"step {LAST} is damaged" in res.stderr
  assert json.loads((wd / "summary.json").read_text())["start_step"] == 5
  ckpts = wd / "checkpoints"
  assert (ckpts / f"{LAST}.damaged").is_dir()  # kept for inspection, out of Orbax's way
  assert {p.name for p in ckpts.iterdir() if p.name.isdigit()} >= {"5", str(LAST)}  # LAST trained and saved again
  steps = [json.loads(line)["step"] for line in (wd / "metrics.jsonl").read_text().splitlines()]
  assert steps == list(range(1, LAST + 1))


@pytest.mark.slow
def test_inference_reads_only_the_networks_it_uses(run2, monkeypatch):
  """A training checkpoint holds params, optimiser states, EMA, step and rng; inference reads the EMA networks
  (and FAN) only, through an Orbax partial restore, with the same values a full restore gives."""
  import numpy as np
  import jax
  from jaxreenact.inference import loading
  step, full, _ = loading.restore_training_state(run2)
  assert {"params", "opt_state", "ema"} <= set(full)
  step_p, part, _ = loading.restore_training_state(run2, items=loading.STARGAN_ITEMS)
  assert step_p == step == LAST
  assert set(part) == {"ema"} | ({"fan"} if full.get("fan") is not None else set())  # no opt_state, no params
  flat_part, flat_full = jax.tree_util.tree_leaves_with_path(part["ema"]), jax.tree_util.tree_leaves_with_path(
      full["ema"])
  assert [k for k, _ in flat_part] == [k for k, _ in flat_full] and flat_part
  for (_, a), (_, b) in zip(flat_part, flat_full):
    assert isinstance(a, np.ndarray)
    np.testing.assert_array_equal(a, b)
  asked = []
  real = loading.restore_training_state
  monkeypatch.setattr(loading, "restore_training_state",
                      lambda *a, **k: asked.append(a[2] if len(a) > 2 else k.get("items")) or real(*a, **k))
  loaded = loading.load_stargan_v2(run2)
  assert asked == [loading.STARGAN_ITEMS] and loaded.step == LAST
  np.testing.assert_array_equal(jax.tree.leaves(loaded.variables["generator"])[0],
                                jax.tree.leaves(full["ema"]["generator"])[0])

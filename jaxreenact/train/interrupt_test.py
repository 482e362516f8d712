"""launch.train under SIGINT / SIGTERM / SIGKILL, and a resume that asks for a different model: nothing is lost.

One run is interrupted twice (SIGINT, then SIGTERM after it resumed), refused a resume with a changed model field
in between, and finally resumed to the end; another is SIGKILLed at three points of checkpoint saves (mid-write,
written but not committed, committed), resumed each time. Both must end bit-identical (parameters,
optimiser states, EMA, step) to one run that was never interrupted (conftest's ``stargan_run``), with each step logged once.
"""
import hashlib
import json
import os
import re
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from conftest import STARGAN_RUN_GROUP, STARGAN_RUN_STEPS
from jaxreenact.checkpoint import runs
from jaxreenact.train.stargan_v2_train_test import ROOT, _env, _train_cmd

pytestmark = pytest.mark.xdist_group(STARGAN_RUN_GROUP)  # the worker that builds conftest's stargan_run

TOTAL = STARGAN_RUN_STEPS  # checkpoints at steps 1, 5 and 8 (Orbax saves the first step, then every 5)


def _cmd(workdir):
  return _train_cmd(workdir, TOTAL) + ["--config.log_every=1"]  # a metrics row per step: the test sees progress


def _logged_steps(workdir):
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return []
  steps = []
  for line in path.read_text().splitlines():
    try:
      steps.append(json.loads(line)["step"])
    except ValueError:  # a row being written
      pass
  return steps


def _interrupt(workdir, env, sig, after_step):
  """Starts the run, sends ``sig`` once a step past ``after_step`` is logged; returns (returncode, stderr)."""
  p = subprocess.Popen(_cmd(workdir), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 600
  while p.poll() is None and time.time() < deadline and not any(s > after_step for s in _logged_steps(workdir)):
    time.sleep(0.05)
  assert p.poll() is None, "the run ended before it could be interrupted:\n" + p.stderr.read()[-3000:]
  p.send_signal(sig)
  _, err = p.communicate(timeout=300)
  return p.returncode, err


def _check_stopped_cleanly(workdir, returncode, stderr, sig, code):
  assert returncode == code, stderr[-3000:]
  assert "Traceback" not in stderr, stderr[-5000:]
  ours = [l for l in stderr.splitlines() if l.startswith("launch.train:")]
  assert len(ours) == 1 and stderr.rstrip().endswith(ours[0]), stderr[-3000:]
  m = re.fullmatch(rf"launch\.train: error: interrupted by {sig.name} after step (\d+): checkpoint at step \1 in "
                   rf"(\S+); run the same command to resume", ours[0])
  assert m, ours[0]
  step = int(m.group(1))
  assert m.group(2) == str(workdir / "checkpoints")
  assert (workdir / "checkpoints" / str(step) / "state").is_dir()  # the step reached is saved...
  assert max(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()) == step  # ...and is the latest
  assert not [p for p in workdir.rglob("*") if "orbax-checkpoint-tmp" in p.name]  # no half-written save
  return step


def _snapshot(workdir):
  """Hash of every file of the run directory that a refused resume must leave alone."""
  files = sorted(p for p in workdir.rglob("*") if p.is_file())
  return {os.fspath(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _final_state(workdir):
  """Everything saved at the last step: params, optimiser states, EMA, step, rng."""
  import orbax.checkpoint as ocp
  with ocp.StandardCheckpointer() as c:
    return c.restore(os.path.join(workdir, "checkpoints", str(TOTAL), "state"))


def _assert_same_final_state(a, b):
  flat_a, flat_b = jax.tree_util.tree_leaves_with_path(_final_state(a)), jax.tree_util.tree_leaves_with_path(
      _final_state(b))
  assert [k for k, _ in flat_a] == [k for k, _ in flat_b] and len(flat_a) > 0
  assert any("opt_state" in jax.tree_util.keystr(k) for k, _ in flat_a)  # the optimiser states are compared too
  for (k, x), (_, y) in zip(flat_a, flat_b):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(k))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  return _env(tmp_path_factory.mktemp("xla") / "cache")  # shared by every run: only the first compiles


@pytest.fixture
def straight(stargan_run):
  """The reference: the same run (same command), never interrupted."""
  return stargan_run


@pytest.mark.slow
def test_interrupts_and_refused_resume_keep_the_run_bit_identical(tmp_path, env, straight):
  run = tmp_path / "run"

  rc, err = _interrupt(run, env, signal.SIGINT, after_step=0)
  first = _check_stopped_cleanly(run, rc, err, signal.SIGINT, 130)
  assert first < TOTAL

  # A resume asking for another model is refused before anything in the run is written.
  before = _snapshot(run)
  r = subprocess.run(_cmd(run) + ["--config.model.style_dim=8", "--config.total_steps=20"], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode != 0
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1, r.stderr[-3000:]
  assert re.search(r"cannot change model\.style_dim \(model\.style_dim: 16 in the run, 8 requested\)", lines[0])
  assert "total_steps: " not in lines[0]  # the allowed change alongside is not refused
  assert _snapshot(run) == before

  rc, err = _interrupt(run, env, signal.SIGTERM, after_step=first)
  second = _check_stopped_cleanly(run, rc, err, signal.SIGTERM, 143)
  assert first < second < TOTAL

  r = subprocess.run(_cmd(run), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  assert json.loads((run / "summary.json").read_text())["start_step"] == second
  assert _logged_steps(run) == list(range(1, TOTAL + 1))  # each step once across the three processes
  _assert_same_final_state(straight, run)


def _orbax_tmp_dirs(run):
  d = run / "checkpoints"
  return [p.name for p in d.iterdir() if "orbax-checkpoint-tmp" in p.name] if d.is_dir() else []


@pytest.mark.slow
def test_sigkill_at_every_phase_of_a_save_then_resume_is_bit_identical(tmp_path, env, straight):
  """One run directory, SIGKILLed (the process kills itself at a hook in the save, so the point is exact) in the
  middle of step 5's save, just after it commits, and after the final save is written but before it commits;
  resumed after each kill, then run to the end. (The hook has a fourth point, "start", before anything is written:
  the same state for a resume as a kill during the step.)"""
  run = tmp_path / "run"
  for step, phase in [(5, "mid-write"), (5, "committed"), (TOTAL, "written")]:
    r = subprocess.run(_cmd(run), cwd=ROOT, env=dict(env, **{runs.KILL_AT_SAVE: f"{step}:{phase}"}),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == -signal.SIGKILL, (step, phase, r.stderr[-3000:])
    committed = runs.saved_steps(run / "checkpoints")
    assert (step in committed) == (phase == "committed"), (step, phase, committed)
    if phase in ("mid-write", "written"):  # killed inside Orbax's save: a temporary step directory is left...
      assert _orbax_tmp_dirs(run), (step, phase, os.listdir(run / "checkpoints"))
    assert _logged_steps(run)[-1] == step  # the metrics row of the step is written before its save
  r = subprocess.run(_cmd(run), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  assert not _orbax_tmp_dirs(run)  # ...and removed by the next start
  assert json.loads((run / "summary.json").read_text())["start_step"] == 5
  assert runs.saved_steps(run / "checkpoints") == [1, 5, TOTAL]  # Orbax also saves the first step
  assert _logged_steps(run) == list(range(1, TOTAL + 1))  # each step once, across four processes
  _assert_same_final_state(straight, run)

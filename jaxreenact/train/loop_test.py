"""The shared training loop: NaN guard keeps the last good checkpoint; resume continues the data stream."""
import json
import os
import subprocess
import sys

import flax.struct
import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.train import loop, sharding
from jaxreenact.checkpoint.runs import CheckpointManager


@flax.struct.dataclass
class _State:
  step: jax.Array
  params: dict


def _task(nan_at=None):
  """A linear model trained by SGD on a grain stream of numbers (exercises the loop, not a model)."""
  mesh = sharding.make_mesh(1)
  data = grain.MapDataset.range(10_000).map(lambda i: {"x": np.full((2,), i, np.float32)}).batch(2).to_iter_dataset()
  data = iter(data)

  @jax.jit
  def step_fn(state, batch):
    loss = jnp.mean((state.params["w"] - batch["x"]) ** 2)
    bad = (state.step + 1 == nan_at) if nan_at else False
    loss = jnp.where(bad, jnp.nan, loss)
    return _State(state.step + 1, {"w": state.params["w"] + 0.01}), {"loss": loss, "seen": jnp.max(batch["x"])}

  state = _State(jnp.zeros((), jnp.int32), {"w": jnp.zeros((2,))})
  return loop.Task(name="toy", init_state=lambda: state, abstract_state=lambda: jax.eval_shape(lambda: state),
                   step_fn=step_fn, data=data, mesh=mesh)


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
  with pytest.raises(loop.NonFiniteLossError, match="step 7.*last good checkpoint: step 5"):
    loop.run(_task(nan_at=7), workdir=str(tmp_path), total_steps=20, checkpoint_every=5, log_every=1,
             sample_every=100, writer=_NullWriter(), progress=False)
  mngr = CheckpointManager(tmp_path / "checkpoints", 5)
  assert mngr.latest_step() == 5
  mngr.close()


@pytest.mark.parametrize("prefetch", [0, 3])
def test_resume_continues_the_data_stream(tmp_path, prefetch):
  # With prefetching the reader is ahead of the step when the checkpoint is written; the saved data position must
  # still be that of the last batch trained on, or the resumed run would skip the prefetched batches.
  first = loop.run(_task(), workdir=str(tmp_path), total_steps=6, checkpoint_every=3, log_every=1,
                   sample_every=100, writer=_NullWriter(), progress=False, prefetch=prefetch)
  assert first["prefetch"] == prefetch and first["steps_per_s"] > 0 and 0 <= first["data_wait_fraction"] <= 1
  assert first["steady_steps_per_s"] > 0 and 0 <= first["steady_data_wait_fraction"] <= 1
  summary = loop.run(_task(), workdir=str(tmp_path), total_steps=9, checkpoint_every=3, log_every=1,
                     sample_every=100, writer=_NullWriter(), progress=False, prefetch=prefetch)
  assert summary["start_step"] == 6
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  seen = [l["seen"] for l in lines]
  assert seen == [2 * i + 1 for i in range(9)]  # batches 0..8 exactly once, in order, across the restart


def _not_on_resume():
  raise AssertionError("init_state was called although the run resumes from a checkpoint")


def test_resume_logs_each_step_once(tmp_path):
  # The first run logs step 7 and then stops at step 8 (NaN), its last checkpoint being step 6: the resumed run
  # trains steps 7.. again, so the rows the first run wrote past step 6 must go (they appeared twice before).
  with pytest.raises(loop.NonFiniteLossError):
    loop.run(_task(nan_at=8), workdir=str(tmp_path), total_steps=20, checkpoint_every=3, log_every=1,
             sample_every=100, writer=_NullWriter(), progress=False)
  assert [json.loads(l)["step"] for l in open(tmp_path / "metrics.jsonl")] == list(range(1, 8))
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 9, "loss": 0.')  # a row cut short by a kill mid-write
  resumed = _task()
  resumed.init_state = _not_on_resume  # a resume restores into abstract_state: no fresh state is built
  summary = loop.run(resumed, workdir=str(tmp_path), total_steps=10, checkpoint_every=3, log_every=1,
                     sample_every=100, writer=_NullWriter(), progress=False)
  assert summary["start_step"] == 6
  rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in rows] == list(range(1, 11))
  assert [r["seen"] for r in rows] == [2 * i + 1 for i in range(10)]  # the rows of the resumed run for 7..10


def test_implicit_transfer_inside_the_step_is_refused(tmp_path):
  task = _task()
  jitted = task.step_fn
  host_offset = np.ones((2,), np.float32)  # a host array fed to the jitted step: an implicit host->device copy
  task.step_fn = lambda state, batch: jitted(state, {**batch, "x": batch["x"] + host_offset})
  with pytest.raises(Exception, match="[Dd]isallowed host-to-device transfer"):
    loop.run(task, workdir=str(tmp_path), total_steps=2, checkpoint_every=5, log_every=1, sample_every=100,
             writer=_NullWriter(), progress=False)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_data_pipeline_errors_reach_the_training_thread(tmp_path, prefetch):
  task = _task()

  class Broken:
    def __init__(self, inner):
      self.inner, self.n = inner, 0

    def __next__(self):
      self.n += 1
      if self.n == 4:
        raise OSError("corrupt record 4")
      return next(self.inner)

    def get_state(self):
      return self.inner.get_state()

  task.data = Broken(task.data)
  with pytest.raises((RuntimeError, OSError), match="corrupt record 4"):
    loop.run(task, workdir=str(tmp_path), total_steps=10, checkpoint_every=5, log_every=1, sample_every=100,
             writer=_NullWriter(), progress=False, prefetch=prefetch)
  assert [json.loads(l)["step"] for l in open(tmp_path / "metrics.jsonl")] == [1, 2, 3]


class _NullWriter:
  def add_scalar(self, *a, **k):
    pass

  def add_image(self, *a, **k):
    pass

  def flush(self):
    pass


def test_tensorboard_writer_is_loaded_without_torch_and_torch_stays_importable(tmp_path):
  """A fresh process (torch not yet loaded): the writer class comes without importing torch, writes an event file,
  and ``import torch`` works afterwards (the import was only hidden from tensorboardX)."""
  pytest.importorskip("torch")
  code = ("import os, sys; from jaxreenact.train import loop; W = loop._summary_writer_class(); "
          "assert 'torch' not in sys.modules, 'torch was imported'; w = W(sys.argv[1]); w.add_scalar('a', 1.0, 1); "
          "w.close(); assert any(f.startswith('events.out.tfevents') for f in os.listdir(sys.argv[1])); "
          "import torch; print('torch', torch.__version__)")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0 and r.stdout.startswith("torch "), r.stderr[-3000:]

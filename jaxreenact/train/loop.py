"""The training loop shared by every model: sharded steps, Orbax checkpoints, logs, samples, NaN guard.

Throughput: a background thread reads the next batches and puts them on the devices while the current step runs
(``prefetch`` batches ahead), each paired with the data-iterator state *after* it was read, so a checkpoint records
the position of the last batch actually trained on (not of the prefetched ones). The step is dispatched under
``jax.transfer_guard('disallow')``: an implicit host<->device copy inside the loop (a Python scalar fed to the step,
a ``float()`` of a device value between steps) raises instead of silently serialising host and device; metrics are
fetched explicitly (``jax.device_get``) only at logging steps.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm import tqdm

from jaxreenact.train import sharding
from jaxreenact.checkpoint.runs import CheckpointManager


class NonFiniteLossError(RuntimeError):
  """Raised when a loss or parameter became NaN/inf; the last good checkpoint is kept."""


class Interrupted(Exception):
  """Raised by :func:`run` after a SIGINT/SIGTERM once the state at ``step`` is checkpointed (``saved``)."""

  def __init__(self, signum: int, step: int, saved: bool, directory: str):
    self.signum, self.step, self.saved, self.directory = signum, step, saved, directory
    name = signal.Signals(signum).name
    where = (f"checkpoint at step {step} in {directory}; run the same command to resume" if saved else
             f"no checkpoint written (non-finite parameters at step {step})")
    super().__init__(f"interrupted by {name} after step {step}: {where}")

  @property
  def exit_code(self) -> int:
    return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class _StopSignals:
  """While active, SIGINT/SIGTERM only record that a stop was asked for; the loop stops at the end of the step.

  A handler that raised (Python's default KeyboardInterrupt) would unwind from wherever the main thread happens to
  be, including the middle of an Orbax save, leaving a temporary directory and a traceback from every thread. A
  second signal restores the previous handlers, so pressing Ctrl-C twice still ends a run that is stuck.
  Multi-process runs leave SIGTERM to jax's preemption service (the processes must agree on the step to save at,
  see ``CheckpointManager.reached_preemption``), and handle nothing locally: a save is collective.
  """

  def __init__(self, enabled: bool):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}
    self._enabled = enabled and threading.current_thread() is threading.main_thread()

  def _handle(self, signum, frame):
    del frame
    if self.signum is None:
      self.signum = signum
      logging.warning("%s received: stopping after the current step (send it again to stop at once)",
                      signal.Signals(signum).name)
    else:
      self.restore()

  def install(self):
    if self._enabled:
      for s in (signal.SIGINT, signal.SIGTERM):
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def restore(self):
    for s, h in self._previous.items():
      signal.signal(s, h)
    self._previous.clear()


@dataclasses.dataclass
class Task:
  """What the loop needs from a model."""
  name: str
  init_state: Callable[[], Any]  # () -> the fresh, replicated state; called only when there is nothing to resume
  # () -> its shapes, dtypes and shardings (sharding.abstract_replicated): a resume restores into them, so no
  # initialiser is compiled or run
  abstract_state: Callable[[], Any]
  step_fn: Callable[[Any, dict], tuple[Any, dict]]  # jitted (state, sharded batch) -> (state, metrics)
  data: Iterator[dict]  # grain iterator with get_state()/set_state()
  mesh: Any
  sample_fn: Callable[[Any, int, str], dict[str, np.ndarray]] | None = None  # -> {tag: (H, W, 3) uint8 image}
  params_of: Callable[[Any], Any] = lambda s: s.params
  notes: dict | None = None  # what the run actually used (weights sources etc.), written to run_notes.json


@jax.jit
def _leaves_finite(leaves: list) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _all_finite(tree) -> bool:
  """Whether every floating leaf of ``tree`` is finite. One jit for the run (traced once per tree structure): a
  fresh ``jax.jit`` per call would re-trace the check at every logged step."""
  leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)]
  if not leaves:
    return True
  return bool(jax.device_get(_leaves_finite(leaves)))


def _summary_writer_class():
  """tensorboardX's SummaryWriter. At import, tensorboardX loads torch when it is installed (about 2 s of a resumed
  run's start) only to accept torch tensors, which this loop never logs; unless torch is loaded already, that import
  is made to fail (``sys.modules`` entry None), which tensorboardX handles, and is restored right after."""
  if "torch" in sys.modules:
    from tensorboardX import SummaryWriter
    return SummaryWriter
  sys.modules["torch"] = None
  try:
    from tensorboardX import SummaryWriter
  finally:
    del sys.modules["torch"]
  return SummaryWriter


class _End:
  """Queue sentinel: the data iterator stopped (``error`` None) or raised."""

  def __init__(self, error: BaseException | None = None):
    self.error = error


class Prefetcher:
  """Reads and shards batches ``depth`` steps ahead in a daemon thread.

  ``next()`` returns ``(sharded_batch, data_state_after_it, wait_s)``; ``wait_s`` is how long the training thread
  was blocked waiting for data (the data pipeline is the bottleneck when this is a large share of the step time).
  ``depth=0`` reads synchronously in the calling thread (the behaviour without prefetching).
  """

  def __init__(self, data, mesh, depth: int = 2):
    self._data, self._mesh, self._depth = data, mesh, int(depth)
    self._stop = threading.Event()
    self._thread = None
    if self._depth > 0:
      self._queue: queue.Queue = queue.Queue(maxsize=self._depth)
      self._thread = threading.Thread(target=self._fill, name="device-prefetch", daemon=True)
      self._thread.start()

  def _read(self):
    batch = next(self._data)
    data_state = self._data.get_state() if hasattr(self._data, "get_state") else None
    return sharding.shard_batch(batch, self._mesh), data_state

  def _fill(self):
    try:
      while not self._stop.is_set():
        item = self._read()
        while not self._stop.is_set():
          try:
            self._queue.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
    except StopIteration:
      self._queue.put(_End())
    except BaseException as e:  # noqa: BLE001 — re-raised in the training thread
      self._queue.put(_End(e))

  def next(self):
    t = time.perf_counter()
    if self._thread is None:
      batch, data_state = self._read()
      return batch, data_state, time.perf_counter() - t
    item = self._queue.get()
    if isinstance(item, _End):
      self._queue.put(item)  # later calls see the end too
      if item.error is not None:
        raise RuntimeError(f"data pipeline failed: {item.error!r}") from item.error
      raise StopIteration
    return item[0], item[1], time.perf_counter() - t

  def close(self):
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=10)


def _truncate_metrics(path: str, step: int) -> None:
  """Keeps the rows of ``metrics.jsonl`` up to ``step`` (the restored one).

  An interrupted run has logged steps past its last checkpoint; the resumed run logs them again, so without this
  they would appear twice. A row cut short by a kill is not valid JSON and goes too. Rewritten atomically.
  """
  if not os.path.exists(path):
    return
  keep = []
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue
      if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
        keep.append(line if line.endswith("\n") else line + "\n")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(keep)
  os.replace(tmp, path)


def run(task: Task, *, workdir: str, total_steps: int, checkpoint_every: int, log_every: int, sample_every: int,
        keep_checkpoints: int = 3, writer=None, progress: bool = True, prefetch: int = 2) -> dict[str, Any]:
  """Trains until ``total_steps``; resumes from ``workdir/checkpoints`` when it holds a checkpoint.

  ``prefetch``: batches read and put on the devices ahead of the step (0 = read synchronously).
  Returns a summary dict (also written to ``workdir/summary.json``) with the throughput and the share of the wall
  time spent waiting for data.
  """
  os.makedirs(workdir, exist_ok=True)
  ckpt = CheckpointManager(os.path.join(workdir, "checkpoints"), checkpoint_every, keep_checkpoints)
  restored = None
  if ckpt.latest_step() is not None:
    restored = ckpt.restore(task.abstract_state())
  start = 0
  if restored is not None:
    start, state, data_state = restored
    if data_state:
      task.data.set_state(data_state)
    logging.info("%s: resumed from step %d (%s)", task.name, start, ckpt.directory)
  else:
    state = task.init_state()
  is_main = jax.process_index() == 0
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  if is_main:
    _truncate_metrics(metrics_path, start)
  if writer is None and is_main:
    SummaryWriter = _summary_writer_class()
    # purge_step: events logged after the restored step by the interrupted run are dropped, as in metrics.jsonl.
    writer = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=start + 1 if start else None)
  samples_dir = os.path.join(workdir, "samples")
  bar = tqdm(total=total_steps, initial=start, desc=f"train {task.name}", disable=not (progress and is_main),
             dynamic_ncols=True, unit="it")
  t_start, last_metrics, data_wait_s = time.time(), {}, 0.0
  t_steady = wait_steady = t_logged = None
  data_state = task.data.get_state() if hasattr(task.data, "get_state") else None
  prefetcher = Prefetcher(task.data, task.mesh, prefetch) if start < total_steps else None
  status = "completed"
  stop = _StopSignals(enabled=jax.process_count() == 1)
  try:
    stop.install()
    for step in range(start, total_steps):
      batch, data_state, wait_s = prefetcher.next()
      data_wait_s += wait_s
      with jax.transfer_guard("disallow"):  # only explicit transfers (device_put/device_get) from here to the step
        state, metrics = task.step_fn(state, batch)
      if step == start:  # the first call compiles: steady-state throughput is timed from its result on
        jax.block_until_ready(metrics)
        t_steady, wait_steady = time.perf_counter(), data_wait_s
      done = step + 1
      if done % log_every == 0 or done == total_steps or ckpt.should_save(done):
        last_metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        t_logged = time.perf_counter()
        bad = [k for k, v in last_metrics.items() if not math.isfinite(v)]
        if bad or not _all_finite(task.params_of(state)):
          status = "non_finite"
          raise NonFiniteLossError(f"{task.name}: non-finite {'losses ' + ', '.join(bad) if bad else 'parameters'} "
                                   f"at step {done}; last good checkpoint: step {ckpt.latest_step()} in "
                                   f"{ckpt.directory}")
        if is_main:
          for k, v in last_metrics.items():
            writer.add_scalar(k, v, done)
          with open(metrics_path, "a") as f:
            f.write(json.dumps({"step": done, **last_metrics}) + "\n")
          bar.set_postfix({k: f"{v:.3f}" for k, v in list(last_metrics.items())[:3]})
      if task.sample_fn is not None and (done % sample_every == 0 or done == total_steps) and is_main:
        images = task.sample_fn(state, done, samples_dir)
        for tag, img in (images or {}).items():
          writer.add_image(tag, np.asarray(img), done, dataformats="HWC")
      if ckpt.should_save(done) or done == total_steps:
        ckpt.save(done, state, data_state, force=True)
      bar.update(1)
      preempted = jax.process_count() > 1 and ckpt.reached_preemption(done)
      if (stop.signum is not None or preempted) and done < total_steps:
        # The Orbax preemption pattern: a save forced at the step reached (the interval save above, if any, has
        # already completed: saves are synchronous), then a clean stop.
        saved = ckpt.latest_step() == done
        if not saved and _all_finite(task.params_of(state)):
          ckpt.save(done, state, data_state, force=True)
          saved = True
        status = "interrupted"
        raise Interrupted(stop.signum or signal.SIGTERM, done, saved, ckpt.directory)
  finally:
    stop.restore()
    if prefetcher is not None:
      prefetcher.close()
    bar.close()
    ckpt.close()
    if writer is not None and is_main:
      writer.flush()
  wall_s = time.time() - t_start
  steps = total_steps - start
  steady = {}
  if t_steady is not None and steps > 1:  # steps after the compiling first one, to the last step's metrics
    steady_s = t_logged - t_steady
    steady = {"steady_steps_per_s": (steps - 1) / steady_s,
              "steady_data_wait_fraction": (data_wait_s - wait_steady) / steady_s}
  summary = {"model": task.name, "status": status, "start_step": start, "end_step": total_steps,
             "wall_s": wall_s, "steps_per_s": steps / wall_s if steps and wall_s > 0 else None, **steady,
             "data_wait_s": data_wait_s, "data_wait_fraction": data_wait_s / wall_s if wall_s > 0 else None,
             "prefetch": prefetch, "last_metrics": last_metrics,
             "latest_checkpoint": os.path.join(ckpt.directory, str(total_steps))}
  if is_main:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
  return summary

"""The training loop shared by every model: sharded steps, Orbax checkpoints, logs, samples, NaN guard."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm import tqdm

from jaxreenact.train import sharding
from jaxreenact.train.checkpointing import CheckpointManager


class NonFiniteLossError(RuntimeError):
  """Raised when a loss or parameter became NaN/inf; the last good checkpoint is kept."""


@dataclasses.dataclass
class Task:
  """What the loop needs from a model."""
  name: str
  state: Any  # freshly initialised, sharded state (replaced by the checkpoint when resuming)
  step_fn: Callable[[Any, dict], tuple[Any, dict]]  # jitted (state, sharded batch) -> (state, metrics)
  data: Iterator[dict]  # grain iterator with get_state()/set_state()
  mesh: Any
  sample_fn: Callable[[Any, int, str], dict[str, np.ndarray]] | None = None  # -> {tag: (H, W, 3) uint8 image}
  params_of: Callable[[Any], Any] = lambda s: s.params
  notes: dict | None = None  # what the run actually used (weights sources etc.), written to run_notes.json


def _all_finite(tree) -> bool:
  leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)]
  if not leaves:
    return True
  return bool(jax.jit(lambda ls: jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in ls])))(leaves))


def run(task: Task, *, workdir: str, total_steps: int, checkpoint_every: int, log_every: int, sample_every: int,
        keep_checkpoints: int = 3, writer=None, progress: bool = True) -> dict[str, Any]:
  """Trains until ``total_steps``; resumes from ``workdir/checkpoints`` when it holds a checkpoint.

  Returns a summary dict (also written to ``workdir/summary.json``).
  """
  os.makedirs(workdir, exist_ok=True)
  ckpt = CheckpointManager(os.path.join(workdir, "checkpoints"), checkpoint_every, keep_checkpoints)
  state = task.state
  restored = ckpt.restore(state)
  start = 0
  if restored is not None:
    start, state, data_state = restored
    if data_state:
      task.data.set_state(data_state)
    logging.info("%s: resumed from step %d (%s)", task.name, start, ckpt.directory)
  is_main = jax.process_index() == 0
  if writer is None and is_main:
    from tensorboardX import SummaryWriter
    writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  samples_dir = os.path.join(workdir, "samples")
  bar = tqdm(total=total_steps, initial=start, desc=f"train {task.name}", disable=not (progress and is_main),
             dynamic_ncols=True, unit="it")
  t_start, last_metrics, step_times = time.time(), {}, []
  status = "completed"
  try:
    for step in range(start, total_steps):
      t0 = time.perf_counter()
      batch = sharding.shard_batch(next(task.data), task.mesh)
      state, metrics = task.step_fn(state, batch)
      done = step + 1
      if done % log_every == 0 or done == total_steps or ckpt.should_save(done):
        last_metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        step_times.append(time.perf_counter() - t0)
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
        ckpt.save(done, state, task.data.get_state(), force=True)
      bar.update(1)
  finally:
    bar.close()
    ckpt.close()
    if writer is not None and is_main:
      writer.flush()
  summary = {"model": task.name, "status": status, "start_step": start, "end_step": total_steps,
             "wall_s": time.time() - t_start, "last_metrics": last_metrics,
             "latest_checkpoint": os.path.join(ckpt.directory, str(total_steps))}
  if is_main:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
  return summary

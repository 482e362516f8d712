"""A training run's checkpoints: the one Orbax ``CheckpointManager`` (training state *and* data iterator state) and
the one reader of a run directory, ``restore_training_state`` (the newest step that restores, ``restore_latest_good``;
only the entries asked for), used by training, inference, evaluation and conversion.

Saves are atomic (Orbax writes to a temporary directory and renames it when complete), so a process killed during
a save leaves the previous checkpoint intact; interval and keep-N policies come from the manager options.

Fault-injection hook (tests only): with ``JAXREENACT_KILL_AT_SAVE=STEP:PHASE`` in the environment the process sends
itself SIGKILL during the save of step STEP, at PHASE — ``start`` (nothing written yet), ``mid-write`` (Orbax has
created the temporary step directory and started writing the state; the data item and the commit are still to
come), ``written`` (every file written, the temporary directory not yet renamed to the step) or ``committed`` (the
step is committed, the loop has not gone on). Without the variable nothing of this is installed.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path
from typing import Any, Callable, Sequence

from absl import logging

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxreenact.jsonutil import jsonable


def _is_key(x) -> bool:
  return isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_data(x):
  if isinstance(x, jax.ShapeDtypeStruct):  # an abstract key (a restore target): the abstract form of its data
    data = jax.eval_shape(jax.random.key_data, x)
    return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=x.sharding)
  return jax.random.key_data(x)


def _keys_to_data(tree):
  """Typed PRNG keys are stored as their raw uint32 data (Orbax stores plain arrays)."""
  return jax.tree.map(lambda x: _key_data(x) if _is_key(x) else x, tree)


def _data_to_keys(tree, like):
  return jax.tree.map(lambda x, ref: jax.random.wrap_key_data(x) if _is_key(ref) else x, tree, like)


KILL_AT_SAVE = "JAXREENACT_KILL_AT_SAVE"
KILL_PHASES = ("start", "mid-write", "written", "committed")


def _kill_point(step: int, phase: str) -> None:
  """SIGKILL this process when ``$JAXREENACT_KILL_AT_SAVE`` is ``f"{step}:{phase}"`` (see the module docstring)."""
  if os.environ.get(KILL_AT_SAVE) == f"{int(step)}:{phase}":
    os.kill(os.getpid(), signal.SIGKILL)


def _step_of_item_dir(directory) -> int:
  """``…/<step>.orbax-checkpoint-tmp-<n>/data`` → step."""
  return int(os.path.basename(os.path.dirname(os.fspath(directory))).split(".")[0])


class _KillHookJsonHandler(ocp.JsonCheckpointHandler):
  """The data item's handler with the ``mid-write`` and ``written`` kill points (installed only for the hook)."""

  async def async_save(self, directory, *args, **kwargs):
    futures = await super().async_save(directory, *args, **kwargs)
    _kill_point(_step_of_item_dir(directory), "mid-write")  # the state item's save was issued before this one
    return futures

  def finalize(self, directory):
    super().finalize(directory)
    _kill_point(_step_of_item_dir(directory), "written")  # all items written and awaited; the rename comes next


@ocp.args.register_with_handler(_KillHookJsonHandler, for_save=True)
@dataclasses.dataclass
class _KillHookJsonSave(ocp.args.JsonSave):
  """``JsonSave`` routed to the kill-hook handler."""


@ocp.args.register_with_handler(_KillHookJsonHandler, for_restore=True)
@dataclasses.dataclass
class _KillHookJsonRestore(ocp.args.JsonRestore):
  """``JsonRestore`` routed to the kill-hook handler."""


class CheckpointError(ValueError):
  """A --checkpoint that cannot be used; the message says what was found and what was expected."""


class NoGoodCheckpoint(RuntimeError):
  """Every checkpoint step of a run failed to restore; the message names each step and why."""


def saved_steps(checkpoint_dir: str | os.PathLike) -> list[int]:
  """Committed steps under ``checkpoint_dir`` (``<step>/`` folders; Orbax's temporary folders are not steps)."""
  d = os.fspath(checkpoint_dir)
  return sorted(int(n) for n in os.listdir(d) if n.isdigit() and os.path.isdir(os.path.join(d, n))) \
      if os.path.isdir(d) else []


def restore_latest_good(steps: Sequence[int], restore: Callable[[int], Any], where: str) -> tuple[int, Any, list]:
  """Restores the newest step that restores cleanly: ``restore(step)`` from the newest down.

  A damaged step (a deleted or truncated file, a half-written save) is skipped with a warning naming it; the run
  directory is left as it is. Returns (step, restored, [(damaged step, reason), ...]).
  Raises NoGoodCheckpoint when no step restores.
  """
  damaged = []
  for step in sorted(steps, reverse=True):
    try:
      out = restore(step)
    except Exception as e:  # noqa: BLE001 - Orbax raises many kinds for a damaged step; each is named below
      reason = " ".join(f"{type(e).__name__}: {e}".split())[:300]
      damaged.append((step, reason))
      logging.warning("%s: checkpoint step %d is damaged and was skipped (%s)", where, step, reason)
      continue
    if damaged:
      logging.warning("%s: restored step %d instead of the newest (damaged: %s)", where, step,
                      ", ".join(str(s) for s, _ in damaged))
    return step, out, damaged
  raise NoGoodCheckpoint(f"{where}: no checkpoint restores: " + "; ".join(f"step {s}: {r}" for s, r in damaged))


class CheckpointManager:
  """``save(step, state, data_state)`` at an interval, ``restore(abstract_state)`` of the latest good step."""

  def __init__(self, directory: str | os.PathLike, save_every: int, keep: int = 3):
    self.directory = os.path.abspath(os.fspath(directory))
    # cleanup_tmp_directories: a save cut short by SIGKILL leaves a ``*.orbax-checkpoint-tmp*`` folder; the next
    # start removes it (it is never a committed step).
    options = ocp.CheckpointManagerOptions(save_interval_steps=max(1, int(save_every)), max_to_keep=keep,
                                           create=True, enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    hooked = bool(os.environ.get(KILL_AT_SAVE))
    self._json_save, self._json_restore = ((_KillHookJsonSave, _KillHookJsonRestore) if hooked else
                                           (ocp.args.JsonSave, ocp.args.JsonRestore))
    if hooked:
      handlers = {"state": ocp.StandardCheckpointHandler(), "data": _KillHookJsonHandler()}
      self._mngr = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
    else:
      self._mngr = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))

  def should_save(self, step: int) -> bool:
    return self._mngr.should_save(int(step))

  def reached_preemption(self, step: int) -> bool:
    """Multi-host: True at the step all processes agreed to stop at after a SIGTERM (jax's preemption service)."""
    return self._mngr.reached_preemption(int(step))

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, step: int, state: Any, data_state: dict | None = None, force: bool = False) -> bool:
    args = ocp.args.Composite(state=ocp.args.StandardSave(_keys_to_data(state)),
                              data=self._json_save(jsonable(data_state or {})))
    _kill_point(step, "start")
    saved = self._mngr.save(int(step), args=args, force=force)
    _kill_point(step, "committed")
    return saved

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[int, Any, dict] | None:
    """Returns (step, state, data_state) or None when the directory holds no checkpoint.

    ``abstract_state``: a state (or ``jax.eval_shape`` of one) whose shardings/dtypes the restore follows.
    """
    steps = list(self._mngr.all_steps()) if step is None else [step]
    if not steps:
      return None
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _keys_to_data(abstract_state))

    def one(s):
      return self._mngr.restore(s, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                           data=self._json_restore()))

    step, restored, self.damaged = restore_latest_good(steps, one, self.directory)
    if self.damaged and jax.process_index() == 0:
      # The run continues from ``step`` and will save the damaged steps' numbers again: move the damaged folders
      # aside (kept, never deleted) so those saves do not collide with them.
      for s, _ in self.damaged:
        src = os.path.join(self.directory, str(s))
        dst = f"{src}.damaged"
        if os.path.isdir(src) and not os.path.exists(dst):
          os.rename(src, dst)
          logging.warning("%s: moved the damaged step %d aside to %s", self.directory, s, dst)
      if hasattr(self._mngr, "reload"):
        self._mngr.reload()
    return step, _data_to_keys(restored["state"], abstract_state), dict(restored["data"] or {})

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


# ------------------------------------------------------------------------------------------------------------
# reading a run directory (inference, evaluation, conversion, a DaGAN run's depth network)


def _latest_step(ckpt_dir: Path) -> int:
  steps = sorted(int(p.name) for p in ckpt_dir.iterdir() if p.is_dir() and p.name.isdigit()
                 and (p / "state").is_dir()) if ckpt_dir.is_dir() else []
  if not steps:
    raise CheckpointError(f"{ckpt_dir}: no finished checkpoint (<step>/state) — train first, or pass an Orbax/"
                          f"PyTorch checkpoint")
  return steps[-1]


def _restore_state_dir(path: str, items: Sequence[str] | None) -> dict:
  """The saved state at ``path`` as numpy; only its top-level ``items`` when given (Orbax partial restore: the
  other entries, e.g. the optimiser states, are never read)."""
  if items is None:
    with ocp.StandardCheckpointer() as ckptr:
      return ckptr.restore(path)
  with ocp.PyTreeCheckpointer() as ckptr:
    tree = ckptr.metadata(path).item_metadata
    wanted = {k: tree[k] for k in items if k in tree and tree[k] is not None}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
    out = ckptr.restore(path, args=ocp.args.PyTreeRestore(item=wanted, restore_args=restore_args,
                                                           partial_restore=True))
  return dict(out)


def restore_training_state(workdir: str | os.PathLike, step: int | None = None,
                           items: Sequence[str] | None = None) -> tuple[int, dict, dict]:
  """(step, state as a nested dict of numpy arrays, config.json as a dict) of a training workdir.

  ``items``: the top-level state entries to read (e.g. ``("ema", "fan")``); the rest, the optimiser states above
  all, is not read. None reads everything. The newest step that restores is used (damaged ones are named).
  """
  workdir = Path(workdir)
  ckpt_dir = workdir / "checkpoints"
  if step is None:
    _latest_step(ckpt_dir)  # a clear error when there is none
    steps = saved_steps(ckpt_dir)
  else:
    steps = [int(step)]
    if not (ckpt_dir / str(step) / "state").is_dir():
      raise CheckpointError(f"{workdir}: no checkpoint for step {step} ({ckpt_dir / str(step) / 'state'})")

  def one(s):
    return _restore_state_dir(os.fspath((ckpt_dir / str(s) / "state").absolute()), items)

  try:
    step, state, _ = restore_latest_good(steps, one, os.fspath(workdir))
  except NoGoodCheckpoint as e:
    raise CheckpointError(str(e)) from None
  config = {}
  if (workdir / "config.json").is_file():
    config = json.loads((workdir / "config.json").read_text())
  return step, jax.tree.map(np.asarray, state), config

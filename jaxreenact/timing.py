"""The one timing loop: warm-up calls, then wall-clock seconds per timed call (alone, or several interleaved).

Every callable must return only when its work is done: ``jax.block_until_ready`` on JAX outputs,
``torch.cuda.synchronize()`` for CUDA tensors (asynchronous dispatch would otherwise time the launch only).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping


def time_interleaved(calls: Mapping[str, Callable[[], Any]], repeats: int, *, warmup: int = 0,
                     budget_s: float | None = None) -> dict[str, list[float]]:
  """Seconds of each call per round, the calls taken in turn (A B A B …) so that a load change hits all alike.

  Args:
    calls: name -> zero-argument callable that blocks until its work is done.
    repeats: timed rounds (at least 1).
    warmup: untimed rounds first (compilation, allocator and cache warm-up).
    budget_s: stop after a round once at least two rounds were timed and they took more than this in total.

  Returns:
    name -> list of per-call seconds, one per timed round.
  """
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}")
  for _ in range(warmup):
    for call in calls.values():
      call()
  times: dict[str, list[float]] = {name: [] for name in calls}
  total = 0.0
  for rnd in range(repeats):
    for name, call in calls.items():
      t0 = time.perf_counter()
      call()
      dt = time.perf_counter() - t0
      times[name].append(dt)
      total += dt
    if budget_s is not None and rnd >= 1 and total > budget_s:
      break
  return times


def time_calls(call: Callable[[], Any], repeats: int, *, warmup: int = 0,
               budget_s: float | None = None) -> list[float]:
  """Seconds of each of ``repeats`` calls of ``call()`` after ``warmup`` untimed ones (see :func:`time_interleaved`)."""
  return time_interleaved({"call": call}, repeats, warmup=warmup, budget_s=budget_s)["call"]

"""Warm, synchronised latency measurements (median and spread over repeats), with the device named.

JAX dispatch is asynchronous: every timed call ends with ``jax.block_until_ready``. PyTorch calls end with
``torch.cuda.synchronize()`` when the tensors live on a GPU. The first ``warmup`` calls (compilation, allocator
warm-up) are not timed.
"""
from __future__ import annotations

import dataclasses
import platform
import statistics
import time
from typing import Any, Callable

import jax
import numpy as np


@dataclasses.dataclass
class Latency:
  median_ms: float
  min_ms: float
  max_ms: float
  p25_ms: float
  p75_ms: float
  repeats: int
  warmup: int
  device: str

  @property
  def spread_ms(self) -> float:
    """Interquartile range."""
    return self.p75_ms - self.p25_ms

  def as_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["iqr_ms"] = round(self.spread_ms, 4)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def _summary(times_s: list[float], warmup: int, device: str) -> Latency:
  ms = np.asarray(times_s) * 1e3
  return Latency(float(statistics.median(ms)), float(ms.min()), float(ms.max()), float(np.percentile(ms, 25)),
                 float(np.percentile(ms, 75)), len(ms), warmup, device)


def jax_device_name(device: Any | None = None) -> str:
  d = device or jax.devices()[0]
  kind = getattr(d, "device_kind", d.platform)
  if d.platform == "cpu":
    return f"{kind} ({platform.processor() or platform.machine()}, {cpu_count()} cores visible)"
  return f"{d.platform}:{kind}"


def cpu_count() -> int:
  import os
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # pragma: no cover - non-Linux
    return os.cpu_count() or 1


def time_jax(fn: Callable, *args, repeats: int = 5, warmup: int = 1, budget_s: float | None = None) -> Latency:
  """Times ``fn(*args)`` (a jitted function or compiled executable), blocking on the outputs of every call.

  ``budget_s``: stop after this many seconds of timed calls once at least two were taken (slow CPU cases).
  """
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}")
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
    if budget_s is not None and len(times) >= 2 and sum(times) > budget_s:
      break
  leaves = [x for x in jax.tree.leaves(args) if hasattr(x, "devices")]
  device = next(iter(leaves[0].devices())) if leaves else None
  return _summary(times, warmup, jax_device_name(device))


def jax_vjp_timer(fn: Callable, args: tuple, argnums: tuple[int, ...]):
  """(forward-with-residuals executable, backward-only executable, backward args) to time a backward alone.

  ``jax.vjp`` returns its pullback as a pytree of residual arrays, so the pullback can itself be jitted and timed
  without re-running the forward.
  """
  def fwd(*a):
    diff = tuple(a[i] for i in argnums)

    def f(*d):
      full = list(a)
      for i, v in zip(argnums, d):
        full[i] = v
      return fn(*full)

    out, pullback = jax.vjp(f, *diff)
    return out, pullback

  fwd_jit = jax.jit(fwd)
  out, pullback = fwd_jit(*args)
  ct = jax.tree.map(lambda x: np.ones(x.shape, x.dtype), out)
  bwd_jit = jax.jit(lambda pb, c: pb(c))
  return fwd_jit, bwd_jit, (pullback, ct)


def torch_device_name(device: Any) -> str:
  import torch
  dev = torch.device(device)
  if dev.type == "cuda":
    return f"cuda:{torch.cuda.get_device_name(dev)}"
  return f"cpu ({platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()})"


def time_torch(fn: Callable[[], Any], device: Any = "cpu", repeats: int = 5, warmup: int = 1) -> Latency:
  """Times ``fn()``; synchronises CUDA before reading the clock when ``device`` is a GPU."""
  import torch
  dev = torch.device(device)
  sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
  for _ in range(warmup):
    fn()
  sync()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    sync()
    times.append(time.perf_counter() - t0)
  return _summary(times, warmup, torch_device_name(dev))

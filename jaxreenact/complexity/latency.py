"""Warm, synchronised latency measurements (median and spread over repeats), with the device named.

JAX dispatch is asynchronous: every timed call ends with ``jax.block_until_ready``. PyTorch calls end with
``torch.cuda.synchronize()`` when the tensors live on a GPU. The first ``warmup`` calls (compilation, allocator
warm-up) are not timed.
"""
from __future__ import annotations

import dataclasses
import platform
import statistics
from typing import Any, Callable

import jax
import numpy as np

from jaxreenact import timing
from jaxreenact.machine import cores_visible as cpu_count  # cores this process may use


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


def time_jax(fn: Callable, *args, repeats: int = 5, warmup: int = 1, budget_s: float | None = None) -> Latency:
  """Times ``fn(*args)`` (a jitted function or compiled executable), blocking on the outputs of every call.

  ``budget_s``: stop after this many seconds of timed calls once at least two were taken (slow CPU cases).
  """
  times = timing.time_calls(lambda: jax.block_until_ready(fn(*args)), repeats, warmup=warmup, budget_s=budget_s)
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
  times = timing.time_calls(lambda: (fn(), sync()), repeats, warmup=warmup)
  return _summary(times, warmup, torch_device_name(dev))

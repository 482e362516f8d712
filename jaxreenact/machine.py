"""What machine a figure was measured on, and how busy it was.

Timings taken while other processes share the cores are not comparable with idle ones (PyTorch's thread pool
degrades far more than XLA's under contention, so a JAX/PyTorch ratio inflates). :class:`LoadMonitor` samples the
CPU share of every process *outside* this process tree while a measurement runs, so a report can mark the figure.
"""
from __future__ import annotations

import datetime
import importlib
import os
import platform
import threading
import time
from typing import Any, Sequence

# A measurement is "busy" when processes outside our tree used more than this share of all cores on average.
BUSY_SHARE = 0.10


def cores_visible() -> int:
  """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # pragma: no cover - non-Linux
    return os.cpu_count() or 1


def describe(libraries: Sequence[str] = ("jax", "jaxlib", "flax", "torch")) -> dict[str, Any]:
  """The machine a figure was measured on: the one description every report and benchmark writes.

  Args:
    libraries: modules whose ``__version__`` to record (those that do not import are left out); with ``torch``
      among them, also torch's intra-op thread count.

  Returns:
    ``{'host', 'platform', 'processor', 'cpu_count', 'cpu_cores_visible', 'python', 'date_utc', <library>: version,
    ['torch_threads']}``; callers add what only they know (devices, accelerator, load).
  """
  info: dict[str, Any] = {"host": platform.node(), "platform": platform.platform(),
                          "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                          "cpu_cores_visible": cores_visible(), "python": platform.python_version(),
                          "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  for name in libraries:
    try:
      module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - an optional library (deepspeed, torch) may fail to import in many ways
      continue
    info[name] = getattr(module, "__version__", "?")
    if name == "torch":
      info["torch_threads"] = module.get_num_threads()
  return info


def _our_pids() -> set[int]:
  import psutil
  me = psutil.Process()
  return {me.pid, *(c.pid for c in me.children(recursive=True))}


def other_cpu_share(window_s: float = 1.0) -> dict[str, Any]:
  """CPU share (0..1 of all cores) used by processes outside this process tree over ``window_s``, with the
  1-minute load average and the busiest other processes."""
  import psutil
  procs = {}
  for p in psutil.process_iter(["name"]):
    try:
      p.cpu_percent(None)
      procs[p.pid] = p
    except (psutil.NoSuchProcess, psutil.AccessDenied):
      pass
  time.sleep(window_s)
  ours = _our_pids()
  used = []
  for pid, p in procs.items():
    if pid in ours:
      continue
    try:
      used.append((p.cpu_percent(None), p.info.get("name") or str(pid)))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
      pass
  cores = psutil.cpu_count() or 1
  used.sort(reverse=True)
  return {"other_share": round(sum(u for u, _ in used) / (100.0 * cores), 4), "loadavg_1m": os.getloadavg()[0],
          "top_others": [f"{name} {u:.0f}%" for u, name in used[:3] if u >= 1.0]}


class LoadMonitor:
  """Samples :func:`other_cpu_share` before, during (every ``every_s``) and after a measurement.

  with LoadMonitor() as mon: run()  ->  mon.result() = {'before', 'after', 'during_mean', 'during_max', 'busy'}
  """

  def __init__(self, every_s: float = 5.0, window_s: float = 1.0):
    self.every_s, self.window_s = every_s, window_s
    self.samples: list[float] = []
    self.before: dict[str, Any] | None = None
    self.after: dict[str, Any] | None = None
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  def _loop(self) -> None:
    while not self._stop.wait(self.every_s):
      try:
        self.samples.append(other_cpu_share(self.window_s)["other_share"])
      except Exception:  # noqa: BLE001 - a failed sample must never break the measurement it watches
        pass

  def __enter__(self) -> "LoadMonitor":
    self.before = other_cpu_share(self.window_s)
    self._thread = threading.Thread(target=self._loop, daemon=True)
    self._thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    self.after = other_cpu_share(self.window_s)

  def result(self) -> dict[str, Any]:
    raw = [(self.before or {}).get("other_share"), *self.samples, (self.after or {}).get("other_share")]
    shares = [s for s in raw if s is not None]
    mean = float(sum(shares) / len(shares)) if shares else None
    return {"before": self.before, "after": self.after, "during_samples": len(self.samples),
            "other_share_mean": mean, "other_share_max": max(shares) if shares else None,
            "busy": bool(mean is not None and mean > BUSY_SHARE), "threshold": BUSY_SHARE}

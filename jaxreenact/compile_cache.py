"""Persistent XLA compilation cache for the launch and benchmark scripts: a second start skips the compiles.

Every script that imports this module gets ``--compile_cache`` (on by default) / ``--nocompile_cache`` and calls
:func:`setup_from_flags` at the top of ``main``, before anything is jitted. The cache lives in, first found:

1. ``$JAXREENACT_COMPILE_CACHE`` (a directory; ``off``/``0``/``false`` turns the cache off, like the flag),
2. JAX's own ``jax_compilation_cache_dir`` when already set (``JAX_COMPILATION_CACHE_DIR``),
3. ``$XDG_CACHE_HOME/jaxreenact/xla``, else ``~/.cache/jaxreenact/xla``.

Entries are keyed by the program, the XLA flags, the jax/jaxlib versions and the device, so a stale entry is never
used for a different program; delete the directory to reclaim the space.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator

from absl import flags

ENV_VAR = "JAXREENACT_COMPILE_CACHE"
_OFF = ("off", "0", "false", "no")

# JAX caches only computations that took at least 1 s to compile by default; the reenactor's and the tiny
# configs' CPU compiles take 0.3-3 s, so the bar is lowered to 0.2 s. Below that a recompile costs about as much as
# reading an entry back, and eager single-op compiles (a few ms each) would flood the directory.
MIN_COMPILE_TIME_SECS = 0.2
# -1: no size floor (JAX's 0 lets a filesystem-specific override raise it, meant for remote caches); the local
# entries are worth keeping whatever their size.
MIN_ENTRY_SIZE_BYTES = -1
# Least-recently-used entries are evicted past this total (a vox256 training step is tens of MB per entry).
MAX_SIZE_BYTES = 4 << 30

_COMPILE_CACHE = flags.DEFINE_bool(
    "compile_cache", True,
    f"Persistent XLA compilation cache (${ENV_VAR}, else <XDG cache>/jaxreenact/xla): a second launch reuses the "
    "compiled programs. --nocompile_cache compiles everything afresh (e.g. to time cold compiles).")
# absl's --help lists the key flags of the script being run (named by sys.argv[0]); a flag defined here would only
# show under --helpfull, so it is made a key flag of whichever script imports this module.
flags.FLAGS.register_key_flag_for_module(sys.argv[0] if sys.argv else "__main__", flags.FLAGS["compile_cache"])


def default_dir() -> str | None:
  """The cache directory this process would use, or None when ``$JAXREENACT_COMPILE_CACHE`` turns it off."""
  env = os.environ.get(ENV_VAR, "").strip()
  if env.lower() in _OFF:
    return None
  if env:
    return os.path.abspath(os.path.expanduser(env))
  import jax
  if jax.config.jax_compilation_cache_dir:  # the user pointed JAX at a cache already: keep theirs
    return jax.config.jax_compilation_cache_dir
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxreenact", "xla")


def enable(path: str | os.PathLike | None = None) -> str:
  """Turns the persistent compilation cache on at ``path`` (default :func:`default_dir`); returns the directory.

  Raises:
    ValueError: ``path`` is None and ``$JAXREENACT_COMPILE_CACHE`` turns the cache off.
  """
  import jax
  path = default_dir() if path is None else os.path.abspath(os.fspath(path))
  if path is None:
    raise ValueError(f"compile_cache.enable: ${ENV_VAR}={os.environ[ENV_VAR]!r} turns the cache off; pass a "
                     "directory or unset it")
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_SECS)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", MIN_ENTRY_SIZE_BYTES)
  try:
    import filelock  # noqa: F401  JAX's LRU eviction locks the directory with it
    jax.config.update("jax_compilation_cache_max_size", MAX_SIZE_BYTES)
  except ImportError:
    pass
  _reset()
  return path


def _reset() -> None:
  """Forgets JAX's once-per-process decision (made at the first compile) whether the cache is used, so a new
  setting applies even after something was compiled; without the INFO line JAX logs for it under absl."""
  import logging

  from jax.experimental.compilation_cache import compilation_cache
  logger = logging.getLogger("jax._src.compilation_cache")
  level = logger.level
  logger.setLevel(logging.WARNING)
  try:
    compilation_cache.reset_cache()
  finally:
    logger.setLevel(level)


def disable() -> None:
  """Turns the persistent compilation cache off for the rest of this process."""
  import jax
  jax.config.update("jax_compilation_cache_dir", None)
  _reset()


def setup_from_flags() -> str | None:
  """Applies ``--compile_cache`` (and ``$JAXREENACT_COMPILE_CACHE``); returns the cache directory, or None when off.

  Call at the top of a script's ``main``, before the first jit. Outside a parsed absl command line the flag's
  default (on) applies.
  """
  on = _COMPILE_CACHE.value if flags.FLAGS.is_parsed() else _COMPILE_CACHE.default
  path = default_dir() if on else None
  if path is None:
    disable()
    return None
  return enable(path)


def stats() -> dict[str, Any]:
  """The cache state of this process: directory (None when off) and its number of entries."""
  import jax
  path = jax.config.jax_compilation_cache_dir
  entries = None
  if path and os.path.isdir(path):
    entries = sum(1 for n in os.listdir(path) if n.endswith("-cache"))  # JAX's LRUCache: <key>-cache + <key>-atime
  return {"dir": path, "entries": entries}


@contextlib.contextmanager
def count_lookups() -> Iterator[dict[str, int]]:
  """Counts persistent-cache lookups inside the block: yields {'hits': n, 'misses': m}, filled in as they happen.

  A miss is a cacheable compile not found on disk (it is compiled, then written when it took long enough).
  """
  import jax
  counts = {"hits": 0, "misses": 0}
  names = {"/jax/compilation_cache/cache_hits": "hits", "/jax/compilation_cache/cache_misses": "misses"}

  def listen(event: str, **kwargs):
    del kwargs
    if event in names:
      counts[names[event]] += 1

  jax.monitoring.register_event_listener(listen)
  try:
    yield counts
  finally:
    jax.monitoring.unregister_event_listener(listen)

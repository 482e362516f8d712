"""Persistent compilation cache: the settings it makes, where it lives, and a real hit in a second process."""
import json
import os
import subprocess
import sys

import jax
import pytest

from jaxreenact import compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A launch-style absl script: --compile_cache/--nocompile_cache parsed by absl, then one jitted function compiled.
# 30 chained matmul/tanh/cos steps compile in ~0.5 s on an idle CPU (5 s loaded), above MIN_COMPILE_TIME_SECS, so
# the entry is written; a single op would not be (by design).
PROBE = r"""
import json, sys
from absl import app
from jaxreenact import compile_cache

def main(argv):
  path = compile_cache.setup_from_flags()
  import jax, jax.numpy as jnp
  def f(x):
    for i in range(30):
      x = jnp.tanh(x @ x.T + i) * jnp.cos(x)
    return x
  with compile_cache.count_lookups() as counts:
    y = jax.jit(f)(jnp.ones((8, 8)))
  print(json.dumps({"dir": path, **counts, "sum": float(y.sum()), "entries": compile_cache.stats()["entries"]}))

app.run(main)
"""


@pytest.fixture
def restore_jax_cache_config():
  names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
           "jax_persistent_cache_min_entry_size_bytes", "jax_compilation_cache_max_size")
  saved = {n: getattr(jax.config, n) for n in names}
  yield
  for n, v in saved.items():
    jax.config.update(n, v)
  compile_cache._reset()


def _entries(path) -> int:
  return sum(1 for n in os.listdir(path) if n.endswith("-cache")) if os.path.isdir(path) else 0


def _probe(tmp_path, cache_dir, *flags):
  script = tmp_path / "probe.py"
  script.write_text(PROBE)
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAXREENACT_COMPILE_CACHE=str(cache_dir))
  env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
  res = subprocess.run([sys.executable, str(script), *flags], env=env, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  return json.loads(res.stdout.strip().splitlines()[-1])


def test_enable_and_disable_set_the_jax_config(tmp_path, restore_jax_cache_config):
  path = compile_cache.enable(tmp_path / "xla")
  assert path == str(tmp_path / "xla") and os.path.isdir(path)
  assert jax.config.jax_compilation_cache_dir == path
  assert jax.config.jax_persistent_cache_min_compile_time_secs == compile_cache.MIN_COMPILE_TIME_SECS < 1.0
  assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1
  assert compile_cache.stats() == {"dir": path, "entries": 0}
  compile_cache.disable()
  assert jax.config.jax_compilation_cache_dir is None and compile_cache.stats()["dir"] is None


def test_default_dir_env_precedence(tmp_path, monkeypatch, restore_jax_cache_config):
  jax.config.update("jax_compilation_cache_dir", None)
  monkeypatch.delenv(compile_cache.ENV_VAR, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.default_dir() == str(tmp_path / "xdg" / "jaxreenact" / "xla")
  monkeypatch.delenv("XDG_CACHE_HOME")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert compile_cache.default_dir() == str(tmp_path / "home" / ".cache" / "jaxreenact" / "xla")
  jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))  # JAX_COMPILATION_CACHE_DIR is kept
  assert compile_cache.default_dir() == str(tmp_path / "theirs")
  monkeypatch.setenv(compile_cache.ENV_VAR, str(tmp_path / "ours"))  # ours overrides everything
  assert compile_cache.default_dir() == str(tmp_path / "ours")
  monkeypatch.setenv(compile_cache.ENV_VAR, "off")
  assert compile_cache.default_dir() is None
  with pytest.raises(ValueError, match=compile_cache.ENV_VAR):
    compile_cache.enable()


def test_second_process_reads_the_entry_the_first_wrote(tmp_path):
  cache = tmp_path / "xla"
  first = _probe(tmp_path, cache)
  assert first["dir"] == str(cache) and first["hits"] == 0 and first["misses"] >= 1
  written = _entries(cache)
  assert written >= 1 and first["entries"] == written
  second = _probe(tmp_path, cache)
  assert second["hits"] >= 1 and second["misses"] == 0  # the compile came from disk
  assert second["sum"] == first["sum"] and _entries(cache) == written  # same result, nothing new written
  off = _probe(tmp_path, cache, "--nocompile_cache")
  assert off["dir"] is None and off["hits"] == 0 and off["misses"] == 0 and _entries(cache) == written

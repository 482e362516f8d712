"""Data-parallel sharding with ``jax.jit`` + ``Mesh``/``NamedSharding`` (no pmap: it is in maintenance mode).

Parameters and optimiser states are replicated (``P()``); batches are split along the leading axis over the
``data`` mesh axis. XLA inserts the gradient all-reduce; BatchNorm statistics are computed over the global batch.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxreenact.layers import conv


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D ``('data',)`` mesh over the first ``num_devices`` devices (all devices by default, all hosts)."""
  devices = jax.devices()
  n = len(devices) if num_devices in (None, 0) else num_devices
  if n > len(devices):
    raise ValueError(f"asked for {n} devices, only {len(devices)} available ({devices[0].platform})")
  return Mesh(np.asarray(devices[:n]), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def check_batch_divisible(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"global batch_size {batch_size} is not divisible by the {n} devices of the mesh")


def shard_batch(batch: dict[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
  """Host-local numpy batch -> global arrays sharded on ``data`` (multi-host aware)."""
  sharding = data_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))


def abstract_replicated(init: Callable[[jax.Array], Any], rng: jax.Array, mesh: Mesh) -> Any:
  """Shapes, dtypes and (replicated) shardings of the state ``init(rng)`` builds, without building it: ``init``
  traced on an abstract key (no compile, no arrays). What a checkpoint restores into and a step is lowered on."""
  rep = replicated(mesh)
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), jax.eval_shape(init, rng))


def jit_step(step: Callable, mesh: Mesh, *, state_sharding: Any = None, donate: bool = True,
             small_conv_pixels: int | None = None, compiler_options: dict | None = None) -> Callable:
  """The one jit of a training step ``step(state, batch) -> (state, metrics)`` over ``mesh`` (every model uses it).

  The state is replicated (or ``state_sharding``) and donated, the batch sharded on ``data``, the metrics replicated.
  ``small_conv_pixels``: convolutions with at most that many output pixels are traced as matmuls
  (``layers/conv.py``; default ``conv.default_small_conv_pixels()``: 16 on CPU, 0 elsewhere; 0 keeps every
  convolution). ``donate=False`` only exists to measure what donation saves; ``compiler_options`` go to ``jax.jit``
  (tests use ``{'xla_backend_optimization_level': 0}``: half the CPU compile time, several times the step time).
  """
  pixels = conv.default_small_conv_pixels() if small_conv_pixels is None else small_conv_pixels
  rep = replicated(mesh)
  return jax.jit(conv.traced_with_small_convs(step, pixels), in_shardings=(state_sharding or rep, data_sharded(mesh)),
                 out_shardings=(state_sharding or rep, rep), donate_argnums=0 if donate else (),
                 compiler_options=compiler_options)

"""Data-parallel sharding with ``jax.jit`` + ``Mesh``/``NamedSharding`` (no pmap: it is in maintenance mode).

Parameters and optimiser states are replicated (``P()``); batches are split along the leading axis over the
``data`` mesh axis. XLA inserts the gradient all-reduce; BatchNorm statistics are computed over the global batch.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


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

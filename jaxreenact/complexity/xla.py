"""XLA's own cost figures: lowered (global, before optimisation) and compiled (per device, after fusion) cost analysis,
memory analysis, per-device figures under a data-parallel ``Mesh``, and XLA's count of every equation in isolation.

``jax.jit(f).lower(*args).cost_analysis()`` needs no compile and is what the report uses wherever it can.
``compile()`` is needed for per-device costs and for memory (docs/facts.md §3 lists XLA's counting rules).
"""
from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.extend import core as jcore
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxreenact.complexity import analytic

COST_KEYS = ("flops", "transcendentals", "bytes accessed")


def _normalize(ca) -> dict[str, float]:
  """cost_analysis() returns a dict (new jax) or a one-element list (older); keep the headline keys."""
  if ca is None:
    return {}
  if isinstance(ca, (list, tuple)):
    ca = ca[0] if ca else {}
  return {k.replace(" ", "_"): float(ca.get(k, 0.0)) for k in COST_KEYS}


def memory_stats(compiled) -> dict[str, int]:
  """``compiled.memory_analysis()`` as a dict, plus ``peak_bytes`` = arguments + outputs + temporaries − aliases."""
  m = compiled.memory_analysis()
  if m is None:
    return {}
  keys = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "alias_size_in_bytes",
          "generated_code_size_in_bytes")
  out = {k: int(getattr(m, k, 0) or 0) for k in keys}
  out["peak_bytes"] = (out["argument_size_in_bytes"] + out["output_size_in_bytes"] + out["temp_size_in_bytes"]
                       - out["alias_size_in_bytes"])
  return out


@dataclasses.dataclass
class XlaCosts:
  lowered: dict[str, float]
  compiled: dict[str, float] | None = None
  memory: dict[str, int] | None = None
  lower_s: float = 0.0
  compile_s: float = 0.0
  compiled_fn: Any = None  # the executable, reusable for latency

  def as_dict(self) -> dict[str, Any]:
    return {"lowered": self.lowered, "compiled_per_device": self.compiled, "memory": self.memory,
            "lower_s": round(self.lower_s, 3), "compile_s": round(self.compile_s, 3)}


def xla_costs(fn: Callable | Any, *args, compile: bool = True, jit_kwargs: dict | None = None) -> XlaCosts:
  """Lowered (and optionally compiled) cost analysis of ``jax.jit(fn, **jit_kwargs)(*args)``.

  ``fn`` may also be a ``jax.stages.Traced`` (from ``jax.jit(f).trace(*args)``), which avoids tracing twice.
  Args may be arrays or ``jax.ShapeDtypeStruct``.
  """
  t0 = time.perf_counter()
  if isinstance(fn, jax.stages.Traced):
    lowered = fn.lower()
  else:
    lowered = jax.jit(fn, **(jit_kwargs or {})).lower(*args)
  low = _normalize(lowered.cost_analysis())
  t1 = time.perf_counter()
  res = XlaCosts(lowered=low, lower_s=t1 - t0)
  if compile:
    compiled = lowered.compile()
    res.compile_s = time.perf_counter() - t1
    res.compiled = _normalize(compiled.cost_analysis())
    res.memory = memory_stats(compiled)
    res.compiled_fn = compiled
  return res


def data_parallel_costs(fn: Callable, args: Sequence[Any], batch_argnums: Sequence[int], n_devices: int,
                        compile: bool = True) -> XlaCosts:
  """Costs under ``jax.make_mesh((n,), ('data',))``: batch arguments sharded ``P('data')``, the rest replicated.

  The lowered figures stay global; compiled figures and memory are per device.
  """
  if n_devices > len(jax.devices()):
    raise ValueError(f"data_parallel_costs: {n_devices} devices requested, {len(jax.devices())} available "
                     "(set XLA_FLAGS=--xla_force_host_platform_device_count=N before importing jax)")
  mesh = jax.make_mesh((n_devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:n_devices])
  rep = NamedSharding(mesh, P())
  shard = NamedSharding(mesh, P("data"))
  in_shardings = tuple(jax.tree.map(lambda _: shard if i in batch_argnums else rep, a) for i, a in enumerate(args))
  for i in batch_argnums:
    for leaf in jax.tree.leaves(args[i]):
      if leaf.shape and leaf.shape[0] % n_devices:
        raise ValueError(f"data_parallel_costs: batch {leaf.shape[0]} of argument {i} is not divisible by "
                         f"{n_devices} devices")
  return xla_costs(fn, *args, compile=compile, jit_kwargs={"in_shardings": in_shardings})


# ---------------------------------------------------------------------------------------------------------------
# XLA's count of each equation in isolation.

_EQN_CACHE: dict[Any, dict[str, float]] = {}


def _eqn_key(eqn) -> Any:
  ins = tuple((str(v.aval), repr(v.val) if isinstance(v, jcore.Literal) else None) for v in eqn.invars)
  params = tuple(sorted((k, str(v)) for k, v in eqn.params.items()))
  return (eqn.primitive.name, params, ins)


def eqn_cost(eqn) -> dict[str, float]:
  """XLA's lowered cost of one leaf equation, lowered alone (cached by primitive, params and operand types)."""
  key = _eqn_key(eqn)
  hit = _EQN_CACHE.get(key)
  if hit is not None:
    return hit
  invars = [jcore.Var(v.aval) if not isinstance(v, jcore.Literal) else v for v in eqn.invars]
  outvars = [jcore.Var(v.aval) for v in eqn.outvars]
  new = eqn.replace(invars=invars, outvars=outvars)
  jaxpr = jcore.Jaxpr([], [v for v in invars if not isinstance(v, jcore.Literal)], outvars, [new],
                      effects=eqn.effects)
  fn = jcore.jaxpr_as_fun(jcore.ClosedJaxpr(jaxpr, []))
  args = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in jaxpr.invars]
  try:
    cost = _normalize(jax.jit(fn).lower(*args).cost_analysis())
  except Exception as e:  # noqa: BLE001 - a primitive that cannot be lowered alone is reported, not fatal
    cost = {"flops": float("nan"), "transcendentals": float("nan"), "bytes_accessed": float("nan"),
            "error": f"{type(e).__name__}: {e}"[:200]}
  _EQN_CACHE[key] = cost
  return cost


@dataclasses.dataclass
class CategoryCosts:
  """XLA's per-equation costs summed per category (see analytic.CATEGORIES), plus conv/dot ops one by one."""
  by_category: dict[str, dict[str, float]]
  conv_dot_flops: int
  conv_dot_padx_macs: int
  conv_dot_naive_macs: int
  n_eqns: int
  n_unique: int
  failed: list[str]

  @property
  def flops(self) -> float:
    return sum(v["flops"] for v in self.by_category.values())

  def as_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def category_costs(closed, *, only_conv_dot: bool = False) -> CategoryCosts:
  """Lowers each leaf equation of a dead-code-eliminated jaxpr alone and sums XLA's figures per category.

  ``only_conv_dot`` skips everything but conv_general_dilated/dot_general (fast path for the identity check).
  """
  if isinstance(closed, jcore.Jaxpr):
    closed = jcore.ClosedJaxpr(closed, [])
  closed = analytic.dce(closed)
  by_cat: dict[str, dict[str, float]] = collections.defaultdict(lambda: dict.fromkeys(
      ("flops", "transcendentals", "bytes_accessed", "elements"), 0.0))
  conv_flops = padx = naive = 0
  n = 0
  keys = set()
  failed = []
  for eqn, count, path, ctx in _walk(closed.jaxpr, 1, "", ()):
    prim = eqn.primitive.name
    is_cd = prim in ("conv_general_dilated", "dot_general")
    if only_conv_dot and not is_cd:
      continue
    n += 1
    keys.add(_eqn_key(eqn))
    cost = eqn_cost(eqn)
    if "error" in cost:
      failed.append(f"{prim} at {path}: {cost['error']}")
      continue
    cat = analytic.categorize(eqn, ctx)
    agg = by_cat[cat]
    for k in ("flops", "transcendentals", "bytes_accessed"):
      agg[k] += cost[k] * count
    agg["elements"] += count * sum(int(np.prod(v.aval.shape, dtype=np.int64)) for v in eqn.outvars
                                   if hasattr(v.aval, "shape"))
    if is_cd:
      op = analytic._leaf_op(eqn, path, count)  # noqa: SLF001 - shared formula
      conv_flops += int(cost["flops"]) * count
      padx += op.padx * count
      naive += op.naive * count
  return CategoryCosts({k: dict(v) for k, v in by_cat.items()}, conv_flops, padx, naive, n, len(keys), failed)


def _walk(jaxpr, count, prefix, ctx):
  """Leaf equations like analytic.iter_eqns, but a ``cond`` contributes only its costliest branch."""
  for eqn in jaxpr.eqns:
    stack = str(eqn.source_info.name_stack)
    path = "/".join(p for p in (prefix, stack) if p)
    if eqn.primitive.name == "cond":
      branches = [analytic._jaxpr(b) for b in eqn.params["branches"]]  # noqa: SLF001
      best = max(branches, key=lambda b: analytic._count(b, 1, "", ()).naive)  # noqa: SLF001
      yield from _walk(best, count, path, ctx + ("cond",))
      continue
    subs = analytic._sub_jaxprs(eqn)  # noqa: SLF001
    if subs:
      name = eqn.params.get("name") or eqn.primitive.name
      for sub, trip in subs:
        yield from _walk(analytic._jaxpr(sub), count * trip, path, ctx + (str(name),))  # noqa: SLF001
    else:
      yield eqn, count, path, ctx

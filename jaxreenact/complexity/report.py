"""Builds the complexity report of a model from its :class:`specs.ModelSpec`: every tool, every module, one training
iteration, scaling, and the study's Table 10 re-done; writes ``complexity.json``, ``complexity.md`` and PNG charts.

Nothing here is model specific: ``specs.py`` says what to measure, this module measures it. Figures whose tool was
not run are ``None`` (JSON ``null``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Callable

import jax
import numpy as np

from jaxreenact import machine
from jaxreenact.complexity import analytic, latency, reconcile, report_writers, specs, xla

V100_FP32_PEAK = 15.7e12  # NVIDIA V100 SXM2 FP32 peak FLOPS (the study's GPU); tensor-core FP16 peak 125e12
V100_FP16_TC_PEAK = 125e12


@dataclasses.dataclass
class Options:
  """What to run. Defaults produce the full report; the CLI maps its flags onto these fields."""
  batch: int = 1  # batch of the per-module readings
  train_batch: int | None = None  # None: the study's per-GPU batch (spec.study['batch_per_gpu'])
  compile: bool = True  # compile modules (per-device costs, memory, latency)
  compile_train: bool = True  # compile the training iteration (memory, per-device costs)
  torch: bool = True  # FlopCounterMode + torch analytic (meta tensors: free)
  deepspeed: bool = True  # DeepSpeed FlopsProfiler (real CPU forwards)
  latency: bool = True  # module latencies (JAX; torch with torch_latency)
  torch_latency: bool = False
  latency_repeats: int = 3
  latency_warmup: int = 1
  latency_budget_s: float = 6.0  # stop repeating a measurement after this long (at least 2 timed calls)
  latency_bwd_exact: bool = False  # time the backward alone (jitted pullback: 2 more compiles per module)
  latency_train: bool | None = None  # None: only when the JAX backend is an accelerator
  categories: bool = True  # XLA per-equation cost per category for the modules (reconciliation)
  mesh_devices: tuple[int, ...] = (1, 2, 4)
  mesh_batch: int = 4
  mesh_train: bool = False  # also compile the training iteration under 1/2/4-device meshes
  scaling_sizes: tuple[int, ...] = (64, 128, 256, 512)
  scaling_batches: tuple[int, ...] = (1, 2, 4, 8)
  scaling_latency_sizes: tuple[int, ...] = (64, 128)  # the config's own size reuses the module reading
  scaling_latency_batches: tuple[int, ...] = ()
  deepspeed_device: str = "meta"  # 'meta': shapes only, nested-call guard (== real readings, tested); or 'cpu'
  engine_profile: bool = False  # DeepSpeed engine profile of a training iteration (real compute)
  engine_batch: int = 2


class Progress:
  """Timestamped progress lines (a person watching the CLI sees every step and how long it took)."""

  def __init__(self, enabled: bool = True, stream=None):
    self.enabled = enabled
    self.t0 = time.perf_counter()
    self.stream = stream or sys.stdout

  def __call__(self, msg: str) -> None:
    if self.enabled:
      print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}", file=self.stream, flush=True)


def environment() -> dict[str, Any]:
  """``machine.describe()`` plus the JAX devices, XLA flags and matmul precision (the report names its machine)."""
  env = machine.describe(("jax", "jaxlib", "flax", "numpy", "torch", "deepspeed"))
  env.setdefault("torch", None)
  env.setdefault("deepspeed", None)
  env.update({"jax_backend": jax.default_backend(),
              "jax_devices": [f"{d.platform}:{getattr(d, 'device_kind', '')}" for d in jax.devices()],
              "jax_device_count": jax.device_count(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision)})
  if env["torch"] is not None:
    import torch
    env["cuda_available"] = torch.cuda.is_available()
  return env


def _i(x) -> int | None:
  return None if x is None or (isinstance(x, float) and math.isnan(x)) else int(round(x))


# ---------------------------------------------------------------------------------------------------------------
# Torch side helpers (nets built once per device per model).

class _TorchNets:

  def __init__(self, build: Callable[[str], Any]):
    self.build = build
    self.cache: dict[str, Any] = {}

  def get(self, device: str):
    if device not in self.cache:
      self.cache[device] = self.build(device)
    return self.cache[device]


def _detach(x):
  """Detaches every tensor of a (nested) argument."""
  if isinstance(x, dict):
    return {k: _detach(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return type(x)(_detach(v) for v in x)
  return x.detach() if hasattr(x, "detach") else x


def _torch_call(ts: specs.TorchSide, nets, args):
  return ts.call(nets, args) if ts.call is not None else ts.module(nets)(*args)


def _torch_module_readings(m: specs.ModuleSpec, nets_cache: dict, batch: int, train_batch: int | None,
                           opts: Options) -> tuple[dict[str, Any], Any]:
  """FlopCounterMode (fwd, bwd) and torch analytic on meta; DeepSpeed on CPU at ``batch`` and for ``train_batch``."""
  import torch

  from jaxreenact.complexity import torch_profile as tp  # torch: optional extra
  ts = m.torch
  out: dict[str, Any] = {}
  tc = None
  tn = nets_cache[id(ts.build)]
  if opts.torch:
    meta = tn.get("meta")
    args = list(ts.inputs(batch, "meta"))
    for i in ts.grad_inputs:
      args[i] = args[i].requires_grad_(True)
    backward = (lambda o: tp.sum_outputs(o).backward()) if m.grad_inputs is not None else None
    fc = tp.flop_counter(lambda: _torch_call(ts, meta, tuple(args)), backward)
    out["flopcounter_flops_fwd"] = fc.forward
    out["flopcounter_flops_bwd"] = fc.backward if backward else None
    out["flopcounter_by_op_fwd"] = fc.by_op_forward
    with analytic.TorchMacCounter(ts.module(meta)) as tc, torch.no_grad():
      _torch_call(ts, meta, _detach(tuple(args)))
    out["torch_analytic_macs_naive"] = tc.naive
    out["torch_analytic_macs_padx"] = tc.padx
    out["torch_params"] = int(sum(p.numel() for p in ts.module(meta).parameters()))
  if opts.deepspeed:
    dev = opts.deepspeed_device
    nets = tn.get(dev)
    readings = {}
    wanted = {batch}
    if train_batch is not None:  # on meta the training batch costs nothing; on a real device extrapolate
      wanted |= {train_batch} if dev == "meta" or train_batch <= 2 else {1, 2}
    for b in sorted(wanted):
      torch.manual_seed(0)
      args = ts.inputs(b, dev)
      fn = (lambda *a: ts.call(nets, a)) if ts.call is not None else None
      readings[b] = tp.deepspeed_profile(ts.module(nets), args, fn=fn, guard=True)
    r = readings[batch]
    out.update(deepspeed_flops_fwd=r.flops, deepspeed_macs_fwd=r.macs, deepspeed_params=r.params,
               deepspeed_duration_s=r.duration_s if dev != "meta" else None, deepspeed_by_function=r.by_function,
               deepspeed_by_category=r.by_category(), deepspeed_device=dev)
    if train_batch is None:
      pass
    elif train_batch in readings:
      out["deepspeed_flops_fwd_train_batch"] = readings[train_batch].flops
      out["deepspeed_macs_fwd_train_batch"] = readings[train_batch].macs
    else:
      out["deepspeed_flops_fwd_train_batch"] = tp.affine_in_batch({b: r.flops for b, r in readings.items()},
                                                                  train_batch)
      out["deepspeed_macs_fwd_train_batch"] = tp.affine_in_batch({b: r.macs for b, r in readings.items()},
                                                                 train_batch)
      out["deepspeed_train_batch_note"] = (f"extrapolated from batches {sorted(readings)} (every DeepSpeed formula is "
                                           "affine in the batch size)")
  if opts.torch_latency and ts is not None:
    cpu = tn.get("cpu")
    args = ts.inputs(batch, "cpu")
    with torch.no_grad():
      out["torch_latency_fwd_ms"] = latency.time_torch(lambda: _torch_call(ts, cpu, args), "cpu",
                                                       opts.latency_repeats, opts.latency_warmup).as_dict()
  return out, tc


# ---------------------------------------------------------------------------------------------------------------
# Modules.

def module_record(m: specs.ModuleSpec, opts: Options, log: Progress, nets_cache: dict | None = None,
                  train_batch: int | None = None) -> dict[str, Any]:
  """Every reading of one module (see the schema in the docstring of :func:`run_model`).

  ``train_batch``: also derive the DeepSpeed count at the training batch (for the iteration's composition).
  """
  if m.light:
    opts = dataclasses.replace(opts, compile=False, latency=False)
  if m.grad_inputs is None:
    backward = "none (frozen network, run without gradient)"
  else:
    backward = (f"gradient of Σ outputs w.r.t. {'parameters and ' if m.param_grads else ''}inputs "
                f"{list(m.grad_inputs)}")
  rec: dict[str, Any] = {"params": m.params, "batch": opts.batch, "note": m.note, "backward": backward}
  clock = _Clock()
  args = specs.make_args(m, opts.batch)
  traced = jax.jit(m.fn).trace(*args)
  count = analytic.count_jaxpr(traced.jaxpr)
  clock("trace+analytic")
  rec.update(analytic_macs_naive=count.naive, analytic_macs_padx=count.padx,
             analytic_conv_ops=count.summary()["conv_ops"], analytic_dot_ops=count.summary()["dot_ops"],
             analytic_notes=count.notes,
             analytic_macs_by_submodule={k: {"naive": v[0], "padx": v[1]} for k, v in count.by_path(2).items()})
  fwd = xla.xla_costs(traced, compile=opts.compile)
  clock("xla fwd (lower+compile)")
  rec.update(xla_flops_fwd=_i(fwd.lowered.get("flops")), xla_transcendentals_fwd=_i(fwd.lowered.get("transcendentals")),
             xla_bytes_accessed_fwd=_i(fwd.lowered.get("bytes_accessed")), xla_lowered_fwd=fwd.lowered,
             xla_compiled_fwd_per_device=fwd.compiled, memory_fwd=fwd.memory)
  cats = xla.category_costs(traced.jaxpr, only_conv_dot=not opts.categories)
  rec["xla_conv_dot_flops_fwd"] = cats.conv_dot_flops
  if opts.categories:
    rec["xla_categories_fwd"] = cats.as_dict()
  clock("xla per-equation")
  log(f"  {m.name}: analytic naive {count.naive:,} padx {count.padx:,}; XLA lowered {rec['xla_flops_fwd']:,}")
  bwd_fn = m.backward_fn()
  if bwd_fn is not None:
    traced_b = jax.jit(bwd_fn).trace(*args)
    cb = analytic.count_jaxpr(traced_b.jaxpr)
    fb = xla.xla_costs(traced_b, compile=opts.compile)
    clock("fwd+bwd (trace+lower+compile)")
    rec.update(analytic_macs_naive_fwd_bwd=cb.naive, analytic_macs_padx_fwd_bwd=cb.padx,
               analytic_macs_naive_bwd=cb.naive - count.naive, analytic_macs_padx_bwd=cb.padx - count.padx,
               xla_flops_fwd_bwd=_i(fb.lowered.get("flops")),
               xla_flops_bwd=_i(fb.lowered.get("flops") - fwd.lowered.get("flops")),
               xla_transcendentals_bwd=_i(fb.lowered.get("transcendentals") - fwd.lowered.get("transcendentals")),
               xla_bytes_accessed_bwd=_i(fb.lowered.get("bytes_accessed") - fwd.lowered.get("bytes_accessed")),
               xla_lowered_fwd_bwd=fb.lowered, xla_compiled_fwd_bwd_per_device=fb.compiled, memory_fwd_bwd=fb.memory)
    rec["bwd_over_fwd_xla"] = round(rec["xla_flops_bwd"] / rec["xla_flops_fwd"], 4) if rec["xla_flops_fwd"] else None
  else:
    fb = None
    rec.update(xla_flops_bwd=None, analytic_macs_naive_bwd=None, analytic_macs_padx_bwd=None)
  if opts.latency and opts.compile:
    conc = specs.concrete(args)
    rec["latency_fwd_ms"] = _time(fwd.compiled_fn, conc, opts)
    if fb is not None:
      rec["latency_fwd_bwd_ms"] = _time(fb.compiled_fn, conc, opts)
      if opts.latency_bwd_exact:
        argnums = ((0,) if m.param_grads else ()) + tuple(1 + i for i in m.grad_inputs)
        _, bwd_jit, bargs = latency.jax_vjp_timer(lambda v, *a: specs.sum_outputs(m.fn(v, *a)), conc, argnums)
        rec["latency_bwd_ms"] = _time(bwd_jit, bargs, opts)
      else:  # backward = (forward + backward) − forward, medians
        rec["latency_bwd_ms"] = {"median_ms": round(rec["latency_fwd_bwd_ms"]["median_ms"]
                                                    - rec["latency_fwd_ms"]["median_ms"], 4),
                                 "iqr_ms": rec["latency_fwd_bwd_ms"]["iqr_ms"],
                                 "derived": "latency_fwd_bwd − latency_fwd (medians)",
                                 "device": rec["latency_fwd_ms"]["device"]}
    clock("latency")
    log(f"  {m.name}: latency fwd {rec['latency_fwd_ms']['median_ms']:.1f} ms"
        + (f", bwd {rec['latency_bwd_ms']['median_ms']:.1f} ms" if "latency_bwd_ms" in rec else ""))
  if m.torch is not None and (opts.torch or opts.deepspeed or opts.torch_latency) and nets_cache is not None:
    readings, tc = _torch_module_readings(m, nets_cache, opts.batch, train_batch, opts)
    clock("torch")
    rec.update(readings)
    if tc is not None:
      rec["op_diff_jax_vs_torch"] = analytic.compare_ops(count.ops, tc)
    log(f"  {m.name}: FlopCounterMode {rec.get('flopcounter_flops_fwd')}, DeepSpeed {rec.get('deepspeed_flops_fwd')}"
        f" flops / {rec.get('deepspeed_macs_fwd')} MACs")
  rec["identities"] = reconcile.identities(rec)
  if m.official and opts.batch == 1:
    rec["official"] = m.official
    rec["official_match"] = official_match(rec, m.official)
  rec["reconciliation"] = reconcile.reconcile_module(rec)
  rec["timings_s"] = clock.times
  return rec


class _Clock:
  """Seconds spent per phase (recorded in the report: the tool says what it costs)."""

  def __init__(self):
    self.t = time.perf_counter()
    self.times: dict[str, float] = {}

  def __call__(self, what: str) -> None:
    now = time.perf_counter()
    self.times[what] = round(now - self.t, 2)
    self.t = now


def _time(fn, args, opts: Options) -> dict[str, Any]:
  return latency.time_jax(fn, *args, repeats=opts.latency_repeats, warmup=opts.latency_warmup,
                          budget_s=opts.latency_budget_s).as_dict()


def official_match(rec: dict[str, Any], off: dict[str, Any]) -> dict[str, tuple]:
  """{figure: (ours, official, equal)} for the official figures (docs/facts.md) a module spec carries."""
  out: dict[str, tuple] = {}
  if "macs_naive" in off:
    out["jax analytic naive MACs"] = (rec["analytic_macs_naive"], off["macs_naive"],
                                      rec["analytic_macs_naive"] == off["macs_naive"])
    t = rec.get("torch_analytic_macs_naive")
    if t is not None:
      out["torch analytic naive MACs"] = (t, off["macs_naive"], t == off["macs_naive"])
  if "gflops_2x_naive" in off:  # docs/facts.md gives 2·MACs in GFLOP with 3 decimals
    g = off["gflops_2x_naive"]
    for key, v in (("jax 2·naive (GFLOP, 3 dp)", rec["analytic_macs_naive"]),
                   ("torch 2·naive (GFLOP, 3 dp)", rec.get("torch_analytic_macs_naive"))):
      if v is not None:
        ours = round(2 * v / 1e9, 3)
        out[key] = (f"{ours:.3f}", f"{g:.3f}", ours == g)
  if "flopcounter" in off and rec.get("flopcounter_flops_fwd") is not None:
    out["FlopCounterMode"] = (rec["flopcounter_flops_fwd"], off["flopcounter"],
                              rec["flopcounter_flops_fwd"] == off["flopcounter"])
  if "deepspeed_flops" in off and rec.get("deepspeed_flops_fwd") is not None:
    expected = off["deepspeed_flops"] + off.get("deepspeed_offset", 0)
    out["DeepSpeed flops"] = (rec["deepspeed_flops_fwd"], expected, rec["deepspeed_flops_fwd"] == expected)
  return out


# ---------------------------------------------------------------------------------------------------------------
# Training iteration.

def train_record(spec: specs.ModelSpec, modules: dict[str, dict], opts: Options, log: Progress,
                 nets_cache: dict | None) -> dict[str, Any]:
  tr = spec.train
  b = opts.train_batch or spec.study.get("batch_per_gpu", 8)
  rec: dict[str, Any] = {"batch": b, "description": tr.description, "forward_calls": tr.forward_calls,
                         "optimizer": ("included: the iteration is the training step launch.train jits (Adam "
                                       "updates, and StarGAN v2's EMA, are O(params) elementwise work)")}
  args = (tr.state, tr.batch(b))
  t0 = time.perf_counter()
  traced = jax.jit(tr.fn).trace(*args)
  rec["params"] = specs.count_params({k: (v["params"] if "params" in v else v) for k, v in tr.networks.items()})
  count = analytic.count_jaxpr(traced.jaxpr)
  rec.update(analytic_macs_naive=count.naive, analytic_macs_padx=count.padx, analytic_notes=count.notes,
             jaxpr_equations=len(traced.jaxpr.eqns), trace_s=round(time.perf_counter() - t0, 2))
  low = xla.xla_costs(traced, compile=opts.compile_train)
  cd = xla.category_costs(traced.jaxpr, only_conv_dot=True)
  rec.update(xla_flops=_i(low.lowered.get("flops")), xla_transcendentals=_i(low.lowered.get("transcendentals")),
             xla_bytes_accessed=_i(low.lowered.get("bytes_accessed")), xla_lowered=low.lowered,
             xla_compiled_per_device=low.compiled, memory=low.memory, lower_s=round(low.lower_s, 2),
             compile_s=round(low.compile_s, 2), xla_conv_dot_flops=cd.conv_dot_flops)
  rec["identities"] = {"xla_conv_dot == 2*analytic_padx": cd.conv_dot_flops == 2 * count.padx}
  log(f"  train iteration (batch {b}): analytic naive {count.naive:,} padx {count.padx:,}; "
      f"XLA lowered {rec['xla_flops']:,} (trace {rec['trace_s']} s, lower {low.lower_s:.1f} s, "
      f"compile {low.compile_s:.1f} s)")
  # Forward passes of the iteration, composed from the modules at the training batch.
  fwd_naive = fwd_padx = fwd_xla = 0
  ds_flops = ds_macs = fcm_fwd = 0
  have_ds = have_fcm = True
  for name, calls in tr.forward_calls.items():
    m = spec.module(name)
    margs = specs.make_args(m, b)
    mt = jax.jit(m.fn).trace(*margs)
    mc = analytic.count_jaxpr(mt.jaxpr)
    ml = xla.xla_costs(mt, compile=False).lowered
    fwd_naive += calls * mc.naive
    fwd_padx += calls * mc.padx
    fwd_xla += calls * int(ml["flops"])
    mr = modules.get(name, {})
    if mr.get("deepspeed_flops_fwd_train_batch") is None:
      have_ds = False
    else:
      ds_flops += calls * mr["deepspeed_flops_fwd_train_batch"]
      ds_macs += calls * mr["deepspeed_macs_fwd_train_batch"]
    if mr.get("flopcounter_flops_fwd") is None:
      have_fcm = False
    else:  # FlopCounterMode counts only conv/matmul: exactly linear in the batch
      fcm_fwd += calls * mr["flopcounter_flops_fwd"] * b // mr["batch"]
  rec.update(forward_passes_analytic_macs_naive=fwd_naive, forward_passes_analytic_macs_padx=fwd_padx,
             xla_flops_fwd=fwd_xla, xla_flops_bwd=rec["xla_flops"] - fwd_xla,
             bwd_over_fwd_xla=round((rec["xla_flops"] - fwd_xla) / fwd_xla, 4))
  if have_ds:
    rec.update(deepspeed_flops_fwd_composed=ds_flops, deepspeed_macs_fwd_composed=ds_macs)
  if opts.deepspeed and tr.torch_wrapper is not None and nets_cache is not None:
    from jaxreenact.complexity import torch_profile as tp  # torch: optional extra
    dev = opts.deepspeed_device
    wrapper = tr.torch_wrapper(nets_cache[id(tr.torch_build)].get(dev))
    whole = tp.deepspeed_profile(wrapper, tr.torch_inputs(b, dev), no_grad=False)  # R1 / jacobians need autograd
    rec.update(deepspeed_flops_fwd=whole.flops, deepspeed_macs_fwd=whole.macs,
               deepspeed_by_function_fwd=whole.by_function, deepspeed_root_flops_fwd=whole.root_flops,
               deepspeed_note=("a fresh DeepSpeed profile around exactly one iteration's forward computations (all "
                               "phases' losses in one wrapper forward): what the engine's 'fwd flops per GPU' reports "
                               "after one step. DeepSpeed never counts backward passes or autograd.grad."))
    if have_ds:
      rec["deepspeed_whole_minus_composed"] = whole.flops - ds_flops
      rec["deepspeed_whole_minus_composed_cause"] = (
          "functionals in the loss code outside the networks (e.g. DaGAN's torch.matmul in the equivariance "
          "transform, which DeepSpeed counts as prod(lhs)·n and so ignores broadcasting); 0 for StarGAN v2")
    log(f"  train iteration: DeepSpeed fwd flops {whole.flops:,} (composed from modules {ds_flops:,})")
  elif have_ds:
    rec.update(deepspeed_flops_fwd=ds_flops, deepspeed_macs_fwd=ds_macs,
               deepspeed_note="forward passes composed from fresh per-module readings at the training batch")
  if opts.torch and tr.torch_iteration is not None and nets_cache is not None:
    from jaxreenact.complexity import torch_profile as tp  # torch: optional extra
    tn = nets_cache[id(tr.torch_build)].get("meta")
    for matched in (False, True):
      with analytic.TorchMacCounter() as tc, tp.flop_counter_mode() as fc:
        tr.torch_iteration(tn, tr.torch_inputs(b, "meta"), matched=matched)
      key = "matched" if matched else "official"
      rec[f"flopcounter_flops_{key}"] = int(fc.get_total_flops())
      rec[f"torch_analytic_macs_naive_{key}"] = tc.naive
      rec[f"torch_analytic_macs_padx_{key}"] = tc.padx
      rec[f"torch_analytic_macs_naive_fwd_{key}"] = tc.forward_naive
    rec["flopcounter_flops_fwd"] = fcm_fwd if have_fcm else None
    rec["flopcounter_flops"] = rec["flopcounter_flops_official"]
    rec["flopcounter_flops_bwd"] = rec["flopcounter_flops"] - fcm_fwd if have_fcm else None
    rec["identities"]["flopcounter == 2*torch_analytic_naive (official loop)"] = (
        rec["flopcounter_flops_official"] == 2 * rec["torch_analytic_macs_naive_official"])
    rec["identities"]["torch_padx (matched) - jax_padx"] = rec["torch_analytic_macs_padx_matched"] - count.padx
    rec["torch_note"] = tr.torch_note
    log(f"  train iteration: FlopCounterMode official {rec['flopcounter_flops_official']:,}, matched "
        f"{rec['flopcounter_flops_matched']:,}")
  latency_train = opts.latency_train if opts.latency_train is not None else jax.default_backend() != "cpu"
  if latency_train and opts.compile_train and low.compiled_fn is not None:
    conc = specs.concrete(args)
    rec["latency_iteration_ms"] = _time(low.compiled_fn, conc, opts)
    log(f"  train iteration latency {rec['latency_iteration_ms']['median_ms']:.1f} ms")
  else:
    rec["latency_iteration_ms"] = None
    rec["latency_note"] = "skipped (CPU backend: pass --latency_train to time it)"
  if opts.mesh_train:
    rec["per_device"] = _per_device(tr.fn, args, (1,), opts, log, "train iteration")
  if opts.engine_profile and tr.torch_wrapper is not None and nets_cache is not None:
    eng = engine_profile(spec, opts.engine_batch, nets_cache, log)
    if opts.engine_batch == b and rec.get("deepspeed_flops_fwd") is not None and "fwd_flops_exact" in eng:
      eng["fresh_reading_minus_engine"] = rec["deepspeed_flops_fwd"] - eng["fwd_flops_exact"]
      eng["fresh_reading_minus_engine_expected"] = rec.get("deepspeed_root_flops_fwd")
      eng["cause"] = ("the engine's profile starts inside the wrapper's forward pre-hook, so functionals called "
                      "directly in the wrapper's forward (loss code) are not counted at the profile step")
    rec["deepspeed_engine"] = eng
  return rec


def engine_profile(spec: specs.ModelSpec, batch: int, nets_cache: dict, log: Progress) -> dict[str, Any]:
  """DeepSpeed engine profile (the study's table format) of one training iteration on the CPU, at ``batch``."""
  import torch

  from jaxreenact.complexity import torch_profile as tp  # torch: optional extra
  tr = spec.train
  cpu = nets_cache[id(tr.torch_build)].get("cpu")
  torch.manual_seed(0)
  wrapper = tr.torch_wrapper(cpu)
  inputs = tr.torch_inputs(batch, "cpu")
  res = tp.deepspeed_engine_profile(wrapper, lambda step: inputs, batch)
  log(f"  DeepSpeed engine profile (batch {batch}): fwd flops per GPU {res.get('fwd_flops_per_gpu')}, "
      f"fwd latency {res.get('fwd_latency')} s, bwd latency {res.get('bwd_latency')} s")
  return res


def _per_device(fn, args, batch_argnums, opts: Options, log: Progress, what: str) -> dict[str, Any]:
  out = {}
  for n in opts.mesh_devices:
    if n > jax.device_count():
      out[str(n)] = None
      continue
    c = xla.data_parallel_costs(fn, args, batch_argnums, n, compile=True)
    out[str(n)] = {"lowered_global_flops": _i(c.lowered["flops"]), "compiled_per_device": c.compiled,
                   "peak_bytes_per_device": (c.memory or {}).get("peak_bytes"), "compile_s": round(c.compile_s, 2)}
  log(f"  per-device ({what}): " + ", ".join(
      f"{k} dev {v['compiled_per_device']['flops']:.4g}" for k, v in out.items() if v))
  return out


# ---------------------------------------------------------------------------------------------------------------
# Scaling.

def scaling_record(spec: specs.ModelSpec, opts: Options, log: Progress,
                   base_latency: dict[str, Any] | None = None) -> dict[str, Any]:
  """FLOPs (and some latencies) of ``spec.scaling`` against resolution and batch; per-device FLOPs under meshes.

  ``base_latency``: the module's own forward latency at the config size and ``opts.batch`` (not re-measured).
  """
  base = spec.base_size
  out: dict[str, Any] = {"module": spec.scaling_name, "resolution": {}, "batch": {}}
  for s in opts.scaling_sizes:
    try:
      m = spec.scaling(s)
      args = specs.make_args(m, 1)
      tr = jax.jit(m.fn).trace(*args)
    except ValueError as e:  # the architecture does not accept this size
      out["resolution"][str(s)] = {"error": str(e).splitlines()[0]}
      continue
    c = analytic.count_jaxpr(tr.jaxpr)
    low = xla.xla_costs(tr, compile=opts.compile and opts.latency and s in opts.scaling_latency_sizes)
    r = {"params": m.params, "analytic_macs_naive": c.naive, "analytic_macs_padx": c.padx,
         "xla_flops": _i(low.lowered["flops"]), "pixels": s * s}
    if low.compiled_fn is not None:
      r["latency_fwd_ms"] = _time(low.compiled_fn, specs.concrete(args), opts)
    elif s == base and base_latency is not None:
      r["latency_fwd_ms"] = base_latency
    out["resolution"][str(s)] = r
  m = spec.scaling(base)
  for b in opts.scaling_batches:
    args = specs.make_args(m, b)
    tr = jax.jit(m.fn).trace(*args)
    c = analytic.count_jaxpr(tr.jaxpr)
    low = xla.xla_costs(tr, compile=opts.compile and opts.latency and b in opts.scaling_latency_batches)
    r = {"analytic_macs_naive": c.naive, "analytic_macs_padx": c.padx, "xla_flops": _i(low.lowered["flops"])}
    if low.compiled_fn is not None:
      r["latency_fwd_ms"] = _time(low.compiled_fn, specs.concrete(args), opts)
    elif b == opts.batch and base_latency is not None:
      r["latency_fwd_ms"] = base_latency
    out["batch"][str(b)] = r
  out["checks"] = scaling_checks(out, base)
  if opts.compile and opts.mesh_devices:
    mb = opts.mesh_batch
    out["per_device"] = {"batch": mb, "devices": _per_device(m.fn, specs.make_args(m, mb),
                                                             specs.batch_argnums_of(m), opts, log,
                                                             f"{m.name} forward, batch {mb}")}
  log(f"  scaling: {len(out['resolution'])} resolutions, {len(out['batch'])} batch sizes")
  return out


def scaling_checks(sc: dict[str, Any], base: int) -> dict[str, Any]:
  """Linearity in batch (exact for the analytic count), and FLOPs per pixel against resolution."""
  batches = sc["batch"]
  one = batches.get("1")
  checks: dict[str, Any] = {}
  if one:
    checks["analytic_linear_in_batch"] = all(v["analytic_macs_naive"] == int(b) * one["analytic_macs_naive"]
                                             for b, v in batches.items())
    checks["xla_flops_over_batch_times_b1"] = {b: round(v["xla_flops"] / (int(b) * one["xla_flops"]), 6)
                                               for b, v in batches.items()}
  res = {k: v for k, v in sc["resolution"].items() if "error" not in v}
  ref = res.get(str(base))
  if ref:
    checks["macs_per_pixel_relative_to_base"] = {
        s: round((v["analytic_macs_naive"] / v["pixels"]) / (ref["analytic_macs_naive"] / ref["pixels"]), 6)
        for s, v in res.items()}
    checks["linear_in_pixels"] = all(abs(x - 1) < 1e-9 for x in checks["macs_per_pixel_relative_to_base"].values())
  return checks


# ---------------------------------------------------------------------------------------------------------------
# The study's Table 10.

def table10(spec: specs.ModelSpec, train: dict[str, Any]) -> dict[str, Any] | None:
  """The study's Table 10 rows for one model: its values, corrected values, ratio and explanation."""
  st = spec.study
  spec_config = getattr(spec, "config_name", None)
  if not st or "fwd_flops_G" not in st:
    return None
  ds_fwd = train.get("deepspeed_flops_fwd")
  xla_fwd, xla_total = train.get("xla_flops_fwd"), train.get("xla_flops")
  fcm_total = train.get("flopcounter_flops")
  analytic_fwd = 2 * train["forward_passes_analytic_macs_naive"]
  correct_fwd = ds_fwd if ds_fwd is not None else analytic_fwd
  fwd_source = ("DeepSpeed, a fresh profile around one iteration's forward computations" if ds_fwd is not None
                else "2 × analytic naive MACs (DeepSpeed not run)")
  total = fcm_total if fcm_total is not None else xla_total
  bwd = total - (2 * train["forward_passes_analytic_macs_naive"] if fcm_total is not None else xla_fwd)
  lat_f, lat_b = st["fwd_latency_s"], st["bwd_latency_s"]
  ratio_flops = st["fwd_flops_G"] / correct_fwd
  rows = [
      {"measure": "fwd flops per GPU", "study": st["fwd_flops_G"], "correct": correct_fwd,
       "ratio": ratio_flops,
       "explanation": (f"{fwd_source}, per-GPU batch {train['batch']}. The study's value is "
                       f"{ratio_flops:,.0f}× that: a profile started once and read after ~{ratio_flops:,.0f} "
                       "iterations (or start_profile called repeatedly, stacking wrappers) accumulates that many "
                       "iterations' forward passes (docs/facts.md §3).")},
      {"measure": "fwd latency", "study": lat_f, "correct": correct_fwd / V100_FP32_PEAK, "ratio": None,
       "explanation": ("not re-measurable without the study's V100; 'correct' is the lower bound at the V100's "
                       f"FP32 peak ({V100_FP32_PEAK / 1e12:.1f} TFLOPS). The study's latency is plausible "
                       f"({correct_fwd / lat_f / 1e12:.2f} TFLOPS achieved with the correct flops).")},
      {"measure": "bwd latency", "study": lat_b, "correct": bwd / V100_FP32_PEAK, "ratio": None,
       "explanation": (f"lower bound at V100 FP32 peak for the measured backward FLOPs ({bwd / 1e12:.3f} TFLOP, "
                       f"bwd/fwd = {bwd / (total - bwd):.2f}, not DeepSpeed's assumed 2).")},
      {"measure": "fwd FLOPS per GPU", "study": st["fwd_FLOPS"], "correct": correct_fwd / lat_f,
       "ratio": st["fwd_FLOPS"] / (correct_fwd / lat_f),
       "explanation": ("DeepSpeed's fwd flops / fwd latency with the correct flops and the study's own latency. "
                       f"The study's figure is {st['fwd_FLOPS'] / V100_FP32_PEAK:,.0f}× the V100 FP32 peak "
                       f"({st['fwd_FLOPS'] / V100_FP16_TC_PEAK:,.0f}× the FP16 tensor-core peak): physically "
                       "impossible.")},
      {"measure": "bwd FLOPS per GPU", "study": st["bwd_FLOPS"], "correct": 2 * correct_fwd / lat_b,
       "ratio": st["bwd_FLOPS"] / (2 * correct_fwd / lat_b),
       "explanation": ("DeepSpeed's formula 2 × fwd flops / bwd latency (it assumes bwd = 2·fwd); with the "
                       f"measured backward FLOPs it would be {bwd / lat_b / 1e12:.3f} TFLOPS.")},
      {"measure": "fwd+bwd FLOPS per GPU", "study": st["fwd_bwd_FLOPS"], "correct": 3 * correct_fwd / (lat_f + lat_b),
       "ratio": st["fwd_bwd_FLOPS"] / (3 * correct_fwd / (lat_f + lat_b)),
       "explanation": ("DeepSpeed's 3 × fwd flops / (fwd + bwd latency); with measured forward+backward FLOPs "
                       f"({total / 1e12:.3f} TFLOP) it would be {total / (lat_f + lat_b) / 1e12:.3f} TFLOPS.")},
  ]
  consistency = st["fwd_flops_G"] / lat_f / st["fwd_FLOPS"]
  if abs(consistency - 1) > 0.01:
    for r in rows[3:]:
      r["explanation"] += (f" The ratio also carries the table's own inconsistency: its FLOPS rows are "
                           f"{1 / consistency:,.0f}× its flops / latency rows.")
  setting = {k: st[k] for k in ("gpus", "batch_per_gpu", "dataset", "note") if k in st}
  if spec_config is not None and st.get("paper_config") and (spec_config != st["paper_config"]
                                                            or train["batch"] != st["batch_per_gpu"]):
    setting["warning"] = (f"computed for config {spec_config!r} at batch {train['batch']}, not the study's "
                          f"{st['paper_config']!r} at batch {st['batch_per_gpu']}: the ratios are not meaningful")
  return {"setting": setting,
          "rows": rows,
          "study_internal_consistency": {
              "fwd_flops / fwd_latency / fwd_FLOPS": consistency,
              "comment": ("1.0: the study's FLOPS rows follow from its flops and latency rows" if abs(
                  consistency - 1) < 0.01 else f"{consistency:.3g}: the study's FLOPS rows are not its own flops / "
                                               "latency (a unit slip in the table)")},
          "per_iteration_TFLOP": {"forward_passes_deepspeed": None if ds_fwd is None else ds_fwd / 1e12,
                                  "forward_passes_2x_naive": analytic_fwd / 1e12,
                                  "forward_passes_xla": None if xla_fwd is None else xla_fwd / 1e12,
                                  "fwd_bwd_flopcounter": None if fcm_total is None else fcm_total / 1e12,
                                  "fwd_bwd_xla": None if xla_total is None else xla_total / 1e12}}


# ---------------------------------------------------------------------------------------------------------------
# Orchestration.

def run_model(spec: specs.ModelSpec, opts: Options, log: Progress | None = None) -> dict[str, Any]:
  """The ``models.<name>`` subtree of complexity.json.

  ``modules.<module>`` holds params, analytic_macs_naive/padx (+ _bwd), xla_flops_fwd/bwd (lowered, global),
  xla_transcendentals/bytes, xla_compiled_*_per_device, memory_*, deepspeed_flops_fwd/macs_fwd/params,
  flopcounter_flops_fwd/bwd, torch_analytic_macs_*, latency_{fwd,bwd,fwd_bwd}_ms, identities, reconciliation;
  ``train_iteration`` the same for one training iteration; ``scaling``; ``table10``.
  """
  log = log or Progress()
  t0 = time.perf_counter()
  log(f"{spec.name} ({spec.config_name}): {len(spec.modules)} modules")
  train_batch = opts.train_batch or spec.study.get("batch_per_gpu", 8)
  nets_cache = None
  if opts.torch or opts.deepspeed or opts.torch_latency:
    nets_cache = {}
    for m in spec.modules:
      if m.torch is not None and id(m.torch.build) not in nets_cache:
        nets_cache[id(m.torch.build)] = _TorchNets(m.torch.build)
    if spec.train.torch_build is not None and id(spec.train.torch_build) not in nets_cache:
      nets_cache[id(spec.train.torch_build)] = _TorchNets(spec.train.torch_build)
  modules = {}
  for m in spec.modules:
    t = time.perf_counter()
    modules[m.name] = module_record(m, opts, log, nets_cache,
                                    train_batch if m.name in spec.train.forward_calls else None)
    modules[m.name]["seconds"] = round(time.perf_counter() - t, 2)
  log(f"{spec.name}: training iteration")
  train = train_record(spec, modules, opts, log, nets_cache)
  log(f"{spec.name}: scaling")
  scaling = scaling_record(spec, opts, log, modules.get(spec.scaling_name, {}).get("latency_fwd_ms"))
  out = {"config": spec.config_name, "config_fields": _config_dict(spec.config), "modules": modules,
         "train_iteration": train, "scaling": scaling, "table10": table10(spec, train),
         "seconds": round(time.perf_counter() - t0, 1)}
  log(f"{spec.name}: done in {out['seconds']} s")
  return out


def _config_dict(cfg) -> dict[str, Any]:
  if dataclasses.is_dataclass(cfg):
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
  return {"repr": repr(cfg)}


def build_report(model_specs: list[specs.ModelSpec], opts: Options, log: Progress | None = None) -> dict[str, Any]:
  log = log or Progress()
  t0 = time.perf_counter()
  report = {"schema_version": 1, "environment": environment(), "options": dataclasses.asdict(opts), "models": {}}
  for spec in model_specs:
    report["models"][spec.name] = run_model(spec, opts, log)
  report["seconds"] = round(time.perf_counter() - t0, 1)
  return report


def write_report(report: dict[str, Any], out_dir: str, charts: bool = True) -> list[str]:
  """Writes complexity.json, complexity.md and the PNG charts; returns the paths written."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, "complexity.json")]
  with open(paths[0], "w") as f:
    json.dump(report, f, indent=1, default=_json_default)
  md = os.path.join(out_dir, "complexity.md")
  with open(md, "w") as f:
    f.write(report_writers.markdown(report))
  paths.append(md)
  if charts:
    paths += report_writers.charts(report, out_dir)
  return paths


def run(configs: dict[str, str], out_dir: str, opts: Options, *, charts: bool = True, quiet: bool = False,
        started: float | None = None) -> dict[str, Any]:
  """The ``launch.complexity`` report: builds it for ``configs`` (model -> preset name), writes it to ``out_dir``,
  prints progress, the first Table 10 row per model and the total time; returns the report.

  Args:
    configs: ``{'stargan_v2': preset, 'dagan': preset}``, either or both.
    out_dir: where complexity.json, complexity.md and (with ``charts``) the PNG charts go.
    opts: what to measure.
    quiet: no progress lines (the final "finished" line is still printed).
    started: ``time.perf_counter()`` when the command started (default: now), for the total time.
  """
  start = time.perf_counter() if started is None else started
  builders = {"stargan_v2": specs.stargan_v2_spec, "dagan": specs.dagan_spec}
  unknown = sorted(set(configs) - set(builders))
  if unknown:
    raise ValueError(f"unknown model(s) {unknown}; choose from {sorted(builders)}")
  log = Progress(enabled=not quiet)
  log(f"complexity report: {', '.join(f'{m} ({c})' for m, c in configs.items())} -> {out_dir}")
  model_specs = [builders[m](c, with_torch=opts.torch or opts.deepspeed) for m, c in configs.items()]
  rep = build_report(model_specs, opts, log)
  paths = write_report(rep, out_dir, charts=charts)
  elapsed = time.perf_counter() - start
  rep["seconds_total"] = round(elapsed, 1)
  for p in paths:
    log(f"wrote {p}")
  for name, model in rep["models"].items():
    for row in (model.get("table10") or {}).get("rows", [])[:1]:
      log(f"{name}: Table 10 '{row['measure']}': study {row['study']:.6g}, correct {row['correct']:.6g} "
          f"(study/correct {row['ratio']:,.0f}×)")
  print(f"complexity report finished in {elapsed:.1f} s ({elapsed / 60:.1f} min)", flush=True)
  return rep

def _json_default(o):
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  return str(o)

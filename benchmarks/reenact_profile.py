r"""Where DaGAN reenactment spends its time, op by op: JAX (XLA's per-thunk trace from ``jax.profiler``) against the
PyTorch reference (``torch.profiler`` operators and per-module wall time), same weights, same driving frames.

Run through the inference benchmark (not a test; it prints the tables and writes them with --out):

  python -m benchmarks.inference_benchmark --profile --config vox256 --batches 1,4 --out prof/vox256.json
  python -m benchmarks.inference_benchmark --profile --config tiny --repeats 2       # 64 px smoke run

The two per-frame paths are those the benchmark times: JAX ``inference.reenact.Reenactor`` (``animate``: driving
depth + keypoints, motion, warp, attention, decoder; the source side once in ``prepare``), PyTorch the official
demo.py loop on ``torch_reference.dagan`` (``torch_reenactor``). After a warm-up call, each side runs ``repeats``
calls inside its profiler:

* JAX: every executed XLA thunk (a fusion, convolution, library call, copy...) is a trace event
  (:data:`TRACEME_FLAG`, set in ``XLA_FLAGS`` before jax starts its backend); its self time is attributed to the
  network stage named by the HLO instruction's ``op_name`` metadata (the Flax module path, e.g. ``DepthNet/encoder``)
  and to its kind (fusion kind, convolution, custom-call target...).
* PyTorch: ``torch.profiler`` self CPU time per operator, and forward hooks timing the reference modules (depth
  encoder/decoder, keypoint detector, the generator and each of its direct children, e.g. the dense-motion network).

Times are per driving frame (per call / batch). Profiling adds overhead on both sides; the plain wall time per call,
timed just before, is reported next to the profiled sums.
"""
from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import statistics
import tempfile
import time
from typing import Any

TRACEME_FLAG = "--xla_cpu_enable_xprof_traceme=true"
_HLO_LINE = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = [^\n]*?\b([a-z][\w\-]*)\(([^\n]*)$", re.M)


def hlo_instructions(hlo_text: str) -> dict[str, dict[str, str]]:
  """Instruction name -> {'kind', 'op_name'} from compiled HLO text. ``kind``: the fusion kind (``fusion:kLoop``),
  the custom-call target (``custom-call:...``) or the opcode; ``op_name``: the metadata's JAX name stack."""
  out = {}
  for m in _HLO_LINE.finditer(hlo_text):
    name, opcode, rest = m.groups()
    kind = opcode
    if opcode == "fusion":
      k = re.search(r"kind=(k\w+)", rest)
      kind = f"fusion:{k.group(1)}" if k else "fusion"
    elif opcode == "custom-call":
      t = re.search(r'custom_call_target="([^"]+)"', rest)
      kind = f"custom-call:{t.group(1)}" if t else "custom-call"
    op = re.search(r'op_name="([^"]*)"', rest)
    out[name] = {"kind": kind, "op_name": op.group(1) if op else ""}
  return out


def stage_of(op_name: str) -> str:
  """The network stage of a JAX name stack (``jit(f)/Module/sub_module/.../primitive``): its first Flax module and
  that module's first sub-module (numbered siblings merged: ``up_blocks_0`` -> ``up_blocks``); work outside any
  module (keypoint normalisation, the batch tiling) is ``(between networks)``."""
  parts = [p for p in op_name.split("/") if p and not re.match(r"^(jit|jvp|vmap|transpose|pjit|remat)\(", p)]
  mods = [p for p in parts[:-1] if "." not in p]  # the last part is the primitive; a dotted one is a method
  if not mods or not mods[0][:1].isupper():
    return "(between networks)"
  return mods[0] + ("/" + re.sub(r"_\d+$", "", mods[1]) if len(mods) > 1 else "")


def self_times(events: list[dict[str, Any]]) -> list[tuple[str, float]]:
  """(name, self time in µs) of complete trace events: each event's duration less that of the events nested in it
  on the same thread (a while loop's thunk contains its body's)."""
  by_tid = collections.defaultdict(list)
  for e in events:
    if e.get("ph") == "X" and "dur" in e:
      by_tid[(e.get("pid"), e.get("tid"))].append(e)
  out = []
  for evs in by_tid.values():
    evs.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack: list[list[Any]] = []  # [end, name, time of nested events, duration]
    for e in evs:
      while stack and e["ts"] >= stack[-1][0]:
        end, name, child, dur = stack.pop()
        out.append((name, dur - child))
      if stack:
        stack[-1][2] += e["dur"]
      stack.append([e["ts"] + e["dur"], e["name"], 0.0, e["dur"]])
    while stack:
      end, name, child, dur = stack.pop()
      out.append((name, dur - child))
  return out


def _read_trace(log_dir: str) -> list[dict[str, Any]]:
  paths = sorted(glob.glob(os.path.join(log_dir, "**", "*.trace.json.gz"), recursive=True))
  if not paths:
    raise RuntimeError(f"jax.profiler wrote no perfetto trace under {log_dir}")
  with gzip.open(paths[-1]) as f:
    data = json.load(f)
  return data["traceEvents"] if isinstance(data, dict) else data


def profile_jax(model, prepared, driving, repeats: int) -> dict[str, Any]:
  """Plain wall time per call, then ``repeats`` calls under jax.profiler: per-thunk self time by stage and kind."""
  import jax
  import jax.numpy as jnp

  args = (model.variables, prepared, jnp.asarray(driving), jnp.asarray(True), jnp.asarray(False))
  jax.block_until_ready(model._step(*args))  # compile and warm up
  wall = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(model._step(*args))
    wall.append(time.perf_counter() - t)
  instructions = hlo_instructions(model._step.lower(*args).compile().as_text())
  with tempfile.TemporaryDirectory() as log_dir:
    with jax.profiler.trace(log_dir, create_perfetto_trace=True):
      for _ in range(repeats):
        jax.block_until_ready(model._step(*args))
    events = _read_trace(log_dir)
  per_frame = 1e-3 / (repeats * driving.shape[0])  # µs summed over the calls -> ms per frame
  ops: dict[str, float] = collections.Counter()
  calls: dict[str, int] = collections.Counter()
  for name, us in self_times(events):
    if name in instructions:
      ops[name] += us * per_frame
      calls[name] += 1
  if not ops:
    raise RuntimeError("the trace holds no XLA thunk events: is --xla_cpu_enable_xprof_traceme=true in XLA_FLAGS "
                       "before jax starts?")
  by_stage, by_kind = collections.Counter(), collections.Counter()
  for name, ms in ops.items():
    by_stage[stage_of(instructions[name]["op_name"])] += ms
    by_kind[instructions[name]["kind"]] += ms
  top = [{"op": n, "kind": instructions[n]["kind"], "stage": stage_of(instructions[n]["op_name"]), "ms": ms,
          "calls_per_call": calls[n] / repeats} for n, ms in ops.most_common()]
  return {"wall_ms_per_frame": statistics.median(wall) * 1e3 / driving.shape[0],
          "thunk_ms_per_frame": sum(ops.values()), "thunks_executed_per_call": sum(calls.values()) / repeats,
          "by_stage": dict(by_stage.most_common()), "by_kind": dict(by_kind.most_common()), "ops": top}


def profile_torch(torch_reenactor, cfg, variables, source, initial, driving, repeats: int) -> dict[str, Any]:
  """Plain wall time per call, then ``repeats`` calls with module hooks and torch.profiler; ``torch_reenactor``:
  ``benchmarks.inference_benchmark.torch_reenactor``."""
  import torch

  prepare, animate, nets = torch_reenactor(cfg, variables, with_modules=True)
  state = prepare(source, initial)
  animate(state, driving)  # warm-up
  wall = []
  for _ in range(repeats):
    t = time.perf_counter()
    animate(state, driving)
    wall.append(time.perf_counter() - t)
  modules = {k: nets[k] for k in ("depth_encoder", "depth_decoder", "kp_detector", "generator")}
  modules.update({f"generator/{n}": m for n, m in nets["generator"].named_children()})
  spent: dict[str, float] = collections.Counter()
  started: dict[str, list[float]] = collections.defaultdict(list)
  handles = []
  for name, m in modules.items():
    handles.append(m.register_forward_pre_hook(lambda _m, _i, name=name: started[name].append(time.perf_counter())))
    handles.append(m.register_forward_hook(
        lambda _m, _i, _o, name=name: spent.__setitem__(name, spent[name] + time.perf_counter() - started[name].pop())))
  try:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
      for _ in range(repeats):
        animate(state, driving)
  finally:
    for h in handles:
      h.remove()
  per_frame = 1.0 / (repeats * driving.shape[0])
  ops = sorted(((e.key, e.self_cpu_time_total * 1e-3 * per_frame, e.count / repeats) for e in prof.key_averages()),
               key=lambda r: -r[1])
  return {"wall_ms_per_frame": statistics.median(wall) * 1e3 / driving.shape[0],
          "op_self_ms_per_frame": sum(ms for _, ms, _ in ops),
          "by_module": {k: v * 1e3 * per_frame for k, v in sorted(spent.items(), key=lambda kv: -kv[1])},
          "ops": [{"op": k, "ms": ms, "calls_per_call": n} for k, ms, n in ops]}


def markdown(res: dict[str, Any], m: dict[str, Any], config: str, size: int, top: int = 15) -> str:
  """``res`` of :func:`run` as Markdown; ``m``: the machine (``jaxreenact.machine.describe()``)."""
  j, t = res["jax"], res.get("torch")
  lines = [f"DaGAN `{config}` reenactment, {size} px, {res['batch']} driving frame(s) per call, "
           f"{res['repeats']} profiled calls; {m['processor']}, {m['cpu_cores_visible']} cores, jax {m.get('jax', '?')}, "
           f"torch {m.get('torch', '-')} ({m.get('torch_threads', '-')} threads), {m['date_utc']}.", "",
           "| | JAX | PyTorch |", "|---|---|---|",
           f"| wall ms/frame, unprofiled (median) | {j['wall_ms_per_frame']:,.1f} | "
           f"{t['wall_ms_per_frame']:,.1f} |" if t else f"| wall ms/frame | {j['wall_ms_per_frame']:,.1f} | - |",
           f"| profiled ms/frame (sum of XLA thunk / operator self times) | {j['thunk_ms_per_frame']:,.1f} | "
           + (f"{t['op_self_ms_per_frame']:,.1f} |" if t else "- |"), "",
           "JAX by network stage (XLA thunk self time, ms/frame):", "", "| stage | ms/frame | share |", "|---|---|---|"]
  for k, v in j["by_stage"].items():
    lines.append(f"| {k} | {v:,.1f} | {v / j['thunk_ms_per_frame']:.0%} |")
  lines += ["", "JAX by kind of thunk (ms/frame):", "", "| kind | ms/frame | share |", "|---|---|---|"]
  for k, v in j["by_kind"].items():
    lines.append(f"| {k} | {v:,.1f} | {v / j['thunk_ms_per_frame']:.0%} |")
  lines += ["", f"JAX top {top} thunks:", "", "| thunk | kind | stage | ms/frame | runs per call |", "|---|---|---|---|---|"]
  for r in j["ops"][:top]:
    lines.append(f"| {r['op']} | {r['kind']} | {r['stage']} | {r['ms']:,.2f} | {r['calls_per_call']:g} |")
  if t:
    lines += ["", "PyTorch by module (forward wall time incl. children, ms/frame; generator/* are inside generator):",
              "", "| module | ms/frame |", "|---|---|"]
    for k, v in t["by_module"].items():
      lines.append(f"| {k} | {v:,.1f} |")
    lines += ["", f"PyTorch top {top} operators (self CPU time):", "", "| operator | ms/frame | calls per call |",
              "|---|---|---|"]
    for r in t["ops"][:top]:
      lines.append(f"| {r['op']} | {r['ms']:,.2f} | {r['calls_per_call']:g} |")
  return "\n".join(lines)


def run(cfg, variables: dict[str, Any], frames, batch: int, repeats: int, torch_reenactor=None) -> dict[str, Any]:
  """Profiles ``batch`` driving frames per call: ``frames`` (T, S, S, 3) in [0, 1], source ``frames[0]``, initial
  driving frame and the driving batch from ``frames[1:]``; PyTorch too when ``torch_reenactor`` is given."""
  from jaxreenact.inference import reenact  # imports jax: keeps this module jax-free
  source, initial, driving = frames[0], frames[1], frames[1:batch + 1]
  model = reenact.Reenactor(cfg, variables)
  res = {"batch": batch, "repeats": repeats,
         "jax": profile_jax(model, model.prepare(source, initial), driving, repeats)}
  if torch_reenactor is not None:
    res["torch"] = profile_torch(torch_reenactor, cfg, variables, source, initial, driving, repeats)
  return res

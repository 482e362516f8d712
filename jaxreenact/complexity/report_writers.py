"""complexity.md (tables a person reads) and the PNG charts, from the complexity.json dictionary."""
from __future__ import annotations

import os
from typing import Any

from jaxreenact.complexity import reconcile

G = 1e9
T = 1e12


def _g(v, unit=G, digits=3) -> str:
  if v is None:
    return "–"
  return f"{v / unit:,.{digits}f}"


def _int(v) -> str:
  return "–" if v is None else f"{int(v):,}"


def _ok(v) -> str:
  return {True: "✅", False: "❌", None: "–"}.get(v, str(v))


def _mb(v) -> str:
  return "–" if v is None else f"{v / 2**20:,.1f}"


def _lat(d) -> str:
  if not d:
    return "–"
  return f"{d['median_ms']:,.1f} (IQR {d['iqr_ms']:,.1f})"


def markdown(report: dict[str, Any]) -> str:
  env = report["environment"]
  out = ["# Complexity report", "",
         f"Generated {env['date_utc']} in {report.get('seconds', '?')} s on {env['processor'] or env['platform']} "
         f"({env['cpu_cores_visible']} cores visible), JAX {env['jax']} backend `{env['jax_backend']}` "
         f"({', '.join(sorted(set(env['jax_devices'])))} × {env['jax_device_count']}), torch {env.get('torch')}, "
         f"DeepSpeed {env.get('deepspeed')}.", "",
         "## Conventions", "",
         "* **naive MACs**: every kernel tap, padding included (DeepSpeed MACs; FlopCounterMode = 2 × naive).",
         "* **padx MACs**: taps on real input only (XLA: conv + dot FLOPs = 2 × padx).",
         "* **XLA** figures are `jax.jit(f).lower(...).cost_analysis()` (global, before optimisation) unless marked "
         "*compiled* (per device, after fusion). Module backward = gradient of Σ outputs w.r.t. parameters and the "
         "inputs training differentiates; XLA bwd = lowered(fwd+bwd) − lowered(fwd).",
         "* **DeepSpeed**: a fresh `FlopsProfiler` per reading, one forward; on `meta` tensors by default, with "
         "nested patched calls (meta decompositions) not counted: equal to real-tensor readings (tested).",
         "* **FlopCounterMode**: `meta` tensors (shapes only), real autograd backward.", ""]
  for name, model in report["models"].items():
    out += _model_md(name, model)
  return "\n".join(out) + "\n"


def _model_md(name: str, model: dict[str, Any]) -> list[str]:
  out = [f"## {name} (`{model['config']}`)", ""]
  mods = model["modules"]
  batch = next(iter(mods.values()))["batch"] if mods else 1
  out += [f"### Modules (batch {batch}; GFLOP unless stated)", "",
          "| module | params | naive MACs (G) | padx MACs (G) | XLA fwd | XLA bwd | XLA transc. fwd | DeepSpeed fwd "
          "| DeepSpeed MACs (G) | FlopCounterMode fwd | FlopCounterMode bwd | peak mem fwd (MB) | latency fwd ms | "
          "latency bwd ms |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for m, r in mods.items():
    mem = (r.get("memory_fwd") or {}).get("peak_bytes")
    out.append(f"| {m} | {_int(r['params'])} | {_g(r['analytic_macs_naive'])} | {_g(r['analytic_macs_padx'])} | "
               f"{_g(r.get('xla_flops_fwd'))} | {_g(r.get('xla_flops_bwd'))} | "
               f"{_int(r.get('xla_transcendentals_fwd'))} "
               f"| {_g(r.get('deepspeed_flops_fwd'))} | {_g(r.get('deepspeed_macs_fwd'))} | "
               f"{_g(r.get('flopcounter_flops_fwd'))} | {_g(r.get('flopcounter_flops_bwd'))} | "
               f"{'–' if mem is None else f'{mem / 2**20:,.1f}'} | {_lat(r.get('latency_fwd_ms'))} | "
               f"{_lat(r.get('latency_bwd_ms'))} |")
  dev = next((r.get("latency_fwd_ms", {}) or {} for r in mods.values() if r.get("latency_fwd_ms")), {})
  if dev:
    out += ["", f"Latencies: JAX, warm, median of {dev.get('repeats')} (IQR), on {dev.get('device')}."]
  out += ["", "### Exact identities", "", "| module | " + " | ".join(next(iter(mods.values()))["identities"]) + " |",
          "|---|" + "---|" * len(next(iter(mods.values()))["identities"])]
  for m, r in mods.items():
    out.append(f"| {m} | " + " | ".join(_ok(v) for v in r["identities"].values()) + " |")
  diffs = {m: r["op_diff_jax_vs_torch"] for m, r in mods.items() if r.get("op_diff_jax_vs_torch") and (
      r["op_diff_jax_vs_torch"]["jax_only"] or r["op_diff_jax_vs_torch"]["torch_only"])}
  if diffs:
    out += ["", "### Conv/matmul products computed by one implementation only (forward)", "",
            "| module | side | op | count | naive MACs | cause |", "|---|---|---|---:|---:|---|"]
    for m, d in diffs.items():
      for side in ("torch_only", "jax_only"):
        for g in d[side]:
          out.append(f"| {m} | {side.split('_')[0]} | `{g['op']}` | {g['count']} | {g['naive']:,} | {g['cause']} |")
    out += ["", "JAX naive = torch naive − Σ torch-only + Σ JAX-only, exactly; the tool identities above hold on "
            "each side."]
  off = {m: r for m, r in mods.items() if r.get("official")}
  if off:
    out += ["", "### Official figures (docs/facts.md, batch 1) reproduced", "",
            "| module | figure | ours | official | match |", "|---|---|---:|---:|---|"]
    for m, r in off.items():
      for key, (ours, theirs, ok) in r["official_match"].items():
        out.append(f"| {m} | {key} | {ours if isinstance(ours, str) else _int(ours)} | "
                   f"{theirs if isinstance(theirs, str) else _int(theirs)} | {_ok(ok)} |")
      if r["official"].get("note"):
        out.append(f"| {m} | note | {r['official']['note']} | | |")
  out += ["", "### Reconciliation per category (forward, GFLOP)", ""]
  for m, r in mods.items():
    rec = r.get("reconciliation")
    if not rec:
      continue
    out += [f"**{m}**", "", reconcile.format_table(rec)]
    res = rec.get("residual") or {}
    if "xla_whole_minus_per_equation" in res:
      out += [f"XLA whole-module lowered {_int(r.get('xla_flops_fwd'))} − per-equation sum = "
              f"{res['xla_whole_minus_per_equation']:,} FLOPs ({res['cause']}).", ""]
  out += _train_md(model["train_iteration"])
  out += _scaling_md(model["scaling"])
  if model.get("table10"):
    out += _table10_md(name, model["table10"])
  return out


def _train_md(tr: dict[str, Any]) -> list[str]:
  out = ["", f"### One training iteration (batch {tr['batch']})", "", tr["description"] + ".",
         f"Forward calls: {', '.join(f'{k} ×{v}' for k, v in tr['forward_calls'].items())}. {tr['optimizer']}.", "",
         *([f"DeepSpeed: {tr['deepspeed_note']}", ""] if tr.get("deepspeed_note") else []),
         "| measure | value |", "|---|---:|",
         f"| analytic naive MACs (fwd+bwd) | {_int(tr['analytic_macs_naive'])} |",
         f"| analytic padx MACs (fwd+bwd) | {_int(tr['analytic_macs_padx'])} |",
         f"| XLA lowered FLOPs (fwd+bwd, global) | {_int(tr['xla_flops'])} |",
         f"| XLA conv+dot FLOPs (= 2·padx: {_ok(tr['identities'].get('xla_conv_dot == 2*analytic_padx'))}) | "
         f"{_int(tr.get('xla_conv_dot_flops'))} |",
         f"| XLA forward passes (modules × calls) | {_int(tr.get('xla_flops_fwd'))} |",
         f"| XLA backward (total − forward passes) | {_int(tr.get('xla_flops_bwd'))} (bwd/fwd "
         f"{tr.get('bwd_over_fwd_xla')}) |",
         f"| XLA compiled FLOPs per device | {_int((tr.get('xla_compiled_per_device') or {}).get('flops'))} |",
         f"| XLA transcendentals | {_int(tr.get('xla_transcendentals'))} |",
         f"| peak memory (compiled, MB) | {_mb((tr.get('memory') or {}).get('peak_bytes'))} |",
         f"| DeepSpeed fwd flops (one iteration's forwards) | {_int(tr.get('deepspeed_flops_fwd'))} |",
         f"| DeepSpeed fwd MACs | {_int(tr.get('deepspeed_macs_fwd'))} |",
         f"| FlopCounterMode fwd+bwd, official loop | {_int(tr.get('flopcounter_flops_official'))} |",
         f"| FlopCounterMode fwd+bwd, gradients matched to JAX | {_int(tr.get('flopcounter_flops_matched'))} |",
         f"| FlopCounterMode forward passes | {_int(tr.get('flopcounter_flops_fwd'))} |",
         f"| latency, whole iteration (ms) | {_lat(tr.get('latency_iteration_ms'))} |", ""]
  if tr.get("torch_note"):
    out += [tr["torch_note"], ""]
  if tr.get("deepspeed_engine"):
    e = tr["deepspeed_engine"]
    out += [f"DeepSpeed engine profile at batch {e['micro_batch']} (CPU): fwd flops per GPU "
            f"{_int(e.get('fwd_flops_per_gpu'))}, fwd latency {e.get('fwd_latency')} s, bwd latency "
            f"{e.get('bwd_latency')} s.", "", "```", e.get("text", "").strip()[:4000], "```", ""]
  if tr.get("per_device"):
    out += ["Per device under a data-parallel mesh:", ""]
    for n, v in tr["per_device"].items():
      if v:
        out.append(f"* {n} device(s): compiled {_int(v['compiled_per_device']['flops'])} FLOPs/device, peak "
                   f"{_int(v.get('peak_bytes_per_device'))} B/device")
    out.append("")
  return out


def _scaling_md(sc: dict[str, Any]) -> list[str]:
  out = ["", f"### Scaling of the {sc['module']} forward", "", "| resolution | params | naive MACs (G) | XLA GFLOP | "
         "MACs/pixel vs base | latency ms |", "|---:|---:|---:|---:|---:|---:|"]
  rel = sc.get("checks", {}).get("macs_per_pixel_relative_to_base", {})
  for s, v in sc["resolution"].items():
    if "error" in v:
      out.append(f"| {s} | {v['error']} | | | | |")
      continue
    out.append(f"| {s} | {_int(v['params'])} | {_g(v['analytic_macs_naive'])} | {_g(v['xla_flops'])} | "
               f"{rel.get(s, '–')} | {_lat(v.get('latency_fwd_ms'))} |")
  out += ["", "| batch | naive MACs (G) | XLA GFLOP | XLA / (b × batch-1) | latency ms |",
          "|---:|---:|---:|---:|---:|"]
  ratios = sc.get("checks", {}).get("xla_flops_over_batch_times_b1", {})
  for b, v in sc["batch"].items():
    out.append(f"| {b} | {_g(v['analytic_macs_naive'])} | {_g(v['xla_flops'])} | {ratios.get(b, '–')} | "
               f"{_lat(v.get('latency_fwd_ms'))} |")
  ch = sc.get("checks", {})
  out += ["", f"Analytic MACs exactly linear in batch: {_ok(ch.get('analytic_linear_in_batch'))}. "
          f"Linear in pixels at fixed architecture: {_ok(ch.get('linear_in_pixels'))}" + (
              "" if ch.get("linear_in_pixels") else " (see the MACs/pixel column: the architecture changes with "
              "resolution, or has a term quadratic in pixels)") + "."]
  if sc.get("per_device"):
    pdv = sc["per_device"]
    out += ["", f"Per-device FLOPs under a data-parallel mesh (batch {pdv['batch']}):", ""]
    for n, v in pdv["devices"].items():
      if v:
        out.append(f"* {n} device(s): compiled {_int(v['compiled_per_device']['flops'])} FLOPs/device "
                   f"(lowered global {_int(v['lowered_global_flops'])}), peak {_int(v.get('peak_bytes_per_device'))} "
                   "B/device")
  return out + [""]


def _fmt10(measure: str, v) -> str:
  if v is None:
    return "–"
  if "latency" in measure:
    return f"{v:.4g} s"
  if "FLOPS" in measure:
    return f"{v / T:,.3f} TFLOPS"
  return f"{v / G:,.2f} G"


def _table10_md(name: str, t10: dict[str, Any]) -> list[str]:
  s = t10["setting"]
  out = ["", f"### The study's Table 10, re-done ({name})", "",
         f"Setting: {s.get('gpus')} GPUs, batch {s.get('batch_per_gpu')} per GPU, {s.get('dataset')}. "
         f"{s.get('note', '')}", "", *([f"**Warning:** {s['warning']}.", ""] if s.get("warning") else []),
         "| measure | study | correct | study / correct | explanation |", "|---|---:|---:|---:|---|"]
  for r in t10["rows"]:
    ratio = "–" if r["ratio"] is None else f"{r['ratio']:,.1f}×"
    out.append(f"| {r['measure']} | {_fmt10(r['measure'], r['study'])} | {_fmt10(r['measure'], r['correct'])} | "
               f"{ratio} | {r['explanation']} |")
  c = t10["study_internal_consistency"]
  p = t10["per_iteration_TFLOP"]
  out += ["", f"Study's internal consistency (fwd flops / fwd latency / fwd FLOPS): {c['comment']}.",
          "Per iteration per GPU (TFLOP): " + ", ".join(f"{k} {v:.3f}" for k, v in p.items() if v is not None) + "."]
  return out + [""]


# ---------------------------------------------------------------------------------------------------------------
# Charts.

def charts(report: dict[str, Any], out_dir: str) -> list[str]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  paths = []
  models = report["models"]
  # 1. per-module FLOPs by tool
  fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 4.5), squeeze=False)
  tools = [("2·naive MACs", lambda r: 2 * r["analytic_macs_naive"]),
           ("2·padx MACs", lambda r: 2 * r["analytic_macs_padx"]),
           ("XLA lowered", lambda r: r.get("xla_flops_fwd")),
           ("DeepSpeed", lambda r: r.get("deepspeed_flops_fwd")),
           ("FlopCounterMode", lambda r: r.get("flopcounter_flops_fwd"))]
  for ax, (name, model) in zip(axes[0], models.items()):
    mods = list(model["modules"])
    width = 0.8 / len(tools)
    for k, (label, fn) in enumerate(tools):
      vals = [fn(model["modules"][m]) or 0 for m in mods]
      ax.bar([i + k * width for i in range(len(mods))], [v / G for v in vals], width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(mods))])
    ax.set_xticklabels(mods, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("GFLOP (forward, batch %d)" % next(iter(model["modules"].values()))["batch"])
    ax.set_title(f"{name}: forward FLOPs by tool")
    ax.legend(fontsize=7)
  fig.tight_layout()
  paths.append(_save(fig, out_dir, "flops_by_tool.png"))
  # 2. scaling against resolution and batch (FLOPs and latency)
  fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
  for name, model in models.items():
    sc = model["scaling"]
    res = {int(k): v for k, v in sc["resolution"].items() if "error" not in v}
    xs = sorted(res)
    axes[0].plot(xs, [2 * res[x]["analytic_macs_naive"] / G for x in xs], "o-", label=f"{name} {sc['module']} 2·naive")
    axes[0].plot(xs, [res[x]["xla_flops"] / G for x in xs], "s--", label=f"{name} XLA")
    lx = [x for x in xs if res[x].get("latency_fwd_ms")]
    if lx:
      axes[1].plot(lx, [res[x]["latency_fwd_ms"]["median_ms"] for x in lx], "o-", label=f"{name} {sc['module']}")
    bs = {int(k): v for k, v in sc["batch"].items()}
    bx = sorted(bs)
    axes[2].plot(bx, [bs[b]["xla_flops"] / G for b in bx], "o-", label=f"{name} XLA GFLOP")
    lb = [b for b in bx if bs[b].get("latency_fwd_ms")]
    if lb:
      ax2 = axes[2]
      ax2.plot(lb, [bs[b]["latency_fwd_ms"]["median_ms"] for b in lb], "x:", label=f"{name} latency ms")
  axes[0].set(xscale="log", yscale="log", xlabel="image size (px)", ylabel="GFLOP (batch 1)",
              title="forward FLOPs vs resolution")
  axes[1].set(xscale="log", yscale="log", xlabel="image size (px)", ylabel="ms (batch 1)",
              title="forward latency vs resolution")
  axes[2].set(xscale="log", yscale="log", xlabel="batch", title="forward FLOPs / latency vs batch")
  for ax in axes:
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  paths.append(_save(fig, out_dir, "scaling.png"))
  # 3. models side by side: one training iteration
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  names = list(models)
  tr = [models[n]["train_iteration"] for n in names]
  fwd = [(t.get("xla_flops_fwd") or 0) / T for t in tr]
  bwd = [(t.get("xla_flops_bwd") or 0) / T for t in tr]
  axes[0].bar(names, fwd, label="forward passes (XLA)")
  axes[0].bar(names, bwd, bottom=fwd, label="backward (XLA)")
  ds = [(t.get("deepspeed_flops_fwd") or 0) / T for t in tr]
  fc = [(t.get("flopcounter_flops") or 0) / T for t in tr]
  axes[0].plot(names, ds, "k^", label="DeepSpeed fwd flops")
  axes[0].plot(names, fc, "r*", markersize=10, label="FlopCounterMode fwd+bwd")
  axes[0].set(ylabel="TFLOP per iteration per GPU", title="one training iteration (study batch)")
  axes[0].legend(fontsize=7)
  for name in names:
    mods = models[name]["modules"]
    axes[1].barh([f"{name}/{m}" for m in mods], [2 * r["analytic_macs_naive"] / G for r in mods.values()])
  axes[1].set(xscale="log", xlabel="GFLOP (2·naive MACs, forward, batch 1)", title="modules side by side")
  fig.tight_layout()
  paths.append(_save(fig, out_dir, "models_side_by_side.png"))
  # 4. Table 10: study vs correct
  t10 = {n: m["table10"] for n, m in models.items() if m.get("table10")}
  if t10:
    fig, axes = plt.subplots(1, len(t10), figsize=(7 * len(t10), 4.5), squeeze=False)
    for ax, (n, t) in zip(axes[0], t10.items()):
      rows = [r for r in t["rows"] if "FLOPS" in r["measure"] or "flops" in r["measure"]]
      labels = [r["measure"] for r in rows]
      ax.bar([i - 0.2 for i in range(len(rows))], [r["study"] for r in rows], 0.4, label="study")
      ax.bar([i + 0.2 for i in range(len(rows))], [r["correct"] for r in rows], 0.4, label="correct")
      ax.axhline(15.7e12, color="r", ls="--", lw=1, label="V100 FP32 peak FLOPS")
      ax.set_xticks(range(len(rows)))
      ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
      ax.set_yscale("log")
      ax.set_ylabel("flops (count) or FLOPS (per second)")
      ax.set_title(f"Table 10 re-done: {n}")
      ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save(fig, out_dir, "table10.png"))
  plt.close("all")
  return paths


def _save(fig, out_dir: str, name: str) -> str:
  path = os.path.join(out_dir, name)
  fig.savefig(path, dpi=110)
  return path

"""The comparison's report: ``report.md``, a self-contained ``report.html`` (figures embedded), ``report.json``
and PNG charts, written from the stage results of :mod:`jaxreenact.study.compare`."""
from __future__ import annotations

import base64
import datetime
import json
import math
import os
import re
from typing import Any

from jaxreenact import machine
from jaxreenact.jsonutil import jsonable

STUDY_TABLE10 = {  # the study's Table 10 (as printed), per GPU
    "stargan_v2": {"fwd flops per GPU (G)": 2902834.73, "fwd latency (s)": 1.95, "bwd latency (s)": 5.24,
                   "fwd FLOPS per GPU (TFLOPS)": 1488.63, "bwd FLOPS per GPU (TFLOPS)": 1107.95218,
                   "fwd+bwd FLOPS per GPU (TFLOPS)": 1211.19668},
    "dagan": {"fwd flops per GPU (G)": 103490221.33, "fwd latency (s)": 5.89, "bwd latency (s)": 10.02,
              "fwd FLOPS per GPU (TFLOPS)": 1757049.59, "bwd FLOPS per GPU (TFLOPS)": 2065673.08,
              "fwd+bwd FLOPS per GPU (TFLOPS)": 1951418.37831}}
NAMES = {"stargan_v2": "StarGAN v2", "dagan": "DaGAN"}


def fmt(v: Any, digits: int = 3) -> str:
  if v is None:
    return "—"
  if isinstance(v, bool):
    return str(v)
  if isinstance(v, float):
    if math.isinf(v):
      return "inf"
    if abs(v) >= 1e4:
      return f"{v:,.0f}"
    return f"{v:.{digits}g}"
  if isinstance(v, int):
    return f"{v:,}"
  return str(v)


def get(d: Any, *keys: str) -> Any:
  for k in keys:
    if not isinstance(d, dict) or k not in d:
      return None
    d = d[k]
  return d


def iteration_tflop(R: dict, model: str) -> float | None:
  """XLA's forward + backward FLOPs of one official training iteration at the paper config."""
  ti = get(R, "complexity", "complexity", "models", model, "train_iteration") or {}
  return ti.get("xla_flops_fwd_bwd") or ti.get("xla_flops") or ti.get("xla_flops_total")


def time_to_train(R: dict, opts) -> dict[str, dict]:
  """Official schedules from the measured achieved FLOP/s and the paper-config iteration cost."""
  out = {}
  iters = {"stargan_v2": 100_000, "dagan": 150 * 75 * math.ceil(opts.dagan_identities / 8)}  # batch 8 (Table 13)
  for m in ("stargan_v2", "dagan"):
    b = get(R, f"speed_{m}", "benchmark")
    flops = iteration_tflop(R, m)
    if not b or not flops or not b.get("achieved_tflops"):
      continue
    s_per_iter = flops / (b["achieved_tflops"] * 1e12)
    total_h = s_per_iter * iters[m] / 3600
    out[m] = {"official_iterations": iters[m], "paper_iteration_tflop": flops / 1e12,
              "measured_tflops": b["achieved_tflops"], "device": b["device"], "est_s_per_iteration": s_per_iter,
              "est_hours_1_device": total_h, "est_hours_n_devices": total_h / max(1, opts.devices),
              "busy_machine": bool(get(R, f"speed_{m}", "load", "busy"))}
  return out


def conclusion(R: dict, ttt: dict, opts) -> list[str]:
  lines = []
  f = {m: iteration_tflop(R, m) for m in ("stargan_v2", "dagan")}
  if f["stargan_v2"] and f["dagan"]:
    cheap, dear = sorted(f, key=f.get)
    lines.append(f"One official training iteration at 256 px (batch 8) costs {f[cheap] / 1e12:.2f} TFLOP for "
                 f"{NAMES[cheap]} and {f[dear] / 1e12:.2f} TFLOP for {NAMES[dear]}: {NAMES[dear]}'s iteration costs "
                 f"{f[dear] / f[cheap]:.1f}× {NAMES[cheap]}'s (XLA's count of forward + backward).")
  if ttt.get("stargan_v2") and ttt.get("dagan"):
    a, b = ttt["stargan_v2"]["est_hours_1_device"], ttt["dagan"]["est_hours_1_device"]
    longer = "DaGAN's cheaper iteration is outweighed by its much longer schedule" if b > a else \
        "StarGAN v2 needs longer overall"
    lines.append(f"Over the official schedules (StarGAN v2: 100k iterations; DaGAN: 150 epochs × 75 repeats over "
                 f"{opts.dagan_identities:,} identities) on the measured device, that is about {a:,.0f} h for "
                 f"StarGAN v2 and {b:,.0f} h for DaGAN on one device — {longer}.")
  for m in ("stargan_v2", "dagan"):
    b = get(R, f"speed_{m}", "benchmark")
    if b and b.get("speedup"):
      busy = get(R, f"speed_{m}", "load", "busy")
      lines.append(f"{NAMES[m]}: the JAX iteration runs {b['speedup']:.2f}× the speed of the PyTorch reference on "
                   f"{b['device']} ({b['jax_ms_per_iter']:.0f} vs {b['torch_ms_per_iter']:.0f} ms, {b['config']} "
                   f"config, batch {b['batch']})" + (" — **measured on a busy machine, see Speed**." if busy else "."))
  for m in ("stargan_v2", "dagan"):
    lines += quality_headlines(R, m)
  lines.append("The study's Table 10 (1,488 and 1.76·10⁶ TFLOPS per V100, whose peak is 15.7 fp32 / 125 fp16) is "
               "physically impossible; the corrected figures are in the complexity section.")
  return lines


def quality_headlines(R: dict, model: str) -> list[str]:
  """One line per evaluated model: which baselines it beats, on which metrics."""
  res = get(R, f"quality_{model}", "results")
  if not res:
    return []
  key_metrics = ("l1", "lpips") if model == "dagan" else ("fid_latent", "lpips_diversity_latent")
  lines = []
  for system in [s["name"] for s in res["systems"] if s["kind"] == "model"]:
    parts = []
    for c in res["comparisons"]:
      if c["model"] == system and c["metric"] in key_metrics:
        parts.append(f"{c['metric']} vs {c['baseline']}: {c['verdict']}")
    lines.append(f"{NAMES[model]} {system}: " + "; ".join(parts) + " (95% bootstrap intervals, paired).")
  return lines


# ------------------------------------------------------------------------------------------------------------
# charts


def charts(wd: str, R: dict) -> dict[str, str]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  out = {}
  rows = [(m, get(R, f"speed_{m}", "benchmark")) for m in ("stargan_v2", "dagan")]
  rows = [(m, b) for m, b in rows if b]
  if rows:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [b["jax_ms_per_iter"] for _, b in rows], 0.4, label="JAX")
    ax.bar([x + 0.2 for x in xs], [b.get("torch_ms_per_iter") or 0 for _, b in rows], 0.4, label="PyTorch reference")
    ax.set_xticks(list(xs), [f"{m}\n({b['config']}, batch {b['batch']})" for m, b in rows])
    ax.set_ylabel("ms / training iteration")
    ax.set_title(f"Training iteration time on {rows[0][1]['device']}")
    ax.legend()
    fig.tight_layout()
    out["speed"] = os.path.join(wd, "chart_speed.png")
    fig.savefig(out["speed"], dpi=110)
    plt.close(fig)
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
  drew = False
  for ax, (m, keys) in zip(axes, (("stargan_v2", ("G/latent_cyc", "G/latent_adv", "D/latent_loss")),
                                   ("dagan", ("G/perceptual", "G/equivariance_value", "D/disc_gan")))):
    ms = get(R, f"train_{m}", "metrics") or []
    for k in keys:
      pts = [(r["step"], r[k]) for r in ms if k in r]
      if pts:
        ax.plot(*zip(*pts), label=k)
        drew = True
    ax.set_title(f"{NAMES[m]} training losses (this run)")
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
  fig.tight_layout()
  if drew:
    out["losses"] = os.path.join(wd, "chart_losses.png")
    fig.savefig(out["losses"], dpi=110)
  plt.close(fig)
  vals = {m: iteration_tflop(R, m) for m in ("stargan_v2", "dagan")}
  if any(vals.values()):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [m for m, v in vals.items() if v]
    ax.bar([NAMES[m] for m in names], [vals[m] / 1e12 for m in names])
    ax.set_ylabel("TFLOP per training iteration (XLA)")
    ax.set_title("Cost of one official training iteration, 256 px")
    fig.tight_layout()
    out["flops"] = os.path.join(wd, "chart_flops.png")
    fig.savefig(out["flops"], dpi=110)
    plt.close(fig)
  for m in ("stargan_v2", "dagan"):
    path = quality_chart(wd, R, m, plt)
    if path:
      out[f"quality_{m}"] = path
  return out


def quality_chart(wd: str, R: dict, model: str, plt) -> str | None:
  """Each system's value with its 95% interval, one panel per headline metric."""
  res = get(R, f"quality_{model}", "results")
  if not res:
    return None
  metrics = ["l1", "lpips", "ssim"] if model == "dagan" else ["fid_latent", "lpips_diversity_latent",
                                                               "fid_reference"]
  metrics = [m for m in metrics if m in res["metrics"]]
  systems = [s["name"] for s in res["systems"]]
  fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.2))
  for ax, metric in zip(list(axes) if len(metrics) > 1 else [axes], metrics):
    for i, s in enumerate(systems):
      v = res["summary"][s][metric]
      if v["value"] is None:
        continue
      err = [[v["value"] - v["lo"]], [v["hi"] - v["value"]]]
      kind = next(x["kind"] for x in res["systems"] if x["name"] == s)
      ax.errorbar([i], [v["value"]], yerr=err, fmt="o", capsize=4, color="C0" if kind == "model" else "C3")
    ax.set_xticks(range(len(systems)), [s.split(" (")[0] for s in systems], rotation=20, fontsize=7)
    better = "higher" if res["higher_is_better"][metric] else "lower"
    ax.set_title(f"{metric} ({better} is better)", fontsize=9)
  fig.suptitle(f"{NAMES[model]}: models (blue) vs baselines (red), 95% bootstrap intervals", fontsize=9)
  fig.tight_layout()
  path = os.path.join(wd, f"chart_quality_{model}.png")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


# ------------------------------------------------------------------------------------------------------------
# markdown


def _ci(v: dict) -> str:
  if not v or v.get("value") is None:
    return "—"
  return f"{fmt(v['value'])} [{fmt(v['lo'])}, {fmt(v['hi'])}]"


def quality_section(R: dict, model: str, wd: str) -> list[str]:
  q = R.get(f"quality_{model}", {})
  md = [f"### {NAMES[model]}", ""]
  if q.get("status") != "ok":
    return md + [f"Not evaluated: {str(q.get('error', q.get('status', 'no result')))[:300]}", ""]
  res = q["results"]
  if model == "dagan":
    md.append(f"Same-identity reconstruction of the held-out clip ({', '.join(res['clips'])}: {res['frames']} "
              f"frames at {res['size']} px; source = its first frame, absolute keypoints). Intervals: 95% bootstrap "
              f"over frames. AKD/AED/CSIM use dlib's landmarks and face embedding (a stand-in for the papers' "
              f"networks); frames where dlib finds no face are left out of those columns (n shown in the JSON).")
  else:
    md.append(f"Official protocol on the sample data's validation images ({res['num_val_images']} sources, "
              f"{res['num_outs_per_source']} outputs each, FID against the target domain's "
              f"{res['num_train_images']} training images; standard Inception). Intervals: 95% bootstrap over "
              f"source images, the same resamples for every system. FID on so few images is dominated by sampling "
              f"noise: compare systems with each other, never with published FIDs.")
  md.append("")
  for n in q.get("notes", []):
    md.append(f"- {n}")
  metrics = res["metrics"]
  arrows = {m: "↑" if res["higher_is_better"][m] else "↓" for m in metrics}
  md += ["", "| system | kind | " + " | ".join(f"{m} {arrows[m]}" for m in metrics) + " |",
         "|---|---|" + "---|" * len(metrics)]
  for s in res["systems"]:
    md.append(f"| {s['name']} | {s['kind']} | " + " | ".join(_ci(res["summary"][s["name"]][m]) for m in metrics)
              + " |")
  md += ["", "Does each model beat each baseline? (difference model − baseline, 95% paired bootstrap interval)", "",
         "| model | baseline | metric | difference [95% CI] | verdict |", "|---|---|---|---|---|"]
  for c in res["comparisons"]:
    diff = f"{fmt(c['diff'])} [{fmt(c['lo'])}, {fmt(c['hi'])}]" if c["diff"] is not None else "—"
    md.append(f"| {c['model']} | {c['baseline']} | {c['metric']} | {diff} | **{c['verdict']}** |")
  png = get(res, "files", "systems_png")
  if png:
    md += ["", f"![{NAMES[model]} outputs of every system]({os.path.relpath(png, wd)})"]
  return md + [""]


def speed_section(R: dict, opts) -> list[str]:
  md = ["## Speed (same device, alternated iterations)", "",
        "| model | config | batch | device | JAX ms/iter | PyTorch ms/iter | speed-up | JAX img/s | XLA TFLOP/iter | "
        "achieved TFLOP/s | MFU | other processes' CPU share (mean / max) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  busy = []
  for m in ("stargan_v2", "dagan"):
    st = R.get(f"speed_{m}", {})
    b = st.get("benchmark")
    if not b:
      md.append(f"| {m} | — | — | — | {st.get('status')}: {str(st.get('error', st.get('reason', '')))[:120]} |"
                + " |" * 7)
      continue
    load = st.get("load") or {}
    mark = " ⚠ busy" if load.get("busy") else ""
    if load.get("busy"):
      busy.append((m, load, st.get("rerun")))
    share = (f"{100 * load['other_share_mean']:.0f}% / {100 * load['other_share_max']:.0f}%{mark}"
             if load.get("other_share_mean") is not None else "not recorded")
    md.append(f"| {m} | {b['config']} | {b['batch']} | {b['device']} | {fmt(b['jax_ms_per_iter'])} | "
              f"{fmt(b.get('torch_ms_per_iter'))} | {fmt(b.get('speedup'))} | {fmt(b['jax_images_per_s'])} | "
              f"{fmt(b['xla_flops_per_iter'] / 1e12)} | {fmt(b['achieved_tflops'])} | {fmt(b.get('mfu'))} | {share} |")
  md.append("")
  for m, load, rerun in busy:
    others = ", ".join((load.get("before") or {}).get("top_others") or []) or "other processes"
    md.append(f"- ⚠ **{m} was timed on a busy machine**: processes outside this run ({others}) used "
              f"{100 * load['other_share_mean']:.0f}% of the cores on average. PyTorch's thread pool degrades far "
              f"more than XLA's under contention, so the ratio is inflated. Re-run that stage alone on an idle "
              f"machine: `{rerun}`.")
  return md + [""]


def markdown(R: dict, opts, chart_paths: dict, ttt: dict, concl: list[str], wall_s: float) -> str:
  from jaxreenact.study.compare import STAGES  # avoids an import cycle with study.compare
  wd = opts.workdir
  m = machine.describe()
  md = ["# StarGAN v2 vs DaGAN — jaxreenact comparison", "",
        f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} on {m['host']} ({m['processor']}, "
        f"{m['cpu_count']} cores; jax {m.get('jax', '?')}, torch {m.get('torch', '—')}); configs: "
        f"{opts.config_variant}; wall time {wall_s / 60:.1f} min.", "", "## Conclusion", ""]
  md += [f"- {line}" for line in concl] + [""]
  md += ["## Stages", "", "| stage | status | seconds | note |", "|---|---|---|---|"]
  for s in STAGES:
    r = R.get(s, {})
    lines = (r.get("error") or r.get("reason") or "").replace("|", "/").splitlines()
    md.append(f"| {s} | {r.get('status', '—')} | {fmt(r.get('seconds'))} | {lines[0][:160] if lines else ''} |")
  md += ["", "## Quality: models beside honest baselines", "",
         "Every figure comes from the same metric code on the same held-out data. *trained here* is the model this "
         "run trained (minutes on 2 CPU cores); *shipped* are weights trained by the project with `launch.train` "
         "on the same sample data and shipped in the package (provenance in the README); *untrained* is a fresh "
         "initialisation of the same architecture; *copy source* / *no translation* return the input unchanged.",
         ""]
  if "quality_stargan_v2" in chart_paths or "quality_dagan" in chart_paths:
    for k in ("quality_dagan", "quality_stargan_v2"):
      if k in chart_paths:
        md.append(f"![{k}]({os.path.relpath(chart_paths[k], wd)})")
    md.append("")
  for model in ("dagan", "stargan_v2"):
    md += quality_section(R, model, wd)
  md += media_section(R, wd)
  md += ["## Training (this run)", ""]
  for model in ("stargan_v2", "dagan"):
    t = R.get(f"train_{model}", {})
    if t.get("status") != "ok":
      md.append(f"- {model}: not trained ({str(t.get('error', t.get('status', 'no result')))[:200]})")
      continue
    last = t["summary"].get("last_metrics", {})
    md.append(f"- **{model}** ({t['variant']}, {t['steps']} steps, {t['wall_s']:.0f} s wall incl. compile): "
              + ", ".join(f"{k} {v:.3g}" for k, v in list(last.items())[:6]))
    for k, v in (t.get("notes") or {}).items():
      if isinstance(v, str):
        md.append(f"  - {k}: {v}")
  if "losses" in chart_paths:
    md += ["", f"![training losses]({os.path.relpath(chart_paths['losses'], wd)})"]
  md += [""] + speed_section(R, opts)
  if "speed" in chart_paths:
    md += [f"![speed]({os.path.relpath(chart_paths['speed'], wd)})", ""]
  md += ["## Time to train the official schedules (estimate)", "",
         "Iteration cost at the paper config (XLA) divided by the FLOP rate achieved on this device; divided by the "
         "device count for data parallelism (ideal scaling).", ""]
  if ttt:
    md += ["| model | iterations | TFLOP/iter | TFLOP/s measured | s/iter | hours, 1 device | hours, "
           f"{opts.devices} devices |", "|---|---|---|---|---|---|---|"]
    for model, v in ttt.items():
      flag = " ⚠ busy" if v["busy_machine"] else ""
      md.append(f"| {model} | {v['official_iterations']:,} | {v['paper_iteration_tflop']:.2f} | "
                f"{v['measured_tflops']:.3g}{flag} | {v['est_s_per_iteration']:.1f} | "
                f"{v['est_hours_1_device']:,.0f} | {v['est_hours_n_devices']:,.0f} |")
  else:
    md.append("Not available (needs the speed and complexity stages).")
  md += complexity_section(R, wd)
  if "flops" in chart_paths:
    md += [f"![flops]({os.path.relpath(chart_paths['flops'], wd)})", ""]
  return "\n".join(md) + "\n"


def media_section(R: dict, wd: str) -> list[str]:
  media = R.get("media", {})
  md = ["## Reenactment (source | driving | result | driving depth)", ""]
  if media.get("status") != "ok":
    return md + [f"Not rendered: {str(media.get('error', media.get('status', 'no result')))[:300]}", ""]
  for case, what in media["cases"].items():
    md += [f"**{case.replace('_', ' ')}**: {what}.", ""]
    for system, entry in media["systems"].items():
      e = entry[case]
      rel = os.path.relpath(e["video"], wd)
      md += [f"*{system}* — video: [{rel}]({rel}) ({e['frames']} frames at {fmt(e['fps'])} fps)", "",
             f"![{system} {case}]({os.path.relpath(e['preview'], wd)})", ""]
  for n in media.get("notes", []):
    md.append(f"- {n}")
  return md + [""]


def complexity_section(R: dict, wd: str) -> list[str]:
  md = ["", "## Complexity (256 px, paper configs)", ""]
  comp = R.get("complexity", {})
  if comp.get("status") == "ok":
    md.append(f"Full tables: `{os.path.relpath(os.path.join(comp['dir'], 'complexity.md'), wd)}`.")
    md += ["", "| model | module | params | analytic MACs (naive) | analytic MACs (pad-excl.) | XLA fwd FLOPs | "
           "DeepSpeed fwd FLOPs |", "|---|---|---|---|---|---|---|"]
    for m, mv in (get(comp, "complexity", "models") or {}).items():
      for name, mod in (mv.get("modules") or {}).items():
        md.append(f"| {m} | {name} | {fmt(mod.get('params'))} | {fmt(mod.get('analytic_macs_naive'))} | "
                  f"{fmt(mod.get('analytic_macs_padx'))} | {fmt(mod.get('xla_flops_fwd'))} | "
                  f"{fmt(mod.get('deepspeed_flops_fwd'))} |")
  else:
    md.append(f"Not computed: {comp.get('error', comp.get('reason', comp.get('status')))}")
  md += ["", "### The study's Table 10, per GPU, as printed", "", "| row | StarGAN v2 | DaGAN |", "|---|---|---|"]
  for k in STUDY_TABLE10["stargan_v2"]:
    md.append(f"| {k} | {STUDY_TABLE10['stargan_v2'][k]:,} | {STUDY_TABLE10['dagan'][k]:,} |")
  md += ["", "A V100 peaks at 15.7 TFLOPS (fp32) / 125 (fp16 tensor cores): every FLOPS row is impossible.", ""]
  models = get(comp, "complexity", "models") or {}
  for m in ("stargan_v2", "dagan"):
    t10 = get(models, m, "table10")
    if not t10:
      continue
    setting = t10.get("setting", {})
    md += [f"### Table 10 corrected: {m} ({setting.get('dataset', '')}, {setting.get('gpus', '?')} GPUs, batch "
           f"{setting.get('batch_per_gpu', '?')} per GPU)", "", "| measure | study | correct | study / correct | why |",
           "|---|---|---|---|---|"]
    for row in t10.get("rows", []):
      md.append(f"| {row['measure']} | {fmt(row['study'])} | {fmt(row['correct'])} | {fmt(row.get('ratio'))} | "
                f"{str(row.get('explanation', '')).replace('|', '/')} |")
    md.append("")
  return md


def html(md_text: str, wd: str) -> str:
  """The Markdown rendered by markdown-it-py, every local PNG embedded so the file stands alone."""
  from markdown_it import MarkdownIt
  body = MarkdownIt("commonmark").enable("table").render(md_text)

  def embed(m: re.Match) -> str:
    path = os.path.join(wd, m.group(1))
    if not path.endswith(".png") or not os.path.isfile(path):
      return m.group(0)
    with open(path, "rb") as f:
      data = base64.b64encode(f.read()).decode()
    return f'src="data:image/png;base64,{data}" style="max-width:100%"'

  body = re.sub(r'src="([^"]+)"', embed, body)
  return ("<!doctype html><meta charset=utf-8><title>jaxreenact comparison</title><style>body{font-family:"
          "sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #bbb;"
          "padding:2px 6px;font-size:13px}</style><body>" + body + "</body>")


def write(opts, R: dict, wall_s: float) -> dict[str, str]:
  """Writes report.md, report.html, report.json and the charts under ``opts.workdir``; returns their paths."""
  wd = opts.workdir
  chart_paths: dict[str, str] = {}
  try:
    chart_paths = charts(wd, R)
  except Exception as e:  # noqa: BLE001 - charts are optional; the tables still come out
    R["charts_error"] = f"{type(e).__name__}: {e}"
  ttt = time_to_train(R, opts)
  concl = conclusion(R, ttt, opts)
  text = markdown(R, opts, chart_paths, ttt, concl, wall_s)
  paths = {"md": os.path.join(wd, "report.md"), "html": os.path.join(wd, "report.html"),
           "json": os.path.join(wd, "report.json")}
  with open(paths["md"], "w") as f:
    f.write(text)
  with open(paths["html"], "w") as f:
    f.write(html(text, wd))
  report = {"stages": R, "time_to_train": ttt, "conclusion": concl, "study_table10": STUDY_TABLE10,
            "charts": chart_paths, "wall_s": wall_s,
            "options": {k: v for k, v in vars(opts).items() if not k.startswith("_")}}
  with open(paths["json"], "w") as f:
    json.dump(jsonable(report), f, indent=2, default=str)
  return paths

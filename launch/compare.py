r"""The study's question, answered correctly: StarGAN v2 vs DaGAN in training time, complexity and quality.

  python -m launch.compare --workdir runs/compare            # embedded sample data, tiny models, 2 CPU cores
  python -m launch.compare --workdir runs/compare --steps 500 --stargan_data TFDS --dagan_data TFDS \
      --dagan_depth_encoder encoder.pth --dagan_depth_decoder depth.pth --devices 4

Stages (each one's result is cached under WORKDIR/stages/<name>.json; a re-run reuses finished stages unless
--fresh; a failing stage is reported in its section and the rest still runs):
  train_stargan_v2, train_dagan   launch.train at the tiny configs (or --config_variant full) on the data given
  speed_stargan_v2, speed_dagan   launch.benchmark: JAX vs the PyTorch reference, alternated, same device
  complexity                      launch.complexity at the paper configs (256 px): XLA / DeepSpeed / analytic
  quality_stargan_v2, quality_dagan   launch.evaluate on held-out sample images / frames
  media                           launch.sample grid + launch.reenact video (source | driving | result | depth)
Writes WORKDIR/report.md, report.html (figures embedded), report.json and PNG charts.
"""
from __future__ import annotations

import base64
import datetime
import glob
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Output directory (report.md/html/json, stages/, runs).")
flags.DEFINE_integer("steps", None, "Training steps per model (default: 60 StarGAN v2, 30 DaGAN at tiny).")
flags.DEFINE_string("stargan_data", None, "Prepared image_domains TFDS dir (default: embedded sample data).")
flags.DEFINE_string("dagan_data", None, "Prepared talking_heads TFDS dir (default: embedded sample data).")
flags.DEFINE_string("stargan_ckpt", None, "StarGAN v2 checkpoint for quality/media (workdir, Orbax dir or official "
                    ".ckpt); default: the model trained here.")
flags.DEFINE_string("dagan_ckpt", None, "DaGAN checkpoint for quality/media; default: the model trained here.")
flags.DEFINE_string("dagan_depth_encoder", None, "Official depth encoder.pth (with --dagan_depth_decoder).")
flags.DEFINE_string("dagan_depth_decoder", None, "Official depth.pth.")
flags.DEFINE_enum("config_variant", "tiny", ["tiny", "full"], "Train the tiny configs or the paper ones (afhq, vox256).")
flags.DEFINE_integer("devices", 1, "Device count to extrapolate time-to-train to (and to train on when available).")
flags.DEFINE_integer("dagan_identities", 1211, "Identities in the DaGAN training set for the official schedule "
                     "(VoxCeleb1 dev: 1,211).")
flags.DEFINE_bool("fresh", False, "Recompute every stage.")
flags.DEFINE_list("skip", [], "Stages to skip.")
flags.DEFINE_integer("stage_timeout_s", 900, "Per-stage time limit.")

STAGES = ("train_stargan_v2", "train_dagan", "speed_stargan_v2", "speed_dagan", "complexity", "quality_stargan_v2",
          "quality_dagan", "media")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cmd, log_path, timeout):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  t = time.time()
  with open(log_path, "w") as log:
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
  if p.returncode != 0:
    with open(log_path) as f:
      tail = f.read()[-2500:]
    raise RuntimeError(f"exit {p.returncode} after {time.time() - t:.0f} s: {' '.join(cmd[2:4])} …\n{tail}")
  return time.time() - t


def _py(*args):
  return [sys.executable, "-m", *args]


class Stages:
  def __init__(self, workdir):
    self.workdir = workdir
    self.dir = os.path.join(workdir, "stages")
    os.makedirs(self.dir, exist_ok=True)

  def path(self, name):
    return os.path.join(self.dir, f"{name}.json")

  def run(self, name, fn):
    path = self.path(name)
    if name in FLAGS.skip:
      return {"status": "skipped", "reason": "--skip"}
    if os.path.isfile(path) and not FLAGS.fresh:
      with open(path) as f:
        res = json.load(f)
      if res.get("status") == "ok":
        print(f"[compare] {name}: reused ({path})", flush=True)
        return res
    print(f"[compare] {name}: running …", flush=True)
    t = time.time()
    try:
      res = {"status": "ok", **fn()}
    except Exception as e:  # a failing part is reported in its section; the report still completes
      res = {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
    res["seconds"] = time.time() - t
    with open(path, "w") as f:
      json.dump(res, f, indent=2, default=str)
    print(f"[compare] {name}: {res['status']} in {res['seconds']:.0f} s", flush=True)
    return res


def _read_json(path):
  with open(path) as f:
    return json.load(f)


def _train(model, wd):
  variant = {"stargan_v2": "tiny" if FLAGS.config_variant == "tiny" else "afhq",
             "dagan": "tiny" if FLAGS.config_variant == "tiny" else "vox256"}[model]
  steps = FLAGS.steps or {"stargan_v2": 60, "dagan": 30}[model]
  run_dir = os.path.join(wd, "runs", model)
  if FLAGS.fresh and os.path.isdir(run_dir):
    shutil.rmtree(run_dir)
  cmd = _py("launch.train", "--config", f"configs/{model}.py:{variant}", "--workdir", run_dir,
            f"--config.total_steps={steps}", f"--config.checkpoint_every={steps}", f"--config.sample_every={steps}",
            f"--config.log_every={max(1, steps // 20)}", f"--config.num_devices={FLAGS.devices}")
  data = FLAGS.stargan_data if model == "stargan_v2" else FLAGS.dagan_data
  if data:
    cmd.append(f"--config.data_dir={data}")
  if model == "dagan" and FLAGS.dagan_depth_encoder:
    cmd += [f"--config.depth_encoder={FLAGS.dagan_depth_encoder}",
            f"--config.depth_decoder={FLAGS.dagan_depth_decoder}"]
  secs = _run(cmd, os.path.join(wd, "stages", f"train_{model}.log"), FLAGS.stage_timeout_s)
  summary = _read_json(os.path.join(run_dir, "summary.json"))
  metrics = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
  samples = sorted(glob.glob(os.path.join(run_dir, "samples", "*.png")))
  notes = os.path.join(run_dir, "run_notes.json")
  return {"workdir": run_dir, "variant": variant, "steps": steps, "wall_s": secs, "summary": summary,
          "metrics": metrics, "samples": samples, "notes": _read_json(notes) if os.path.isfile(notes) else {}}


def _speed(model, wd):
  out = os.path.join(wd, "stages", f"bench_{model}.json")
  cfg = "tiny" if FLAGS.config_variant == "tiny" else "paper"
  _run(_py("launch.benchmark", "--model", model, "--config", cfg, "--repeats", "5", "--warmup", "2", "--out", out),
       os.path.join(wd, "stages", f"speed_{model}.log"), FLAGS.stage_timeout_s)
  return {"benchmark": _read_json(out)}


def _complexity(wd):
  out = os.path.join(wd, "complexity")
  _run(_py("launch.complexity", "--model", "all", "--out", out, "--skip_latency", "--quiet",
           "--scaling_latency_sizes=", "--deepspeed_device", "meta"),
       os.path.join(wd, "stages", "complexity.log"), FLAGS.stage_timeout_s)
  return {"dir": out, "complexity": _read_json(os.path.join(out, "complexity.json")),
          "charts": sorted(glob.glob(os.path.join(out, "*.png")))}


def _quality(model, wd, trained):
  ckpt = (FLAGS.stargan_ckpt if model == "stargan_v2" else FLAGS.dagan_ckpt) or trained.get("workdir")
  if not ckpt:
    raise RuntimeError("no checkpoint: the training stage failed and no --*_ckpt was given")
  out = os.path.join(wd, "quality", model)
  cmd = _py("launch.evaluate", "--model", model, "--checkpoint", ckpt, "--out_dir", out)
  if model == "stargan_v2":
    cmd += ["--num_outs_per_domain", "4", "--max_per_domain", "8"]
  else:
    cmd += ["--max_frames", "24", "--size", "64" if FLAGS.config_variant == "tiny" else "256"]
    if FLAGS.dagan_depth_encoder:
      cmd += ["--depth_encoder", FLAGS.dagan_depth_encoder, "--depth_decoder", FLAGS.dagan_depth_decoder]
  _run(cmd, os.path.join(wd, "stages", f"quality_{model}.log"), FLAGS.stage_timeout_s)
  return {"checkpoint": ckpt, "results": _read_json(os.path.join(out, "results.json")), "dir": out}


def _media(wd, sg, dg):
  out = os.path.join(wd, "media")
  res = {}
  errors = []
  sg_ckpt = FLAGS.stargan_ckpt or sg.get("workdir")
  if sg_ckpt:
    try:
      _run(_py("launch.sample", "--checkpoint", sg_ckpt, "--out_dir", os.path.join(out, "stargan_v2"),
               "--novideos"), os.path.join(wd, "stages", "media_sample.log"), FLAGS.stage_timeout_s)
      res["stargan_v2_grids"] = sorted(glob.glob(os.path.join(out, "stargan_v2", "*.png")))
    except Exception as e:
      errors.append(f"sample: {e}")
  dg_ckpt = FLAGS.dagan_ckpt or dg.get("workdir")
  if dg_ckpt:
    video = os.path.join(out, "dagan_reenactment.mp4")
    cmd = _py("launch.reenact", "--checkpoint", dg_ckpt, "--source_image", "sample:astronaut", "--driving_video",
              "sample:carphone", "--out", video, "--side_by_side", "--size", "64" if FLAGS.config_variant == "tiny"
              else "256", "--max_frames", "60")
    if FLAGS.dagan_depth_encoder:
      cmd += ["--depth_encoder", FLAGS.dagan_depth_encoder, "--depth_decoder", FLAGS.dagan_depth_decoder]
    try:
      _run(cmd, os.path.join(wd, "stages", "media_reenact.log"), FLAGS.stage_timeout_s)
      res["dagan_video"] = video
      res["dagan_preview"] = sorted(glob.glob(os.path.join(out, "*_preview.png")))
    except Exception as e:
      errors.append(f"reenact: {e}")
  if errors and not res:
    raise RuntimeError("; ".join(errors))
  res["errors"] = errors
  return res


# ------------------------------------------------------------------------------------------------ report


def _fmt(v, digits=3):
  if v is None:
    return "—"
  if isinstance(v, float):
    if math.isinf(v):
      return "inf"
    if abs(v) >= 1e4:
      return f"{v:,.0f}"
    return f"{v:.{digits}g}"
  if isinstance(v, int):
    return f"{v:,}"
  return str(v)


def _get(d, *keys):
  for k in keys:
    if not isinstance(d, dict) or k not in d:
      return None
    d = d[k]
  return d


def _charts(wd, R):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  charts = {}
  # 1. ms per training iteration, JAX vs PyTorch
  rows = [(m, _get(R, f"speed_{m}", "benchmark")) for m in ("stargan_v2", "dagan")]
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
    charts["speed"] = os.path.join(wd, "chart_speed.png")
    fig.savefig(charts["speed"], dpi=110)
    plt.close(fig)
  # 2. training curves
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
  drew = False
  for ax, (m, keys) in zip(axes, (("stargan_v2", ("G/latent_cyc", "G/latent_adv", "D/latent_loss")),
                                   ("dagan", ("G/perceptual", "G/equivariance_value", "D/disc_gan")))):
    ms = _get(R, f"train_{m}", "metrics") or []
    for k in keys:
      pts = [(r["step"], r[k]) for r in ms if k in r]
      if pts:
        ax.plot(*zip(*pts), label=k)
        drew = True
    ax.set_title(f"{m} training losses")
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
  fig.tight_layout()
  if drew:
    charts["losses"] = os.path.join(wd, "chart_losses.png")
    fig.savefig(charts["losses"], dpi=110)
  plt.close(fig)
  # 3. FLOPs per training iteration at the paper configs (XLA) vs the study's figure
  comp = _get(R, "complexity", "complexity", "models") or {}
  vals = {m: _get(comp, m, "train_iteration", "xla_flops_fwd_bwd") or _get(comp, m, "train_iteration", "xla_flops")
          for m in ("stargan_v2", "dagan")}
  if any(vals.values()):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [m for m, v in vals.items() if v]
    ax.bar(names, [vals[m] / 1e12 for m in names])
    ax.set_ylabel("TFLOP per training iteration (XLA)")
    ax.set_title("Cost of one official training iteration, 256 px")
    fig.tight_layout()
    charts["flops"] = os.path.join(wd, "chart_flops.png")
    fig.savefig(charts["flops"], dpi=110)
    plt.close(fig)
  return charts


def _time_to_train(R):
  """Official schedules from the measured achieved FLOP/s and the paper-config iteration cost."""
  out = {}
  comp = _get(R, "complexity", "complexity", "models") or {}
  iters = {"stargan_v2": 100_000, "dagan": 150 * 75 * math.ceil(FLAGS.dagan_identities / 8)}  # batch 8 (Table 13)
  for m in ("stargan_v2", "dagan"):
    b = _get(R, f"speed_{m}", "benchmark")
    ti = _get(comp, m, "train_iteration") or {}
    flops = ti.get("xla_flops_fwd_bwd") or ti.get("xla_flops") or ti.get("xla_flops_total")
    if not b or not flops or not b.get("achieved_tflops"):
      continue
    s_per_iter = flops / (b["achieved_tflops"] * 1e12)
    total_h = s_per_iter * iters[m] / 3600
    out[m] = {"official_iterations": iters[m], "paper_iteration_tflop": flops / 1e12,
              "measured_tflops": b["achieved_tflops"], "device": b["device"],
              "est_s_per_iteration": s_per_iter, "est_hours_1_device": total_h,
              f"est_hours_{FLAGS.devices}_devices": total_h / max(1, FLAGS.devices)}
  return out


STUDY_TABLE10 = {  # the study's Table 10 (as printed), per GPU
    "stargan_v2": {"fwd flops per GPU (G)": 2902834.73, "fwd latency (s)": 1.95, "bwd latency (s)": 5.24,
                   "fwd FLOPS per GPU (TFLOPS)": 1488.63, "bwd FLOPS per GPU (TFLOPS)": 1107.95218,
                   "fwd+bwd FLOPS per GPU (TFLOPS)": 1211.19668},
    "dagan": {"fwd flops per GPU (G)": 103490221.33, "fwd latency (s)": 5.89, "bwd latency (s)": 10.02,
              "fwd FLOPS per GPU (TFLOPS)": 1757049.59, "bwd FLOPS per GPU (TFLOPS)": 2065673.08,
              "fwd+bwd FLOPS per GPU (TFLOPS)": 1951418.37831}}


def _conclusion(R, ttt):
  lines = []
  comp = _get(R, "complexity", "complexity", "models") or {}
  f = {m: (_get(comp, m, "train_iteration", "xla_flops_fwd_bwd") or _get(comp, m, "train_iteration", "xla_flops"))
       for m in ("stargan_v2", "dagan")}
  if f["stargan_v2"] and f["dagan"]:
    cheap, dear = ("stargan_v2", "dagan") if f["stargan_v2"] < f["dagan"] else ("dagan", "stargan_v2")
    lines.append(f"Per official training iteration at 256 px (batch 8), **{cheap}** costs "
                 f"{f[cheap] / 1e12:.2f} TFLOP against {f[dear] / 1e12:.2f} TFLOP for {dear} "
                 f"({f[dear] / f[cheap]:.1f}× more) by XLA's count of forward + backward.")
  if ttt.get("stargan_v2") and ttt.get("dagan"):
    a, b = ttt["stargan_v2"]["est_hours_1_device"], ttt["dagan"]["est_hours_1_device"]
    lines.append(f"Over the official schedules (StarGAN v2: 100k iterations; DaGAN: 150 epochs × 75 repeats over "
                 f"{FLAGS.dagan_identities:,} identities) on the measured device, that is about {a:,.0f} h for "
                 f"StarGAN v2 and {b:,.0f} h for DaGAN on one device — DaGAN's cheaper iteration is outweighed by its "
                 f"much longer schedule." if b > a else
                 f"Over the official schedules that is about {a:,.0f} h (StarGAN v2) and {b:,.0f} h (DaGAN) on one "
                 f"device.")
  for m in ("stargan_v2", "dagan"):
    b = _get(R, f"speed_{m}", "benchmark")
    if b and b.get("speedup"):
      lines.append(f"{m}: the JAX iteration runs {b['speedup']:.1f}× the speed of the PyTorch reference on "
                   f"{b['device']} ({b['jax_ms_per_iter']:.0f} vs {b['torch_ms_per_iter']:.0f} ms, {b['config']} "
                   f"config, batch {b['batch']}).")
  lines.append("The study's Table 10 (1,488 and 1.76·10⁶ TFLOPS per V100, whose peak is 15.7 fp32 / 125 fp16) is "
               "physically impossible; the corrected figures are in the complexity section.")
  if FLAGS.config_variant == "tiny" and not (FLAGS.stargan_data or FLAGS.dagan_data):
    lines.append("Quality numbers here come from tiny models trained for minutes on the embedded smoke-test data: "
                 "they show that the measurement pipeline works, not how good either model is.")
  return lines


def _img_tag(path, width=None):
  with open(path, "rb") as f:
    data = base64.b64encode(f.read()).decode()
  w = f' width="{width}"' if width else ""
  return f'<img src="data:image/png;base64,{data}"{w}>'


def _report(wd, R):
  charts = {}
  try:
    charts = _charts(wd, R)
  except Exception as e:  # charts are optional; the tables still come out
    R["charts_error"] = str(e)
  ttt = _time_to_train(R)
  conclusion = _conclusion(R, ttt)
  md = [f"# StarGAN v2 vs DaGAN — jaxreenact comparison", "",
        f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} on {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} cores); configs: {FLAGS.config_variant}.", "", "## Conclusion", ""]
  md += [f"- {l}" for l in conclusion] + [""]
  md += ["## Stages", "", "| stage | status | seconds | note |", "|---|---|---|---|"]
  for s in STAGES:
    r = R.get(s, {})
    lines = (r.get("error") or r.get("reason") or "").replace("|", "/").splitlines()
    note = lines[0][:160] if lines else ""
    md.append(f"| {s} | {r.get('status', '—')} | {_fmt(r.get('seconds'))} | {note} |")
  md += ["", "## Training", ""]
  for m in ("stargan_v2", "dagan"):
    t = R.get(f"train_{m}", {})
    if t.get("status") != "ok":
      md.append(f"- {m}: not trained ({t.get('error', t.get('status', 'no result'))[:200]})")
      continue
    last = t["summary"].get("last_metrics", {})
    md.append(f"- **{m}** ({t['variant']}, {t['steps']} steps, {t['wall_s']:.0f} s wall incl. compile): "
              + ", ".join(f"{k} {v:.3g}" for k, v in list(last.items())[:6]))
    for k, v in (t.get("notes") or {}).items():
      if isinstance(v, str):
        md.append(f"  - {k}: {v}")
  md += ["", "## Speed (same device, alternated iterations)", "",
         "| model | config | batch | device | JAX ms/iter | PyTorch ms/iter | speed-up | JAX img/s | XLA TFLOP/iter | achieved TFLOP/s | MFU |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
  for m in ("stargan_v2", "dagan"):
    b = _get(R, f"speed_{m}", "benchmark")
    if b:
      md.append(f"| {m} | {b['config']} | {b['batch']} | {b['device']} | {_fmt(b['jax_ms_per_iter'])} | "
                f"{_fmt(b.get('torch_ms_per_iter'))} | {_fmt(b.get('speedup'))} | {_fmt(b['jax_images_per_s'])} | "
                f"{_fmt(b['xla_flops_per_iter'] / 1e12)} | {_fmt(b['achieved_tflops'])} | {_fmt(b.get('mfu'))} |")
    else:
      md.append(f"| {m} | — | — | — | failed: {str(_get(R, f'speed_{m}', 'error'))[:120]} | | | | | | |")
  md += ["", "## Time to train the official schedules (estimate)", "",
         "Iteration cost at the paper config (XLA) divided by the FLOP rate achieved on this device; divided by the "
         "device count for data parallelism (ideal scaling).", ""]
  if ttt:
    md += ["| model | iterations | TFLOP/iter | TFLOP/s measured | s/iter | hours, 1 device | hours, "
           f"{FLAGS.devices} devices |", "|---|---|---|---|---|---|---|"]
    for m, v in ttt.items():
      md.append(f"| {m} | {v['official_iterations']:,} | {v['paper_iteration_tflop']:.2f} | {v['measured_tflops']:.3g} "
                f"| {v['est_s_per_iteration']:.1f} | {v['est_hours_1_device']:,.0f} | "
                f"{v[f'est_hours_{FLAGS.devices}_devices']:,.0f} |")
  else:
    md.append("Not available (needs the speed and complexity stages).")
  md += ["", "## Complexity (256 px, paper configs)", ""]
  comp = R.get("complexity", {})
  if comp.get("status") == "ok":
    md.append(f"Full tables: `{os.path.relpath(os.path.join(comp['dir'], 'complexity.md'), wd)}`.")
    md += ["", "| model | module | params | analytic MACs (naive) | analytic MACs (pad-excl.) | XLA fwd FLOPs | "
           "DeepSpeed fwd FLOPs |", "|---|---|---|---|---|---|---|"]
    for m, mv in (_get(comp, "complexity", "models") or {}).items():
      for name, mod in (mv.get("modules") or {}).items():
        md.append(f"| {m} | {name} | {_fmt(mod.get('params'))} | {_fmt(mod.get('analytic_macs_naive'))} | "
                  f"{_fmt(mod.get('analytic_macs_padx'))} | {_fmt(mod.get('xla_flops_fwd'))} | "
                  f"{_fmt(mod.get('deepspeed_flops_fwd'))} |")
  else:
    md.append(f"Failed: {comp.get('error', comp.get('status'))}")
  md += ["", "### The study's Table 10, per GPU, as printed", "", "| row | StarGAN v2 | DaGAN |", "|---|---|---|"]
  for k in STUDY_TABLE10["stargan_v2"]:
    md.append(f"| {k} | {STUDY_TABLE10['stargan_v2'][k]:,} | {STUDY_TABLE10['dagan'][k]:,} |")
  md += ["", "A V100 peaks at 15.7 TFLOPS (fp32) / 125 (fp16 tensor cores): every FLOPS row is impossible.", ""]
  models = _get(comp, "complexity", "models") or {}
  for m in ("stargan_v2", "dagan"):
    t10 = _get(models, m, "table10")
    if not t10:
      continue
    md += [f"### Table 10 corrected: {m} ({t10.get('setting', {}).get('dataset', '')}, "
           f"{t10.get('setting', {}).get('gpus', '?')} GPUs, batch {t10.get('setting', {}).get('batch_per_gpu', '?')} "
           f"per GPU)", "", "| measure | study | correct | study / correct | why |", "|---|---|---|---|---|"]
    for row in t10.get("rows", []):
      md.append(f"| {row['measure']} | {_fmt(row['study'])} | {_fmt(row['correct'])} | {_fmt(row.get('ratio'))} | "
                f"{str(row.get('explanation', '')).replace('|', '/')} |")
    md.append("")
  md += ["## Quality", ""]
  for m in ("stargan_v2", "dagan"):
    q = R.get(f"quality_{m}", {})
    if q.get("status") != "ok":
      md.append(f"- {m}: {q.get('error', q.get('status', 'no result'))[:300]}")
      continue
    res = q["results"]
    metrics = res.get("metrics") or res.get("summary") or {}
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if m == "stargan_v2":  # the means first, per-task values after
      flat = dict(sorted(flat.items(), key=lambda kv: (not kv[0].endswith("/mean"), kv[0])))
    where = f"{res.get('num_val_images', '')} val images" if m == "stargan_v2" else f"{res.get('split', '')} split, {res.get('size', '')} px"
    md.append(f"- **{m}** ({where}; checkpoint {q['checkpoint']}): " +
              ", ".join(f"{k} {_fmt(v)}" for k, v in list(flat.items())[:12]))
    if m == "dagan":
      md.append("  - AKD/AED/CSIM use dlib's 68 landmarks and 128-d face embedding (a stand-in for the paper's "
                "OpenFace/ArcFace); frames where no face is found are counted as missing.")
  media = R.get("media", {})
  md += ["", "## Pictures and video", ""]
  images = list(charts.values())
  for m in ("stargan_v2", "dagan"):
    images += (R.get(f"train_{m}", {}).get("samples") or [])[-1:]
  images += (media.get("stargan_v2_grids") or [])[:2] + (media.get("dagan_preview") or [])
  for p in images:
    md.append(f"![{os.path.basename(p)}]({os.path.relpath(p, wd)})")
  if media.get("dagan_video"):
    md.append(f"\nReenactment video: [{os.path.relpath(media['dagan_video'], wd)}]({os.path.relpath(media['dagan_video'], wd)})")
  text = "\n".join(md) + "\n"
  with open(os.path.join(wd, "report.md"), "w") as f:
    f.write(text)
  # HTML: the same content, images embedded so the file stands alone.
  import html as html_lib
  body = []
  for line in md:
    if line.startswith("!["):
      path = os.path.join(wd, line[line.index("(") + 1:-1])
      body.append(_img_tag(path, 720) if os.path.isfile(path) else html_lib.escape(line))
    elif line.startswith("# "):
      body.append(f"<h1>{html_lib.escape(line[2:])}</h1>")
    elif line.startswith("## "):
      body.append(f"<h2>{html_lib.escape(line[3:])}</h2>")
    elif line.startswith("### "):
      body.append(f"<h3>{html_lib.escape(line[4:])}</h3>")
    elif line.startswith("|---"):
      continue
    elif line.startswith("|"):
      cells = [html_lib.escape(c.strip()) for c in line.strip("|").split("|")]
      body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    else:
      body.append(f"<p>{html_lib.escape(line)}</p>" if line else "")
  out, in_table = [], False
  for b in body:
    if b.startswith("<tr>") and not in_table:
      out.append("<table border=1 cellspacing=0 cellpadding=3>")
      in_table = True
    if not b.startswith("<tr>") and in_table:
      out.append("</table>")
      in_table = False
    out.append(b)
  if in_table:
    out.append("</table>")
  with open(os.path.join(wd, "report.html"), "w") as f:
    f.write("<!doctype html><meta charset=utf-8><title>jaxreenact comparison</title>"
            "<body style='font-family:sans-serif;max-width:1000px'>" + "\n".join(out) + "</body>")
  report = {"stages": R, "time_to_train": ttt, "conclusion": conclusion, "study_table10": STUDY_TABLE10,
            "charts": charts, "flags": {k: FLAGS[k].value for k in ("steps", "config_variant", "devices", "fresh")}}
  with open(os.path.join(wd, "report.json"), "w") as f:
    json.dump(report, f, indent=2, default=str)
  return text


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required")
  wd = os.path.abspath(FLAGS.workdir)
  st = Stages(wd)
  t0 = time.time()
  R = {}
  R["train_stargan_v2"] = st.run("train_stargan_v2", lambda: _train("stargan_v2", wd))
  R["train_dagan"] = st.run("train_dagan", lambda: _train("dagan", wd))
  R["speed_stargan_v2"] = st.run("speed_stargan_v2", lambda: _speed("stargan_v2", wd))
  R["speed_dagan"] = st.run("speed_dagan", lambda: _speed("dagan", wd))
  R["complexity"] = st.run("complexity", lambda: _complexity(wd))
  R["quality_stargan_v2"] = st.run("quality_stargan_v2", lambda: _quality("stargan_v2", wd, R["train_stargan_v2"]))
  R["quality_dagan"] = st.run("quality_dagan", lambda: _quality("dagan", wd, R["train_dagan"]))
  R["media"] = st.run("media", lambda: _media(wd, R["train_stargan_v2"], R["train_dagan"]))
  _report(wd, R)
  failed = [s for s in STAGES if R.get(s, {}).get("status") == "failed"]
  print(f"[compare] report: {os.path.join(wd, 'report.html')} ({time.time() - t0:.0f} s; "
        f"{len(failed)} failed stage(s){': ' + ', '.join(failed) if failed else ''})", flush=True)


if __name__ == "__main__":
  app.run(main)

"""The study's question, answered correctly: StarGAN v2 vs DaGAN in training time, complexity and quality.

:func:`run` executes the stages below, caches each result under ``WORKDIR/stages/<name>.json`` (a re-run reuses
finished stages; ``fresh`` recomputes all, ``rerun`` the named ones), keeps going when one fails, shows one overall
progress line (stage, its own progress, ETA) and writes the report (``report.md``, ``report.html``,
``report.json``, PNG charts) through :mod:`jaxreenact.study.report`.

  train_stargan_v2, train_dagan   ``launch.train`` at the tiny configs (or the paper ones) on the data given
  speed_stargan_v2, speed_dagan   ``launch.benchmark``: JAX vs the PyTorch reference, alternated, same device,
                                  with the machine's load recorded before, during and after
  complexity                      ``launch.complexity`` at the paper configs (256 px): XLA / DeepSpeed / analytic
  quality_stargan_v2, quality_dagan   the model trained here and the shipped weights beside baselines
                                      (:mod:`jaxreenact.study.quality`)
  media                           same- and cross-identity reenactment videos (:mod:`jaxreenact.study.media`)
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable

from jaxreenact import machine, shipped
from jaxreenact.data.media import unwritable_reason
from jaxreenact.jsonutil import jsonable
from jaxreenact.study import media, report

STAGES = ("train_stargan_v2", "train_dagan", "speed_stargan_v2", "speed_dagan", "complexity", "quality_stargan_v2",
          "quality_dagan", "media")
# Seconds each stage takes on an idle 2-core CPU at the default options (measured; the ETA starts from these).
ESTIMATE_S = {"train_stargan_v2": 115, "train_dagan": 165, "speed_stargan_v2": 65, "speed_dagan": 85,
              "complexity": 140, "quality_stargan_v2": 130, "quality_dagan": 85, "media": 30}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class Options:
  """Everything the comparison needs; ``launch.compare`` fills it from flags."""
  workdir: str
  steps: int | None = None  # training steps per model (default: 60 StarGAN v2, 30 DaGAN at tiny)
  stargan_data: str | None = None
  dagan_data: str | None = None
  stargan_ckpt: str | None = None  # replaces the model trained here in quality/media
  dagan_ckpt: str | None = None
  dagan_depth_encoder: str | None = None
  dagan_depth_decoder: str | None = None
  config_variant: str = "tiny"  # tiny | full
  devices: int = 1
  dagan_identities: int = 1211
  fresh: bool = False
  rerun: tuple[str, ...] = ()
  skip: tuple[str, ...] = ()
  stage_timeout_s: int = 900
  progress: bool = True

  def validate(self) -> None:
    """Refuses unknown stage names and missing inputs before any stage starts (ValueError naming the option)."""
    for opt in ("skip", "rerun"):
      bad = sorted(set(getattr(self, opt)) - set(STAGES))
      if bad:
        raise ValueError(f"--{opt}: unknown stage(s) {', '.join(bad)}; stages are {', '.join(STAGES)}")
    if self.config_variant not in ("tiny", "full"):
      raise ValueError(f"--config_variant={self.config_variant!r}: choose tiny or full")
    for opt in ("stargan_data", "dagan_data", "dagan_depth_encoder", "dagan_depth_decoder"):
      v = getattr(self, opt)
      if v and not os.path.exists(v):
        raise ValueError(f"--{opt}={v}: does not exist")
    if bool(self.dagan_depth_encoder) != bool(self.dagan_depth_decoder):
      raise ValueError("--dagan_depth_encoder and --dagan_depth_decoder go together")
    for opt in ("stargan_ckpt", "dagan_ckpt"):
      v = getattr(self, opt)
      if v and not (v.startswith(("shipped:", "random:")) or os.path.exists(v)):
        raise ValueError(f"--{opt}={v}: does not exist")
    if self.devices < 1 or (self.steps is not None and self.steps < 1):
      raise ValueError("--devices and --steps must be positive")
    problem = unwritable_reason(self.workdir)
    if problem:
      raise ValueError(f"--workdir={self.workdir}: {problem}")

  @property
  def size(self) -> int:
    return 64 if self.config_variant == "tiny" else 256


# ------------------------------------------------------------------------------------------------------------
# running stages


class StageFailed(RuntimeError):
  pass


class Runner:
  """Runs stages with caching, failure capture and one overall progress line."""

  def __init__(self, opts: Options):
    self.opts = opts
    self.dir = os.path.join(opts.workdir, "stages")
    os.makedirs(self.dir, exist_ok=True)
    self.t0 = time.time()
    self.pending = [s for s in STAGES if s not in opts.skip]
    self.current: dict[str, Any] | None = None
    self._stop = threading.Event()
    self._err = sys.stderr  # the terminal, kept while a stage's own output goes to its log
    self._tty = self._err.isatty()
    self._ticker = threading.Thread(target=self._tick, daemon=True)
    if opts.progress:
      self._ticker.start()

  # -- progress line ------------------------------------------------------------------------------------------
  def set_progress(self, done: int, total: int) -> None:
    if self.current is not None:
      self.current.update(done=done, total=total)

  def _own_progress(self) -> tuple[float | None, str]:
    c = self.current or {}
    done, total = c.get("done"), c.get("total")
    if c.get("log") and os.path.isfile(c["log"]):  # a subprocess: its last tqdm "n/N" in the log
      with open(c["log"], "rb") as f:
        f.seek(max(0, os.path.getsize(c["log"]) - 4000))
        hits = re.findall(rb"(\d+)/(\d+) \[", f.read())
      if hits:
        done, total = (int(x) for x in hits[-1])
    if done is not None and total:
      return done / total, f"{done}/{total}"
    return None, ""

  def line(self) -> str:
    now = time.time()
    c = self.current
    if c is None:
      return f"[compare {_mmss(now - self.t0)}]"
    frac, own = self._own_progress()
    spent = now - c["t0"]
    est = ESTIMATE_S.get(c["name"], 60)
    # a stage's first steps include its compile: extrapolate from its own progress only once a quarter is done
    left_here = max(est - spent, 0.0) if not frac or frac < 0.25 else spent * (1 - frac) / frac
    left = left_here + sum(ESTIMATE_S.get(s, 60) for s in self.pending if s != c["name"])
    k = STAGES.index(c["name"]) + 1
    return (f"[compare {_mmss(now - self.t0)}, ETA {_mmss(left)}] stage {k}/{len(STAGES)} {c['name']}"
            f"{': ' + own if own else ''} ({_mmss(spent)})")

  def _tick(self) -> None:
    last = 0.0
    while not self._stop.wait(1.0):
      if self.current is None:
        continue
      if self._tty:
        self._err.write("\r" + self.line().ljust(100)[:120])
        self._err.flush()
      elif time.time() - last >= 30:  # a log file: one line every 30 s
        print(self.line(), file=self._err, flush=True)
        last = time.time()

  def close(self) -> None:
    self._stop.set()
    if self._tty and self.opts.progress:
      self._err.write("\n")

  # -- stages -------------------------------------------------------------------------------------------------
  def path(self, name: str) -> str:
    return os.path.join(self.dir, f"{name}.json")

  def log(self, name: str) -> str:
    return os.path.join(self.dir, f"{name}.log")

  def run(self, name: str, fn: Callable[[], dict]) -> dict:
    if name in self.opts.skip:
      return {"status": "skipped", "reason": "--skip"}
    path = self.path(name)
    reuse = not self.opts.fresh and name not in self.opts.rerun
    if reuse and os.path.isfile(path):
      with open(path) as f:
        res = json.load(f)
      if res.get("status") == "ok":
        self._say(f"{name}: reused ({path})")
        self.pending.remove(name)
        return res
    self.current = {"name": name, "t0": time.time(), "done": None, "total": None, "log": None}
    t = time.time()
    try:
      with self._captured(name):
        res = {"status": "ok", **fn()}
    except Exception as e:  # noqa: BLE001 - a failing part is reported in its section; the report still completes
      res = {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
    res["seconds"] = time.time() - t
    with open(path, "w") as f:
      json.dump(jsonable(res), f, indent=2, default=str)
    self.current = None
    self.pending.remove(name)
    self._say(f"{name}: {res['status']} in {res['seconds']:.0f} s")
    return res

  @contextlib.contextmanager
  def _captured(self, name: str):
    """What a stage running in this process prints (progress bars, library logs) goes to stages/<name>.out."""
    from absl import logging as absl_logging
    handler = absl_logging.get_absl_handler().python_handler
    with open(os.path.join(self.dir, f"{name}.out"), "w") as out:
      old_stream = handler.stream
      handler.stream = out
      try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
          yield
      finally:
        handler.stream = old_stream

  def _say(self, text: str) -> None:
    if self._tty and self.opts.progress:
      self._err.write("\r" + " " * 120 + "\r")
    print(f"[compare] {text}", flush=True)

  def subprocess(self, name: str, args: list[str]) -> float:
    """Runs ``python -m <args>`` from the repository root with its output in the stage's log; seconds taken."""
    log_path = self.log(name)
    if self.current is not None:
      self.current["log"] = log_path
    cmd = [sys.executable, "-m", *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t = time.time()
    with open(log_path, "w") as log:
      log.write("$ " + " ".join(cmd) + "\n")
      log.flush()
      try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                           timeout=self.opts.stage_timeout_s)
      except subprocess.TimeoutExpired:
        raise StageFailed(f"{args[0]} did not finish within {self.opts.stage_timeout_s} s (--stage_timeout_s); "
                          f"log: {log_path}") from None
    if p.returncode != 0:
      with open(log_path, errors="replace") as f:
        tail = f.read()[-2500:]
      raise StageFailed(f"{args[0]} exited {p.returncode} after {time.time() - t:.0f} s (log: {log_path})\n{tail}")
    return time.time() - t


def _mmss(s: float) -> str:
  s = int(max(s, 0))
  return f"{s // 60}:{s % 60:02d}"


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


# ------------------------------------------------------------------------------------------------------------
# the stages


def _train(r: Runner, model: str) -> dict:
  o = r.opts
  variant = {"stargan_v2": "tiny" if o.config_variant == "tiny" else "afhq",
             "dagan": "tiny" if o.config_variant == "tiny" else "vox256"}[model]
  steps = o.steps or {"stargan_v2": 60, "dagan": 30}[model]
  run_dir = os.path.join(o.workdir, "runs", model)
  if (o.fresh or f"train_{model}" in o.rerun) and os.path.isdir(run_dir):
    shutil.rmtree(run_dir)
  args = ["launch.train", "--config", f"configs/{model}.py:{variant}", "--workdir", run_dir,
          f"--config.total_steps={steps}", f"--config.checkpoint_every={steps}", f"--config.sample_every={steps}",
          f"--config.log_every={max(1, steps // 20)}", f"--config.num_devices={o.devices}"]
  data = o.stargan_data if model == "stargan_v2" else o.dagan_data
  if data:
    args.append(f"--config.data_dir={data}")
  if model == "dagan" and o.dagan_depth_encoder:
    args += [f"--config.depth_encoder={o.dagan_depth_encoder}", f"--config.depth_decoder={o.dagan_depth_decoder}"]
  secs = r.subprocess(f"train_{model}", args)
  metrics = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
  notes = os.path.join(run_dir, "run_notes.json")
  return {"workdir": run_dir, "variant": variant, "steps": steps, "wall_s": secs,
          "summary": _read_json(os.path.join(run_dir, "summary.json")), "metrics": metrics,
          "samples": sorted(glob.glob(os.path.join(run_dir, "samples", "*.png"))),
          "notes": _read_json(notes) if os.path.isfile(notes) else {}}


def _speed(r: Runner, model: str) -> dict:
  o = r.opts
  out = os.path.join(r.dir, f"bench_{model}.json")
  cfg = "tiny" if o.config_variant == "tiny" else "paper"
  with machine.LoadMonitor() as mon:
    r.subprocess(f"speed_{model}", ["launch.benchmark", "--model", model, "--config", cfg, "--repeats", "4",
                                    "--warmup", "1", "--out", out])
  return {"benchmark": _read_json(out), "load": mon.result(),
          "rerun": f"python -m launch.compare --workdir {o.workdir} --rerun speed_{model}"}


def _complexity(r: Runner) -> dict:
  out = os.path.join(r.opts.workdir, "complexity")
  # Lowered XLA analysis (global FLOPs of every module and iteration, all the report uses); compiling the 256-px
  # iterations for per-device costs and memory would take minutes more — `launch.complexity` has them.
  r.subprocess("complexity", ["launch.complexity", "--model", "all", "--out", out, "--skip_compile", "--quiet",
                              "--scaling_latency_sizes=", "--deepspeed_device", "meta"])
  return {"dir": out, "complexity": _read_json(os.path.join(out, "complexity.json")),
          "charts": sorted(glob.glob(os.path.join(out, "*.png")))}


def _shipped_system(name: str):
  """The shipped-weights System, or None (with the reason) when they are not installed."""
  from jaxreenact.study import quality  # imports jax: keeps this module jax-free
  try:
    prov = shipped.provenance(name)
  except (FileNotFoundError, ValueError) as e:
    return None, str(e)
  steps = prov.get("steps")
  label = f"shipped ({steps:,} steps)" if isinstance(steps, int) else "shipped"
  return quality.System(label, "model", f"shipped:{name}", note=prov.get("summary", "")), None


def _model_systems(r: Runner, model: str, trained: dict) -> tuple[list, list[str]]:
  from jaxreenact.study import quality  # imports jax: keeps this module jax-free
  o = r.opts
  systems, notes = [], []
  user_ckpt = o.stargan_ckpt if model == "stargan_v2" else o.dagan_ckpt
  if user_ckpt:
    systems.append(quality.System(f"--{model.split('_')[0]}_ckpt", "model", user_ckpt))
  elif trained.get("status") == "ok":
    minutes = trained["wall_s"] / 60
    systems.append(quality.System(f"trained here ({trained['steps']} steps, {minutes:.1f} min)", "model",
                                  trained["workdir"]))
  else:
    notes.append(f"the training stage did not finish ({trained.get('status')}); no model trained here")
  if o.config_variant == "tiny":
    s, why = _shipped_system("stargan_v2_tiny" if model == "stargan_v2" else "dagan_tiny")
    if s is not None:
      systems.append(s)
    else:
      notes.append(f"shipped weights unavailable: {why}")
  if not systems:
    raise StageFailed("nothing to evaluate: " + "; ".join(notes))
  return systems, notes


def _depth_files(o: Options) -> tuple[str, str] | None:
  return (o.dagan_depth_encoder, o.dagan_depth_decoder) if o.dagan_depth_encoder else None


def _reference_config(r: Runner, model: str, systems: list):
  """The architecture the 'untrained' baseline is drawn from: the first evaluated model's."""
  from jaxreenact.study import quality  # imports jax: keeps this module jax-free
  return quality.load_checkpoint(model, systems[0].spec, _depth_files(r.opts)).config


def _quality(r: Runner, model: str, trained: dict) -> dict:
  from jaxreenact.study import quality  # imports jax: keeps this module jax-free
  o = r.opts
  systems, notes = _model_systems(r, model, trained)
  ref_cfg = _reference_config(r, model, systems)
  out = os.path.join(o.workdir, "quality", model)
  if model == "stargan_v2":
    if o.stargan_data:
      notes.append("quality uses the embedded sample data's image domains, not --stargan_data")
    systems += [quality.System("untrained", "baseline", quality.UNTRAINED),
                quality.System("no translation", "baseline", quality.NO_TRANSLATION)]
    res = quality.stargan_quality(systems, out_dir=out, reference_config=ref_cfg, progress=r.set_progress)
  else:
    systems += [quality.System("untrained", "baseline", quality.UNTRAINED),
                quality.System("copy source", "baseline", quality.COPY_SOURCE)]
    res = quality.dagan_quality(systems, out_dir=out, size=o.size, data_dir=o.dagan_data,
                                reference_config=ref_cfg, depth_files=_depth_files(o), progress=r.set_progress)
  return {"results": res, "notes": notes, "dir": out}


def _media(r: Runner, trained: dict) -> dict:
  o = r.opts
  systems, notes = _model_systems(r, "dagan", trained)
  res = media.dagan_media(systems, out_dir=os.path.join(o.workdir, "media"), size=o.size, data_dir=o.dagan_data,
                          depth_files=_depth_files(o), progress=r.set_progress)
  return {**res, "notes": notes}


def run(opts: Options) -> dict[str, Any]:
  """Runs (or reuses) every stage and writes the report; returns {'stages', 'report': paths, 'failed': [...]}."""
  opts.validate()
  opts.workdir = os.path.abspath(opts.workdir)
  os.makedirs(opts.workdir, exist_ok=True)
  r = Runner(opts)
  R: dict[str, dict] = {}
  try:
    R["train_stargan_v2"] = r.run("train_stargan_v2", lambda: _train(r, "stargan_v2"))
    R["train_dagan"] = r.run("train_dagan", lambda: _train(r, "dagan"))
    R["speed_stargan_v2"] = r.run("speed_stargan_v2", lambda: _speed(r, "stargan_v2"))
    R["speed_dagan"] = r.run("speed_dagan", lambda: _speed(r, "dagan"))
    R["complexity"] = r.run("complexity", lambda: _complexity(r))
    R["quality_stargan_v2"] = r.run("quality_stargan_v2", lambda: _quality(r, "stargan_v2", R["train_stargan_v2"]))
    R["quality_dagan"] = r.run("quality_dagan", lambda: _quality(r, "dagan", R["train_dagan"]))
    R["media"] = r.run("media", lambda: _media(r, R["train_dagan"]))
  finally:
    r.close()
  paths = report.write(opts, R, wall_s=time.time() - r.t0)
  failed = [s for s in STAGES if R.get(s, {}).get("status") == "failed"]
  return {"stages": R, "report": paths, "failed": failed, "wall_s": time.time() - r.t0}

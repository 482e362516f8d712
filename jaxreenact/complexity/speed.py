"""JAX vs PyTorch-reference training iterations, alternated on the same device, config, batch and precision.

:func:`run` builds one model at a named preset, lowers and compiles its jitted ``train_step`` (XLA's FLOP count and
memory estimate), then times it against the reference's ``train_iteration`` in turn (A B A B), and reports
ms/iteration (median and spread), images/s, the torch/JAX speed-up, achieved FLOP/s, MFU against a matmul measured
on the same device in the same precision, compile time and peak memory. Synthetic inputs (uniform images, fixed
labels): data loading is not part of the figure (see benchmarks/). Entry point: ``python -m launch.benchmark``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact import machine, timing
from jaxreenact.models import dagan, stargan_v2, vgg
from jaxreenact.train import dagan as dg
from jaxreenact.train import sharding
from jaxreenact.train import stargan_v2 as sg

MODELS = ("stargan_v2", "dagan")
PRECISIONS = ("fp32", "tf32", "bf16")
# --config names -> the model presets (stargan_v2.Config.preset / dagan.Config.preset): defined there, once.
PRESETS = {"stargan_v2": {"tiny": "tiny", "paper": "afhq"}, "dagan": {"tiny": "tiny", "paper": "vox256"}}


@dataclasses.dataclass
class Options:
  """What ``launch.benchmark`` measures; its flags fill this one to one."""
  model: str = "stargan_v2"
  config: str = "tiny"  # tiny: CPU-sized; paper: 256 px (AFHQ StarGAN v2 / vox256 DaGAN)
  batch: int | None = None  # None or 0: 8 for both (the study's setting), 4 at tiny DaGAN
  precision: str = "fp32"  # fp32 (TF32 off in both) | tf32 | bf16 (bfloat16 compute, float32 parameters)
  repeats: int = 10  # timed iterations per framework, alternated
  warmup: int = 2  # untimed iterations per framework first
  torch_compile: bool = False
  skip_torch: bool = False
  out: str | None = None  # JSON result file
  flops: float | None = None  # FLOPs per iteration when the backend reports none
  lower_only: bool = False  # print XLA's FLOP count and stop
  compile_only: bool = False  # also compile, print XLA's memory estimate and compile time, and stop
  small_conv_pixels: int | None = None  # CPU small-convolution policy of the jitted step (None: the default)
  donate: bool = True  # donate the training state to the jitted iteration
  compile_cache: str | None = None  # the persistent XLA cache directory in use (recorded in the result)

  def validate(self) -> None:
    """ValueError naming the option when one is out of range."""
    if self.model not in PRESETS:
      raise ValueError(f"--model={self.model!r}: choose one of {', '.join(PRESETS)}")
    if self.config not in PRESETS[self.model]:
      raise ValueError(f"--config={self.config!r}: choose one of {', '.join(PRESETS[self.model])}")
    if self.precision not in PRECISIONS:
      raise ValueError(f"--precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}")
    if self.batch is not None and self.batch < 0:
      raise ValueError(f"--batch={self.batch}: must be positive (0 or unset: the default)")
    if self.repeats < 1 or self.warmup < 0:
      raise ValueError(f"--repeats={self.repeats} --warmup={self.warmup}: need repeats >= 1 and warmup >= 0")

  @property
  def global_batch(self) -> int:
    return self.batch or (4 if (self.model == "dagan" and self.config == "tiny") else 8)


@dataclasses.dataclass
class Setup:
  """One model ready to time: the sharded state and batch, ``make_step(small_conv_pixels=…)`` -> jitted step, and
  ``torch_setup()`` -> a zero-argument call of the reference iteration (built only when torch is timed)."""
  state: Any
  make_step: Callable[..., Callable]
  batch: dict[str, jax.Array]
  torch_setup: Callable[[], Callable[[], Any]]


def device_name() -> str:
  """``gpu:<kind>`` for an accelerator, ``cpu:<processor> (<n> cores)`` on CPU."""
  d = jax.devices()[0]
  if d.platform != "cpu":
    return f"{d.platform}:{getattr(d, 'device_kind', d)}"
  info = machine.describe(())
  return f"cpu:{info['processor']} ({info['cpu_count']} cores)"


def peak_matmul_tflops(precision: str) -> float:
  """Measured dense matmul rate of this device in the chosen precision (the MFU denominator)."""
  n = 8192 if jax.devices()[0].platform == "gpu" else 1024
  dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
  prec = "highest" if precision == "fp32" else "default"
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda a: jnp.matmul(a, a, precision=prec))
  return 2 * n**3 / min(timing.time_calls(lambda: f(a).block_until_ready(), 5, warmup=1)) / 1e12


def _torch_device(torch) -> str:
  return "cuda" if torch.cuda.is_available() else "cpu"


def setup_stargan_v2(opts: Options) -> Setup:
  """StarGAN v2 at ``PRESETS['stargan_v2'][opts.config]``, its four phases in one jitted step."""
  cfg = stargan_v2.Config.preset(PRESETS["stargan_v2"][opts.config])
  hp = sg.HParams()
  batch, precision = opts.global_batch, opts.precision
  mesh = sharding.make_mesh(1)
  rng = np.random.default_rng(0)
  s = cfg.img_size
  batch_np = {"x_src": rng.uniform(-1, 1, (batch, s, s, 3)).astype(np.float32),
              "x_ref": rng.uniform(-1, 1, (batch, s, s, 3)).astype(np.float32),
              "x_ref2": rng.uniform(-1, 1, (batch, s, s, 3)).astype(np.float32),
              "y_src": np.arange(batch) % cfg.num_domains, "y_ref": (np.arange(batch) + 1) % cfg.num_domains,
              "z_trg": rng.standard_normal((batch, cfg.latent_dim)).astype(np.float32),
              "z_trg2": rng.standard_normal((batch, cfg.latent_dim)).astype(np.float32)}
  state = sg.create_sharded_state(cfg, hp, jax.random.key(0), mesh)
  make_step = functools.partial(sg.jit_train_step, cfg, hp, mesh,
                                dtype=jnp.bfloat16 if precision == "bf16" else None, donate=opts.donate)

  def torch_setup():
    import torch
    from torch_reference.stargan_v2 import model as tmodel, train as ttrain
    dev = _torch_device(torch)
    nets = {k: v.to(dev) for k, v in tmodel.build_nets_from_config(cfg).items()}
    if opts.torch_compile:
      nets = {k: torch.compile(v) for k, v in nets.items()}
    ema = {k: v for k, v in tmodel.build_nets_from_config(cfg, he=False).items() if k in ttrain.EMA_MODULES}
    ema = {k: v.to(dev) for k, v in ema.items()}
    optims = ttrain.make_optimizers(nets)
    t = lambda a: torch.from_numpy(  # noqa: E731
        np.ascontiguousarray(a.transpose(0, 3, 1, 2) if a.ndim == 4 else a)).to(dev)
    tb = {k: t(v) for k, v in batch_np.items() if k not in ("z_trg", "z_trg2")}
    z1, z2 = t(batch_np["z_trg"]), t(batch_np["z_trg2"])

    def it():
      with torch.autocast(dev, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return ttrain.train_iteration(nets, ema, optims, tb, z1, z2)
    return it
  return Setup(state, make_step, sharding.shard_batch(batch_np, mesh), torch_setup)


def setup_dagan(opts: Options) -> Setup:
  """DaGAN at ``PRESETS['dagan'][opts.config]`` with its preset's training settings and image size."""
  name = PRESETS["dagan"][opts.config]
  cfg = dagan.Config.preset(name)
  size, hp = dg.IMAGE_SIZES[name], dg.HParams.preset(name)
  batch, precision = opts.global_batch, opts.precision
  mesh = sharding.make_mesh(1)
  nets = dagan.build(cfg)
  depth_vars = jax.jit(nets.depth.init)(jax.random.key(1), jnp.zeros((1, size, size, 3)))
  vgg_module = vgg.VGGFeatures("vgg19")
  vgg_vars = jax.jit(vgg_module.init)(jax.random.key(2), jnp.zeros((1, 32, 32, 3)))
  state = dg.create_sharded_state(cfg, hp, jax.random.key(0), mesh, size, depth_vars, vgg_vars)
  make_step = functools.partial(dg.jit_train_step, cfg, hp, mesh, vgg_module,
                                dtype=jnp.bfloat16 if precision == "bf16" else None, donate=opts.donate)
  rng = np.random.default_rng(0)
  p = hp.points_tps
  batch_np = {"source": rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32),
              "driving": rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32),
              "transform_theta": (np.eye(2, 3)[None]
                                  + hp.sigma_affine * rng.standard_normal((batch, 2, 3))).astype(np.float32),
              "transform_control_params": (hp.sigma_tps * rng.standard_normal((batch, 1, p * p))).astype(np.float32)}

  def torch_setup():
    import types
    import torch
    from torch_reference.dagan import model as tM, train as ttrain
    from torch_reference.dagan.factory import build_torch
    dev = _torch_device(torch)
    tnets = {k: v.to(dev) for k, v in build_torch(cfg).items()}
    tvgg = ttrain.VGGFeatures("vgg19").to(dev).eval()
    if opts.torch_compile:
      tnets = {k: torch.compile(v) if k in ("kp_detector", "generator") else v for k, v in tnets.items()}
    optims = ttrain.make_optimizers(tnets)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(dev)  # noqa: E731
    tb = {"source": t(batch_np["source"]), "driving": t(batch_np["driving"])}
    transform = tM.Transform(torch.from_numpy(batch_np["transform_theta"]).to(dev),
                             torch.from_numpy(batch_np["transform_control_params"]).to(dev), p)
    thp = types.SimpleNamespace(**dataclasses.asdict(hp))
    thp.scales = [1 if s == 1 else s for s in hp.scales]

    def it():
      with torch.autocast(dev, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return ttrain.train_iteration(tnets, tvgg, optims, tb, transform, thp, rgbd=cfg.rgbd)
    return it
  return Setup(state, make_step, sharding.shard_batch(batch_np, mesh), torch_setup)


SETUPS = {"stargan_v2": setup_stargan_v2, "dagan": setup_dagan}


def _import_torch(precision: str):
  """torch with TF32 set for ``precision``, or None where torch is not installed."""
  try:
    import torch
  except ImportError:
    return None
  torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
  torch.backends.cudnn.allow_tf32 = precision == "tf32"
  return torch


def _time(jax_it: Callable[[], None], torch_it: Callable[[], Any] | None, sync: Callable[[], None],
          repeats: int, warmup: int) -> tuple[list[float], list[float]]:
  """Seconds per JAX and torch iteration, taken in turn, with a progress line per repeat."""
  calls: dict[str, Callable[[], Any]] = {"jax": jax_it}
  if torch_it:
    def torch_call():
      torch_it()
      sync()  # CUDA dispatch is asynchronous: the call ends when its work does
    calls["torch"] = torch_call
  print("warming up …", flush=True)
  jt, tt = [], []
  for r in range(repeats):  # one round at a time, for the progress line
    t = timing.time_interleaved(calls, 1, warmup=warmup if r == 0 else 0)
    jt += t["jax"]
    tt += t.get("torch", [])
    print(f"  repeat {len(jt)}: jax {jt[-1] * 1e3:.1f} ms" + (f", torch {tt[-1] * 1e3:.1f} ms" if tt else ""),
          flush=True)
  return jt, tt


def run(opts: Options) -> dict[str, Any]:
  """Measures as ``opts`` says, prints the figures and the machine, writes ``opts.out``; returns the result.

  Raises:
    ValueError: an option out of range (see :meth:`Options.validate`).
  """
  opts.validate()
  if opts.precision == "fp32":
    jax.config.update("jax_default_matmul_precision", "highest")
  torch = _import_torch(opts.precision)
  batch = opts.global_batch
  print(f"device: {device_name()}  model: {opts.model}  config: {opts.config}  batch: {batch}  "
        f"precision: {opts.precision}", flush=True)
  setup = SETUPS[opts.model](opts)
  state, jb = setup.state, setup.batch
  step = setup.make_step(small_conv_pixels=opts.small_conv_pixels)

  t0 = time.perf_counter()
  lowered = step.lower(state, jb)
  print(f"lowered in {time.perf_counter() - t0:.1f} s; compiling …", flush=True)
  cost = lowered.cost_analysis() or {}
  if jax.default_backend() == "cpu":  # the executed CPU program turns tiny convolutions into matmuls (padding taps
    # included); MFU uses the model's FLOPs: count the plain convolutions
    cost = setup.make_step(small_conv_pixels=0).lower(state, jb).cost_analysis() or {}
  if opts.lower_only:
    print(json.dumps({"xla_flops_per_iter": float(cost.get("flops", 0.0)), "lower_s": time.perf_counter() - t0}))
    return {"xla_flops_per_iter": float(cost.get("flops", 0.0))}
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  flops = float(cost.get("flops", 0.0)) if isinstance(cost, dict) else 0.0
  if not flops:  # the CUDA backend may not report lowered costs: count on CPU with --lower_only and pass --flops
    flops = opts.flops or 0.0
  mem = compiled.memory_analysis()
  memory = {}
  if mem is not None:
    memory = {k: getattr(mem, f"{k}_size_in_bytes") / 2**20 for k in ("temp", "argument", "output", "alias")}
  jax_peak_mb = (memory["temp"] + memory["argument"] + memory["output"] - memory["alias"]) if memory else None
  print(f"JAX compile {compile_s:.1f} s; XLA FLOPs/iteration {flops / 1e12:.3f} TFLOP; "
        f"peak memory (XLA estimate) {jax_peak_mb:.0f} MiB (temp {memory['temp']:.0f}, donated/aliased "
        f"{memory['alias']:.0f})" if memory else f"JAX compile {compile_s:.1f} s", flush=True)
  res = {"model": opts.model, "config": opts.config, "batch": batch, "precision": opts.precision,
         "donate": opts.donate, "device": device_name(), "jax_version": jax.__version__,
         "torch_version": getattr(torch, "__version__", None), "jax_compile_s": compile_s,
         "compile_cache": opts.compile_cache,
         "jax_peak_memory_mib": jax_peak_mb, "xla_memory_mib": memory, "xla_flops_per_iter": flops,
         "machine": machine.describe()}
  if opts.compile_only:
    return _write(res, opts.out)

  def jax_it():
    nonlocal state
    state, m = compiled(state, jb)
    jax.block_until_ready(m)

  torch_it = None
  cuda = torch is not None and torch.cuda.is_available()
  if not opts.skip_torch and torch is not None:
    torch_it = setup.torch_setup()
    if cuda:
      torch.cuda.reset_peak_memory_stats()
  jt, tt = _time(jax_it, torch_it, torch.cuda.synchronize if cuda else (lambda: None), opts.repeats, opts.warmup)
  peak = peak_matmul_tflops(opts.precision)
  jms = statistics.median(jt) * 1e3
  res.update(jax_ms_per_iter=jms, jax_ms_spread=[min(jt) * 1e3, max(jt) * 1e3], jax_images_per_s=batch / (jms / 1e3),
             achieved_tflops=flops / (jms / 1e3) / 1e12, measured_peak_tflops=peak)
  res["mfu"] = res["achieved_tflops"] / peak if peak else None
  if tt:
    tms = statistics.median(tt) * 1e3
    res.update(torch_ms_per_iter=tms, torch_ms_spread=[min(tt) * 1e3, max(tt) * 1e3],
               torch_images_per_s=batch / (tms / 1e3), speedup=tms / jms, torch_compile=opts.torch_compile,
               torch_peak_memory_mib=(torch.cuda.max_memory_allocated() / 2**20) if cuda else None)
  else:
    res.update(torch_ms_per_iter=None, speedup=None)
  return _write(res, opts.out)


def _write(res: dict[str, Any], out: str | None) -> dict[str, Any]:
  print(json.dumps(res, indent=2), flush=True)
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
      json.dump(res, f, indent=2)
  return res

r"""JAX vs PyTorch-reference training iterations, alternated on the same device, config, batch and precision.

  python -m launch.benchmark --model stargan_v2 --config tiny --batch 8 --repeats 10
  python -m launch.benchmark --model dagan --config paper --batch 8 --precision bf16 --out bench.json

Prints ms/iteration (median and spread), images/s, the torch/JAX speed-up, achieved FLOP/s from XLA's count of the
JAX iteration, MFU against a matmul measured on the same device in the same precision, compile time and peak memory.
Synthetic inputs (uniform images, fixed labels): data loading is not part of the figure (see benchmarks/).
"""
from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import time

from absl import app, flags

from jaxreenact import compile_cache
from launch import cli

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "stargan_v2", ["stargan_v2", "dagan"], "Model.")
flags.DEFINE_enum("config", "tiny", ["tiny", "paper"], "tiny: CPU-sized; paper: 256 px (AFHQ StarGAN v2 / vox256 DaGAN).")
flags.DEFINE_integer("batch", None, "Global batch (default: 8 for both, the study's setting; 4 at tiny DaGAN).")
flags.DEFINE_enum("precision", "fp32", ["fp32", "tf32", "bf16"], "fp32: true float32 in both frameworks (TF32 off); "
                  "tf32: both allowed TF32 matmuls; bf16: bfloat16 compute, float32 parameters (torch autocast).")
flags.DEFINE_integer("repeats", 10, "Timed iterations per framework (alternated A B A B).")
flags.DEFINE_integer("warmup", 2, "Untimed iterations per framework first.")
flags.DEFINE_bool("torch_compile", False, "torch.compile the reference networks.")
flags.DEFINE_bool("skip_torch", False, "Time JAX only.")
flags.DEFINE_string("out", None, "Write the results as JSON here.")
flags.DEFINE_float("flops", None, "FLOPs per iteration to use when the backend reports none (from --lower_only "
                   "on CPU).")
flags.DEFINE_bool("lower_only", False, "Trace and lower the JAX iteration, print XLA's FLOP count, and stop.")
flags.DEFINE_bool("compile_only", False, "Also compile, print XLA's memory estimate and compile time, and stop.")
flags.DEFINE_integer("small_conv_pixels", None, "CPU: convolutions with at most this many output pixels run as "
                     "matmuls (default: jaxreenact.layers.conv.default_small_conv_pixels(); 0 turns it off).")
flags.DEFINE_bool("donate", True, "Donate the training state to the jitted iteration (--nodonate to measure it).")


# --config names -> the model presets (stargan_v2.Config.preset / dagan.Config.preset): defined there, once.
PRESETS = {"stargan_v2": {"tiny": "tiny", "paper": "afhq"}, "dagan": {"tiny": "tiny", "paper": "vox256"}}


def _device_name():
  import jax
  d = jax.devices()[0]
  return f"{d.platform}:{getattr(d, 'device_kind', d)}" if d.platform != "cpu" else f"cpu:{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _peak_matmul_tflops(precision: str) -> float:
  """Measured dense matmul rate of this device in the chosen precision (the MFU denominator)."""
  import jax
  import jax.numpy as jnp
  on_gpu = jax.devices()[0].platform == "gpu"
  n = 8192 if on_gpu else 1024
  dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
  prec = "highest" if precision == "fp32" else "default"
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda a: jnp.matmul(a, a, precision=prec))
  f(a).block_until_ready()
  times = []
  for _ in range(5):
    t = time.perf_counter()
    f(a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * n**3 / min(times) / 1e12


def _stargan(batch, precision):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jaxreenact.models import stargan_v2
  from jaxreenact.train import sharding
  from jaxreenact.train import stargan_v2 as sg
  cfg = stargan_v2.Config.preset(PRESETS["stargan_v2"][FLAGS.config])
  hp = sg.HParams()
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
  step = functools.partial(sg.jit_train_step, cfg, hp, mesh, dtype=jnp.bfloat16 if precision == "bf16" else None,
                           donate=FLAGS.donate)  # small_conv_pixels -> the jitted step
  jb = sharding.shard_batch(batch_np, mesh)

  def torch_setup():
    import torch
    from torch_reference.stargan_v2 import model as tmodel, train as ttrain
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    nets = {k: v.to(dev) for k, v in tmodel.build_nets_from_config(cfg).items()}
    if FLAGS.torch_compile:
      nets = {k: torch.compile(v) for k, v in nets.items()}
    ema = {k: v for k, v in tmodel.build_nets_from_config(cfg, he=False).items() if k in ttrain.EMA_MODULES}
    ema = {k: v.to(dev) for k, v in ema.items()}
    optims = ttrain.make_optimizers(nets)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2) if a.ndim == 4 else a)).to(dev)  # noqa: E731
    tb = {k: t(v) for k, v in batch_np.items() if k not in ("z_trg", "z_trg2")}
    z1, z2 = t(batch_np["z_trg"]), t(batch_np["z_trg2"])

    def it():
      with torch.autocast(dev, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return ttrain.train_iteration(nets, ema, optims, tb, z1, z2)
    return it
  return state, step, jb, torch_setup, cfg


def _dagan(batch, precision):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jaxreenact.models import dagan, vgg
  from jaxreenact.train import dagan as dg
  from jaxreenact.train import sharding
  cfg = dagan.Config.preset(PRESETS["dagan"][FLAGS.config])
  if FLAGS.config == "paper":
    size, hp = 256, dg.HParams()
  else:
    size, hp = 64, dg.HParams(scales=(1.0, 0.5))
  mesh = sharding.make_mesh(1)
  nets = dagan.build(cfg)
  depth_vars = jax.jit(nets.depth.init)(jax.random.key(1), jnp.zeros((1, size, size, 3)))
  vgg_module = vgg.VGGFeatures("vgg19")
  vgg_vars = jax.jit(vgg_module.init)(jax.random.key(2), jnp.zeros((1, 32, 32, 3)))
  state = dg.create_sharded_state(cfg, hp, jax.random.key(0), mesh, size, depth_vars, vgg_vars)
  step = functools.partial(dg.jit_train_step, cfg, hp, mesh, vgg_module,
                           dtype=jnp.bfloat16 if precision == "bf16" else None,
                           donate=FLAGS.donate)  # small_conv_pixels -> the jitted step
  rng = np.random.default_rng(0)
  p = hp.points_tps
  batch_np = {"source": rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32),
              "driving": rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32),
              "transform_theta": (np.eye(2, 3)[None] + hp.sigma_affine * rng.standard_normal((batch, 2, 3))).astype(np.float32),
              "transform_control_params": (hp.sigma_tps * rng.standard_normal((batch, 1, p * p))).astype(np.float32)}
  jb = sharding.shard_batch(batch_np, mesh)

  def torch_setup():
    import dataclasses
    import types
    import torch
    from torch_reference.dagan import model as tM, train as ttrain
    from torch_reference.dagan.factory import build_torch
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tnets = {k: v.to(dev) for k, v in build_torch(cfg).items()}
    tvgg = ttrain.VGGFeatures("vgg19").to(dev).eval()
    if FLAGS.torch_compile:
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
  return state, step, jb, torch_setup, cfg


def main(argv):
  del argv
  cache_dir = compile_cache.setup_from_flags()  # jax_compile_s is a cache load when it hits
  import jax
  if FLAGS.precision == "fp32":
    jax.config.update("jax_default_matmul_precision", "highest")
  import numpy as np
  try:
    import torch
    torch.backends.cuda.matmul.allow_tf32 = FLAGS.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = FLAGS.precision == "tf32"
  except ImportError:
    torch = None
  batch = FLAGS.batch or (4 if (FLAGS.model == "dagan" and FLAGS.config == "tiny") else 8)
  build = _stargan if FLAGS.model == "stargan_v2" else _dagan
  print(f"device: {_device_name()}  model: {FLAGS.model}  config: {FLAGS.config}  batch: {batch}  "
        f"precision: {FLAGS.precision}", flush=True)
  state, make_step, jb, torch_setup, _ = build(batch, FLAGS.precision)
  step = make_step(small_conv_pixels=FLAGS.small_conv_pixels)

  t0 = time.perf_counter()
  lowered = step.lower(state, jb)
  print(f"lowered in {time.perf_counter() - t0:.1f} s; compiling …", flush=True)
  cost = lowered.cost_analysis() or {}
  if jax.default_backend() == "cpu":  # the executed CPU program turns tiny convolutions into matmuls (padding taps
    # included); MFU uses the model's FLOPs: count the plain convolutions
    cost = make_step(small_conv_pixels=0).lower(state, jb).cost_analysis() or {}
  if FLAGS.lower_only:
    print(json.dumps({"xla_flops_per_iter": float(cost.get("flops", 0.0)), "lower_s": time.perf_counter() - t0}))
    return
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  flops = float(cost.get("flops", 0.0)) if isinstance(cost, dict) else 0.0
  if not flops:  # the CUDA backend may not report lowered costs: count on CPU with --lower_only and pass --flops
    flops = FLAGS.flops or 0.0
  mem = compiled.memory_analysis()
  memory = {}
  if mem is not None:
    memory = {k: getattr(mem, f"{k}_size_in_bytes") / 2**20 for k in ("temp", "argument", "output", "alias")}
  jax_peak_mb = (memory["temp"] + memory["argument"] + memory["output"] - memory["alias"]) if memory else None
  print(f"JAX compile {compile_s:.1f} s; XLA FLOPs/iteration {flops / 1e12:.3f} TFLOP; "
        f"peak memory (XLA estimate) {jax_peak_mb:.0f} MiB (temp {memory['temp']:.0f}, donated/aliased "
        f"{memory['alias']:.0f})" if memory else f"JAX compile {compile_s:.1f} s", flush=True)
  res = {"model": FLAGS.model, "config": FLAGS.config, "batch": batch, "precision": FLAGS.precision,
         "donate": FLAGS.donate, "device": _device_name(), "jax_version": jax.__version__,
         "torch_version": getattr(torch, "__version__", None), "jax_compile_s": compile_s,
         "compile_cache": cache_dir,
         "jax_peak_memory_mib": jax_peak_mb, "xla_memory_mib": memory, "xla_flops_per_iter": flops}
  if FLAGS.compile_only:
    _write(res)
    return

  def jax_it():
    nonlocal state
    state, m = compiled(state, jb)
    jax.block_until_ready(m)

  torch_it = None
  if not FLAGS.skip_torch and torch is not None:
    torch_it = torch_setup()
    if torch.cuda.is_available():
      torch.cuda.reset_peak_memory_stats()
  sync = (lambda: torch.cuda.synchronize()) if (torch is not None and torch.cuda.is_available()) else (lambda: None)
  print("warming up …", flush=True)
  for _ in range(FLAGS.warmup):
    jax_it()
    if torch_it:
      torch_it()
      sync()
  jt, tt = [], []
  for _ in range(FLAGS.repeats):
    t = time.perf_counter()
    jax_it()
    jt.append(time.perf_counter() - t)
    if torch_it:
      sync()
      t = time.perf_counter()
      torch_it()
      sync()
      tt.append(time.perf_counter() - t)
    print(f"  repeat {len(jt)}: jax {jt[-1] * 1e3:.1f} ms" + (f", torch {tt[-1] * 1e3:.1f} ms" if tt else ""), flush=True)
  peak = _peak_matmul_tflops(FLAGS.precision)
  jms = statistics.median(jt) * 1e3
  res.update(jax_ms_per_iter=jms, jax_ms_spread=[min(jt) * 1e3, max(jt) * 1e3], jax_images_per_s=batch / (jms / 1e3),
             achieved_tflops=flops / (jms / 1e3) / 1e12, measured_peak_tflops=peak)
  res["mfu"] = res["achieved_tflops"] / peak if peak else None
  if tt:
    tms = statistics.median(tt) * 1e3
    res.update(torch_ms_per_iter=tms, torch_ms_spread=[min(tt) * 1e3, max(tt) * 1e3],
               torch_images_per_s=batch / (tms / 1e3), speedup=tms / jms, torch_compile=FLAGS.torch_compile,
               torch_peak_memory_mib=(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None)
  else:
    res.update(torch_ms_per_iter=None, speedup=None)
  _write(res)


def _write(res):
  print(json.dumps(res, indent=2), flush=True)
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w") as f:
      json.dump(res, f, indent=2)


if __name__ == "__main__":
  cli.run(main)

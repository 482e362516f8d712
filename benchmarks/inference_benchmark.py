r"""Inference speed where users feel it: DaGAN reenactment per frame, JAX vs the PyTorch reference, same weights.

Not a test: it prints its figures and the machine they were measured on (and writes them as JSON with --out).

  python -m benchmarks.inference_benchmark                                   # tiny, 64 px: a smoke run
  python -m benchmarks.inference_benchmark --config vox256 --repeats 10 --out bench_inference.json
  python -m benchmarks.inference_benchmark --config vox256 --nocompile_cache   # cold first-frame latency

DaGAN, per batch size in --batches (1 and the CLI's 4): JAX is ``inference.reenact.Reenactor`` (source depth,
keypoints and generator source features once per video in ``prepare``; ``animate`` per batch of driving frames),
PyTorch is the official demo.py ``make_animation`` loop on ``torch_reference.dagan`` (source depth and keypoints
once; driving depth + keypoints, ``normalize_kp`` and the generator per batch, the generator re-encoding the source
as the official one does), under ``torch.inference_mode``. Both start from numpy frames and end with numpy outputs.
Weights: the CLI's ``random:<config>`` variables (attention γ set to 0.5 so that path counts in the agreement
check) converted to the torch layout by ``checkpoint.dagan_convert.dagan_to_torch``. Float32 at highest precision in
both, TF32 off. Each repeat times JAX then PyTorch on the same batch (alternated); medians and min–max.

First-frame latency: from the first ``prepare`` to the first predicted batch at the CLI batch, compiles included;
with the persistent compilation cache on (default) the compiles may be read from disk, so the cache lookups are
recorded beside the figure (--nocompile_cache times cold compiles).

StarGAN v2 (--stargan tiny|afhq, none to skip): reference-guided synthesis per batch, ``inference.stargan_v2.Sampler``
(style encoder, then generator) vs the reference modules, torch weights (He init) converted with
``stargan_v2_from_torch``. Only w_hpf = 0 presets (no FAN masks).
"""
from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

from absl import app, flags

from jaxreenact import compile_cache, machine as machine_info, timing

_CONFIG = flags.DEFINE_enum("config", "tiny", ["tiny", "vox256"], "DaGAN preset (the CLI's random:<config>).")
_SIZE = flags.DEFINE_integer("size", None, "Frame size in pixels (default: 64 for tiny, 256 for vox256).")
_BATCHES = flags.DEFINE_list("batches", ["1", "4"], "Driving frames per call to time (the CLI's default is 4).")
_CLI_BATCH = flags.DEFINE_integer("cli_batch", 4, "Batch of the first-frame latency and of the agreement check.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per framework and batch size (alternated).")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed calls per framework and batch size first.")
_SKIP_TORCH = flags.DEFINE_bool("skip_torch", False, "Time JAX only.")
_STARGAN = flags.DEFINE_enum("stargan", "tiny", ["none", "tiny", "afhq"], "StarGAN v2 preset for reference-guided "
                             "synthesis (the CLI's random:<preset>), or none.")
_STARGAN_BATCH = flags.DEFINE_integer("stargan_batch", 8, "StarGAN v2 images per batch.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the StarGAN v2 torch weights and inputs.")
_OUT = flags.DEFINE_string("out", None, "Optional JSON file for the results (with --profile also a .md beside it).")
_PROFILE = flags.DEFINE_bool("profile", False, "Instead of timing: profile DaGAN reenactment op by op, JAX (XLA "
                             "thunks by network stage and kind) against PyTorch (operators and modules), for each "
                             "of --batches over --repeats calls (benchmarks/reenact_profile.py).")
_TOP = flags.DEFINE_integer("top", 15, "--profile: rows of the per-op tables.")


def machine() -> dict[str, Any]:
  """``jaxreenact.machine.describe()`` (host, cores, versions, torch threads), the JAX device and the load."""
  import jax

  info = {**machine_info.describe(), "device": str(jax.devices()[0])}
  if hasattr(os, "getloadavg"):
    info["loadavg_1m_start"] = round(os.getloadavg()[0], 2)
  return info


def _stats(seconds: list[float], per: int) -> dict[str, Any]:
  """Median and min–max of calls of ``per`` items, in ms per item, plus items/s at the median."""
  ms = [s * 1e3 / per for s in seconds]
  med = statistics.median(ms)
  return {"ms": med, "ms_min": min(ms), "ms_max": max(ms), "per_s": 1e3 / med, "repeats": len(ms)}


# ------------------------------------------------------------------------------------------------------------
# DaGAN


def _frames(size: int, n: int):
  """n + 1 packaged talking-head frames (T, size, size, 3) in [0, 1], cycled when the clip is shorter."""
  import numpy as np

  from jaxreenact.data import sample_data_dir, video_frames  # imports tensorflow_datasets (data builders)
  clip = np.asarray(video_frames(sample_data_dir().dagan, "test", 0, size), np.float32)
  return clip[np.arange(n + 1) % len(clip)]


def torch_reenactor(cfg, variables: dict[str, Any], with_modules: bool = False):
  """(prepare(source, initial), animate(state, driving)) of the official demo loop on the reference modules;
  numpy NHWC in, numpy NHWC out. ``with_modules``: the reference modules as a third element (for profiling)."""
  import numpy as np
  import torch

  from jaxreenact.checkpoint.dagan_convert import dagan_to_torch  # imports jax: keeps this module jax-free
  from torch_reference.dagan.factory import build_torch
  from torch_reference.dagan.model import normalize_kp
  nets = build_torch(cfg, depth=True)
  for name, sd in dagan_to_torch(variables, cfg).items():
    nets[name].load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in sd.items()}, strict=True)
  enc, dec, kp_det, gen = (nets[k] for k in ("depth_encoder", "depth_decoder", "kp_detector", "generator"))
  nchw = lambda x: torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 3, 1, 2)))  # noqa: E731

  def depth_kp(x):
    d = dec(enc(x))[("disp", 0)]  # demo.py: depth_decoder(depth_encoder(frame))[('disp', 0)]
    return d, kp_det(torch.cat([x, d], 1) if cfg.rgbd else x)

  @torch.inference_mode()
  def prepare(source, initial):
    src = nchw(source[None])
    d_s, kp_s = depth_kp(src)
    _, kp_0 = depth_kp(nchw(initial[None]))
    return src, d_s, kp_s, kp_0

  @torch.inference_mode()
  def animate(state, driving):
    src, d_s, kp_s, kp_0 = state
    drv = nchw(driving)
    b = drv.shape[0]
    d_d, kp_d = depth_kp(drv)
    kp_norm = normalize_kp(kp_source=kp_s, kp_driving=kp_d, kp_driving_initial=kp_0, use_relative_movement=True,
                           use_relative_jacobian=True, adapt_movement_scale=False)
    tile = lambda x: x.repeat(b, *([1] * (x.dim() - 1)))  # noqa: E731  one source for the whole batch
    out = gen(tile(src), kp_driving=kp_norm, kp_source={k: tile(v) for k, v in kp_s.items()},
              source_depth=tile(d_s), driving_depth=d_d)
    return out["prediction"].numpy().transpose(0, 2, 3, 1), d_d.numpy().transpose(0, 2, 3, 1)

  return (prepare, animate, nets) if with_modules else (prepare, animate)


def bench_dagan(config: str, size: int | None, batches: list[int], cli_batch: int, repeats: int, warmup: int,
                use_torch: bool) -> dict[str, Any]:
  import jax
  import numpy as np

  from jaxreenact.inference import loading, reenact  # imports jax: keeps this module jax-free
  loaded = loading.load_dagan(f"random:{config}")
  cfg, variables = loaded.config, jax.tree.map(np.asarray, loaded.variables)
  gen = variables["generator"]["params"]
  gen["AttnModule"] = dict(gen["AttnModule"], gamma=np.full_like(gen["AttnModule"]["gamma"], 0.5))
  size = size or (256 if config == "vox256" else 64)
  frames = _frames(size, max(batches + [cli_batch]))
  source, initial, driving = frames[0], frames[1], frames[1:]
  res: dict[str, Any] = {"config": config, "size": size, "num_kp": cfg.num_kp, "generator": cfg.generator,
                         "cli_batch": cli_batch, "batches": {}}

  model = reenact.Reenactor(cfg, variables)
  first = driving[:cli_batch]
  with compile_cache.count_lookups() as lookups:
    t0 = time.perf_counter()
    prepared = model.prepare(source, initial)
    pred_j, depth_j = (np.asarray(a) for a in model.animate(prepared, first))
    res["jax_first_frame_s"] = time.perf_counter() - t0
  res["compile_cache"] = {**compile_cache.stats(), "lookups_during_first_frame": dict(lookups)}
  print(f"DaGAN {config} {size}px: JAX first frame {res['jax_first_frame_s']:.2f} s (compile cache "
        f"{res['compile_cache']['dir'] or 'off'}, {lookups['hits']} hits / {lookups['misses']} misses)", flush=True)
  if use_torch:
    t_prepare, t_animate = torch_reenactor(cfg, variables)
    t0 = time.perf_counter()
    t_state = t_prepare(source, initial)
    pred_t, depth_t = t_animate(t_state, first)
    res["torch_first_frame_s"] = time.perf_counter() - t0
    res["max_abs_diff"] = {"prediction": float(np.abs(pred_j - pred_t).max()),
                           "depth": float(np.abs(depth_j - depth_t).max())}
    print(f"  PyTorch first frame {res['torch_first_frame_s']:.2f} s; JAX vs PyTorch max |diff| prediction "
          f"{res['max_abs_diff']['prediction']:.2e}, depth {res['max_abs_diff']['depth']:.2e}", flush=True)

  # once per video: source depth + keypoints (+ generator source features in JAX), initial keypoints
  fns = {"jax": lambda: jax.block_until_ready(model.prepare(source, initial))}
  if use_torch:
    fns["torch"] = lambda: t_prepare(source, initial)
  res["prepare"] = {k: _stats(v, 1) for k, v in timing.time_interleaved(fns, repeats, warmup=warmup).items()}

  for b in batches:
    x = driving[:b]
    fns = {"jax": lambda: [np.asarray(a) for a in model.animate(prepared, x)]}
    if use_torch:
      fns["torch"] = lambda: t_animate(t_state, x)
    row = {k: _stats(v, b) for k, v in timing.time_interleaved(fns, repeats, warmup=warmup).items()}
    if use_torch:
      row["torch_over_jax"] = row["torch"]["ms"] / row["jax"]["ms"]
    res["batches"][str(b)] = row
    print(f"  batch {b}: JAX {row['jax']['ms']:.1f} ms/frame ({row['jax']['ms_min']:.1f}–{row['jax']['ms_max']:.1f}), "
          f"{row['jax']['per_s']:.2f} frames/s" + (
              f"; PyTorch {row['torch']['ms']:.1f} ms/frame ({row['torch']['ms_min']:.1f}–"
              f"{row['torch']['ms_max']:.1f}); PyTorch/JAX {row['torch_over_jax']:.2f}×" if use_torch else ""),
          flush=True)
  return res


# ------------------------------------------------------------------------------------------------------------
# StarGAN v2


def bench_stargan(preset: str, batch: int, repeats: int, warmup: int, use_torch: bool, seed: int) -> dict[str, Any]:
  import numpy as np
  import torch

  from jaxreenact.checkpoint.stargan_v2_convert import stargan_v2_from_torch  # imports jax: keeps this module jax-free
  from jaxreenact.inference import loading  # imports jax: keeps this module jax-free
  from jaxreenact.inference import stargan_v2 as sgi  # imports jax: keeps this module jax-free
  from torch_reference.stargan_v2 import model as tmodel
  cfg = loading.load_stargan_v2(f"random:{preset}").config  # the CLI preset's architecture
  if cfg.w_hpf > 0:
    raise app.UsageError(f"--stargan={preset}: w_hpf > 0 needs FAN masks, which this benchmark does not draw")
  torch.manual_seed(seed)
  tnets = tmodel.build_nets_from_config(cfg)
  tnets = {k: tnets[k].eval() for k in ("generator", "style_encoder")}
  variables = stargan_v2_from_torch({k: m.state_dict() for k, m in tnets.items()}, cfg)
  sampler = sgi.Sampler(cfg, variables, batch_size=batch)
  rng = np.random.default_rng(seed)
  x_src, x_ref = (rng.uniform(-1, 1, (batch, cfg.img_size, cfg.img_size, 3)).astype(np.float32) for _ in range(2))
  y_ref = (np.arange(batch) % cfg.num_domains).astype(np.int32)

  def jax_fn():
    return sampler.generate(x_src, sampler.style_from_reference(x_ref, y_ref))

  nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # noqa: E731

  @torch.inference_mode()
  def torch_fn():
    s = tnets["style_encoder"](nchw(x_ref), torch.from_numpy(y_ref).long())
    return tnets["generator"](nchw(x_src), s).numpy().transpose(0, 2, 3, 1)

  res: dict[str, Any] = {"preset": preset, "img_size": cfg.img_size, "batch": batch}
  t0 = time.perf_counter()
  out_j = jax_fn()
  res["jax_first_batch_s"] = time.perf_counter() - t0
  fns = {"jax": jax_fn}
  if use_torch:
    res["max_abs_diff"] = float(np.abs(out_j - torch_fn()).max())
    fns["torch"] = torch_fn
  row = {k: _stats(v, 1) for k, v in timing.time_interleaved(fns, repeats, warmup=warmup).items()}
  res.update(per_batch=row)
  if use_torch:
    res["torch_over_jax"] = row["torch"]["ms"] / row["jax"]["ms"]
  print(f"StarGAN v2 {preset} {cfg.img_size}px reference-guided, batch {batch}: JAX {row['jax']['ms']:.1f} ms/batch"
        + (f", PyTorch {row['torch']['ms']:.1f} ms/batch, PyTorch/JAX {res['torch_over_jax']:.2f}×, max |diff| "
           f"{res['max_abs_diff']:.2e}" if use_torch else ""), flush=True)
  return res


def profile(result: dict[str, Any], batches: list[int], use_torch: bool) -> None:
  """--profile: reenact_profile.run per batch size on the benchmark's weights and frames; prints and writes."""
  import jax
  import numpy as np

  from benchmarks import reenact_profile
  from jaxreenact.inference import loading  # imports jax: keeps this module jax-free
  loaded = loading.load_dagan(f"random:{_CONFIG.value}")
  cfg, variables = loaded.config, jax.tree.map(np.asarray, loaded.variables)
  gen = variables["generator"]["params"]  # attention on (γ 0.5), as in bench_dagan
  gen["AttnModule"] = dict(gen["AttnModule"], gamma=np.full_like(gen["AttnModule"]["gamma"], 0.5))
  size = _SIZE.value or (256 if _CONFIG.value == "vox256" else 64)
  frames = _frames(size, max(batches))
  result.update(config=_CONFIG.value, size=size, profiles=[])
  md = []
  for b in batches:
    print(f"profiling {b} driving frame(s) per call, {_REPEATS.value} calls per framework...", flush=True)
    res = reenact_profile.run(cfg, variables, frames, b, _REPEATS.value, torch_reenactor if use_torch else None)
    result["profiles"].append(res)
    md.append(reenact_profile.markdown(res, result["machine"], _CONFIG.value, size, _TOP.value))
    print(md[-1], flush=True)
  if _OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    with open(_OUT.value, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=2)
    with open(os.path.splitext(_OUT.value)[0] + ".md", "w", encoding="utf-8") as f:
      f.write("\n\n".join(md) + "\n")
    print(f"results: {_OUT.value} and its .md")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    batches = [int(b) for b in _BATCHES.value]
  except ValueError:
    raise app.UsageError(f"--batches={','.join(_BATCHES.value)}: expected integers, e.g. 1,4")
  if min(batches + [_CLI_BATCH.value, _REPEATS.value]) < 1:
    raise app.UsageError("--batches, --cli_batch and --repeats must be positive")
  if _PROFILE.value:  # XLA's per-thunk trace events; read when jax starts its CPU backend (the first jit below)
    from benchmarks import reenact_profile
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {reenact_profile.TRACEME_FLAG}".strip()
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  import jax
  jax.config.update("jax_default_matmul_precision", "highest")  # float32 in both frameworks
  use_torch = not _SKIP_TORCH.value
  if use_torch:
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
  result: dict[str, Any] = {"machine": machine()}
  print("machine: " + ", ".join(f"{k}={v}" for k, v in result["machine"].items()), flush=True)
  if _PROFILE.value:
    profile(result, batches, use_torch)
    return
  result["dagan"] = bench_dagan(_CONFIG.value, _SIZE.value, batches, _CLI_BATCH.value, _REPEATS.value,
                                _WARMUP.value, use_torch)
  if _STARGAN.value != "none":
    result["stargan_v2"] = bench_stargan(_STARGAN.value, _STARGAN_BATCH.value, _REPEATS.value, _WARMUP.value,
                                         use_torch, _SEED.value)
  if hasattr(os, "getloadavg"):
    result["machine"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
  if _OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    with open(_OUT.value, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=2)
    print(f"results: {_OUT.value}")


if __name__ == "__main__":
  app.run(main)

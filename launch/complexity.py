r"""Complexity report: XLA cost analysis vs DeepSpeed vs FlopCounterMode vs an analytic count, reconciled; latency and
memory; the study's Table 10 re-done. Writes complexity.json, complexity.md and PNG charts to --out.

Examples:
  python -m launch.complexity --model all --out reports/complexity            # paper configs (minutes on 2 cores)
  python -m launch.complexity --model stargan_v2 --stargan_config afhq --out /tmp/afhq --skip_latency
  python -m launch.complexity --model all --tiny --out /tmp/ci                 # CI: tiny configs, seconds
  python -m launch.complexity --model dagan --skip_torch --latency_train --out /tmp/dagan_gpu
  python -m launch.complexity --model all --dry_run --out /tmp/x               # print the options and exit
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

from absl import app, flags

from launch import cli

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "all", ["stargan_v2", "dagan", "all"], "Which model(s) to report.")
flags.DEFINE_string("out", None, "Output directory for complexity.json, complexity.md and the charts.")
flags.DEFINE_string("stargan_config", "celeba_hq",
                    "StarGAN v2 config: celeba_hq | afhq | expressions | tiny | tiny_hpf.")
flags.DEFINE_string("dagan_config", "vox256", "DaGAN config: vox256 | vox256_r50 | tiny.")
flags.DEFINE_bool("tiny", False, "CI mode: tiny configs for both models, small scaling sweeps, 2 latency repeats.")
flags.DEFINE_integer("batch", 1, "Batch of the per-module readings.")
flags.DEFINE_integer("train_batch", None, "Batch of the training iteration (default: the study's per-GPU batch, 8).")
flags.DEFINE_bool("skip_torch", False, "Skip every PyTorch reading (FlopCounterMode, DeepSpeed, torch analytic).")
flags.DEFINE_bool("skip_deepspeed", False, "Skip the DeepSpeed FlopsProfiler readings (the slowest torch part).")
flags.DEFINE_bool("skip_latency", False, "Skip latency measurements.")
flags.DEFINE_bool("skip_compile", False, "Lowered analysis only: no compile (no per-device costs, memory, latency).")
flags.DEFINE_bool("skip_train_compile", False, "Do not compile the training iteration (its memory analysis).")
flags.DEFINE_bool("skip_categories", False, "Skip XLA's per-equation category costs (the reconciliation tables).")
flags.DEFINE_bool("latency_train", None, "Time the whole training iteration (default: only on accelerators).")
flags.DEFINE_bool("torch_latency", False, "Also time the PyTorch module forwards.")
flags.DEFINE_integer("latency_repeats", 3, "Timed repeats (after one warm-up call).")
flags.DEFINE_float("latency_budget_s", 6.0,
                   "Stop repeating a latency measurement after this many seconds (at least 2 timed calls).")
flags.DEFINE_bool("latency_bwd_exact", False,
                  "Time module backwards alone (jitted pullback) instead of (fwd+bwd) − fwd.")
flags.DEFINE_bool("mesh_train", False, "Also compile the training iteration under 1, 2 and 4-device meshes.")
flags.DEFINE_integer("devices", 4, "CPU devices to fake for the per-device figures (XLA_FLAGS, CPU backend only).")
flags.DEFINE_enum("deepspeed_device", "meta", ["meta", "cpu"], "Tensors of the DeepSpeed readings: 'meta' (shapes "
                  "only, identical counts, seconds) or 'cpu' (real forwards, also DeepSpeed's own latency).")
flags.DEFINE_bool("engine_profile", False, "Run the DeepSpeed engine profile of a training iteration (real compute).")
flags.DEFINE_integer("engine_batch", 1, "Batch of the DeepSpeed engine profile.")
flags.DEFINE_list("scaling_sizes", ["64", "128", "256", "512"], "Resolutions of the FLOPs-vs-resolution sweep.")
flags.DEFINE_list("scaling_batches", ["1", "2", "4", "8"], "Batch sizes of the FLOPs-vs-batch sweep.")
flags.DEFINE_list("scaling_latency_sizes", ["64", "128"], "Resolutions whose forward latency is measured.")
flags.DEFINE_list("scaling_latency_batches", [], "Batch sizes whose forward latency is measured.")
flags.DEFINE_bool("charts", True, "Write the PNG charts.")
flags.DEFINE_bool("dry_run", False, "Print the resolved options and exit.")
flags.DEFINE_bool("quiet", False, "No progress output.")


def _ints(values) -> tuple[int, ...]:
  try:
    return tuple(int(v) for v in values)
  except ValueError as e:
    raise app.UsageError(f"expected a comma-separated list of integers, got {values!r}") from e


def options():
  from jaxreenact.complexity import report  # imports jax: only after main has set XLA_FLAGS
  tiny = FLAGS.tiny
  return report.Options(
      batch=FLAGS.batch, train_batch=FLAGS.train_batch or (2 if tiny else None),
      compile=not FLAGS.skip_compile, compile_train=not (FLAGS.skip_compile or FLAGS.skip_train_compile),
      torch=not FLAGS.skip_torch, deepspeed=not (FLAGS.skip_torch or FLAGS.skip_deepspeed),
      latency=not (FLAGS.skip_latency or FLAGS.skip_compile),
      torch_latency=FLAGS.torch_latency and not FLAGS.skip_torch,
      latency_repeats=2 if tiny else FLAGS.latency_repeats, latency_train=FLAGS.latency_train,
      latency_budget_s=FLAGS.latency_budget_s, latency_bwd_exact=FLAGS.latency_bwd_exact,
      categories=not FLAGS.skip_categories, mesh_train=FLAGS.mesh_train,
      mesh_devices=tuple(n for n in (1, 2, 4) if n <= FLAGS.devices), mesh_batch=4,
      scaling_sizes=(32, 64) if tiny else _ints(FLAGS.scaling_sizes),
      scaling_batches=(1, 2) if tiny else _ints(FLAGS.scaling_batches),
      scaling_latency_sizes=(32,) if tiny else _ints(FLAGS.scaling_latency_sizes),
      scaling_latency_batches=(1,) if tiny else _ints(FLAGS.scaling_latency_batches),
      engine_profile=FLAGS.engine_profile and not FLAGS.skip_torch, engine_batch=FLAGS.engine_batch,
      deepspeed_device=FLAGS.deepspeed_device)


def main(argv):
  del argv
  if not FLAGS.out:
    raise app.UsageError("--out DIR is required")
  start = time.perf_counter()
  if FLAGS.devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    # Must happen before jax initialises its backends (jax is first imported below, with the library).
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={FLAGS.devices}").strip()
  from jaxreenact.complexity import report

  opts = options()
  models = ["stargan_v2", "dagan"] if FLAGS.model == "all" else [FLAGS.model]
  configs = {m: "tiny" if FLAGS.tiny else {"stargan_v2": FLAGS.stargan_config, "dagan": FLAGS.dagan_config}[m]
             for m in models}
  if FLAGS.dry_run:
    print(json.dumps({"models": configs, "out": FLAGS.out, "options": dataclasses.asdict(opts)}, indent=1))
    return 0
  report.run(configs, FLAGS.out, opts, charts=FLAGS.charts, quiet=FLAGS.quiet, started=start)
  return 0


if __name__ == "__main__":
  flags.mark_flags_as_required(["out"])
  cli.run(main)

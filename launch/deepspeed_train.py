r"""PyTorch reference training under DeepSpeed (official iterations, torch Adam), with optional FLOPs profiles.

Writes timing.json (ms per iteration, machine), losses.jsonl and, with --flops_profiler, one
flops_profile_<network>.txt per trained network (a whole iteration, forward only) to --out.
The driver is jaxreenact/complexity/deepspeed_train.py; CPU, gloo backend.

Examples:
  python -m launch.deepspeed_train --model stargan_v2 --steps 20 --out runs/ds_sg
  python -m launch.deepspeed_train --model depth --variant tiny --steps 10 --flops_profiler --out runs/ds_d
"""
from __future__ import annotations

from absl import app, flags

from launch import cli

MODELS = ["dagan", "depth", "stargan_v2"]  # jaxreenact.complexity.deepspeed_train.ADAPTERS (imports torch lazily)

_MODEL = flags.DEFINE_enum("model", None, MODELS, "Which official iteration to run.")
_OUT = flags.DEFINE_string("out", None, "Output folder: timing.json, losses.jsonl, flops_profile_*.txt.")
_VARIANT = flags.DEFINE_string("variant", "tiny", "configs/<model>.py variant.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed iterations to run.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Override the config's batch_size.")
_FLOPS_PROFILER = flags.DEFINE_bool("flops_profiler", False,
                                    "Enable the DeepSpeed flops_profiler section; after the timed iterations, one "
                                    "more per network profiles that network over a whole iteration.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Leading iterations left out of the timing statistics.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: the embedded sample data).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the networks, the data order and the latent codes.")
_THREADS = flags.DEFINE_integer("threads", None, "torch.set_num_threads (default: torch's).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Keep DeepSpeed's info logs and per-step lines on the terminal.")


def main(argv):
  del argv
  if not _MODEL.value:
    raise app.UsageError(f"--model is required (one of {', '.join(MODELS)})")
  if not _OUT.value:
    raise app.UsageError("--out DIR is required")
  if _STEPS.value < 1:
    raise app.UsageError(f"--steps must be at least 1, got {_STEPS.value}")
  cli.require_writable_dir("out", _OUT.value)
  from jaxreenact.complexity import deepspeed_train

  deepspeed_train.run(_MODEL.value, _OUT.value, variant=_VARIANT.value, steps=_STEPS.value,
                      batch_size=_BATCH_SIZE.value, flops_profiler=_FLOPS_PROFILER.value, warmup=_WARMUP.value,
                      data_dir=_DATA_DIR.value, seed=_SEED.value, threads=_THREADS.value, verbose=_VERBOSE.value)
  return 0


if __name__ == "__main__":
  cli.run(main)

r"""JAX vs PyTorch-reference training iterations, alternated on the same device, config, batch and precision.

  python -m launch.benchmark --model stargan_v2 --config tiny --batch 8 --repeats 10
  python -m launch.benchmark --model dagan --config paper --batch 8 --precision bf16 --out bench.json

Prints ms/iteration (median and spread), images/s, the torch/JAX speed-up, achieved FLOP/s from XLA's count of the
JAX iteration, MFU against a matmul measured on the same device in the same precision, compile time and peak memory.
Synthetic inputs (uniform images, fixed labels): data loading is not part of the figure (see benchmarks/).
The measurement itself is jaxreenact/complexity/speed.py.
"""
from __future__ import annotations

from absl import app, flags

from jaxreenact import compile_cache
from jaxreenact.complexity import speed
from launch import cli

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "stargan_v2", list(speed.MODELS), "Model.")
flags.DEFINE_enum("config", "tiny", ["tiny", "paper"], "tiny: CPU-sized; paper: 256 px (AFHQ StarGAN v2 / vox256 DaGAN).")
flags.DEFINE_integer("batch", None, "Global batch (default: 8 for both, the study's setting; 4 at tiny DaGAN).")
flags.DEFINE_enum("precision", "fp32", list(speed.PRECISIONS), "fp32: true float32 in both frameworks (TF32 off); "
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


def main(argv):
  del argv  # cli.run refuses positional arguments
  cache_dir = compile_cache.setup_from_flags()  # jax_compile_s is a cache load when it hits
  opts = speed.Options(
      model=FLAGS.model, config=FLAGS.config, batch=FLAGS.batch, precision=FLAGS.precision, repeats=FLAGS.repeats,
      warmup=FLAGS.warmup, torch_compile=FLAGS.torch_compile, skip_torch=FLAGS.skip_torch, out=FLAGS.out,
      flops=FLAGS.flops, lower_only=FLAGS.lower_only, compile_only=FLAGS.compile_only,
      small_conv_pixels=FLAGS.small_conv_pixels, donate=FLAGS.donate, compile_cache=cache_dir)
  try:
    opts.validate()
  except ValueError as e:
    raise app.UsageError(str(e))
  speed.run(opts)


if __name__ == "__main__":
  cli.run(main)

r"""bf16 compute vs float32 over a short training run of the tiny configs (issue 9: "checked against fp32 losses").

  python -m benchmarks.precision_check --model stargan_v2 --steps 20 --out runs/precision
  python -m benchmarks.precision_check --model dagan --steps 20 --out runs/precision

Same initial state and the same sample-data batches in both precisions. Writes <model>.json (per-step losses,
relative deviations, first-update sign agreement and zero-update fractions) and <model>.png (loss curves) to --out,
and prints a Markdown summary.
"""
from __future__ import annotations

import json
import os

from absl import app, flags

from jaxreenact import compile_cache

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "stargan_v2", ["stargan_v2", "dagan"], "Model (tiny config, embedded sample data).")
flags.DEFINE_integer("steps", 20, "Training iterations per precision.")
flags.DEFINE_integer("batch", 4, "Batch size.")
flags.DEFINE_integer("seed", 0, "Initial state and data seed.")
flags.DEFINE_string("out", "runs/precision", "Output directory.")


def _plot(res, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  keys = [k for k in res["curves"]["fp32"] if not k.endswith("lambda_ds")]
  cols = 4
  rows = (len(keys) + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
  for ax, k in zip(axes.ravel(), keys):
    for name, style in (("fp32", "-"), ("bf16", "--")):
      ax.plot(range(1, res["steps"] + 1), res["curves"][name][k], style, label=name)
    ax.set_title(k, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
  for ax in axes.ravel()[len(keys):]:
    ax.axis("off")
  axes[0, 0].legend()
  fig.suptitle(f"{res['model']} tiny: bf16 compute vs float32 ({res['device']}, batch {res['batch_size']})")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def markdown(res) -> str:
  lines = [f"### {res['model']}: {res['steps']} steps, batch {res['batch_size']}, {res['device']}", "",
           "| loss | mean fp32 | mean bf16 | step-1 rel. dev. | median rel. dev. |", "|---|---|---|---|---|"]
  for k, d in res["relative_deviation"].items():
    lines.append(f"| {k} | {d['mean_fp32']:.4g} | {d['mean_bf16']:.4g} | {d['first_step']:.2%} | {d['median']:.2%} |")
  lines += ["", "| network | first-update sign agreement | unchanged weights fp32 | unchanged weights bf16 |",
            "|---|---|---|---|"]
  for m, a in res["first_update_sign_agreement"].items():
    lines.append(f"| {m} | {a:.2%} | {res['first_update_unchanged_fraction']['fp32'][m]:.3%} | "
                 f"{res['first_update_unchanged_fraction']['bf16'][m]:.3%} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  import jax
  jax.config.update("jax_default_matmul_precision", "highest")  # the float32 side is true float32
  from jaxreenact.train import precision_check  # imports jax: keeps this module jax-free
  res = precision_check.compare(FLAGS.model, FLAGS.steps, FLAGS.batch, FLAGS.seed,
                                progress=lambda msg: print(msg, flush=True))
  os.makedirs(FLAGS.out, exist_ok=True)
  with open(os.path.join(FLAGS.out, f"{FLAGS.model}.json"), "w") as f:
    json.dump(res, f, indent=2)
  _plot(res, os.path.join(FLAGS.out, f"{FLAGS.model}.png"))
  md = markdown(res)
  with open(os.path.join(FLAGS.out, f"{FLAGS.model}.md"), "w") as f:
    f.write(md + "\n")
  print(md)


if __name__ == "__main__":
  app.run(main)

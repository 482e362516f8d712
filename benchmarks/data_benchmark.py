r"""Decoded + augmented images per second of the three grain pipelines, and what a training step consumes.

Not a test: it prints figures and the machine they were measured on (and writes them as JSON with --out).

  python -m benchmarks.data_benchmark                       # embedded sample data, 256×256
  python -m benchmarks.data_benchmark --data_dir ~/tfds --num_threads=1,2,4 --batches 30
"""
from __future__ import annotations

import json
import time

from absl import app, flags

from jaxreenact import machine as machine_info

_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir with image_domains/ and talking_heads/ "
                                "(default: the embedded sample data).")
_IMG_SIZE = flags.DEFINE_integer("img_size", 256, "Output side in pixels.")
_THREADS = flags.DEFINE_list("num_threads", ["1", "2"], "grain ReadOptions.num_threads values to try.")
_WORKERS = flags.DEFINE_integer("num_workers", 0, "grain mp_prefetch worker processes (0: threads only).")
_BATCHES = flags.DEFINE_integer("batches", 20, "Timed batches per configuration (after warm-up).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed batches first (threads start, caches fill).")
_OUT = flags.DEFINE_string("out", None, "Optional JSON file for the results.")

# (name, batch size of the official config, images decoded+augmented per example, official step time if known)
_PIPELINES = {
    # StarGAN v2: x_src, x_ref, x_ref2 per example; batch 8; README "about three days on one V100" ≈ 2.6 s/it.
    "stargan_v2": (8, 3, 2.6),
    # DaGAN: source + driving per example; vox-adv-256.yaml batch 4 (README: 12 per GPU); no published step time.
    "dagan": (4, 2, None),
    # Depth: 3 frames per example (+ their colour-jittered copies); monodepth2-style batch 12.
    "depth": (12, 3, None),
}


def _make(name: str, data_dir: str, threads: int, batch: int):
  from jaxreenact.data import pipelines  # imports tensorflow_datasets (data builders)

  fn = {"stargan_v2": pipelines.stargan_v2_pipeline, "dagan": pipelines.dagan_pipeline,
        "depth": pipelines.depth_pipeline}[name]
  return fn(data_dir, "train", _IMG_SIZE.value, batch, seed=0, process_index=0, process_count=1, num_threads=threads,
            num_workers=_WORKERS.value)


def main(argv) -> None:
  del argv
  from jaxreenact.data import sample_data_dir  # imports tensorflow_datasets (data builders)

  data_dir = _DATA_DIR.value or sample_data_dir().stargan_v2

  machine = machine_info.describe(("PIL", "grain"))
  print(f"machine: {machine['platform']} | {machine['processor']} | {machine['cpu_count']} CPUs | "
        f"Python {machine['python']} | Pillow {machine.get('PIL', '?')} | grain {machine.get('grain', '?')}")
  print(f"data: {data_dir}  img_size {_IMG_SIZE.value}  workers {_WORKERS.value}\n")
  header = (f"{'pipeline':<11} {'threads':>7} {'batch':>5} {'batches/s':>9} {'images/s':>9} {'img/step':>8} "
            f"{'steps/s':>8}")
  print(header)
  print("-" * len(header))
  results = []
  for name, (batch, per_example, official_s) in _PIPELINES.items():
    for threads in [int(t) for t in _THREADS.value]:
      it = _make(name, data_dir, threads, batch)
      for _ in range(_WARMUP.value):
        next(it)
      t0 = time.perf_counter()
      for _ in range(_BATCHES.value):
        next(it)
      dt = time.perf_counter() - t0
      images_per_step = batch * per_example
      imgs = _BATCHES.value * images_per_step / dt
      row = {"pipeline": name, "threads": threads, "batch": batch, "batches_per_s": _BATCHES.value / dt,
             "images_per_s": imgs, "images_per_step": images_per_step, "steps_per_s": _BATCHES.value / dt}
      if official_s:
        row["official_step_s"] = official_s
        row["images_per_s_needed_at_official_speed"] = images_per_step / official_s
      results.append(row)
      print(f"{name:<11} {threads:>7} {batch:>5} {row['batches_per_s']:>9.2f} {imgs:>9.1f} {images_per_step:>8} "
            f"{row['steps_per_s']:>8.2f}")
  print("\nWhat a training step consumes:")
  print("  StarGAN v2: batch 8 × (x_src, x_ref, x_ref2) = 24 decoded+augmented images per iteration; at the official "
        "≈2.6 s/iteration (V100) that is ≈9 images/s.")
  print("  DaGAN: batch 4 (yaml; 12 per GPU in the README) × (source, driving) = 8 (24) frames per iteration.")
  print("  Depth: batch 12 × 3 frames = 36 frames (+ 36 jittered copies) per iteration.")
  print("  Stored images larger than img_size (e.g. 1024 px CelebA-HQ JPEGs) decode several times slower; "
        "pass --data_dir to measure your own data.")
  if _OUT.value:
    with open(_OUT.value, "w", encoding="utf-8") as f:
      json.dump({"machine": machine, "data_dir": data_dir, "img_size": _IMG_SIZE.value, "results": results}, f,
                indent=2)
    print(f"\nresults: {_OUT.value}")


if __name__ == "__main__":
  app.run(main)

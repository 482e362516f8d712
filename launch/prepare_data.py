r"""Prepare training data: TFDS datasets (no TensorFlow), face crops, and the embedded sample data.

Usage: python -m launch.prepare_data COMMAND [flags]

Commands:
  images  --src ROOT --data_dir OUT   StarGAN v2 domain folders ROOT/{train,val|validation,test}/<domain>/*.jpg|png
                                      → OUT/image_domains (labels = sorted domain names).
  videos  --src ROOT --data_dir OUT   FOMM layout ROOT/{train,test}/<video>/<frame>.png|jpg or <video>.mp4
                                      → OUT/talking_heads (identity = part before the first '#', else the name).
  crop    --src VIDEO_OR_DIR --out DIR
                                      Face-tracked 256×256 clips (FOMM crop-video semantics, actually written):
                                      DIR/<video>#<first>#<last>/ frames (--format png) or .mp4 (--format mp4).
  align   --src DIR --out DIR         One aligned 256×256 face per still image (FFHQ-style, 68 landmarks),
                                      same relative tree, .png files.
  sample  [--data_dir OUT]            Build the embedded default data from media shipped in installed packages
                                      (default location: ~/.cache/jaxreenact/sample_data_v1).

Inputs are never overwritten: crop/align refuse an --out inside --src (or a --src inside --out); inputs that would
write the same output (a.jpg and a.png → a.png) get their extension in the name (a_jpg.png, a_png.png; then _2, _3, …
if still taken), noted in the summary. images/videos refuse a --data_dir whose dataset was built from another --src
(use a fresh --data_dir, or --overwrite to rebuild it). Symbolic links, in every command: a link to a file is read
as that file; a link to a directory is not followed (skipped and reported); --src itself may be a link.

Every command shows progress, prints a summary (examples per split and class, skipped files and why) and
writes it as JSON (--summary, default <output>/prepare_<command>.json). Bad files are skipped and reported;
an interrupted prepare leaves no dataset that looks complete.

Examples:
  python -m launch.prepare_data align --src ~/raw/expressions --out ~/data/expressions_aligned
  python -m launch.prepare_data images --src ~/data/celeba_hq --data_dir ~/tfds
  python -m launch.prepare_data crop --src ~/raw/videos --out ~/data/vox/train --format png
  python -m launch.prepare_data videos --src ~/data/vox --data_dir ~/tfds
  python -m launch.prepare_data sample --data_dir /tmp/jaxreenact_sample
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from absl import app, flags

from launch import cli

COMMANDS = ("images", "videos", "crop", "align", "sample")

_SRC = flags.DEFINE_string("src", None,
                           "Input: dataset root (images/videos), a video or folder (crop), a folder (align).")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "TFDS data_dir to write (images/videos); sample-data folder (sample).")
_OUT = flags.DEFINE_string("out", None, "Output folder (crop/align).")
_SUMMARY = flags.DEFINE_string("summary", None, "JSON summary path (default: <output>/prepare_<command>.json).")
_IMG_SIZE = flags.DEFINE_integer("img_size", 256, "Training size: output side for crop/align; images/videos below "
                                 "it are noted (they are upscaled when read).")
_MIN_SIZE = flags.DEFINE_integer("min_size", 0, "images: skip images whose shorter side is below this (0 keeps all).")
_FRAME_FORMAT = flags.DEFINE_enum("frame_format", "png", ["png", "jpeg"],
                                  "videos: encoding of frames decoded from video files.")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "videos: keep at most this many frames per video.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "images/videos: regenerate an already prepared dataset.")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 2, "Decode/encode threads.")
_DETECTOR = flags.DEFINE_enum("detector", "auto", ["auto", "dlib", "skimage"],
                              "crop/align: dlib HOG (+68 landmarks) or scikit-image LBP cascade; auto prefers dlib.")
_ON_MISS = flags.DEFINE_enum("on_miss", "skip", ["skip", "center"], "align: what to do when no face is found.")
_ZOOM = flags.DEFINE_float("zoom", 1.0, "align: >1 crops tighter than the FFHQ framing (for inputs already cropped).")
_FORMAT = flags.DEFINE_enum("format", "png", ["png", "mp4"], "crop: write frame folders or .mp4 clips.")
_INCREASE = flags.DEFINE_float("increase", 0.1, "crop: grow the tube box by this fraction per side (FOMM 0.1).")
_IOU = flags.DEFINE_float("iou_with_initial", 0.25, "crop: minimal IoU with the tube's first box (FOMM 0.25).")
_MIN_FRAMES = flags.DEFINE_integer("min_frames", 30, "crop: shortest tube kept, in frames (FOMM used 150).")
_DETECT_EVERY = flags.DEFINE_integer("detect_every", 1, "crop: run the detector every k-th frame.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")


def _require(flag: flags.FlagHolder, command: str) -> str:
  if not flag.value:
    raise app.UsageError(f"`{command}` needs --{flag.name}")
  return flag.value


def run(command: str) -> dict:
  """Run one sub-command with the parsed flags; returns the JSON summary written to disk."""
  from jaxreenact.data import builders, faces, sample

  progress = _PROGRESS.value
  if command == "images":
    src, out = _require(_SRC, command), _require(_DATA_DIR, command)
    report = builders.prepare_image_domains(src, out, min_size=_MIN_SIZE.value, target_size=_IMG_SIZE.value,
                                            overwrite=_OVERWRITE.value, num_workers=_NUM_WORKERS.value,
                                            progress=progress)
  elif command == "videos":
    src, out = _require(_SRC, command), _require(_DATA_DIR, command)
    report = builders.prepare_talking_heads(src, out, frame_format=_FRAME_FORMAT.value, target_size=_IMG_SIZE.value,
                                            max_frames=_MAX_FRAMES.value, overwrite=_OVERWRITE.value,
                                            num_workers=_NUM_WORKERS.value, progress=progress)
  elif command == "crop":
    src, out = _require(_SRC, command), _require(_OUT, command)
    report = faces.crop_videos(src, out, size=_IMG_SIZE.value, out_format=_FORMAT.value, increase=_INCREASE.value,
                               iou_with_initial=_IOU.value, min_frames=_MIN_FRAMES.value,
                               detect_every=_DETECT_EVERY.value, backend=_DETECTOR.value, progress=progress)
  elif command == "align":
    src, out = _require(_SRC, command), _require(_OUT, command)
    report = faces.align_images(src, out, size=_IMG_SIZE.value, zoom=_ZOOM.value, backend=_DETECTOR.value,
                                on_miss=_ON_MISS.value, progress=progress)
  else:  # sample
    paths = sample.sample_data_dir(_DATA_DIR.value, progress=progress)
    out = paths.root
    summary = json.loads((Path(paths.root) / "summary.json").read_text(encoding="utf-8"))
    summary["data_dir"] = paths.root
    print(f"sample data ready in {paths.root} (built in {summary['seconds']} s; TFDS data_dir for all pipelines)")
    for key in ("image_domains", "talking_heads"):
      print(builders.PrepareReport.from_dict(summary[key]).summary_text())
    _write_summary(summary, _SUMMARY.value or os.path.join(out, "prepare_sample.json"))
    return summary
  print(report.summary_text())
  summary = report.to_dict()
  _write_summary(summary, _SUMMARY.value or os.path.join(out, f"prepare_{command}.json"))
  return summary


def _write_summary(summary: dict, path: str) -> None:
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  Path(path).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
  print(f"summary: {path}")


def main(argv: list[str]) -> None:
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"expected exactly one command out of {', '.join(COMMANDS)}; got {argv[1:]}")
  from absl import logging

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)  # TFDS logs every shard at INFO; our summary says what matters
  from jaxreenact.data.builders import PrepareError

  try:
    run(argv[1])
  except (PrepareError, FileNotFoundError, FileExistsError) as e:
    print(f"prepare_data {argv[1]}: error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  cli.run(main, positional=True)  # the sub-command is positional

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

import dataclasses
import sys

from absl import app, flags

from jaxreenact.data import prepare
from launch import cli

flags.DEFINE_string("src", None,
                    "Input: dataset root (images/videos), a video or folder (crop), a folder (align).")
flags.DEFINE_string("data_dir", None,
                    "TFDS data_dir to write (images/videos); sample-data folder (sample).")
flags.DEFINE_string("out", None, "Output folder (crop/align).")
flags.DEFINE_string("summary", None, "JSON summary path (default: <output>/prepare_<command>.json).")
flags.DEFINE_integer("img_size", 256, "Training size: output side for crop/align; images/videos below "
                     "it are noted (they are upscaled when read).")
flags.DEFINE_integer("min_size", 0, "images: skip images whose shorter side is below this (0 keeps all).")
flags.DEFINE_enum("frame_format", "png", ["png", "jpeg"],
                  "videos: encoding of frames decoded from video files.")
flags.DEFINE_integer("max_frames", None, "videos: keep at most this many frames per video.")
flags.DEFINE_bool("overwrite", False, "images/videos: regenerate an already prepared dataset.")
flags.DEFINE_integer("num_workers", 2, "Decode/encode threads.")
flags.DEFINE_enum("detector", "auto", ["auto", "dlib", "skimage"],
                  "crop/align: dlib HOG (+68 landmarks) or scikit-image LBP cascade; auto prefers dlib.")
flags.DEFINE_enum("on_miss", "skip", ["skip", "center"], "align: what to do when no face is found.")
flags.DEFINE_float("zoom", 1.0, "align: >1 crops tighter than the FFHQ framing (for inputs already cropped).")
flags.DEFINE_enum("format", "png", ["png", "mp4"], "crop: write frame folders or .mp4 clips.")
flags.DEFINE_float("increase", 0.1, "crop: grow the tube box by this fraction per side (FOMM 0.1).")
flags.DEFINE_float("iou_with_initial", 0.25, "crop: minimal IoU with the tube's first box (FOMM 0.25).")
flags.DEFINE_integer("min_frames", 30, "crop: shortest tube kept, in frames (FOMM used 150).")
flags.DEFINE_integer("detect_every", 1, "crop: run the detector every k-th frame.")
flags.DEFINE_bool("progress", True, "Show progress bars.")


def main(argv: list[str]) -> None:
  if len(argv) != 2 or argv[1] not in prepare.COMMANDS:
    raise app.UsageError(f"expected exactly one command out of {', '.join(prepare.COMMANDS)}; got {argv[1:]}")
  from absl import logging

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.ERROR)  # TFDS logs every shard at INFO; our summary says what matters
  from jaxreenact.data.builders import PrepareError

  opts = prepare.Options(**{f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(prepare.Options)})
  try:
    opts.validate(argv[1])
  except ValueError as e:
    raise app.UsageError(str(e))
  try:
    prepare.run(argv[1], opts)
  except (PrepareError, FileNotFoundError, FileExistsError) as e:
    print(f"prepare_data {argv[1]}: error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  cli.run(main, positional=True)  # the sub-command is positional

"""The ``launch.prepare_data`` commands as one library call: :func:`run` builds what the command asks for, prints its
summary and writes it as JSON (``--summary``, default ``<output>/prepare_<command>.json``)."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

COMMANDS = ("images", "videos", "crop", "align", "sample")
# The options each command cannot do without (its input and its output).
REQUIRED = {"images": ("src", "data_dir"), "videos": ("src", "data_dir"), "crop": ("src", "out"),
            "align": ("src", "out"), "sample": ()}


@dataclasses.dataclass(frozen=True)
class Options:
  """The command-line options of ``launch.prepare_data`` (same names; see its ``--help``)."""
  src: str | None = None
  data_dir: str | None = None
  out: str | None = None
  summary: str | None = None
  img_size: int = 256
  min_size: int = 0
  frame_format: str = "png"
  max_frames: int | None = None
  overwrite: bool = False
  num_workers: int = 2
  detector: str = "auto"
  on_miss: str = "skip"
  zoom: float = 1.0
  format: str = "png"
  increase: float = 0.1
  iou_with_initial: float = 0.25
  min_frames: int = 30
  detect_every: int = 1
  progress: bool = True

  def validate(self, command: str) -> None:
    """Raises ValueError naming the command and the first missing option (``--name``)."""
    if command not in COMMANDS:
      raise ValueError(f"expected exactly one command out of {', '.join(COMMANDS)}; got {command!r}")
    for name in REQUIRED[command]:
      if not getattr(self, name):
        raise ValueError(f"`{command}` needs --{name}")


def run(command: str, o: Options) -> dict:
  """Runs ``command`` with ``o``; returns the summary it wrote.

  Raises:
    ValueError: a required option is missing; PrepareError, FileNotFoundError, FileExistsError: unusable inputs or
    outputs (named in the message).
  """
  from jaxreenact.data import builders, faces, sample

  o.validate(command)
  if command == "images":
    report = builders.prepare_image_domains(o.src, o.data_dir, min_size=o.min_size, target_size=o.img_size,
                                            overwrite=o.overwrite, num_workers=o.num_workers, progress=o.progress)
  elif command == "videos":
    report = builders.prepare_talking_heads(o.src, o.data_dir, frame_format=o.frame_format, target_size=o.img_size,
                                            max_frames=o.max_frames, overwrite=o.overwrite,
                                            num_workers=o.num_workers, progress=o.progress)
  elif command == "crop":
    report = faces.crop_videos(o.src, o.out, size=o.img_size, out_format=o.format, increase=o.increase,
                               iou_with_initial=o.iou_with_initial, min_frames=o.min_frames,
                               detect_every=o.detect_every, backend=o.detector, progress=o.progress)
  elif command == "align":
    report = faces.align_images(o.src, o.out, size=o.img_size, zoom=o.zoom, backend=o.detector, on_miss=o.on_miss,
                                progress=o.progress)
  else:  # sample
    paths = sample.sample_data_dir(o.data_dir, progress=o.progress)
    summary = json.loads((Path(paths.root) / "summary.json").read_text(encoding="utf-8"))
    summary["data_dir"] = paths.root
    print(f"sample data ready in {paths.root} (built in {summary['seconds']} s; TFDS data_dir for all pipelines)")
    for key in ("image_domains", "talking_heads"):
      print(builders.PrepareReport.from_dict(summary[key]).summary_text())
    _write_summary(summary, o.summary or os.path.join(paths.root, "prepare_sample.json"))
    return summary
  print(report.summary_text())
  summary = report.to_dict()
  out = o.data_dir if command in ("images", "videos") else o.out
  _write_summary(summary, o.summary or os.path.join(out, f"prepare_{command}.json"))
  return summary


def _write_summary(summary: dict, path: str) -> None:
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  Path(path).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
  print(f"summary: {path}")

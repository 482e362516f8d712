"""TFDS builders for user folders, written as array_record with encoded bytes — no TensorFlow anywhere.

`image_domains` (StarGAN v2 layout) and `talking_heads` (FOMM layout). Both keep records in generation order
(`disable_shuffling`), so a class or a video is a contiguous run of record indices; those runs, the domain
names and the prepare report live in the dataset's `metadata.json`, which lets the grain pipelines sample by
class/identity without reading a single record at start-up. Preparation goes through TFDS's incomplete-dir
mechanism: an interrupted prepare leaves only an `incomplete.*` folder that TFDS never reads as a dataset.

Entry points: `prepare_image_domains`, `prepare_talking_heads` (used by `launch/prepare_data.py`),
`load_image_domains`, `load_talking_heads` (used by the pipelines).
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from tqdm.auto import tqdm

from jaxreenact.data import media

# Folder names accepted for each canonical split (the face-expression set ships `validation/`).
SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_MAX_REPORTED = 20000  # skipped/notes entries kept in metadata.json (counts are always exact)


class PrepareError(ValueError):
  """A source folder that cannot give a dataset (nothing usable, wrong layout)."""


@dataclasses.dataclass
class PrepareReport:
  """What a prepare produced: examples per split and class/identity, and every file it skipped (with why)."""

  dataset: str
  src: str
  data_dir: str
  examples: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
  skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
  notes: list[dict[str, str]] = dataclasses.field(default_factory=list)
  num_skipped: int = 0
  num_notes: int = 0
  reused: bool = False
  unit: str = "examples"  # what `examples` counts: images (image_domains), videos per identity (talking_heads)
  frames: dict[str, int] = dataclasses.field(default_factory=dict)  # talking_heads: frames per split

  def skip(self, path: str | os.PathLike, reason: str) -> None:
    self.num_skipped += 1
    if len(self.skipped) < _MAX_REPORTED:
      self.skipped.append({"path": media.display_path(path), "reason": reason})

  def note(self, path: str | os.PathLike, note: str) -> None:
    self.num_notes += 1
    if len(self.notes) < _MAX_REPORTED:
      self.notes.append({"path": media.display_path(path), "note": note})

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["totals"] = {split: int(sum(c.values())) for split, c in self.examples.items()}
    return d

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> PrepareReport:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})

  def write_json(self, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")

  def summary_text(self, max_lines: int = 20) -> str:
    lines = [f"{self.dataset}: {self.src} -> {self.data_dir}" + (" (already prepared, reused)" if self.reused else "")]
    for split, counts in self.examples.items():
      total = sum(counts.values())
      per = ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:12]) + (", …" if len(counts) > 12 else "")
      frames = f", {self.frames[split]} frames" if split in self.frames else ""
      lines.append(f"  {split}: {total} {self.unit}{frames} ({per})")
    if self.num_skipped:
      lines.append(f"  skipped {self.num_skipped} file(s):")
      reasons = collections.Counter(s["reason"].split(":")[0] for s in self.skipped)
      for reason, n in reasons.most_common():
        lines.append(f"    {n} × {reason}")
      for s in self.skipped[:max_lines]:
        lines.append(f"    {s['path']}: {s['reason']}")
      if self.num_skipped > max_lines:
        lines.append(f"    … {self.num_skipped - max_lines} more in the JSON summary")
    if self.num_notes:
      lines.append(f"  {self.num_notes} note(s) (kept, see JSON), e.g.:")
      for n in self.notes[:min(5, max_lines)]:
        lines.append(f"    {n['path']}: {n['note']}")
    return "\n".join(lines)


def _ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], num_workers: int) -> Iterator[Any]:
  """`map(fn, items)` on a thread pool with bounded look-ahead, results in input order (PIL/ffmpeg drop the GIL)."""
  if num_workers <= 1:
    yield from map(fn, items)
    return
  with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
    pending: collections.deque = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= 4 * num_workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


# Symbolic links, the same in every `prepare_data` command (images, videos, crop, align): a link to a file is read
# as the file it points to, wherever that is; a link to a directory is never followed (it could leave the input tree
# or loop) and is reported as skipped. `--src` itself may be a link; it is resolved.
SYMLINK_DIR_REASON = "symbolic link to a directory, not followed (link the files, or pass the target as --src)"


def is_dir_link(path: Path) -> bool:
  """A symbolic link that points to a directory (never followed when scanning an input tree)."""
  return path.is_symlink() and path.is_dir()


def _split_dirs(src: Path, report: PrepareReport | None = None) -> dict[str, Path]:
  if not src.is_dir():
    raise PrepareError(f"--src {media.display_path(src)} is not a directory")
  found: dict[str, Path] = {}
  for child in sorted(src.iterdir()):
    canon = SPLIT_ALIASES.get(child.name.lower()) if child.is_dir() else None
    if canon is None:
      continue
    if is_dir_link(child):
      if report is not None:
        report.skip(child, SYMLINK_DIR_REASON)
      continue
    if canon in found:
      raise PrepareError(
          f"{media.display_path(src)} has both {found[canon].name}/ and {child.name}/ for split {canon!r}")
    found[canon] = child
  if not found:
    raise PrepareError(
        f"no split folders under {media.display_path(src)}: expected {sorted(SPLIT_ALIASES)} sub-folders "
        f"(found {[media.display_path(c.name) for c in sorted(src.iterdir())][:10]})")
  return found


def walk_tree(root: str | os.PathLike, report: PrepareReport | None = None) -> tuple[list[Path], list[Path]]:
  """(files, directories) below `root`, recursive (like the official `Path.rglob`), in walk order (natural order
  within each directory).

  Links to files are listed as files; links to directories are not followed and are reported as skipped
  (`SYMLINK_DIR_REASON`): the policy of every `prepare_data` command.
  """
  files, dirs = [], []
  for dirpath, dirnames, filenames in os.walk(root):
    links = sorted((d for d in dirnames if os.path.islink(os.path.join(dirpath, d))), key=media.natural_key)
    dirnames[:] = sorted((d for d in dirnames if d not in links), key=media.natural_key)
    dirs.extend(Path(dirpath) / d for d in dirnames)
    files.extend(Path(dirpath) / f for f in sorted(filenames, key=media.natural_key))
    for d in links:
      if report is not None:
        report.skip(Path(dirpath) / d, SYMLINK_DIR_REASON)
  return files, dirs


class _LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Builders that download nothing: no code-relative checksums file to look up."""

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):  # TFDS would resolve the module as a package resource (needs importlib_resources)
    return None

  @property
  def src_dir(self) -> Path | None:
    """The --src this builder prepares from (None when only opened for reading)."""
    return self._src_dir

  def _generate_examples(self, **kwargs):  # pragma: no cover - `_split_generators` returns generators directly
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------------------------
# image_domains


@dataclasses.dataclass
class ImageDomainsScan:
  domains: list[str]
  files: dict[str, list[list[Path]]]  # split → per-domain file lists
  split_dirs: dict[str, Path]


def scan_image_domains(src: str | os.PathLike, report: PrepareReport) -> ImageDomainsScan:
  """List candidate files of `ROOT/{train,val,validation,test}/<domain>/**.{jpg,jpeg,png}` without decoding."""
  src = Path(src)
  split_dirs = _split_dirs(src, report)
  per_split: dict[str, dict[str, list[Path]]] = {}
  for split, d in split_dirs.items():
    per_split[split] = {}
    for child in sorted(d.iterdir(), key=lambda p: p.name):
      if is_dir_link(child):
        report.skip(child, SYMLINK_DIR_REASON)
        continue
      if not child.is_dir():
        report.skip(child, "file outside a domain folder (expected <split>/<domain>/<image>)")
        continue
      cands = []
      for f in walk_tree(child, report)[0]:
        if media.has_extension(f, media.IMAGE_EXTENSIONS):
          cands.append(f)
        else:
          report.skip(f, "not a .jpg/.jpeg/.png file")
      if cands:
        per_split[split][child.name] = cands
      else:
        report.skip(child, "empty domain folder (no .jpg/.jpeg/.png files)")
  # Domain names → labels in sorted order, like torchvision ImageFolder / the official ReferenceDataset.
  domains = sorted({name for per in per_split.values() for name in per})
  if not domains:
    raise PrepareError(
        f"no images under {media.display_path(src)}: looked for "
        f"{'|'.join(p.name for p in split_dirs.values())}/<domain>/*.jpg|jpeg|png")
  files = {split: [per.get(dom, []) for dom in domains] for split, per in per_split.items()}
  return ImageDomainsScan(domains=domains, files=files, split_dirs=split_dirs)


class ImageDomains(_LocalBuilder):
  """StarGAN v2 domain folders: one record per image {image: encoded bytes, label: int32, path: bytes}."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def __init__(self, *, src_dir: str | os.PathLike | None = None, min_size: int = 0, target_size: int = 256,
               num_workers: int = 2, progress: bool = True, **kwargs):
    self._src_dir = Path(src_dir) if src_dir is not None else None
    self._min_size = min_size
    self._target_size = target_size
    self._num_workers = num_workers
    self._progress = progress
    self._scan: ImageDomainsScan | None = None
    self.report: PrepareReport | None = None
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="Image domain folders (StarGAN v2 layout), encoded JPEG/PNG bytes, labels = sorted domain names.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),  # encoded bytes, decoded in grain
            "label": tfds.features.Tensor(shape=(), dtype=np.int32),
            "path": tfds.features.Tensor(shape=(), dtype=np.object_),  # relative source path, UTF-8
        }),
        disable_shuffling=True,  # records stay sorted by (label, path): classes are contiguous index ranges
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    if self._src_dir is None:
      raise PrepareError("image_domains: pass src_dir=… (the ROOT of ROOT/{train,val}/<domain>/) to prepare")
    self.info.metadata["source"] = source_id(self._src_dir, self.data_dir_root)
    self.report = PrepareReport("image_domains", media.display_path(self._src_dir),
                                media.display_path(self.data_dir_root), unit="images")
    self._scan = scan_image_domains(self._src_dir, self.report)
    self.info.metadata["domains"] = self._scan.domains
    self.info.metadata["splits"] = {}
    return {split: self._generate(split) for split in self._scan.files}

  def _load(self, path: Path) -> tuple[Path, bytes | None, str | None, tuple[int, int] | None]:
    try:
      data = path.read_bytes()
      data, hw, converted = media.normalize_image_bytes(data)
    except OSError as e:
      return path, None, f"unreadable: {e}", None
    except media.BadMedia as e:
      return path, None, str(e), None
    note = "converted to 8-bit RGB PNG" if converted else None
    return path, data, note, hw

  def _generate(self, split: str):
    scan, report = self._scan, self.report
    assert scan is not None and report is not None
    root = self._src_dir
    counts: dict[str, int] = {}
    ranges: list[list[int]] = []
    key = 0
    total = sum(len(f) for f in scan.files[split])
    bar = tqdm(total=total, desc=f"image_domains/{split}", unit="img", disable=not self._progress)
    for label, (domain, paths) in enumerate(zip(scan.domains, scan.files[split])):
      start = key
      for path, data, note, hw in _ordered_map(self._load, paths, self._num_workers):
        bar.update(1)
        if data is None:
          report.skip(path, note)
          continue
        if min(hw) < self._min_size:
          report.skip(path, f"smaller than --min_size {self._min_size} ({hw[1]}x{hw[0]})")
          continue
        if note:
          report.note(path, note)
        if min(hw) < self._target_size:
          report.note(path, f"smaller than the target size {self._target_size} ({hw[1]}x{hw[0]}); upscaled when read")
        rel = os.path.relpath(path, root)
        yield key, {"image": data, "label": np.int32(label), "path": os.fsencode(rel)}
        key += 1
      counts[domain] = key - start
      ranges.append([start, key - start])
    bar.close()
    if key == 0:
      raise PrepareError(
          f"image_domains: split {split!r} has no usable image under {media.display_path(scan.split_dirs[split])} "
          f"({report.num_skipped} file(s) skipped; first: {report.skipped[:3]})")
    report.examples[split] = counts
    self.info.metadata["splits"][split] = {"domain_ranges": ranges, "num_examples": key}
    self.info.metadata["report"] = _report_metadata(report)

# ---------------------------------------------------------------------------------------------------------------
# talking_heads


def identity_of(video_name: str) -> str:
  """VoxCeleb names `id10001#7w0IBEWc9Qw#000993#001143` → `id10001`; other names are their own identity."""
  head = video_name.split("#", 1)[0]
  return head if head and "#" in video_name else video_name


@dataclasses.dataclass
class VideoEntry:
  name: str
  path: Path
  kind: str  # "frames" (folder of images) or "file" (mp4/mov/avi/mkv/webm/gif)


def scan_talking_heads(src: str | os.PathLike,
                       report: PrepareReport) -> tuple[dict[str, list[VideoEntry]], dict[str, Path]]:
  """List videos of `ROOT/{train,test}/<video>/<frame>.png|jpg` or `ROOT/{train,test}/<video>.mp4`, no decoding."""
  src = Path(src)
  split_dirs = _split_dirs(src, report)
  out: dict[str, list[VideoEntry]] = {}
  for split, d in split_dirs.items():
    entries: dict[str, VideoEntry] = {}
    for child in sorted(d.iterdir(), key=lambda p: media.natural_key(p.name)):
      if is_dir_link(child):
        report.skip(child, SYMLINK_DIR_REASON)
        continue
      if child.is_dir():
        entry = VideoEntry(child.name, child, "frames")
      elif media.has_extension(child, media.VIDEO_EXTENSIONS):
        entry = VideoEntry(child.stem, child, "file")
      else:
        report.skip(child, "neither a frame folder nor a video file (.mp4/.mov/.avi/.mkv/.webm/.gif)")
        continue
      if entry.name in entries:
        report.skip(child, f"duplicate video name {entry.name!r} (already taken by {entries[entry.name].path.name})")
        continue
      entries[entry.name] = entry
    if entries:
      out[split] = list(entries.values())
    else:
      report.skip(d, "empty split folder (no videos)")
  if not out:
    raise PrepareError(f"no videos under {media.display_path(src)}: looked for <split>/<video>/<frame>.png|jpg "
                       f"and <split>/<video>.mp4 in {[p.name for p in split_dirs.values()]}")
  return out, split_dirs


class TalkingHeads(_LocalBuilder):
  """FOMM talking-head videos: one record per frame {image, video, identity, frame}; a video's frames are
  contiguous records, listed per split in metadata as [name, identity, first_record, num_frames]."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def __init__(self, *, src_dir: str | os.PathLike | None = None, frame_format: str = "png", target_size: int = 256,
               max_frames: int | None = None, num_workers: int = 2, progress: bool = True, **kwargs):
    if frame_format not in ("png", "jpeg"):
      raise ValueError(f"frame_format must be 'png' or 'jpeg', got {frame_format!r}")
    self._src_dir = Path(src_dir) if src_dir is not None else None
    self._frame_format = frame_format
    self._target_size = target_size
    self._max_frames = max_frames
    self._num_workers = num_workers
    self._progress = progress
    self._videos: dict[str, list[VideoEntry]] | None = None
    self._split_dirs: dict[str, Path] = {}
    self.report: PrepareReport | None = None
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="Talking-head videos (FOMM layout), one record per frame, frames of a video contiguous.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),  # encoded PNG/JPEG bytes
            "video": tfds.features.Tensor(shape=(), dtype=np.object_),  # video name, UTF-8
            "identity": tfds.features.Tensor(shape=(), dtype=np.object_),
            "frame": tfds.features.Tensor(shape=(), dtype=np.int32),  # index in the source video
        }),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    if self._src_dir is None:
      raise PrepareError("talking_heads: pass src_dir=… (the ROOT of ROOT/{train,test}/<video>) to prepare")
    self.info.metadata["source"] = source_id(self._src_dir, self.data_dir_root)
    self.report = PrepareReport("talking_heads", media.display_path(self._src_dir),
                                media.display_path(self.data_dir_root), unit="videos")
    self._videos, self._split_dirs = scan_talking_heads(self._src_dir, self.report)
    self.info.metadata["splits"] = {}
    return {split: self._generate(split) for split in self._videos}

  def _frames_of(self, entry: VideoEntry) -> Iterator[tuple[int, bytes | None, str | None, Path]]:
    """(source frame index, encoded bytes or None, skip reason or None, path) for each frame of a video."""
    if entry.kind == "frames":
      files = [f for f in sorted(entry.path.iterdir(), key=lambda p: media.natural_key(p.name)) if f.is_file()]
      files = files[: self._max_frames] if self._max_frames else files

      def load(item):
        idx, f = item
        if not media.has_extension(f, media.IMAGE_EXTENSIONS):
          return idx, None, "not a .jpg/.jpeg/.png frame", f
        try:
          data, _, _ = media.normalize_image_bytes(f.read_bytes())
          return idx, data, None, f
        except OSError as e:
          return idx, None, f"unreadable: {e}", f
        except media.BadMedia as e:
          return idx, None, str(e), f

      yield from _ordered_map(load, enumerate(files), self._num_workers)
      return
    frames, note = media.read_video_frames(entry.path, self._max_frames)
    if note:
      self.report.note(entry.path, note)
    encoded = _ordered_map(lambda f: media.encode_frame(f, self._frame_format), frames, self._num_workers)
    for idx, data in enumerate(encoded):
      yield idx, data, None, entry.path

  def _generate(self, split: str):
    report = self.report
    assert report is not None and self._videos is not None
    videos_meta: list[list[Any]] = []
    counts: dict[str, int] = collections.Counter()
    key = 0
    bar = tqdm(self._videos[split], desc=f"talking_heads/{split}", unit="video", disable=not self._progress)
    for entry in bar:
      identity = identity_of(entry.name)
      start = key
      checked_size = False
      try:
        for idx, data, reason, fpath in self._frames_of(entry):
          if data is None:
            report.skip(fpath, reason)
            continue
          if not checked_size:
            checked_size = True
            w, h = media.decode_rgb(data).size
            if min(h, w) < self._target_size:
              report.note(entry.path, f"frames {w}x{h} are smaller than the target size {self._target_size}; "
                          "upscaled when read")
          yield key, {"image": data, "video": entry.name.encode("utf-8", "surrogateescape"),
                      "identity": identity.encode("utf-8", "surrogateescape"), "frame": np.int32(idx)}
          key += 1
      except media.BadMedia as e:
        report.skip(entry.path, str(e))
      except OSError as e:
        report.skip(entry.path, f"unreadable: {e}")
      n = key - start
      if n == 0:
        if entry.kind == "frames":
          report.skip(entry.path, "no decodable frames")
        continue
      videos_meta.append([media.display_path(entry.name), media.display_path(identity), start, n])
      counts[media.display_path(identity)] += 1
    bar.close()
    if key == 0:
      raise PrepareError(
          f"talking_heads: split {split!r} has no usable frame under {media.display_path(self._split_dirs[split])} "
          f"({report.num_skipped} file(s) skipped; first: {report.skipped[:3]})")
    report.examples[split] = dict(sorted(counts.items()))  # videos per identity
    report.frames[split] = key
    self.info.metadata["splits"][split] = {"videos": videos_meta, "num_frames": key}
    self.info.metadata["report"] = _report_metadata(report)

def _report_metadata(report: PrepareReport) -> dict[str, Any]:
  d = report.to_dict()
  del d["totals"], d["reused"], d["data_dir"]
  return d


# ---------------------------------------------------------------------------------------------------------------
# prepare / load


def source_id(src: str | os.PathLike, data_dir: str | os.PathLike) -> str:
  """What a prepared dataset records as its source (metadata `source`): the resolved `src`, relative to the
  data_dir when inside it (so a data_dir that holds its own sources, like the sample data, stays relocatable)."""
  src, data_dir = Path(src).resolve(), Path(data_dir).resolve()
  return os.fspath(src.relative_to(data_dir)) if src.is_relative_to(data_dir) else os.fspath(src)


def _check_same_source(builder: tfds.core.GeneratorBasedBuilder) -> None:
  """PrepareError when the prepared dataset in `builder`'s data_dir was built from another --src."""
  meta = builder.info.metadata
  stored = meta.get("source")
  if stored is None:  # built before sources were recorded: the report's --src, when it was an absolute path
    stored = dict(meta.get("report", {})).get("src")
    if not stored or not os.path.isabs(stored):
      return
    stored = source_id(stored, builder.data_dir_root)
  wanted = source_id(builder.src_dir, builder.data_dir_root)
  if stored != wanted:
    data_dir = media.display_path(builder.data_dir_root)
    raise PrepareError(
        f"--data_dir {data_dir} already holds {builder.name} built from {media.display_path(stored)}, not from "
        f"--src {media.display_path(builder.src_dir)}: use a fresh --data_dir, or add --overwrite to rebuild "
        f"{builder.name} in {data_dir} from the new --src")


def _prepare(builder: tfds.core.GeneratorBasedBuilder, overwrite: bool) -> PrepareReport:
  modes = tfds.download.GenerateMode
  mode = modes.REUSE_CACHE_IF_EXISTS if overwrite else modes.REUSE_DATASET_IF_EXISTS
  if builder.is_prepared() and not overwrite:
    _check_same_source(builder)
    meta = dict(builder.info.metadata.get("report", {}))
    meta.update(dataset=builder.name, data_dir=media.display_path(builder.data_dir_root), reused=True)
    return PrepareReport.from_dict(meta)
  tfds.display_progress_bar(False)  # our own bars (with totals) replace TFDS's
  # A prepared dataset's info (read from disk, already array_record) refuses a file_format: TFDS deletes the old
  # dataset and writes the new one with the format it has.
  file_format = {} if builder.is_prepared() else {"file_format": "array_record"}
  try:
    builder.download_and_prepare(
        **file_format,
        download_config=tfds.download.DownloadConfig(download_mode=mode),
        download_dir=os.path.join(builder.data_dir_root, ".tfds_downloads"))
  finally:
    tfds.display_progress_bar(True)
  assert builder.report is not None
  return builder.report


def prepare_image_domains(src: str | os.PathLike, data_dir: str | os.PathLike, *, min_size: int = 0,
                          target_size: int = 256, overwrite: bool = False, num_workers: int = 2,
                          progress: bool = True) -> PrepareReport:
  """Prepare `DATA_DIR/image_domains/1.0.0` from `SRC/{train,val}/<domain>/*.{jpg,jpeg,png}`.

  Args:
    src: dataset root holding split folders (train/val/validation/test).
    data_dir: TFDS data_dir to write into.
    min_size: images whose shorter side is below this are skipped (0 keeps everything; smaller ones are noted).
    target_size: training resolution, only used to note images that will be upscaled.
    overwrite: regenerate even when a prepared dataset exists.
    num_workers: decode threads.
    progress: show tqdm bars.

  Returns:
    A PrepareReport (examples per split and domain, skipped files with reasons).

  Raises:
    PrepareError: wrong layout, or a split without a single usable image.
  """
  builder = ImageDomains(data_dir=os.fspath(data_dir), src_dir=src, min_size=min_size, target_size=target_size,
                         num_workers=num_workers, progress=progress)
  return _prepare(builder, overwrite)


def prepare_talking_heads(src: str | os.PathLike, data_dir: str | os.PathLike, *, frame_format: str = "png",
                          target_size: int = 256, max_frames: int | None = None, overwrite: bool = False,
                          num_workers: int = 2, progress: bool = True) -> PrepareReport:
  """Prepare `DATA_DIR/talking_heads/1.0.0` from FOMM-layout frame folders and/or video files.

  Args:
    src: dataset root holding split folders (train/test, val/validation also accepted).
    data_dir: TFDS data_dir to write into.
    frame_format: encoding for frames decoded from video files ('png' lossless or 'jpeg' q95); frames that
      come as 8-bit RGB JPEG/PNG files are stored as they are.
    target_size: training resolution, only used to note videos that will be upscaled.
    max_frames: keep at most this many frames per video (None keeps all).
    overwrite: regenerate even when a prepared dataset exists.
    num_workers: decode/encode threads.
    progress: show tqdm bars.

  Returns:
    A PrepareReport (videos per split and identity, skipped files with reasons).
  """
  builder = TalkingHeads(data_dir=os.fspath(data_dir), src_dir=src, frame_format=frame_format, target_size=target_size,
                         max_frames=max_frames, num_workers=num_workers, progress=progress)
  return _prepare(builder, overwrite)


_SPLIT_LOOKUP = {"train": ("train",), "val": ("val", "test"), "validation": ("val", "test"), "test": ("test", "val")}


def _resolve_split(builder: tfds.core.DatasetBuilder, split: str) -> str:
  available = list(builder.info.splits.keys())
  for cand in _SPLIT_LOOKUP.get(split, (split,)):
    if cand in available:
      return cand
  raise ValueError(f"{builder.name} under {builder.data_dir}: no split {split!r} (available: {available})")


def _open(builder_cls, data_dir: str | os.PathLike, command: str) -> tfds.core.GeneratorBasedBuilder:
  builder = builder_cls(data_dir=os.fspath(data_dir))
  if not builder.is_prepared():
    raise FileNotFoundError(
        f"no prepared {builder.name} dataset at {builder.data_path}; create it with "
        f"`python -m launch.prepare_data {command} --src ROOT --data_dir {media.display_path(data_dir)}` "
        f"(or use jaxreenact.data.sample_data_dir())")
  return builder


@dataclasses.dataclass
class ImageDomainsSplit:
  """Random-access view of one prepared image_domains split."""

  source: Any  # tfds ArrayRecordDataSource: source[i] → {"image", "label", "path"}
  domains: list[str]
  domain_ranges: list[tuple[int, int]]  # per label: (first record, count)
  split: str


def load_image_domains(data_dir: str | os.PathLike, split: str) -> ImageDomainsSplit:
  builder = _open(ImageDomains, data_dir, "images")
  split = _resolve_split(builder, split)
  meta = builder.info.metadata
  ranges = [tuple(r) for r in meta["splits"][split]["domain_ranges"]]
  return ImageDomainsSplit(builder.as_data_source(split), list(meta["domains"]), ranges, split)


@dataclasses.dataclass
class TalkingHeadsSplit:
  """Random-access view of one prepared talking_heads split."""

  source: Any  # source[i] → {"image", "video", "identity", "frame"}
  videos: list[tuple[str, str, int, int]]  # (name, identity, first record, num_frames)
  identities: list[str]  # sorted unique identities
  videos_of_identity: list[list[int]]  # per identity: indices into `videos`
  split: str


def load_talking_heads(data_dir: str | os.PathLike, split: str) -> TalkingHeadsSplit:
  builder = _open(TalkingHeads, data_dir, "videos")
  split = _resolve_split(builder, split)
  videos = [tuple(v) for v in builder.info.metadata["splits"][split]["videos"]]
  identities = sorted({v[1] for v in videos})
  index = {name: i for i, name in enumerate(identities)}
  of_id: list[list[int]] = [[] for _ in identities]
  for vi, v in enumerate(videos):
    of_id[index[v[1]]].append(vi)
  return TalkingHeadsSplit(builder.as_data_source(split), videos, identities, of_id, split)

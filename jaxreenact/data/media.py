"""Image and video I/O for dataset preparation: validation, normalisation to 8-bit RGB, frame reading.

Everything here works on encoded bytes or paths and never raises on bad media: callers get a
`BadMedia` exception with a reason they can report, or a result. Nothing imports TensorFlow.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif")

# Re-encoding uses lossless PNG so converted images (gray, RGBA, 16-bit, palette, CMYK) lose nothing.
_PNG_COMPRESS_LEVEL = 3


class BadMedia(Exception):
  """A file that cannot be used; `str(e)` is the reason written to the prepare summary."""


def display_path(path: str | os.PathLike) -> str:
  """A printable form of a path, also for names that are not valid UTF-8 (surrogate-escaped on POSIX)."""
  return os.fspath(path).encode("utf-8", "backslashreplace").decode("utf-8")


def natural_key(name: str) -> list:
  """Sort key that orders `frame2.png` before `frame10.png`."""
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def has_extension(path: str | os.PathLike, extensions: Sequence[str]) -> bool:
  return os.fspath(path).lower().endswith(tuple(extensions))


def _to_uint8_array(im: Image.Image) -> np.ndarray:
  """Any PIL mode → (H, W, 3) uint8 RGB; 16/32-bit integer and float modes are rescaled, not clipped."""
  mode = im.mode
  if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
    a = np.asarray(im, dtype=np.uint16)
    a = (a.astype(np.uint32) * 255 + 32767) // 65535  # full 16-bit range → 8-bit, rounded
    return np.repeat(a.astype(np.uint8)[..., None], 3, axis=-1)
  if mode in ("I", "F"):
    a = np.asarray(im).astype(np.float64)
    hi = 65535.0 if mode == "I" and a.max(initial=0) > 255 else (255.0 if mode == "I" else 1.0)
    a = np.clip(np.round(a / hi * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(a[..., None], 3, axis=-1)
  # Palette / alpha / CMYK / gray: PIL's convert('RGB') drops alpha exactly as the official loaders'
  # `Image.open(f).convert('RGB')` does (torchvision ImageFolder / StarGAN v2 data_loader).
  return np.asarray(im.convert("RGB"), dtype=np.uint8)


def normalize_image_bytes(data: bytes) -> tuple[bytes, tuple[int, int], bool]:
  """Fully decode `data` and return (bytes, (H, W), converted).

  8-bit RGB JPEG/PNG files are kept byte-for-byte; anything else that decodes (grayscale, RGBA, palette,
  16-bit, CMYK, …) is converted to 8-bit RGB and re-encoded as PNG.

  Raises:
    BadMedia: zero-byte, truncated or corrupt data, or data that is not an image.
  """
  if not data:
    raise BadMedia("zero-byte file")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      with Image.open(io.BytesIO(data)) as im:
        im.load()  # full decode: a truncated JPEG/PNG raises here (LOAD_TRUNCATED_IMAGES is off)
        fmt, mode, (w, h) = im.format, im.mode, im.size
        if w < 1 or h < 1:
          raise BadMedia(f"empty image ({w}x{h})")
        if fmt in ("JPEG", "PNG") and mode == "RGB" and not (fmt == "PNG" and "transparency" in im.info):
          return data, (h, w), False
        arr = _to_uint8_array(im)
  except BadMedia:
    raise
  except UnidentifiedImageError:
    raise BadMedia("not a decodable image: unrecognised format (not JPEG/PNG/… data)") from None
  except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
          Image.DecompressionBombWarning, MemoryError) as e:
    raise BadMedia(f"not a decodable image: {type(e).__name__}: {e}") from None
  return encode_png(arr), (arr.shape[0], arr.shape[1]), True


def encode_png(rgb: np.ndarray, compress_level: int = _PNG_COMPRESS_LEVEL) -> bytes:
  """(H, W, 3) uint8 → PNG bytes (level 1 is ~3× faster than 6 and ~15% larger)."""
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format="PNG", compress_level=compress_level)
  return buf.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
  """(H, W, 3) uint8 → JPEG bytes (4:4:4, no chroma subsampling)."""
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=0)
  return buf.getvalue()


def encode_frame(rgb: np.ndarray, frame_format: str) -> bytes:
  if frame_format == "png":
    return encode_png(rgb)
  if frame_format == "jpeg":
    return encode_jpeg(rgb)
  raise ValueError(f"frame_format must be 'png' or 'jpeg', got {frame_format!r}")


def decode_rgb(data: bytes) -> Image.Image:
  """Encoded bytes (as stored by the builders) → PIL RGB image."""
  im = Image.open(io.BytesIO(data))
  return im if im.mode == "RGB" else im.convert("RGB")


def read_image_file(path: str | os.PathLike) -> np.ndarray:
  """A file on disk → (H, W, 3) uint8 RGB; raises BadMedia with a reason."""
  try:
    data = Path(path).read_bytes()
  except OSError as e:
    raise BadMedia(f"unreadable: {e}") from None
  data, _, _ = normalize_image_bytes(data)
  return np.asarray(decode_rgb(data))


def iter_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
  """Yield (H, W, 3) uint8 frames of an .mp4/.mov/.avi/.mkv/.webm (ffmpeg) or .gif (PIL) file.

  Raises:
    BadMedia: when the container cannot be opened or decoding fails (after the frames already yielded).
  """
  path = os.fspath(path)
  if os.path.getsize(path) == 0:
    raise BadMedia("zero-byte file")
  if path.lower().endswith(".gif"):
    try:
      with Image.open(path) as im:
        for frame in ImageSequence.Iterator(im):
          yield np.asarray(frame.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
      raise BadMedia(f"not a decodable GIF: {type(e).__name__}: {e}") from None
    return
  import imageio_ffmpeg  # bundles an ffmpeg binary (docs/facts.md §5); imported lazily, only videos need it

  try:
    gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    meta = next(gen)
    w, h = meta["size"]
  except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as e:
    raise BadMedia(f"ffmpeg cannot open the video: {type(e).__name__}: {str(e).strip()[-300:]}") from None
  try:
    for raw in gen:
      yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
  except (OSError, RuntimeError, ValueError) as e:
    raise BadMedia(f"ffmpeg failed while decoding: {type(e).__name__}: {str(e).strip()[-300:]}") from None
  finally:
    gen.close()


def read_video_frames(path: str | os.PathLike, max_frames: int | None = None) -> tuple[list[np.ndarray], str | None]:
  """All decodable frames of a video file, and a note when decoding stopped early (truncated file)."""
  frames: list[np.ndarray] = []
  note = None
  try:
    for f in iter_video_frames(path):
      frames.append(f)
      if max_frames is not None and len(frames) >= max_frames:
        break
  except BadMedia as e:
    if not frames:
      raise
    note = f"decoding stopped after {len(frames)} frames ({e})"
  if not frames:
    raise BadMedia("no decodable frames")
  return frames, note


# Containers that hold the H.264 stream write_video encodes (and the AAC audio video.write_video copies).
VIDEO_OUT_EXTENSIONS = (".mp4", ".mov", ".mkv")


class VideoWriteError(RuntimeError):
  """ffmpeg failed, or the file it wrote does not read back with the frames and frame rate sent."""


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 25.0) -> None:
  """Write (H, W, 3) uint8 frames as an H.264 .mp4/.mov/.mkv with the ffmpeg bundled by imageio-ffmpeg.

  ffmpeg's exit status is checked and the file is read back (frame count and frame rate) before this returns;
  on any failure nothing is left at ``path`` and :class:`VideoWriteError` names the file and the reason.
  """
  import subprocess
  import tempfile
  from fractions import Fraction

  import imageio_ffmpeg

  path = os.fspath(path)
  shown = display_path(path)
  if not has_extension(path, VIDEO_OUT_EXTENSIONS):
    raise VideoWriteError(f"{shown}: a video must end in {', '.join(VIDEO_OUT_EXTENSIONS)}")
  if os.path.isdir(path):
    raise VideoWriteError(f"{shown}: is a directory, expected a video file name")
  if not len(frames):
    raise VideoWriteError(f"{shown}: no frames to write")
  h, w = frames[0].shape[:2]
  rate = Fraction(fps).limit_denominator()  # a rational, so 30000/1001 is not rounded (as imageio-ffmpeg does)
  # Write next to the target and rename when verified: a failed write never leaves a half-written file at `path`
  # (nor replaces a good one that was there). The temporary name keeps the extension: ffmpeg picks the container
  # from it.
  try:
    fd, tmp = tempfile.mkstemp(prefix=".writing-", suffix=os.path.splitext(path)[1],
                               dir=os.path.dirname(os.path.abspath(path)))
  except OSError as e:
    raise VideoWriteError(f"{shown}: cannot write in {display_path(os.path.dirname(os.path.abspath(path)))}: "
                          f"{e.strerror or e}") from None
  os.close(fd)
  # crf 10 = imageio-ffmpeg's quality=8 for libx264, which this function used before.
  cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{w}x{h}", "-pix_fmt", "rgb24", "-r", str(rate), "-i", "-",
         "-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", "10", tmp]
  try:
    with tempfile.TemporaryFile() as log:  # stderr to a file: a full pipe would block ffmpeg
      proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
      broken = None
      try:
        for f in frames:
          f = np.ascontiguousarray(f, dtype=np.uint8)
          if f.shape != (h, w, 3):
            raise VideoWriteError(f"{shown}: frame of shape {f.shape}, expected {(h, w, 3)} like the first one")
          proc.stdin.write(f.tobytes())
      except BrokenPipeError as e:  # ffmpeg exited early; its message is in the log
        broken = e
      finally:
        try:
          proc.stdin.close()
        except BrokenPipeError:
          pass
        code = proc.wait()
      log.seek(0)
      err = log.read().decode("utf-8", "replace").strip()
    if code != 0 or broken is not None:
      raise VideoWriteError(f"{shown}: ffmpeg failed (exit status {code}): {_last_line(err) or broken}")
    check_video(tmp, len(frames), float(rate), shown=shown)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _last_line(text: str) -> str:
  lines = [l for l in text.splitlines() if l.strip()]
  return lines[-1].strip()[-300:] if lines else ""


def video_stream_info(path: str | os.PathLike, count_frames: bool = True) -> dict:
  """{'frames': int | None, 'fps': float | None, 'has_audio': bool, 'audio_codec': str | None} of a video file.

  One ``ffmpeg -i path -map 0:v:0 -f null -`` run (the bundled ffmpeg has no ffprobe): the stream header gives the
  frame rate and the audio stream, the final progress line the number of frames actually decoded (the whole video
  is decoded for that; ``count_frames=False`` reads only the header and reports ``frames`` None).
  """
  import subprocess

  import imageio_ffmpeg

  cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", os.fspath(path)]
  if count_frames:
    cmd += ["-map", "0:v:0?", "-f", "null", "-"]
  proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
  text = proc.stderr
  audio = re.search(r"Stream #\S+.*?: Audio: (\w+)", text)
  fps = None
  video = re.search(r"Stream #\S+.*?: Video: .*", text)
  if video:
    m = re.search(r"([\d.]+)(k?) fps", video.group(0)) or re.search(r"([\d.]+)(k?) tbr", video.group(0))
    if m:  # ffmpeg prints a whole number of thousands as e.g. "1k fps"
      fps = float(m.group(1)) * (1000 if m.group(2) else 1)
  counts = re.findall(r"frame=\s*(\d+)", text) if count_frames and proc.returncode == 0 and video else []
  return {"frames": int(counts[-1]) if counts else None, "fps": fps, "has_audio": audio is not None,
          "audio_codec": audio.group(1) if audio else None}


def check_video(path: str | os.PathLike, frames: int, fps: float, shown: str | None = None) -> dict:
  """Reads ``path`` back and raises :class:`VideoWriteError` unless it holds ``frames`` frames at ``fps``."""
  shown = shown or display_path(path)
  info = video_stream_info(path)
  if info["frames"] != frames:
    raise VideoWriteError(f"{shown}: wrote {frames} frames but the file reads back with "
                          f"{'no decodable video' if info['frames'] is None else info['frames']} frames")
  # ffmpeg prints the rate with 2 decimals (23.976 -> "23.98"): half a unit of that plus a relative slack.
  if info["fps"] is None or abs(info["fps"] - fps) > 0.006 + 1e-3 * fps:
    raise VideoWriteError(f"{shown}: wrote {fps:g} fps but the file reads back at {info['fps']} fps")
  return info


def unwritable_reason(directory: str | os.PathLike) -> str | None:
  """Why files cannot be created under ``directory`` (None when they can); it need not exist yet.

  The nearest existing ancestor must be a directory this process can create files in, tried with a temporary file
  (permission bits do not tell for root, read-only mounts or /proc).
  """
  import tempfile
  p = Path(os.path.abspath(os.fspath(directory)))
  if p.exists() and not p.is_dir():
    return "exists and is not a directory"
  parent = p
  while not parent.exists() and parent != parent.parent:
    parent = parent.parent
  if not parent.is_dir():
    return f"{display_path(parent)} is not a directory"
  try:
    with tempfile.NamedTemporaryFile(dir=parent, prefix=".write-test-"):
      pass
  except OSError as e:
    return f"cannot write in {display_path(parent)}: {e.strerror or e}"
  return None

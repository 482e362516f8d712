"""Video I/O for inference: frames + frame rate in, H.264 MP4 out, audio copied — all with the ffmpeg binary
bundled by imageio-ffmpeg (no system ffmpeg, no ffprobe). A write returns only once the file reads back with the
frames and frame rate sent."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxreenact.data import media


def ffmpeg_exe() -> str:
  import imageio_ffmpeg
  return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: str | os.PathLike) -> dict:
  """{'fps': float | None, 'has_audio': bool, 'audio_codec': str | None} from the header (``ffmpeg -i``)."""
  info = media.video_stream_info(path, count_frames=False)
  return {k: info[k] for k in ("fps", "has_audio", "audio_codec")}


def output_problem(path: str | os.PathLike) -> str | None:
  """Why a video cannot be written at ``path`` (None when it can), checked before any compute.

  The container must be one write_video makes, ``path`` must not be a directory, and the nearest existing parent
  folder must be a folder this process can create files in (tried with a temporary file: permission bits do not
  tell for root, read-only mounts or /proc).
  """
  p = Path(os.path.abspath(os.fspath(path)))
  if p.is_dir():
    return "is a directory; expected a video file name such as result.mp4"
  if not media.has_extension(p, media.VIDEO_OUT_EXTENSIONS):
    return f"must end in {', '.join(media.VIDEO_OUT_EXTENSIONS)} (the container is chosen by the extension)"
  problem = media.unwritable_reason(p.parent)
  if problem:
    return problem
  if p.exists() and not os.access(p, os.W_OK):
    return "exists and is not writable"
  return None


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[list[np.ndarray], float, str | None]:
  """(frames (H, W, 3) uint8, fps, note) of a video file, a GIF or a folder of frames (25 fps assumed there)."""
  p = Path(path)
  if not p.exists():
    raise FileNotFoundError(f"{media.display_path(p)}: no such video file or frame folder")
  if p.is_dir():
    files = sorted((f for f in p.iterdir() if media.has_extension(f, media.IMAGE_EXTENSIONS)),
                   key=lambda f: media.natural_key(f.name))
    if not files:
      raise media.BadMedia(f"{media.display_path(p)}: frame folder holds no .png/.jpg")
    files = files[:max_frames] if max_frames else files
    return [media.read_image_file(f) for f in files], 25.0, None
  frames, note = media.read_video_frames(p, max_frames)
  fps = None
  if p.suffix.lower() == ".gif":
    from PIL import Image
    with Image.open(p) as im:
      duration = im.info.get("duration")
    fps = 1000.0 / duration if duration else None
  else:
    import imageio_ffmpeg
    try:
      gen = imageio_ffmpeg.read_frames(os.fspath(p))
      fps = float(next(gen).get("fps") or 0) or None
      gen.close()
    except (OSError, RuntimeError, StopIteration):
      fps = None
  return frames, float(fps or 25.0), note


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float,
                audio_from: str | os.PathLike | None = None) -> dict:
  """Writes an H.264 MP4 at ``fps``; copies the first audio stream of ``audio_from`` when it has one.

  Returns {'path', 'frames', 'fps', 'audio': bool} only once the file has been read back with that many frames at
  that rate (and an audio stream when 'audio' is True); raises media.VideoWriteError naming the file otherwise.
  """
  if not len(frames):
    raise media.VideoWriteError(f"{media.display_path(path)}: no frames to write")
  problem = output_problem(path)
  if problem:
    raise media.VideoWriteError(f"{media.display_path(path)}: {problem}")
  path = Path(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise media.VideoWriteError(f"{media.display_path(path)}: cannot create {media.display_path(path.parent)}: "
                                f"{e.strerror or e}") from None
  frames = [_even(f) for f in frames]
  has_audio = bool(audio_from) and probe(audio_from)["has_audio"]
  if not has_audio:
    media.write_video(path, frames, fps)  # exit status checked, frames and fps read back
    return {"path": os.fspath(path), "frames": len(frames), "fps": fps, "audio": False}
  with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
    silent = Path(tmp) / "video.mp4"
    media.write_video(silent, frames, fps)
    out = Path(tmp) / ("muxed" + path.suffix.lower())
    duration = f"{len(frames) / fps:.6f}"  # read at most the video's length of audio; every video frame is kept
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", os.fspath(silent), "-t",
           duration, "-i", os.fspath(audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
           os.fspath(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
      raise media.VideoWriteError(f"{media.display_path(path)}: ffmpeg could not copy the audio of {audio_from} "
                                  f"(exit status {proc.returncode}): {proc.stderr.strip()[-500:]}")
    info = media.check_video(out, len(frames), fps, shown=media.display_path(path))
    if not info["has_audio"]:
      raise media.VideoWriteError(f"{media.display_path(path)}: the audio of {audio_from} was not copied")
    shutil.move(os.fspath(out), os.fspath(path))
  return {"path": os.fspath(path), "frames": len(frames), "fps": fps, "audio": True}


def _even(frame: np.ndarray) -> np.ndarray:
  """yuv420p needs even width and height: pad one edge row/column when odd."""
  h, w = frame.shape[:2]
  if h % 2 or w % 2:
    frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
  return np.ascontiguousarray(frame)

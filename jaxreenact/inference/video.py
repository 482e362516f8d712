"""Video I/O for inference: frames + frame rate in, H.264 MP4 out, audio copied — all with the ffmpeg binary
bundled by imageio-ffmpeg (no system ffmpeg, no ffprobe)."""
from __future__ import annotations

import os
import re
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
  """{'fps': float | None, 'has_audio': bool, 'audio_codec': str | None} from ``ffmpeg -i`` (no ffprobe here)."""
  proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", os.fspath(path)], capture_output=True, text=True,
                        errors="replace")
  text = proc.stderr
  audio = re.search(r"Stream #\S+.*?: Audio: (\w+)", text)
  fps = None
  video = re.search(r"Stream #\S+.*?: Video: .*", text)
  if video:
    m = re.search(r"([\d.]+) fps", video.group(0)) or re.search(r"([\d.]+) tbr", video.group(0))
    if m:
      fps = float(m.group(1))
  return {"fps": fps, "has_audio": audio is not None, "audio_codec": audio.group(1) if audio else None}


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

  Returns {'path', 'frames', 'fps', 'audio': bool}.
  """
  if not len(frames):
    raise ValueError("write_video: no frames")
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  frames = [_even(f) for f in frames]
  has_audio = bool(audio_from) and probe(audio_from)["has_audio"]
  if not has_audio:
    media.write_video(path, frames, fps)
    return {"path": os.fspath(path), "frames": len(frames), "fps": fps, "audio": False}
  with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
    silent = Path(tmp) / "video.mp4"
    media.write_video(silent, frames, fps)
    out = Path(tmp) / "muxed.mp4"
    duration = f"{len(frames) / fps:.6f}"  # read at most the video's length of audio; every video frame is kept
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", os.fspath(silent), "-t", duration, "-i",
           os.fspath(audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", os.fspath(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
      raise RuntimeError(f"ffmpeg could not copy the audio of {audio_from}: {proc.stderr.strip()[-500:]}")
    shutil.move(os.fspath(out), os.fspath(path))
  return {"path": os.fspath(path), "frames": len(frames), "fps": fps, "audio": True}


def _even(frame: np.ndarray) -> np.ndarray:
  """yuv420p needs even width and height: pad one edge row/column when odd."""
  h, w = frame.shape[:2]
  if h % 2 or w % 2:
    frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
  return np.ascontiguousarray(frame)

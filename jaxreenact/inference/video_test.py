"""Video I/O with the bundled ffmpeg: frame rate kept, frame count, audio copied only when present; a write that
fails raises and leaves nothing behind."""
import os
import subprocess

import numpy as np
import pytest

from jaxreenact.data import media
from jaxreenact.inference import video


def _frames(n=9, h=48, w=64):
  rng = np.random.default_rng(0)
  base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
  return [np.roll(base, 3 * i, axis=1) for i in range(n)]


@pytest.fixture(scope="module")
def with_audio(tmp_path_factory):
  d = tmp_path_factory.mktemp("av")
  silent = d / "silent.mp4"
  video.write_video(silent, _frames(), 12.5)
  out = d / "with_audio.mp4"
  cmd = [video.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(silent), "-f", "lavfi", "-i",
         "sine=frequency=440:duration=2", "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-shortest",
         str(out)]
  subprocess.run(cmd, check=True)
  return out


def test_write_keeps_fps_and_count(tmp_path):
  info = video.write_video(tmp_path / "v.mp4", _frames(), 12.5)
  assert info == {"path": str(tmp_path / "v.mp4"), "frames": 9, "fps": 12.5, "audio": False}
  frames, fps, note = video.read_video(tmp_path / "v.mp4")
  assert len(frames) == 9 and frames[0].shape == (48, 64, 3) and note is None
  assert fps == pytest.approx(12.5, abs=0.01)
  p = video.probe(tmp_path / "v.mp4")
  assert p["fps"] == pytest.approx(12.5, abs=0.01) and not p["has_audio"]


def test_audio_is_copied_when_present(tmp_path, with_audio):
  assert video.probe(with_audio)["has_audio"]
  out = video.write_video(tmp_path / "out.mp4", _frames(9), 12.5, audio_from=with_audio)  # as long as the audio
  frames, _, _ = video.read_video(tmp_path / "out.mp4")
  assert len(frames) == 9  # no frame lost to the muxing
  out = video.write_video(tmp_path / "out.mp4", _frames(7), 12.5, audio_from=with_audio)
  assert out["audio"] and video.probe(tmp_path / "out.mp4")["has_audio"]
  frames, fps, _ = video.read_video(tmp_path / "out.mp4")
  assert len(frames) == 7 and fps == pytest.approx(12.5, abs=0.01)
  silent_src = tmp_path / "silent.mp4"
  video.write_video(silent_src, _frames(3), 10)
  out2 = video.write_video(tmp_path / "out2.mp4", _frames(3), 10, audio_from=silent_src)
  assert not out2["audio"] and not video.probe(tmp_path / "out2.mp4")["has_audio"]


def test_odd_sizes_are_padded_and_frame_folders_read(tmp_path):
  odd = [f[:47, :63] for f in _frames(3)]
  video.write_video(tmp_path / "odd.mp4", odd, 10)
  frames, _, _ = video.read_video(tmp_path / "odd.mp4")
  assert frames[0].shape == (48, 64, 3) and len(frames) == 3
  from PIL import Image
  (tmp_path / "seq").mkdir()
  for i, f in enumerate(_frames(4)):
    Image.fromarray(f).save(tmp_path / "seq" / f"{i}.png")
  frames, fps, _ = video.read_video(tmp_path / "seq")
  assert len(frames) == 4 and fps == 25.0
  with pytest.raises(FileNotFoundError):
    video.read_video(tmp_path / "missing.mp4")


@pytest.mark.parametrize("name, reason", [
    ("result", "must end in .mp4"),  # ffmpeg would fail choosing a container; before, that failure was ignored
    ("adir", "is a directory"),
    ("dir.mp4", "is a directory"),
    ("a_file/x.mp4", "is not a directory"),
])
def test_bad_output_paths_raise_and_write_nothing(tmp_path, name, reason):
  (tmp_path / "adir").mkdir()
  (tmp_path / "dir.mp4").mkdir()
  (tmp_path / "a_file").write_text("not a folder")
  before = sorted(p.name for p in tmp_path.rglob("*"))
  assert video.output_problem(tmp_path / name) is not None and reason in video.output_problem(tmp_path / name)
  with pytest.raises(media.VideoWriteError, match=reason):
    video.write_video(tmp_path / name, _frames(3), 10)
  assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_unwritable_place_is_refused():
  # /proc refuses file creation even to root (permission bits alone would not stop root).
  assert "cannot write in /proc" in video.output_problem("/proc/x.mp4")
  with pytest.raises(media.VideoWriteError, match="/proc/x.mp4: cannot write in /proc"):
    video.write_video("/proc/x.mp4", _frames(3), 10)
  assert video.output_problem("/proc/new_dir/x.mp4").startswith("cannot write in /proc")


def test_ffmpeg_failure_is_an_error_and_leaves_no_file(tmp_path):
  # libx264 with yuv420p refuses odd frame sizes (video.write_video pads them; media.write_video does not), so
  # ffmpeg exits non-zero; the old writer ignored the exit status and left an empty file behind.
  odd = [f[:47, :63] for f in _frames(3)]
  with pytest.raises(media.VideoWriteError, match=r"odd.mp4: ffmpeg failed \(exit status [1-9]"):
    media.write_video(tmp_path / "odd.mp4", odd, 10)
  assert not os.listdir(tmp_path)  # neither the target nor the temporary file


def test_read_back_checks_frames_and_fps(tmp_path):
  media.write_video(tmp_path / "v.mp4", _frames(5), 12.5)
  info = media.check_video(tmp_path / "v.mp4", 5, 12.5)
  assert info["frames"] == 5 and info["fps"] == pytest.approx(12.5)
  with pytest.raises(media.VideoWriteError, match="wrote 6 frames but the file reads back with 5 frames"):
    media.check_video(tmp_path / "v.mp4", 6, 12.5)
  with pytest.raises(media.VideoWriteError, match="wrote 25 fps but the file reads back at 12.5 fps"):
    media.check_video(tmp_path / "v.mp4", 5, 25)
  (tmp_path / "junk.mp4").write_bytes(b"\0" * 100)
  with pytest.raises(media.VideoWriteError, match="no decodable video"):
    media.check_video(tmp_path / "junk.mp4", 5, 12.5)
  # NTSC rates survive as the rational 30000/1001 (printed 29.97 by ffmpeg).
  media.write_video(tmp_path / "ntsc.mp4", _frames(4), 30000 / 1001)
  assert media.video_stream_info(tmp_path / "ntsc.mp4")["frames"] == 4

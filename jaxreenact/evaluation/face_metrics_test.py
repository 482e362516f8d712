"""AKD / AED / CSIM with dlib on real faces (skimage's astronaut, the sample talking-head clip)."""
import numpy as np
import pytest
from PIL import Image
from skimage import data

from jaxreenact.evaluation import assets, face_metrics


@pytest.fixture(scope="module")
def analyzer():
  try:
    return face_metrics.FaceAnalyzer()
  except assets.MissingAssetError as e:
    pytest.skip(str(e))


@pytest.fixture(scope="module")
def astronaut():
  return np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.LANCZOS))


def test_identical_frames_give_zero_akd_and_aed(analyzer, astronaut):
  a = analyzer.analyze(astronaut)
  b = analyzer.analyze(astronaut.copy())
  assert a is not None and a.landmarks.shape == (68, 2) and a.embedding.shape == (128,)
  assert face_metrics.akd(a.landmarks, b.landmarks) == 0.0
  assert face_metrics.aed(a.embedding, b.embedding) == 0.0
  assert face_metrics.csim(a.embedding, b.embedding) == pytest.approx(1.0, abs=1e-9)
  m = face_metrics.frame_face_metrics(analyzer, astronaut, astronaut, a)
  assert m == {"akd": 0.0, "aed": 0.0, "csim": pytest.approx(1.0, abs=1e-9)}


@pytest.mark.parametrize("shift", [4, 12])
def test_akd_follows_a_known_shift(analyzer, astronaut, shift):
  a = analyzer.analyze(astronaut)
  moved = np.roll(astronaut, (shift, shift), axis=(0, 1))  # face moves by (shift, shift) pixels
  b = analyzer.analyze(moved)
  np.testing.assert_allclose(np.mean(b.landmarks - a.landmarks, axis=0), [shift, shift], atol=0.25 * shift)
  assert face_metrics.akd(a.landmarks, b.landmarks) == pytest.approx(shift * np.sqrt(2), rel=0.2)
  assert face_metrics.aed(a.embedding, b.embedding) < 0.2  # same person, same photo


def test_different_people_are_far_apart(analyzer, astronaut):
  from jaxreenact.data import sample_data_dir, video_frames
  frame = video_frames(sample_data_dir().dagan, "test", 0, 256)[0]
  a, c = analyzer.analyze(astronaut), analyzer.analyze((frame * 255 + 0.5).astype(np.uint8))
  assert c is not None
  assert face_metrics.aed(a.embedding, c.embedding) > 0.6  # dlib's same-person threshold
  assert face_metrics.aed(a.embedding, c.embedding) > 5 * face_metrics.aed(a.embedding, a.embedding + 0.01)


def test_no_face_gives_none(analyzer):
  blank = np.full((128, 128, 3), 127, np.uint8)
  assert analyzer.analyze(blank) is None
  m = face_metrics.frame_face_metrics(analyzer, blank, blank, None)
  assert m == {"akd": None, "aed": None, "csim": None}
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    analyzer.analyze(np.full((8, 8, 3), 3.0, np.float32))

"""The embedded sample data: built offline from packaged media, cached, usable by every pipeline."""
import json
import time
from pathlib import Path

import numpy as np
import pytest

from jaxreenact.data import builders, media, pipelines, sample


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("sample") / "data"
  t0 = time.perf_counter()
  paths = sample.sample_data_dir(root)
  return paths, time.perf_counter() - t0


def test_sample_contents(built):
  paths, seconds = built
  assert paths.stargan_v2 == paths.dagan == paths.depth == paths.root
  assert seconds < 60, f"sample data took {seconds:.1f} s to build"
  images = builders.load_image_domains(paths.stargan_v2, "train")
  assert images.domains == ["lfw", "photo"]
  assert images.domain_ranges[0][1] == 80 and images.domain_ranges[1][1] >= 10
  assert builders.load_image_domains(paths.stargan_v2, "val").domain_ranges[0][1] == 20
  for split in ("train", "test"):
    videos = builders.load_talking_heads(paths.dagan, split)
    assert videos.identities == ["carphone_pristine"] and videos.videos[0][3] >= 30
    first = np.asarray(media.decode_rgb(videos.source[0]["image"]))
    assert first.shape == (256, 256, 3)
  summary = json.loads((Path(paths.root) / "summary.json").read_text(encoding="utf-8"))
  assert summary["detector"] == "dlib" and "<root>" in summary["image_domains"]["src"]
  assert summary["image_domains"]["num_skipped"] == 0 and summary["talking_heads"]["num_skipped"] == 0


def test_sample_feeds_every_pipeline(built):
  paths, _ = built
  b = next(pipelines.stargan_v2_pipeline(paths.stargan_v2, "train", 32, 4, 0, process_index=0, process_count=1))
  assert b["x_src"].shape == (4, 32, 32, 3) and set(b["y_src"].tolist()) <= {0, 1}
  b = next(pipelines.dagan_pipeline(paths.dagan, "train", 32, 2, 0, process_index=0, process_count=1))
  assert b["source"].shape == (2, 32, 32, 3)
  b = next(pipelines.depth_pipeline(paths.depth, "train", 32, 2, 0, process_index=0, process_count=1))
  assert b["frames"].shape == (2, 3, 32, 32, 3)


def test_cached_and_safe(built, tmp_path):
  paths, _ = built
  marker = Path(paths.root) / "COMPLETE"
  stamp = marker.stat().st_mtime_ns
  t0 = time.perf_counter()
  assert sample.sample_data_dir(paths.root) == paths
  assert time.perf_counter() - t0 < 1.0 and marker.stat().st_mtime_ns == stamp  # not rebuilt
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / "precious.txt").write_text("keep me")
  with pytest.raises(FileExistsError, match="not a sample-data folder"):
    sample.sample_data_dir(tmp_path / "mine")
  assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"

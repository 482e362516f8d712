"""grain pipelines: shapes, determinism, checkpoint/restore, class balance, pairing, sharding, frame order."""
import collections
import json
import math

import numpy as np
import pytest

from jaxreenact.data import builders, pipelines, testdata

S = 24  # generated images and frames are 24×24: no resizing, pixel tags survive exactly


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  src_i = tmp_path_factory.mktemp("img_src")
  testdata.write_image_tree(src_i, {"a": 2, "b": 5, "c": 9}, size=S)
  src_v = tmp_path_factory.mktemp("vid_src")
  testdata.write_video_tree(src_v, with_bad=False, size=S)
  out = tmp_path_factory.mktemp("tfds")
  builders.prepare_image_domains(src_i, out, progress=False)
  builders.prepare_talking_heads(src_v, out, progress=False)
  return str(out)


def _tag(x_signed):
  """Red-channel tag of eval-transformed StarGAN images (pixels in [-1, 1]) → int, per batch element."""
  return np.round((x_signed[:, S // 2, S // 2, 0] + 1.0) * 127.5).astype(int)


def _take(it, n):
  return [next(it) for _ in range(n)]


def _equal(a, b):
  return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


def _sg(data_dir, **kw):
  args = dict(split="train", img_size=S, batch_size=8, seed=0, process_index=0, process_count=1, num_threads=2)
  args.update(kw)
  return pipelines.stargan_v2_pipeline(data_dir, **args)


def test_stargan_v2_batch_layout(data_dir):
  b = next(_sg(data_dir, img_size=16))
  for k in ("x_src", "x_ref", "x_ref2"):
    assert b[k].shape == (8, 16, 16, 3) and b[k].dtype == np.float32
    assert b[k].min() >= -1.0 and b[k].max() <= 1.0
  for k in ("y_src", "y_ref"):
    assert b[k].shape == (8,) and b[k].dtype == np.int32


def test_stargan_v2_deterministic_and_resumable(data_dir):
  a = _take(_sg(data_dir), 3)
  assert _equal(a, _take(_sg(data_dir, num_threads=1), 3))  # same seed, other thread count → same batches
  assert not _equal(a, _take(_sg(data_dir, seed=1), 3))
  it = _sg(data_dir)
  _take(it, 2)
  state = it.get_state()
  json.dumps(state)  # checkpointable as JSON (Orbax stores it beside the model state)
  expected = _take(it, 3)
  fresh = _sg(data_dir)
  fresh.set_state(state)
  assert _equal(expected, _take(fresh, 3))


def test_stargan_v2_class_balance_and_labels(data_dir):
  it = _sg(data_dir, batch_size=64, augment_images=False)
  ys, yr, tags = [], [], collections.Counter()
  for b in _take(it, 12):
    assert np.array_equal(_tag(b["x_src"]) // 10, b["y_src"])  # image tag 10·domain + index matches its label
    assert np.array_equal(_tag(b["x_ref"]) // 10, b["y_ref"])
    ys.extend(b["y_src"].tolist())
    yr.extend(b["y_ref"].tolist())
    tags.update(_tag(b["x_src"]).tolist())
  n = len(ys)
  tol = 4 * math.sqrt(n / 3 * 2 / 3)
  for counts in (np.bincount(ys, minlength=3), np.bincount(yr, minlength=3)):
    assert np.all(np.abs(counts - n / 3) < tol), counts  # 2 vs 5 vs 9 images, sampled uniformly per class
  assert abs(np.mean(np.array(ys) == np.array(yr)) - 1 / 3) < 4 * math.sqrt(2 / 9 / n)  # y_trg ⟂ y_org
  assert all(tags[20 + i] > 0 for i in range(9))  # every image of domain c drawn (with replacement)


def test_stargan_v2_second_reference_is_fixed_per_image(data_dir):
  it = _sg(data_dir, batch_size=64, augment_images=False)
  pairs = {}
  for b in _take(it, 6):
    for r1, r2, y in zip(_tag(b["x_ref"]), _tag(b["x_ref2"]), b["y_ref"]):
      assert r2 // 10 == y  # same domain
      assert pairs.setdefault(r1, r2) == r2  # always the same partner for one image
  partners = list(pairs.values())
  assert len(partners) == len(set(partners))  # a permutation within each domain
  table = pipelines.second_reference_table([(0, 2), (2, 5), (7, 9)], seed=0)
  assert sorted(table[7:]) == list(range(7, 16)) and sorted(table[:2]) == [0, 1]


def test_per_process_shards_interleave_to_the_global_stream(data_dir):
  whole = _take(_sg(data_dir, batch_size=8), 2)
  p0 = _take(_sg(data_dir, batch_size=8, process_index=0, process_count=2), 2)
  p1 = _take(_sg(data_dir, batch_size=8, process_index=1, process_count=2), 2)
  for w, a, b in zip(whole, p0, p1):
    assert a["x_src"].shape[0] == 4
    for k in w:
      merged = np.empty_like(w[k])
      merged[0::2], merged[1::2] = a[k], b[k]
      np.testing.assert_array_equal(merged, w[k])
  with pytest.raises(ValueError, match="multiple of process_count"):
    _sg(data_dir, batch_size=3, process_index=0, process_count=2)


def _dg(data_dir, **kw):
  args = dict(split="train", img_size=S, batch_size=3, seed=0, process_index=0, process_count=1, num_threads=2)
  args.update(kw)
  return pipelines.dagan_pipeline(data_dir, **args)


_ID_OF_GREEN = {10: "id10001", 20: "id10001", 30: "id10002", 40: "vidéo_x"}


def _green(x01):
  return np.round(x01[:, S // 2, S // 2, 1] * 255).astype(int)


def _red(x01):
  return np.round(x01[:, S // 2, S // 2, 0] * 255).astype(int)


def _nearest_id(g):
  return _ID_OF_GREEN[min(_ID_OF_GREEN, key=lambda v: abs(v - g))]  # the mp4 video is lossy


def test_dagan_pairs_identity_epochs_and_sorted_frames(data_dir):
  it = _dg(data_dir, augment_clip=False)
  for b in _take(it, 8):
    assert b["source"].shape == (3, S, S, 3) and b["source"].dtype == np.float32
    gs, gd = _green(b["source"]), _green(b["driving"])
    assert np.all(np.abs(gs - gd) <= 3)  # same video
    assert {_nearest_id(g) for g in gs} == {"id10001", "id10002", "vidéo_x"}  # batch of 3 = one epoch of ids
    assert np.all(_red(b["source"]) <= _red(b["driving"]) + 3)  # frames sorted in time
  assert _equal(_take(_dg(data_dir), 4), _take(_dg(data_dir), 4))
  it = _dg(data_dir)
  _take(it, 3)
  state = it.get_state()
  expected = _take(it, 2)
  fresh = _dg(data_dir)
  fresh.set_state(state)
  assert _equal(expected, _take(fresh, 2))


def test_dagan_augmentation_flips_time_and_stays_in_unit_range(data_dir):
  later_first = 0
  for b in _take(_dg(data_dir, batch_size=6), 10):
    for k in ("source", "driving"):
      assert b[k].min() >= 0.0 and b[k].max() <= 1.0
    frame_folders = np.abs(_green(b["source"]) - 20) > 6  # skip the lossy mp4
    later_first += int(np.sum((_red(b["source"]) > _red(b["driving"]) + 6) & frame_folders))
  assert later_first > 0  # time flip happened


def _dp(data_dir, **kw):
  args = dict(split="train", img_size=S, batch_size=25, seed=0, process_index=0, process_count=1, num_threads=2)
  args.update(kw)
  return pipelines.depth_pipeline(data_dir, **args)


def test_depth_triplets_cover_every_centre_once_per_epoch(data_dir):
  b = next(_dp(data_dir, augment_frames=False))  # 25 centres in total: (12−2)+(9−2)+(7−2)+(5−2)
  assert b["frames"].shape == (25, 3, S, S, 3)
  seen = set()
  for f in b["frames"]:
    greens = np.round(f[:, S // 2, S // 2, 1] * 255).astype(int)
    reds = np.round(f[:, S // 2, S // 2, 0] * 255).astype(int)
    assert np.ptp(greens) <= 3  # one video
    if greens[0] in (10, 40):  # PNG frame folders (lossless): exact consecutive indices
      assert reds[1] - reds[0] == 1 and reds[2] - reds[1] == 1
    seen.add(f[1].tobytes())  # centre frames are all distinct images
  assert len(seen) == 25
  np.testing.assert_array_equal(b["frames"], b["frames_aug"])


def test_depth_stride_and_augmentation(data_dir):
  b = next(_dp(data_dir, augment_frames=False, stride=2, batch_size=4))
  folders = [f for f in b["frames"] if np.round(f[0, S // 2, S // 2, 1] * 255) in (10, 40)]  # PNG folders
  for f in folders:
    reds = np.round(f[:, S // 2, S // 2, 0] * 255).astype(int)
    assert reds[1] - reds[0] == 2 and reds[2] - reds[1] == 2
  b = next(_dp(data_dir, batch_size=40))
  jittered = [not np.array_equal(f, a) for f, a in zip(b["frames"], b["frames_aug"])]
  assert 0 < sum(jittered) < 40
  with pytest.raises(ValueError, match="frames"):
    _dp(data_dir, stride=7)


def test_missing_dataset_and_split_errors(tmp_path, data_dir):
  with pytest.raises(FileNotFoundError, match="prepare_data images"):
    _sg(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="prepare_data videos"):
    _dg(str(tmp_path))
  with pytest.raises(ValueError, match="no split 'val'"):
    _sg(data_dir, split="val")


def test_video_frames_for_evaluation(data_dir):
  v = pipelines.video_frames(data_dir, "test", "id10003#ddd", 16)
  assert v.shape == (6, 16, 16, 3) and v.dtype == np.float32
  with pytest.raises(KeyError, match="no video"):
    pipelines.video_frames(data_dir, "test", "nope", 16)


def test_multiprocess_workers_give_the_same_stream(data_dir):
  a = _take(_sg(data_dir, batch_size=4), 2)
  b = _take(_sg(data_dir, batch_size=4, num_workers=1), 2)
  assert _equal(a, b)

"""The StarGAN v2 and DaGAN protocols on tiny models and the embedded sample data."""
import os

import numpy as np
import pytest

from jaxreenact.evaluation import face_metrics, lpips, protocols
from jaxreenact.inference import testing

# one xdist worker runs this module, so its module-scoped fixtures (shared runs/models) are built once
pytestmark = pytest.mark.xdist_group("protocols_test")


@pytest.fixture(scope="module")
def clip():
  from jaxreenact.data import sample_data_dir, video_frames
  return video_frames(sample_data_dir().dagan, "test", 0, 128)[:3]  # (3, 128, 128, 3) in [0, 1]


def test_perfect_reconstruction_gives_ideal_metrics(clip):
  rows = protocols.reconstruction_metrics(clip[0], clip, clip.copy(), lpips_metric=lpips.default_lpips(),
                                          analyzer=face_metrics.default_analyzer())
  assert len(rows) == 3
  for r in rows:
    assert r["l1"] == 0.0 and np.isinf(r["psnr"]) and r["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert r["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert r["akd"] == 0.0 and r["aed"] == 0.0
    assert r["csim"] > 0.9  # same person as the source frame
  s = protocols.summarize(rows)
  assert s["frames"] == 3 and s["l1"] == 0.0 and s["psnr"] is None and s["psnr_infinite"] == 3
  noisy = np.clip(clip + np.random.default_rng(0).normal(0, 0.05, clip.shape), 0, 1).astype(np.float32)
  rows = protocols.reconstruction_metrics(clip[0], clip, noisy, metrics=("l1", "psnr", "ssim"))
  s = protocols.summarize(rows)
  assert 0 < s["l1"] < 0.06 and 20 < s["psnr"] < 35 and 0 < s["ssim"] < 1 and "psnr_infinite" not in s
  assert set(rows[0]) == {"l1", "psnr", "ssim"}
  with pytest.raises(ValueError, match="unknown metrics"):
    protocols.reconstruction_metrics(clip[0], clip, clip, metrics=("fid",))


def test_summarize_counts_missing_faces():
  s = protocols.summarize([{"akd": 1.0}, {"akd": None}, {"akd": 3.0}])
  assert s == {"frames": 3, "akd": 2.0, "akd_missing": 1}


def test_dagan_protocol_pairs_and_groups():
  model = testing.tiny_reenactor()
  frames = np.random.default_rng(0).random((3, 64, 64, 3)).astype(np.float32)
  seen = []
  res = protocols.evaluate_dagan(model, [("a", frames, [(0, 1), (2, 1), (0, 2)]), ("b", frames[:2], None)],
                                 metrics=("l1", "psnr"), on_clip=lambda n, s, d, p: seen.append((n, len(d))),
                                 progress=False)
  assert [(r["clip"], r["source_frame"], r["driving_frame"]) for r in res["frames"]] == [
      ("a", 0, 1), ("a", 0, 2), ("a", 2, 1), ("b", 0, 0), ("b", 0, 1)]
  assert seen == [("a_src0", 2), ("a_src2", 1), ("b", 2)]
  assert res["summary"]["frames"] == 5 and res["summary"]["clips"] == 2 and res["summary"]["l1"] > 0
  assert [c["frames"] for c in res["per_clip"]] == [3, 2]
  with pytest.raises(ValueError, match="outside the clip"):
    protocols.evaluate_dagan(model, [("a", frames, [(0, 5)])], metrics=("l1",), progress=False)


def test_stargan_protocol_writes_outputs_and_scores(tmp_path):
  torch = pytest.importorskip("torch")
  from jaxreenact.evaluation import fid
  sampler = testing.tiny_sampler()
  rng = np.random.default_rng(0)
  val = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
  train = rng.uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)
  data = protocols.StarGANEvalData(["a", "b"], val, np.array([0, 0, 1, 1]), train, np.array([0, 0, 0, 1, 1, 1]))
  n = torch.get_num_threads()
  torch.set_num_threads(1)
  try:
    res = protocols.evaluate_stargan_v2(sampler, data, out_dir=str(tmp_path), num_outs=3, batch_size=2,
                                        fid_extractors={"standard": fid.StandardInception(progress=False)},
                                        lpips_metric=lpips.default_lpips(), progress=False)
  finally:
    torch.set_num_threads(n)
  for mode in ("latent", "reference"):
    for task in ("b2a", "a2b"):
      files = sorted(os.listdir(tmp_path / mode / task))
      assert files == [f"{i:04d}_{j:02d}.png" for i in (1, 2) for j in (1, 2, 3)]  # official naming
      assert res[f"LPIPS_{mode}/{task}"] > 1e-4  # styles differ -> outputs differ
      assert np.isfinite(res[f"FID_{mode}/{task}"]) and res[f"FID_{mode}/{task}"] > 0
    assert res[f"FID_{mode}/mean"] == pytest.approx(np.mean([res[f"FID_{mode}/b2a"], res[f"FID_{mode}/a2b"]]))
  rows = protocols.stargan_rows(res)
  assert {r["metric"] for r in rows} == {"FID", "LPIPS"} and len(rows) == 12

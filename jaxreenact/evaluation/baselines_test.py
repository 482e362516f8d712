"""Baselines run through the real protocols; bootstrap intervals and paired verdicts."""
import numpy as np
import pytest

from jaxreenact.evaluation import baselines, protocols


def _clip(t=6, s=32, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.uniform(0.2, 0.8, (s, s, 3)).astype(np.float32)
  # frames drift away from the first one, so "no motion" is measurably wrong
  return np.stack([np.clip(base + 0.04 * i * rng.standard_normal((s, s, 3)), 0, 1) for i in range(t)]).astype(
      np.float32)


class _ReturnsSource:
  """A 'model' that happens to output its source frame: must score exactly like the copy-source baseline."""

  def run(self, source, driving, opts=None, progress=False, initial_index=0):
    return {"prediction": np.stack([source] * len(driving))}


class _Perfect:
  """A 'model' that outputs the driving frame itself (what reconstruction asks for)."""

  def run(self, source, driving, opts=None, progress=False, initial_index=0):
    return {"prediction": np.asarray(driving).copy()}


METRICS = ("l1", "psnr", "ssim")


def _frames(model, clip):
  res = protocols.evaluate_dagan(model, [("clip", clip, None)], metrics=METRICS, progress=False)
  return {m: [r[m] for r in res["frames"]] for m in METRICS}


def test_a_model_returning_the_source_scores_exactly_the_copy_source_baseline():
  clip = _clip()
  copy = _frames(baselines.CopySource(), clip)
  same = _frames(_ReturnsSource(), clip)
  assert copy == same
  assert copy["l1"][0] == 0.0 and all(v > 0 for v in copy["l1"][1:])  # frame 0 is the source itself
  c = baselines.paired_comparison(same["l1"], copy["l1"], higher_is_better=False)
  assert c["diff"] == 0.0 and c["verdict"] == "no clear difference"


def test_a_perfect_model_scores_zero_l1_and_beats_copy_source():
  clip = _clip()
  perfect, copy = _frames(_Perfect(), clip), _frames(baselines.CopySource(), clip)
  assert perfect["l1"] == [0.0] * len(clip)
  assert all(np.isinf(v) for v in perfect["psnr"])
  np.testing.assert_allclose(perfect["ssim"], 1.0, atol=1e-6)
  assert baselines.paired_comparison(perfect["l1"], copy["l1"], higher_is_better=False)["verdict"] == "better"
  assert baselines.paired_comparison(copy["ssim"], perfect["ssim"], higher_is_better=True)["verdict"] == "worse"
  # identical frames (infinite PSNR) are left out of the pairing rather than making the interval infinite
  assert baselines.paired_comparison(perfect["psnr"], copy["psnr"], higher_is_better=True)["n"] == 0


def test_no_translation_outputs_its_sources_and_has_zero_diversity():
  class _Metric:  # LPIPS stand-in: mean absolute difference per image (zero iff identical)
    def __call__(self, x, y):
      return np.abs(np.asarray(x) - np.asarray(y)).mean(axis=(1, 2, 3))

  rng = np.random.default_rng(1)
  x = rng.uniform(-1, 1, (6, 8, 8, 3)).astype(np.float32)
  labels = np.array([0, 0, 0, 1, 1, 1], np.int32)
  data = protocols.StarGANEvalData(["a", "b"], x, labels, x, labels)
  details = {}
  import tempfile
  with tempfile.TemporaryDirectory() as tmp:
    res = protocols.evaluate_stargan_v2(baselines.NoTranslation(4, 8), data, out_dir=tmp, num_outs=3,
                                        lpips_metric=_Metric(), progress=False, details=details)
  assert res["LPIPS_latent/a2b"] == 0.0 and res["LPIPS_reference/b2a"] == 0.0
  np.testing.assert_array_equal(details["latent/a2b"]["lpips_per_source"], np.zeros(3))


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_more_items():
  rng = np.random.default_rng(0)
  small = baselines.bootstrap_ci(rng.normal(1.0, 1.0, 20), n_boot=500)
  large = baselines.bootstrap_ci(rng.normal(1.0, 1.0, 2000), n_boot=500)
  for ci in (small, large):
    assert ci["lo"] < ci["value"] < ci["hi"]
  assert (large["hi"] - large["lo"]) < (small["hi"] - small["lo"]) / 3
  assert baselines.bootstrap_ci([2.0, 2.0, 2.0])["lo"] == 2.0
  assert baselines.bootstrap_ci([None, float("nan")])["n"] == 0


@pytest.mark.parametrize("lo,hi,higher,want", [(0.1, 0.3, True, "better"), (0.1, 0.3, False, "worse"),
                                               (-0.3, -0.1, False, "better"), (-0.1, 0.2, True,
                                                                               "no clear difference"),
                                               (None, None, True, "not measurable")])
def test_verdict(lo, hi, higher, want):
  assert baselines.verdict(lo, hi, higher) == want


def test_paired_comparison_uses_the_pairing():
  # Two systems with large frame-to-frame variation but a constant small gap: unpaired intervals overlap, the
  # paired difference is clearly negative (lower is better -> "better").
  rng = np.random.default_rng(0)
  base = rng.uniform(0, 10, 50)
  model = base - 0.1
  c = baselines.paired_comparison(model.tolist(), base.tolist(), higher_is_better=False)
  assert c["verdict"] == "better" and c["hi"] < 0
  ci_m, ci_b = baselines.bootstrap_ci(model), baselines.bootstrap_ci(base)
  assert ci_m["hi"] > ci_b["lo"]  # unpaired intervals overlap


def test_compare_boots_from_shared_resamples():
  b = np.linspace(10, 20, 100)
  c = baselines.compare_boots(b - 1.0, b, 14.0, 15.0, higher_is_better=False)
  assert c["verdict"] == "better" and c["diff"] == -1.0

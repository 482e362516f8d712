"""L1 / PSNR / SSIM against scikit-image on real and random images."""
import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jaxreenact.evaluation import image_metrics


def _pair(seed=0, size=48):
  rng = np.random.default_rng(seed)
  a = data.astronaut()[100:100 + size, 180:180 + size].astype(np.float32) / 255.0
  b = np.clip(a + rng.normal(0, 0.08, a.shape).astype(np.float32), 0, 1)
  return a, b


def test_psnr_matches_skimage_and_identical_is_inf():
  a, b = _pair()
  got = float(image_metrics.psnr(a, b))
  want = peak_signal_noise_ratio(a.astype(np.float64), b.astype(np.float64), data_range=1.0)
  assert got == pytest.approx(want, abs=1e-4)
  assert np.isinf(float(image_metrics.psnr(a, a)))
  batch = image_metrics.psnr(np.stack([a, a]), np.stack([b, a]))
  assert batch.shape == (2,) and np.isfinite(batch[0]) and np.isinf(batch[1])


@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_matches_skimage(gaussian):
  a, b = _pair(1)
  kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if gaussian else {}
  want = structural_similarity(a.astype(np.float64), b.astype(np.float64), channel_axis=-1, data_range=1.0, **kw)
  got = float(image_metrics.ssim(a, b, gaussian=gaussian))
  assert got == pytest.approx(want, abs=2e-5)
  assert 0.1 < got < 0.99  # a real, non-trivial case
  assert float(image_metrics.ssim(a, a, gaussian=gaussian)) == pytest.approx(1.0, abs=1e-5)


def test_ssim_batch_and_rectangular_random():
  rng = np.random.default_rng(3)
  a = rng.random((3, 20, 33, 3), dtype=np.float32)
  b = rng.random((3, 20, 33, 3), dtype=np.float32)
  got = np.asarray(image_metrics.ssim(a, b))
  want = [structural_similarity(a[i].astype(np.float64), b[i].astype(np.float64), channel_axis=-1, data_range=1.0)
          for i in range(3)]
  np.testing.assert_allclose(got, want, atol=2e-5)


def test_l1_and_shape_errors():
  a, b = _pair(2)
  assert float(image_metrics.l1(a, b)) == pytest.approx(float(np.mean(np.abs(a - b))), rel=1e-6)
  assert float(image_metrics.l1(a, a)) == 0.0
  with pytest.raises(ValueError, match="shapes differ"):
    image_metrics.l1(a, b[:-1])
  with pytest.raises(ValueError, match="larger than the images"):
    image_metrics.ssim(a[:5, :5], b[:5, :5])

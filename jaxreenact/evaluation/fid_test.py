"""Fréchet distance vs an eigenvalue reference, the packaged FID Inception on real images, the official-variant trunk."""
import numpy as np
import pytest

from jaxreenact.evaluation import assets, fid


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
  """Inception on a shared 2-core machine runs ~5× faster on one intra-op thread than on two contending ones."""
  torch = pytest.importorskip("torch")
  n = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(n)


def test_float_images_without_value_range_are_refused():
  with pytest.raises(ValueError, match="value_range"):
    fid._Extractor(progress=False).features(np.zeros((1, 8, 8, 3), np.float32))


def _reference_fd(mu1, s1, mu2, s2):
  # Tr(sqrt(S1 S2)) = Σ sqrt(eigenvalues of S1 S2) (real and >= 0 for PSD S1, S2): independent of sqrtm.
  ev = np.linalg.eigvals(s1 @ s2)
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(ev.real, 0, None))))


def test_frechet_distance_matches_reference_and_self_is_zero():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(400, 16))
  b = rng.normal(loc=0.3, scale=1.5, size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5
  sa, sb = fid.feature_statistics(a), fid.feature_statistics(b)
  got = fid.frechet_distance(*sa, *sb)
  assert got == pytest.approx(_reference_fd(*sa, *sb), rel=1e-6)
  from scipy import linalg
  covmean = linalg.sqrtm(sa[1] @ sb[1])  # the pytorch-fid / StarGAN v2 formula, literally
  scipy_fd = np.sum((sa[0] - sb[0]) ** 2) + np.trace(sa[1] + sb[1] - 2 * np.real(covmean))
  assert got == pytest.approx(float(scipy_fd), rel=1e-6)
  assert got > 1.0
  assert fid.fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)
  # 1-D closed form: (m1 - m2)² + (σ1 - σ2)²
  assert fid.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == \
      pytest.approx(4.0 + 1.0)


def test_low_rank_path_matches_statistics_path():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(12, 40))  # fewer samples than dimensions: singular covariances
  b = rng.normal(loc=0.2, size=(9, 40)) * 1.3
  sa, sb = fid.feature_statistics(a), fid.feature_statistics(b)
  want = _reference_fd(*sa, *sb)
  assert fid.fid_from_features(a, b) == pytest.approx(want, rel=1e-6)
  assert fid.frechet_distance(*sa, *sb) == pytest.approx(want, rel=1e-6)
  assert fid.fid_from_features(a, a) == pytest.approx(0.0, abs=1e-9)


def test_statistics_validation():
  with pytest.raises(ValueError, match="at least 2"):
    fid.feature_statistics(np.zeros((1, 4)))
  with pytest.raises(ValueError, match="disagree"):
    fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))



def test_nv_bilinear_resize_halving_picks_even_pixels():
  torch = pytest.importorskip("torch")
  x = torch.arange(2 * 3 * 8 * 6, dtype=torch.float32).reshape(2, 3, 8, 6)
  # TF1 bilinear (align_corners=False, no half-pixel centres): output pixel i samples input i·2 exactly.
  np.testing.assert_allclose(fid.nv_bilinear_resize(x, (4, 3)).numpy(), x[:, :, ::2, ::2].numpy(), atol=1e-4)
  np.testing.assert_allclose(fid.nv_bilinear_resize(x, (8, 6)).numpy(), x.numpy(), atol=1e-4)


@pytest.fixture(scope="module")
def standard():
  pytest.importorskip("torch")
  try:
    return fid.StandardInception(batch_size=8, progress=False)
  except assets.MissingAssetError as e:
    pytest.skip(str(e))


def test_standard_fid_self_zero_and_shift_positive(standard):
  from skimage import data
  from PIL import Image
  photo = data.astronaut()
  ims = np.stack([np.asarray(Image.fromarray(photo[y:y + 256, x:x + 256]).resize((48, 48), Image.BILINEAR))
                  for y, x in ((0, 0), (0, 128), (128, 0), (128, 128), (256, 0), (256, 256), (64, 192), (200, 100))])
  f = standard.features(ims)
  assert f.shape == (8, 2048) and np.isfinite(f).all() and f.min() >= 0  # pool3 features follow a ReLU
  assert fid.fid_from_features(f, f) == pytest.approx(0.0, abs=1e-3)
  brighter = np.clip(ims.astype(np.int32) + 70, 0, 255).astype(np.uint8)
  shifted = fid.fid_from_features(f, standard.features(brighter))
  assert shifted > 1.0
  # float input in [-1, 1] is quantised like a saved PNG: same features as the uint8 images
  np.testing.assert_allclose(standard.features(ims.astype(np.float32) / 127.5 - 1.0, (-1, 1)), f, rtol=1e-4,
                             atol=1e-5)


def test_official_variant_needs_user_weights():
  pytest.importorskip("torch")
  with pytest.raises(assets.MissingAssetError, match="--inception_weights"):
    fid.OfficialStarGANInception(None)


def _seeded_trunk_state(model, torch):
  g = torch.Generator().manual_seed(0)
  sd = model.state_dict()
  new = {}
  for k in sorted(sd):  # key-sorted fill: independent of module definition order
    v = sd[k]
    if not v.dtype.is_floating_point:
      continue
    if k.endswith("running_var"):
      new[k] = torch.rand(v.shape, generator=g) + 0.5
    elif k.endswith("bn.weight"):
      new[k] = 1 + 0.1 * torch.randn(v.shape, generator=g)
    elif v.ndim > 1:
      new[k] = torch.randn(v.shape, generator=g) * (1.0 / np.sqrt(np.prod(v.shape[1:])))
    else:
      new[k] = 0.1 * torch.randn(v.shape, generator=g)
  return new


def test_inception_trunk_has_torchvision_layout_and_output(tmp_path):
  """Golden values computed once with torchvision 0.28's inception_v3 holding the same seeded weights."""
  torch = pytest.importorskip("torch")
  from jaxreenact.evaluation import inception_v3
  model = inception_v3.InceptionV3Features()
  sd = model.state_dict()
  assert len(sd) == 564
  assert sum(p.numel() for p in model.parameters()) == 21_785_568
  new = _seeded_trunk_state(model, torch)
  path = tmp_path / "inception.pth"
  torch.save({**sd, **new, "fc.weight": torch.zeros(1000, 2048), "AuxLogits.fc.bias": torch.zeros(1000)}, path)
  loaded = inception_v3.load_torchvision_weights(path)
  x = torch.linspace(-2, 2, 3 * 299 * 299).reshape(1, 3, 299, 299)
  x = torch.sin(7 * x) + 0.3 * torch.cos(x.transpose(2, 3) * 13)
  with torch.no_grad():
    f = loaded(x)[0].numpy().astype(np.float64)
  assert f.sum() == pytest.approx(159.57165836211044, rel=1e-4)
  assert (f ** 2).sum() == pytest.approx(37.26625182973349, rel=1e-4)
  assert int(f.argmax()) == 1105 and int((f > 0).sum()) == 1388
  np.testing.assert_allclose(f[[0, 3, 100, 2047]], [0.14199011, 0.02197937, 0.10391575, 0.30820239], rtol=1e-4)
  bad = tmp_path / "bad.pth"
  torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, bad)
  with pytest.raises(ValueError, match="missing keys"):
    inception_v3.load_torchvision_weights(bad)

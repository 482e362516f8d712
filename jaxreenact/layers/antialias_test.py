"""anti_alias_downsample vs FOMM's AntiAliasInterpolation2d (re-derived here in torch)."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from jaxreenact.layers.antialias import anti_alias_downsample, gaussian_kernel
from jaxreenact.testing import nchw_to_nhwc, nhwc_to_nchw

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_weight(channels, scale):
  """FOMM's buffer, built the way the official module builds it (torch float32 ops)."""
  sigma = (1 / scale - 1) / 2
  size = 2 * round(sigma * 4) + 1
  kernel = 1
  grids = torch.meshgrid([torch.arange(size, dtype=torch.float32)] * 2, indexing="ij")
  for mgrid in grids:
    kernel = kernel * torch.exp(-(mgrid - (size - 1) / 2) ** 2 / (2 * sigma ** 2))
  kernel = kernel / torch.sum(kernel)
  return kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1), size


@pytest.mark.parametrize("scale,hw", [(0.25, (64, 64)), (0.5, (33, 20)), (0.125, (40, 48)), (1 / 3, (31, 29))])
def test_matches_fomm(scale, hw):
  c = 4
  weight, size = _torch_weight(c, scale)
  ours = gaussian_kernel(c, scale)
  assert ours.shape == (c, 1, size, size) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, weight.numpy(), rtol=1e-6, atol=1e-9)
  ka = size // 2
  kb = ka - 1 if size % 2 == 0 else ka
  x = np.random.default_rng(0).standard_normal((2,) + hw + (c,)).astype(np.float32)
  step = int(1 / scale)
  ref = F.conv2d(F.pad(torch.tensor(nhwc_to_nchw(x)), (ka, kb, ka, kb)), weight, groups=c)[:, :, ::step, ::step]
  out = jax.jit(anti_alias_downsample, static_argnums=1)(jnp.asarray(x), scale)
  assert out.shape == nchw_to_nhwc(ref).shape
  np.testing.assert_allclose(np.asarray(out), nchw_to_nhwc(ref), atol=1e-5)


def test_kp_detector_geometry_and_identity():
  w = gaussian_kernel(4, 0.25)
  assert w.shape == (4, 1, 13, 13)  # docs/facts.md §2: sigma 1.5, kernel 13, pad 6
  np.testing.assert_allclose(w.sum(axis=(2, 3)), 1.0, rtol=1e-6)
  x = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
  assert anti_alias_downsample(x, 1.0) is x
  with pytest.raises(ValueError, match="scale"):
    gaussian_kernel(3, 1.5)

"""grid_sample and make_coordinate_grid vs torch (values and gradients, all padding modes)."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from jaxreenact.layers.warp import grid_sample, make_coordinate_grid
from jaxreenact.testing import nchw_to_nhwc, nhwc_to_nchw

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _inputs(seed=0, b=2, h=5, w=7, c=3, ho=6, wo=4):
  rng = np.random.default_rng(seed)
  img = rng.standard_normal((b, h, w, c)).astype(np.float32)
  grid = rng.uniform(-2.6, 2.6, (b, ho, wo, 2)).astype(np.float32)  # many points far outside [-1, 1]
  # Exact special points: the borders, pixel centres and integer positions hit the kink conventions.
  specials = np.array([-1.0, 1.0, 0.0, -3.0, 3.0, 1 - 1 / w, -1 + 1 / w, -1 - 1 / w, 1 + 1 / w, 2 / (w - 1) - 1],
                      np.float32)
  grid[0, 0, :, 0] = specials[:wo]
  grid[0, 1, :, 1] = specials[:wo]
  grid[1, 0, :, :] = specials[wo:wo + 4][:, None]
  grid[1, 1, 0, :] = (-1.0, 1.0)
  grid[1, 1, 1, :] = (1.0, -1.0)
  return img, grid


def _torch(img, grid, mode, ac, cot):
  ti = torch.tensor(nhwc_to_nchw(img), requires_grad=True)
  tg = torch.tensor(grid, requires_grad=True)
  out = F.grid_sample(ti, tg, mode="bilinear", padding_mode=mode, align_corners=ac)
  (out * torch.tensor(nhwc_to_nchw(cot))).sum().backward()
  return nchw_to_nhwc(out), nchw_to_nhwc(ti.grad), tg.grad.numpy()


@pytest.mark.parametrize("mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("ac", [False, True])
def test_grid_sample_value_and_grads_match_torch(mode, ac):
  img, grid = _inputs()
  cot = np.random.default_rng(1).standard_normal((2, 6, 4, 3)).astype(np.float32)
  ref, ref_gi, ref_gg = _torch(img, grid, mode, ac, cot)
  f = jax.jit(lambda i, g: grid_sample(i, g, padding_mode=mode, align_corners=ac))
  out = f(img, grid)
  np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5)
  gi, gg = jax.grad(lambda i, g: jnp.sum(f(i, g) * cot), argnums=(0, 1))(jnp.asarray(img), jnp.asarray(grid))
  np.testing.assert_allclose(np.asarray(gi), ref_gi, atol=1e-5)
  np.testing.assert_allclose(np.asarray(gg), ref_gg, atol=1e-4)


@pytest.mark.parametrize("mode", ["zeros", "border", "reflection"])
def test_grid_sample_single_pixel_axis(mode):
  # size 1 along an axis: reflection with align_corners=True folds everything onto 0 in torch.
  rng = np.random.default_rng(3)
  img = rng.standard_normal((1, 1, 4, 2)).astype(np.float32)
  grid = rng.uniform(-2, 2, (1, 3, 3, 2)).astype(np.float32)
  for ac in (False, True):
    ref, _, ref_gg = _torch(img, grid, mode, ac, np.ones((1, 3, 3, 2), np.float32))
    out = grid_sample(jnp.asarray(img), jnp.asarray(grid), mode, ac)
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5)
    gg = jax.grad(lambda g: jnp.sum(grid_sample(jnp.asarray(img), g, mode, ac)))(jnp.asarray(grid))
    np.testing.assert_allclose(np.asarray(gg), ref_gg, atol=1e-4)


def test_identity_grid_reproduces_image_and_larger_batch():
  rng = np.random.default_rng(4)
  img = rng.standard_normal((3, 16, 12, 5)).astype(np.float32)
  grid = np.broadcast_to(np.asarray(make_coordinate_grid(16, 12)), (3, 16, 12, 2))
  out = grid_sample(jnp.asarray(img), jnp.asarray(grid), align_corners=True)
  np.testing.assert_allclose(np.asarray(out), img, atol=1e-5)
  # with torch's default align_corners=False the FOMM grid is a slight zoom; still matches torch.
  ref = F.grid_sample(torch.tensor(nhwc_to_nchw(img)), torch.tensor(np.ascontiguousarray(grid)), align_corners=False)
  np.testing.assert_allclose(np.asarray(grid_sample(jnp.asarray(img), jnp.asarray(grid))), nchw_to_nhwc(ref), atol=1e-5)


def test_make_coordinate_grid_matches_fomm():
  h, w = 5, 7
  x = torch.arange(w).float()
  y = torch.arange(h).float()
  x = 2 * (x / (w - 1)) - 1
  y = 2 * (y / (h - 1)) - 1
  ref = torch.cat([x.view(1, -1).repeat(h, 1)[..., None], y.view(-1, 1).repeat(1, w)[..., None]], 2)
  grid = make_coordinate_grid(h, w, jnp.float32)
  assert grid.shape == (h, w, 2) and grid.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(grid), ref.numpy())


def test_grid_sample_rejects_bad_inputs():
  with pytest.raises(ValueError, match="padding_mode"):
    grid_sample(jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 2)), padding_mode="wrap")
  with pytest.raises(ValueError, match="grid must be"):
    grid_sample(jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 3)))

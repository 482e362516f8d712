"""FAN (StarGAN v2 wing.py) in Flax: sizes, names, eval-mode BatchNorm, jit, the mask recipe (no torch needed)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.checkpoint import fan_convert
from jaxreenact.models.stargan_v2.fan import FAN, coord_channels, preprocess

N_PARAMS = 6_333_603
N_BN_BUFFERS = 15_031  # torch: running_mean + running_var + num_batches_tracked of the 55 BatchNorms
N_BN = 55


def _count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


@pytest.fixture(scope="module")
def small_variables():
  """Random FAN variables with the structure ``FAN().init`` creates (abstractly: compiling init costs ~20 s on CPU)."""
  shapes = jax.eval_shape(FAN().init, jax.random.key(0), jnp.zeros((1, 64, 64, 3), jnp.float32))
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = path[-1].key
    if name == "kernel":
      return (rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(np.float32)
    if name == "var":
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    base = 1.0 if name == "scale" else 0.0
    return (base + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def test_param_count_and_torch_names():
  shapes = jax.eval_shape(FAN().init, jax.random.key(0), jnp.zeros((1, 256, 256, 3), jnp.float32))
  assert set(shapes) == {"params", "batch_stats"}
  assert _count(shapes["params"]) == N_PARAMS
  assert _count(shapes["batch_stats"]) == N_BN_BUFFERS - N_BN
  # every official torch key has exactly one flax leaf of the transposed shape, and nothing else exists
  flat = {(col, *(k.key for k in path)): leaf.shape
          for col in shapes for path, leaf in jax.tree_util.tree_leaves_with_path(shapes[col])}
  table = fan_convert.fan_torch_shapes()
  assert len(table) == 336
  expected = {}
  for key, shape in table.items():
    if key.endswith("num_batches_tracked"):
      continue
    col, path = fan_convert.flax_path(key, len(shape))
    expected[(col, *path)] = (shape[2], shape[3], shape[1], shape[0]) if len(shape) == 4 else shape
  assert flat == expected
  assert sum(np.prod(s) for s in table.values()) == N_PARAMS + N_BN_BUFFERS


def test_forward_shapes_coord_channels_and_eval_batchnorm(small_variables):
  fan = FAN()
  x = jax.random.uniform(jax.random.key(1), (2, 64, 64, 3))
  fwd = jax.jit(fan.apply)
  outputs, boundaries = fwd(small_variables, x)
  assert len(outputs) == 1 and len(boundaries) == 1
  chex.assert_shape(outputs[0], (2, 16, 16, 99))
  chex.assert_tree_all_finite(outputs)
  # the hourglass CoordConv's last two channels: column coordinate and normalised radius
  i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
  rows, cols = i / 15 * 2 - 1, j / 15 * 2 - 1
  radius = np.sqrt(rows ** 2 + cols ** 2) / np.sqrt(2)
  want = np.broadcast_to(np.stack([cols, radius], -1), (2, 16, 16, 2))
  np.testing.assert_allclose(np.asarray(boundaries[0]), want, atol=1e-6)
  # eval-mode BatchNorm: a sample's output does not depend on the rest of the batch ...
  other = jnp.concatenate([x[:1], jnp.zeros_like(x[:1])])
  alone, _ = fwd(small_variables, other)
  np.testing.assert_allclose(np.asarray(alone[0][:1]), np.asarray(outputs[0][:1]), atol=1e-5)
  # ... and the running statistics in `batch_stats` are what it normalises with
  shifted = jax.tree.map(lambda a: a, small_variables)
  shifted["batch_stats"]["bn_end0"]["mean"] = shifted["batch_stats"]["bn_end0"]["mean"] + 0.5
  moved, _ = fwd(shifted, x)
  assert np.abs(np.asarray(moved[0]) - np.asarray(outputs[0])).max() > 1e-3


def test_get_heatmap_jit_shapes(small_variables):
  fan = FAN()

  @jax.jit
  def both(variables, x):
    masks = fan.apply(variables, x, method="get_heatmap")
    raw = fan.apply(variables, x, method="get_heatmap", b_preprocess=False)
    return masks, raw

  x = jax.random.uniform(jax.random.key(2), (2, 40, 48, 3), minval=-1.0, maxval=1.0)
  masks, raw = both(small_variables, x)
  assert isinstance(masks, tuple) and len(masks) == 2
  for m in masks:
    chex.assert_shape(m, (2, 256, 256, 1))
    m = np.asarray(m)
    assert np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0
  chex.assert_shape(raw, (2, 64, 64, 98))


def test_invalid_inputs_raise():
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="num_modules"):
    jax.eval_shape(FAN(num_modules=2).init, key, jnp.zeros((1, 256, 256, 3)))
  with pytest.raises(ValueError, match="multiples of 64"):
    jax.eval_shape(FAN().init, key, jnp.zeros((1, 100, 100, 3)))
  with pytest.raises(ValueError, match="multiples of 64"):
    jax.eval_shape(FAN().init, key, jnp.zeros((1, 256, 256, 4)))
  with pytest.raises(ValueError, match="landmark channels"):
    preprocess(jnp.zeros((1, 256, 256, 10)))


def test_coord_channels_values():
  c = coord_channels(256, 256, with_r=True)
  assert c.shape == (256, 256, 3) and c.dtype == np.float32
  np.testing.assert_array_equal(c[0, 0], [-1, -1, 1])
  np.testing.assert_array_equal(c[255, 0], [1, -1, 1])
  np.testing.assert_allclose(c[:, 7, 0], np.linspace(-1, 1, 256), atol=1e-6)  # rows vary along H
  assert c[..., 2].max() == 1.0
  assert coord_channels(64, 64, with_r=False).shape == (64, 64, 2)


def _blank() -> np.ndarray:
  return np.zeros((1, 256, 256, 98), np.float32)


def _masks(h: np.ndarray):
  m, m2 = jax.jit(preprocess)(jnp.asarray(h))
  return np.asarray(m)[0, ..., 0], np.asarray(m2)[0, ..., 0]


def test_preprocess_recipe_by_hand():
  m, m2 = _masks(_blank())
  assert not m.any() and not m2.any()  # all-zero heatmaps: (0 - 0) / (0 + eps) = 0

  h = _blank()
  h[0, 100, 50, 10] = 0.8  # chin (8:25): no shift, cubed after min-max normalisation
  h[0, 101, 50, 10] = 0.4
  h[0, 102, 50, 10] = 0.09  # below the 0.1 truncation threshold
  m, m2 = _masks(h)
  np.testing.assert_allclose(m[100, 50], (0.8 / (0.8 + 1e-6)) ** 3, rtol=1e-6)
  np.testing.assert_allclose(m[101, 50], (0.4 / (0.8 + 1e-6)) ** 3, rtol=1e-5)
  assert m[102, 50] == 0 and np.count_nonzero(m) == 2
  assert not m2.any()  # mask2 leaves out the chin

  h = _blank()
  h[0, 100, 60, 40] = 0.5  # eyebrow: shifted 7 rows down, squared; absent from mask2
  h[0, 120, 70, 85] = 0.5  # lower lip: shifted 8 rows up, power 4; absent from mask2
  h[0, 130, 80, 52] = 0.5  # nose 52:55: shifted 4 rows up, power 1; kept in mask2
  h[0, 140, 90, 51] = 0.5  # nose tip channel 51: unchanged
  h[0, 150, 20, 3] = 0.5  # face line 0:8 and eyebrow edge 46: zeroed
  h[0, 150, 30, 46] = 0.5
  m, m2 = _masks(h)
  one = 0.5 / (0.5 + 1e-6)
  expected = {(107, 60): one ** 2, (112, 70): one ** 4, (126, 80): one, (140, 90): one}
  got = {tuple(int(v) for v in idx): m[tuple(idx)] for idx in np.argwhere(m)}
  assert got.keys() == expected.keys()
  for k, v in expected.items():
    np.testing.assert_allclose(got[k], v, rtol=1e-6)
  assert {tuple(int(v) for v in idx) for idx in np.argwhere(m2)} == {(126, 80), (140, 90)}

  h = _blank()
  h[0, 100, 60, 65] = 0.5  # eye: (shift 8 down)^3 + (shift 24 down), kept in mask2
  h[0, 0, 0, 70] = 2.0  # sums clamp to 1
  h[0, 0, 0, 71] = 2.0
  m, m2 = _masks(h)
  np.testing.assert_allclose([m[108, 60], m[124, 60]], [one ** 3, one], rtol=1e-6)
  np.testing.assert_array_equal(m, m2)
  assert m[8, 0] == 1.0 and m[24, 0] == 1.0  # 2 * (1^3) and 2 * 1 clamped


def test_preprocess_nan_semantics():
  # As the official code: NaNs are zeroed in mask 1; its mask-2 NaN clean-up tests the cleaned mask 1, so NaNs stay.
  h = _blank()
  h[0, 100, 60, 65] = np.nan  # eye channel, present in both masks; min/max spread it over the channel
  m, m2 = _masks(h)
  assert not m.any()
  assert np.isnan(m2).all()


def test_converter_round_trip_and_errors_numpy(small_variables):
  sd = fan_convert.fan_to_torch(small_variables)
  assert list(sd) == list(fan_convert.fan_torch_shapes())
  assert sd["bn1.num_batches_tracked"].dtype == np.int64 and sd["bn1.num_batches_tracked"] == 0
  back = fan_convert.fan_from_torch(sd)
  chex.assert_trees_all_equal(back, jax.tree.map(np.asarray, small_variables))
  no_counter = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
  chex.assert_trees_all_equal(fan_convert.fan_from_torch(no_counter), back)

  with pytest.raises(ValueError, match=r"demo\.pth.*'l0\.weight'.*\(99, 256, 3, 3\).*\(99, 256, 1, 1\)"):
    fan_convert.fan_from_torch({**sd, "l0.weight": np.zeros((99, 256, 3, 3), np.float32)}, source="demo.pth")
  with pytest.raises(ValueError, match=r"missing.*m0\.b3_2\.bn1\.running_var"):
    fan_convert.fan_from_torch({k: v for k, v in sd.items() if k != "m0.b3_2.bn1.running_var"})
  with pytest.raises(ValueError, match=r"unknown.*bl0\.weight"):
    fan_convert.fan_from_torch({**sd, "bl0.weight": np.zeros((1,), np.float32)})
  broken = jax.tree.map(lambda a: a, small_variables)
  del broken["params"]["top_m_0"]["conv2"]
  with pytest.raises(ValueError, match=r"top_m_0/conv2/kernel.*top_m_0\.conv2\.weight"):
    fan_convert.fan_to_torch(broken)

"""FAN (StarGAN v2 wing.py): Flax vs our PyTorch reference, converter round trip and wing.ckpt loading."""
import logging
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.checkpoint import fan_convert
from jaxreenact.layers.resample import resize_bilinear
from jaxreenact.models.stargan_v2.fan import FAN, preprocess
from jaxreenact.testing import nchw_to_nhwc, randomize_torch_module

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch_reference.stargan_v2 import wing  # noqa: E402

THRESHOLD = 0.1  # preprocess truncates heatmaps below this value


@pytest.fixture(scope="module")
def ref():
  """Random torch FAN whose heatmaps look like landmark maps: ~0.5% of pixels per channel above the 0.1 threshold."""
  model = wing.FAN().eval()
  randomize_torch_module(model, seed=0)
  x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
  with torch.no_grad():
    # A random network's heatmaps are nearly flat (spatial std ~0.01 around a large offset): rescale the last 1x1 conv
    # per channel to std 0.05 with the threshold 2.6 std above the mean, so that truncation, normalisation and the
    # channel recipe all act on non-trivial values and the masks are neither empty nor saturated.
    raw = model(x * 0.5 + 0.5)[0][0][0, :-1]  # (98, 64, 64)
    mean, std = raw.mean(dim=(1, 2)), raw.std(dim=(1, 2))
    k = 0.05 / std
    model.l0.weight[:-1] *= k[:, None, None, None]
    model.l0.bias[:-1] = (model.l0.bias[:-1] - mean) * k + THRESHOLD - 2.6 * 0.05
    outputs, boundaries = model(x * 0.5 + 0.5)
    masks = model.get_heatmap(x)
  variables = fan_convert.fan_from_torch(model.state_dict(), source="torch reference")
  return dict(model=model, x=x, heatmaps=outputs[0], boundary=boundaries[0], masks=masks, variables=variables)


@pytest.fixture(scope="module")
def flax_out(ref):
  fan = FAN()
  xj = jnp.asarray(nchw_to_nhwc(ref["x"]))
  outputs, boundaries = jax.jit(fan.apply)(ref["variables"], xj * 0.5 + 0.5)
  masks = jax.jit(lambda v, x: fan.apply(v, x, method="get_heatmap"))(ref["variables"], xj)
  return dict(heatmaps=outputs[0], boundary=boundaries[0], masks=masks)


def test_state_dict_layout_and_sizes():
  model = wing.FAN()
  sd = model.state_dict()
  table = fan_convert.fan_torch_shapes()
  assert list(sd) == list(table)
  assert {k: tuple(v.shape) for k, v in sd.items()} == table
  assert wing.count_parameters(model) == (6_333_603, 15_031)


def test_heatmaps_match(ref, flax_out):
  np.testing.assert_allclose(np.asarray(flax_out["heatmaps"]), nchw_to_nhwc(ref["heatmaps"]), atol=1e-4, rtol=0)
  np.testing.assert_allclose(np.asarray(flax_out["boundary"]), nchw_to_nhwc(ref["boundary"]), atol=1e-6, rtol=0)
  assert np.asarray(flax_out["heatmaps"]).shape == (1, 64, 64, 99)


def test_masks_match(ref, flax_out):
  masks_t = [nchw_to_nhwc(m) for m in ref["masks"]]
  masks_j = [np.asarray(m) for m in flax_out["masks"]]
  assert len(masks_j) == 2 and all(m.shape == (1, 256, 256, 1) for m in masks_j)
  # the masks are non-trivial: mostly empty, some saturated, many partial values
  for m in masks_t:
    assert 0.5 < (m == 0).mean() < 0.99 and (m == 1).mean() > 0.001 and ((m > 0) & (m < 1)).mean() > 0.01
  assert (masks_t[1] <= masks_t[0] + 1e-6).all()  # mask 2 is mask 1 minus some channels
  # truncate() is discontinuous at 0.1: a heatmap value on different sides of it in the two frameworks changes one
  # pixel per mask (two for eye channels). Count such values; for this seed there are none.
  up_t = nchw_to_nhwc(F.interpolate(ref["heatmaps"][:, :-1], scale_factor=4, mode="bilinear", align_corners=True))
  up_j = np.asarray(resize_bilinear(flax_out["heatmaps"][..., :-1], (256, 256), align_corners=True))
  straddles = int(((up_t < THRESHOLD) != (up_j < THRESHOLD)).sum())
  for m_j, m_t in zip(masks_j, masks_t):
    bad = np.abs(m_j - m_t) > 1e-4
    assert bad.sum() <= 2 * straddles, (bad.sum(), straddles, np.abs(m_j - m_t).max())
  assert straddles == 0
  np.testing.assert_allclose(masks_j[0], masks_t[0], atol=1e-4, rtol=0)
  np.testing.assert_allclose(masks_j[1], masks_t[1], atol=1e-4, rtol=0)


def test_preprocess_matches_on_identical_heatmaps(ref):
  up = F.interpolate(ref["heatmaps"][:, :-1], scale_factor=4, mode="bilinear", align_corners=True)
  for case in ("plain", "nan"):
    if case == "nan":
      up = up.clone()
      up[0, 65, 100, 60] = float("nan")  # eye channel: official code zeroes NaN in mask 1 only
    want = wing.preprocess(up)
    got = jax.jit(preprocess)(jnp.asarray(nchw_to_nhwc(up)))
    for g, w in zip(got, want):
      w = nchw_to_nhwc(w)
      np.testing.assert_array_equal(np.isnan(np.asarray(g)), np.isnan(w))
      np.testing.assert_allclose(np.nan_to_num(np.asarray(g)), np.nan_to_num(w), atol=1e-5, rtol=0)
  assert np.isnan(nchw_to_nhwc(want[1])).all() and not np.isnan(nchw_to_nhwc(want[0])).any()


def test_resize_of_non_256_input(ref):
  # get_heatmap first resizes any input to 256 (bilinear, align_corners=False)
  x = torch.rand(1, 3, 160, 192, generator=torch.Generator().manual_seed(1)) * 2 - 1
  want = ref["model"].get_heatmap(x, b_preprocess=False)
  got = jax.jit(lambda v, x: FAN().apply(v, x, method="get_heatmap", b_preprocess=False))(
      ref["variables"], jnp.asarray(nchw_to_nhwc(x)))
  assert got.shape == (1, 64, 64, 98)
  np.testing.assert_allclose(np.asarray(got), nchw_to_nhwc(want), atol=1e-4, rtol=0)


def test_round_trip_torch_flax_torch_exact(ref):
  sd = ref["model"].state_dict()
  back = fan_convert.fan_to_torch(ref["variables"])
  assert list(back) == list(sd)
  for k, v in sd.items():
    assert back[k].dtype == v.numpy().dtype, k
    np.testing.assert_array_equal(back[k], v.numpy(), err_msg=k)
  fresh = wing.FAN()
  fresh.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in back.items()})  # strict load works


def _save(path, state, nest=True, prefix=""):
  state = {prefix + k: v for k, v in state.items()}
  torch.save({"state_dict": state, "epoch": 7} if nest else state, path)


def test_load_wing_checkpoint(ref, tmp_path, caplog):
  sd = ref["model"].state_dict()
  extra = {"bl0.weight": torch.ones(3), "al0.bias": torch.zeros(2)}  # keys a multi-stack wing.ckpt could hold
  official_like = tmp_path / "wing.ckpt"
  _save(official_like, {**sd, **extra})
  # torch reference: non-strict, like the official loader, reporting what it ignored
  model = wing.FAN()
  report = wing.load_wing_checkpoint(model, str(official_like))
  assert report.ignored == ["al0.bias", "bl0.weight"] and report.missing == []
  assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
  # flax: ignores (and logs) unknown keys like the official loader by default; strict on request
  with pytest.raises(ValueError, match=r"wing\.ckpt.*unknown.*bl0\.weight"):
    fan_convert.load_wing_checkpoint(str(official_like), ignore_unknown=False)
  with caplog.at_level(logging.WARNING):
    loaded = fan_convert.load_wing_checkpoint(str(official_like))
  assert "bl0.weight" in caplog.text and "al0.bias" in caplog.text
  jax.tree.map(np.testing.assert_array_equal, loaded, ref["variables"])
  # exact official nesting without extra keys, and a DataParallel prefix on a bare state_dict
  plain = tmp_path / "plain.ckpt"
  _save(plain, sd)
  jax.tree.map(np.testing.assert_array_equal, fan_convert.load_wing_checkpoint(str(plain)), ref["variables"])
  prefixed = tmp_path / "dp.ckpt"
  _save(prefixed, sd, nest=False, prefix="module.")
  jax.tree.map(np.testing.assert_array_equal, fan_convert.load_wing_checkpoint(str(prefixed)), ref["variables"])


def test_corrupted_wing_checkpoint_names_the_key(ref, tmp_path):
  sd = ref["model"].state_dict()
  bad_shape = tmp_path / "bad_shape.ckpt"
  _save(bad_shape, {**sd, "m0.b2_plus_1.conv3.weight": torch.zeros(64, 64, 1, 1)})
  with pytest.raises(ValueError, match=r"bad_shape\.ckpt.*'m0\.b2_plus_1\.conv3\.weight'.*\(64, 64, 1, 1\).*"
                                       r"\(64, 64, 3, 3\)"):
    fan_convert.load_wing_checkpoint(str(bad_shape))
  missing = tmp_path / "missing.ckpt"
  _save(missing, {k: v for k, v in sd.items() if k != "bn_end0.running_mean"})
  with pytest.raises(ValueError, match=r"missing\.ckpt.*missing.*bn_end0\.running_mean"):
    fan_convert.load_wing_checkpoint(str(missing))
  with pytest.raises(RuntimeError, match="m0.b2_plus_1.conv3.weight"):  # the torch reference refuses it too
    wing.load_wing_checkpoint(wing.FAN(), str(bad_shape))

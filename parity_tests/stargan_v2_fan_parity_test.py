"""FAN (StarGAN v2 wing.py): Flax vs our PyTorch reference, converter round trip and wing.ckpt loading.

Float32 tolerances are in units of torch's own float32 round-off of each quantity (parity_tests/tolerance.py): the
reference FAN also runs in float64 (``ref64``) on the same weights and input."""
import logging
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.checkpoint import fan_convert
from jaxreenact.layers.resample import resize_bilinear
from jaxreenact.models.stargan_v2.fan import FAN, preprocess
from jaxreenact.testing import nchw_to_nhwc, randomize_torch_module
from parity_tests.tolerance import IMAGE_ATOL, assert_close_to_reference, torch64

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


def _masks_from_heatmaps(heatmaps):
  """get_heatmap's tail: a 256 px input makes its first resize the identity, so the masks follow from the heatmaps."""
  return wing.preprocess(F.interpolate(heatmaps[:, :-1], scale_factor=4, mode="bilinear", align_corners=True))


@pytest.fixture(scope="module")
def ref64(ref):
  """The reference FAN in float64 (one forward pass; masks from its heatmaps as in get_heatmap)."""
  model = torch64(ref["model"])
  with torch.no_grad():
    outputs, boundaries = model(ref["x"].double() * 0.5 + 0.5)
  return dict(model=model, heatmaps=outputs[0], boundary=boundaries[0], masks=_masks_from_heatmaps(outputs[0]))


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


def test_heatmaps_match(ref, ref64, flax_out):
  # heatmaps: measured 1.37-1.46 x torch's own round-off (8.3e-7-8.8e-7); margin 3 (was atol 1e-4). boundary: the
  # torch reference builds this coordinate channel in float32 at any dtype, so the spread is 0 and the unit one ulp
  # (1.2e-7); measured 1 ulp; margin 3 (was atol 1e-6).
  for key in ("heatmaps", "boundary"):
    assert_close_to_reference(flax_out[key], nchw_to_nhwc(ref[key]), nchw_to_nhwc(ref64[key]), key, margin=3,
                              image_atol=IMAGE_ATOL)
  assert np.asarray(flax_out["heatmaps"]).shape == (1, 64, 64, 99)


def test_masks_match(ref, ref64, flax_out):
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
  # measured 0.74-1.38 (mask 1), 1.51-2.26 (mask 2) x torch's own round-off (5.6e-6-8.6e-6); margin 5 (was 1e-4)
  for i, (m_j, m_t, m_64) in enumerate(zip(masks_j, masks_t, ref64["masks"])):
    assert_close_to_reference(m_j, m_t, nchw_to_nhwc(m_64), f"mask {i + 1}", margin=5, image_atol=IMAGE_ATOL)


def test_preprocess_matches_on_identical_heatmaps(ref):
  up = F.interpolate(ref["heatmaps"][:, :-1], scale_factor=4, mode="bilinear", align_corners=True)
  for case in ("plain", "nan"):
    if case == "nan":
      up = up.clone()
      up[0, 65, 100, 60] = float("nan")  # eye channel: official code zeroes NaN in mask 1 only
    want, want64 = wing.preprocess(up), wing.preprocess(up.double())
    got = jax.jit(preprocess)(jnp.asarray(nchw_to_nhwc(up)))
    for i, (g, w, w64) in enumerate(zip(got, want, want64)):
      w, w64 = nchw_to_nhwc(w), nchw_to_nhwc(w64)
      np.testing.assert_array_equal(np.isnan(np.asarray(g)), np.isnan(w))
      np.testing.assert_array_equal(np.isnan(w64), np.isnan(w))
      # measured 1.34-1.64 x torch's own round-off (1.7e-7-1.9e-7; all three exactly equal in the NaN case);
      # margin 4 (was atol 1e-5)
      assert_close_to_reference(np.nan_to_num(np.asarray(g)), np.nan_to_num(w), np.nan_to_num(w64),
                                f"preprocess {case} mask {i + 1}", margin=4, image_atol=IMAGE_ATOL)
  assert np.isnan(nchw_to_nhwc(want[1])).all() and not np.isnan(nchw_to_nhwc(want[0])).any()


def test_resize_of_non_256_input(ref, ref64):
  # get_heatmap first resizes any input to 256 (bilinear, align_corners=False)
  x = torch.rand(1, 3, 160, 192, generator=torch.Generator().manual_seed(1)) * 2 - 1
  want = ref["model"].get_heatmap(x, b_preprocess=False)
  want64 = ref64["model"].get_heatmap(x.double(), b_preprocess=False)
  got = jax.jit(lambda v, x: FAN().apply(v, x, method="get_heatmap", b_preprocess=False))(
      ref["variables"], jnp.asarray(nchw_to_nhwc(x)))
  assert got.shape == (1, 64, 64, 98)
  # measured 1.38-1.40 x torch's own round-off (8.4e-7-9.0e-7); margin 3 (was atol 1e-4)
  assert_close_to_reference(got, nchw_to_nhwc(want), nchw_to_nhwc(want64), "heatmaps of a 160x192 input", margin=3,
                            image_atol=IMAGE_ATOL)


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

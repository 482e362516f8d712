"""Parameter counts of the Flax networks equal the official ones (docs/facts.md §2); shapes only, no compute."""
import jax
import numpy as np
import pytest

from jaxreenact.models import dagan


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _shapes(cfg, name, size=256):
  nets = dagan.build(cfg)
  return jax.eval_shape(getattr(nets, name).init, jax.random.key(0), *dagan.example_inputs(cfg, size)[name])


@pytest.mark.parametrize("num_kp, kp, gen, dense, disc", [
    (15, 14_262_519, 46_096_917, 37_796_433, 2_774_209),
    (10, 14_218_394, 46_030_752, 37_730_268, 2_769_089),
])
def test_official_counts(num_kp, kp, gen, dense, disc):
  cfg = dagan.Config.vox256(num_kp=num_kp)
  assert _count(_shapes(cfg, "kp_detector")["params"]) == kp
  g = _shapes(cfg, "generator")["params"]
  assert _count(g) == gen
  assert _count(g["dense_motion_network"]) == dense
  assert _count(g["AttnModule"]) == 82_241
  assert _count(_shapes(cfg, "discriminator")["params"]) == disc


def test_spade_generator_count():
  cfg = dagan.Config.vox256(generator="SPADEDepthAwareGenerator")
  v = _shapes(cfg, "generator")
  assert _count(v["params"]) == 67_545_305
  assert "spectral" in v  # torch buffers weight_u / weight_v, not parameters


@pytest.mark.parametrize("layers, enc, dec", [(18, 11_689_512, 3_152_724), (50, 25_557_032, 9_014_100)])
def test_depth_counts(layers, enc, dec):
  p = _shapes(dagan.Config.vox256(depth_layers=layers), "depth")["params"]
  assert _count(p["encoder"]) == enc
  assert _count(p["decoder"]) == dec


def test_batch_stats_layout():
  v = _shapes(dagan.Config.vox256(), "kp_detector")
  assert set(v) == {"params", "batch_stats"}
  bs = v["batch_stats"]["predictor"]["encoder"]["down_blocks_0"]["norm"]
  assert set(bs) == {"mean", "var"} and bs["mean"].shape == (64,)
  assert "down" not in v["params"]  # the anti-alias Gaussian is a constant, not a variable

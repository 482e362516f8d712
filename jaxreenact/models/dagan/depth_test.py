"""DepthNet: shapes, official parameter counts (ResNet-18/50 presets), jit, train-mode batch stats."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.models.dagan.depth import DepthNet


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _variables(net, img, seed=0):
  """Random variables of the right structure (compiling flax's random init is slow on 2 shared cores)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(net.init, jax.random.key(0), img)

  def fill(path, s):
    name = jax.tree_util.keystr(path)
    if name.endswith("['var']"):
      return jnp.asarray(rng.uniform(0.5, 1.5, s.shape), jnp.float32)
    if name.endswith("['scale']"):
      return jnp.asarray(1 + 0.2 * rng.standard_normal(s.shape), jnp.float32)
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 25
    return jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(fan_in), jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.mark.parametrize("num_layers,enc,dec,block", [(18, 11_689_512, 3_152_724, "basic"),
                                                      (50, 25_557_032, 9_014_100, "bottleneck")])
def test_param_counts_match_official(num_layers, enc, dec, block):
  net = DepthNet(num_layers)
  v = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  assert net.resolved()[0] == block
  assert _count(v["params"]["encoder"]) == enc
  assert _count(v["params"]["encoder"]["encoder"]["fc"]) == enc - (11_176_512 if num_layers == 18 else 23_508_032)
  assert _count(v["params"]["decoder"]) == dec
  assert set(v) == {"params", "batch_stats"}
  assert v["params"]["encoder"]["encoder"]["conv1"]["kernel"].shape == (7, 7, 3, 64)
  assert v["params"]["decoder"]["decoder_10"]["conv"]["kernel"].shape == (3, 3, 16, 1)


def test_tiny_net_shapes_jit_and_fc_costs_nothing():
  net = DepthNet(block="bottleneck", layers=(1, 1, 1, 1), widths=(4, 8, 8, 8), num_ch_dec=(2, 4, 4, 4, 4),
                 num_classes=7)
  img = jax.random.uniform(jax.random.key(1), (2, 64, 96, 3))
  v = _variables(net, img)
  assert v["params"]["encoder"]["encoder"]["fc"]["kernel"].shape == (32, 7)
  apply = jax.jit(net.apply)
  disps = apply(v, img)
  assert [d.shape for d in disps] == [(2, 64 // 2 ** s, 96 // 2 ** s, 1) for s in range(4)]
  for d in disps:
    assert bool(jnp.all((d > 0) & (d < 1)))
  # Eval mode is deterministic and does not depend on the batch; train mode does (batch statistics).
  single = apply(v, img[:1])
  np.testing.assert_allclose(np.asarray(single[0]), np.asarray(disps[0][:1]), atol=1e-6)
  (tr, upd) = jax.jit(lambda v, x: net.apply(v, x, train=True, mutable=["batch_stats"]))(v, img)
  assert not np.allclose(np.asarray(tr[0]), np.asarray(disps[0]), atol=1e-4)
  old = v["batch_stats"]["encoder"]["encoder"]["bn1"]["mean"]
  new = upd["batch_stats"]["encoder"]["encoder"]["bn1"]["mean"]
  assert not np.allclose(np.asarray(old), np.asarray(new))
  # The classifier is dead code: changing it leaves the output bit-identical.
  v2 = jax.tree_util.tree_map_with_path(
      lambda p, x: x + 1.0 if "fc" in jax.tree_util.keystr(p) else x, v)
  np.testing.assert_array_equal(np.asarray(apply(v2, img)[0]), np.asarray(disps[0]))
  # ... and no traced operation reads the fc parameters at all.
  closed = jax.make_jaxpr(net.apply)(v, img)
  leaves = jax.tree_util.tree_leaves_with_path(v)
  fc_vars = {closed.jaxpr.invars[i] for i, (p, _) in enumerate(leaves) if "fc" in jax.tree_util.keystr(p)}
  assert len(fc_vars) == 2
  used = {id(x) for eqn in closed.jaxpr.eqns for x in eqn.invars}
  assert not {id(x) for x in fc_vars} & used


def test_scale_subset_and_bad_input():
  net = DepthNet(block="basic", layers=(1, 1, 1, 1), widths=(4, 4, 8, 8), num_ch_dec=(2, 2, 4, 4, 4), scales=(0, 2))
  img = jnp.zeros((1, 64, 32 * 3, 3))
  v = _variables(net, img)
  assert set(k for k in v["params"]["decoder"] if int(k.split("_")[1]) >= 10) == {"decoder_10", "decoder_11"}
  assert [d.shape[1:3] for d in jax.jit(net.apply)(v, img)] == [(64, 96), (16, 24)]
  with pytest.raises(ValueError, match="multiples of 32"):
    jax.eval_shape(net.apply, v, jnp.zeros((1, 80, 64, 3)))
  with pytest.raises(ValueError, match="at least 64"):
    jax.eval_shape(net.apply, v, jnp.zeros((1, 32, 64, 3)))
  with pytest.raises(ValueError, match="num_layers"):
    DepthNet(num_layers=20).resolved()


def test_dtype_is_passed_down():
  net = DepthNet(18, dtype=jnp.bfloat16)
  img = jnp.zeros((1, 64, 64, 3), jnp.float32)
  v = jax.eval_shape(net.init, jax.random.key(0), img)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(v))  # param_dtype stays float32
  out = jax.eval_shape(net.apply, v, img)
  assert [o.dtype for o in out] == [jnp.bfloat16] * 4

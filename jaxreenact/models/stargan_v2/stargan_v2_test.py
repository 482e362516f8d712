"""StarGAN v2 Flax modules: official parameter counts, shapes, jit, config validation (no torch needed)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.models import stargan_v2

# docs/facts.md §1, measured with the official classes: (G, F, E, D).
OFFICIAL_COUNTS = [
    (dict(img_size=256, num_domains=2, w_hpf=1), (43_467_395, 2_438_272, 20_916_928, 20_852_290)),
    (dict(img_size=256, num_domains=3, w_hpf=0), (33_892_995, 3_259_072, 20_949_760, 20_852_803)),
    (dict(img_size=256, num_domains=7, w_hpf=0), (33_892_995, 6_542_272, 21_081_088, 20_854_855)),
    (dict(img_size=64, num_domains=7, w_hpf=0), (32_634_883, 6_542_272, 20_491_968, 20_265_735)),
    (dict(img_size=128, num_domains=7, w_hpf=0), (33_632_003, 6_542_272, 20_963_904, 20_737_671)),
    (dict(img_size=128, num_domains=3, w_hpf=0, max_conv_dim=32), (584_547, 3_259_072, 288_896, 282_659)),
]


@pytest.mark.parametrize("kw,expected", OFFICIAL_COUNTS, ids=[str(k) for k, _ in OFFICIAL_COUNTS])
def test_official_parameter_counts(kw, expected):
  cfg = stargan_v2.Config(**kw)
  nets = stargan_v2.build(cfg)
  inputs = stargan_v2.dummy_inputs(cfg)
  got = tuple(stargan_v2.count_params(jax.eval_shape(getattr(nets, m).init, jax.random.key(0), *inputs[m]))
              for m in stargan_v2.MODULES)
  assert got == expected


def test_unused_hpf_shortcut_weights_are_kept():
  """The w_hpf>0 decoder keeps 172,032 conv1x1 weights (official state_dict) that never enter the compute."""
  cfg = stargan_v2.Config(img_size=256, num_domains=2, w_hpf=1)
  shapes = jax.eval_shape(stargan_v2.build(cfg).generator.init, jax.random.key(0),
                          *stargan_v2.dummy_inputs(cfg)["generator"])
  unused = sum(np.prod(v["conv1x1"]["kernel"].shape) for k, v in shapes["params"].items()
               if k.startswith("decode_") and "conv1x1" in v)
  assert unused == 172_032


def test_unused_shortcut_does_not_change_output():
  cfg = stargan_v2.Config(img_size=16, num_domains=2, style_dim=8, latent_dim=4, max_conv_dim=32, w_hpf=1)
  nets = stargan_v2.build(cfg)
  x = jax.random.uniform(jax.random.key(1), (1, 16, 16, 3), minval=-1, maxval=1)
  s = jax.random.normal(jax.random.key(2), (1, 8))
  v = nets.generator.init(jax.random.key(0), x, s)
  out = nets.generator.apply(v, x, s)
  v2 = jax.tree_util.tree_map_with_path(
      lambda p, a: a * 0 + 7.0 if any(getattr(k, "key", "") == "conv1x1" for k in p) and "decode" in str(p) else a, v)
  changed = sum(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(v2)))
  assert changed >= 1  # the unused decoder shortcut weights really were overwritten
  np.testing.assert_array_equal(np.asarray(nets.generator.apply(v2, x, s)), np.asarray(out))


def test_shapes_and_single_trace():
  cfg = stargan_v2.Config(img_size=32, num_domains=3, latent_dim=4, style_dim=8, max_conv_dim=64, w_hpf=0)
  nets = stargan_v2.build(cfg)
  inputs = stargan_v2.dummy_inputs(cfg, batch=2)
  v = {m: getattr(nets, m).init(jax.random.key(i), *inputs[m]) for i, m in enumerate(stargan_v2.MODULES)}
  z = jax.random.normal(jax.random.key(3), (2, 4))
  y = jnp.array([0, 2])
  x = jax.random.uniform(jax.random.key(4), (2, 32, 32, 3), minval=-1, maxval=1)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def fwd(v, x, z, y):
    s = nets.mapping_network.apply(v["mapping_network"], z, y)
    out = nets.generator.apply(v["generator"], x, s)
    return s, nets.style_encoder.apply(v["style_encoder"], out, y), out, nets.discriminator.apply(v["discriminator"], out, y)

  s, s2, out, logit = fwd(v, x, z, y)
  fwd(v, x + 0.1, z, y)  # same shapes: no retrace
  chex.assert_shape([s, s2], (2, 8))
  chex.assert_shape(out, (2, 32, 32, 3))
  chex.assert_shape(logit, (2,))
  chex.assert_tree_all_finite((s, s2, out, logit))


def test_domain_gather_selects_the_right_head():
  cfg = stargan_v2.Config(img_size=32, num_domains=3, latent_dim=4, style_dim=8, max_conv_dim=64, w_hpf=0)
  mn = stargan_v2.build(cfg).mapping_network
  z = jax.random.normal(jax.random.key(0), (3, 4))
  v = mn.init(jax.random.key(1), z, jnp.zeros(3, jnp.int32))
  per_domain = [mn.apply(v, z, jnp.full((3,), k, jnp.int32)) for k in range(3)]
  mixed = mn.apply(v, z, jnp.array([2, 0, 1]))
  for i, k in enumerate([2, 0, 1]):
    np.testing.assert_array_equal(np.asarray(mixed[i]), np.asarray(per_domain[k][i]))
  assert not np.allclose(per_domain[0], per_domain[1])


@pytest.mark.parametrize("kw,match", [(dict(img_size=100), "power of two"), (dict(img_size=16, w_hpf=0), "w_hpf"),
                                      (dict(num_domains=0), "num_domains"), (dict(style_dim=0), "style_dim")])
def test_config_rejects_bad_values(kw, match):
  with pytest.raises(ValueError, match=match):
    stargan_v2.Config(**kw)


def test_wrong_input_size_is_a_clear_error():
  cfg = stargan_v2.Config(img_size=32, num_domains=2, max_conv_dim=64, w_hpf=0)
  nets = stargan_v2.build(cfg)
  with pytest.raises(ValueError, match="expects"):
    nets.discriminator.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), jnp.zeros((1,), jnp.int32))

"""DaGAN networks on a tiny config: shapes, value ranges, jit, train-mode statistics, input checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.models import dagan

B, S = 2, 64


def random_variables(shapes, seed: int):
  """Host-filled variables with the shapes of ``init`` (no init compile): fan-in scaled kernels, BN stats."""
  rng = np.random.default_rng(seed)

  def fill(path, s):
    name = path[-1].key
    if name == "kernel":
      return jnp.asarray(rng.normal(0, 1 / np.sqrt(np.prod(s.shape[:-1])), s.shape), jnp.float32)
    if name == "scale":
      return jnp.asarray(1 + 0.1 * rng.normal(size=s.shape), jnp.float32)
    if name == "var":
      return jnp.asarray(rng.uniform(0.5, 1.5, s.shape), jnp.float32)
    if name in ("weight_u", "weight_v"):
      x = rng.normal(size=s.shape)
      return jnp.asarray(x / np.linalg.norm(x), jnp.float32)
    return jnp.asarray(0.1 * rng.normal(size=s.shape), jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def shaped_variables(nets, cfg, seed=0):
  inputs = dagan.example_inputs(cfg, S)
  return {name: random_variables(jax.eval_shape(getattr(nets, name).init, jax.random.key(0), *inputs[name]), seed + i)
          for i, name in enumerate(("depth", "kp_detector", "generator", "discriminator"))}


@pytest.fixture(scope="module")
def setup():
  cfg = dagan.Config.tiny(depth_widths=(8, 16, 16, 32))
  nets = dagan.build(cfg)
  variables = shaped_variables(nets, cfg)
  k1, k2 = jax.random.split(jax.random.key(1))
  src = jax.random.uniform(k1, (B, S, S, 3))
  drv = jax.random.uniform(k2, (B, S, S, 3))
  return cfg, nets, variables, src, drv


def _kp(key, cfg):
  k1, k2 = jax.random.split(key)
  return {"value": jax.random.uniform(k1, (B, cfg.num_kp, 2), minval=-0.7, maxval=0.7),
          "jacobian": jnp.eye(2) + 0.1 * jax.random.normal(k2, (B, cfg.num_kp, 2, 2))}


def test_build_picks_generator():
  assert isinstance(dagan.build(dagan.Config.tiny()).generator, dagan.DepthAwareGenerator)
  spade = dagan.build(dagan.Config.tiny(generator="SPADEDepthAwareGenerator")).generator
  assert isinstance(spade, dagan.SPADEDepthAwareGenerator)
  assert dagan.min_image_size(dagan.Config.vox256()) == 128  # kp hourglass: 5 blocks at 1/4 size
  assert dagan.min_image_size(dagan.Config.tiny()) == 64  # DepthNet needs >= 64


def test_full_pipeline_shapes_under_jit(setup):
  cfg, nets, v, src, drv = setup
  k = cfg.num_kp

  @jax.jit
  def pipeline(v, src, drv):
    ds = nets.depth.apply(v["depth"], src)
    dd = nets.depth.apply(v["depth"], drv)
    kps = nets.kp_detector.apply(v["kp_detector"], jnp.concatenate([src, ds[0]], -1))
    kpd = nets.kp_detector.apply(v["kp_detector"], jnp.concatenate([drv, dd[0]], -1))
    out = nets.generator.apply(v["generator"], src, kp_driving=kpd, kp_source=kps, source_depth=ds[0])
    d = nets.discriminator.apply(v["discriminator"], out["prediction"], kpd)
    return ds, kps, out, d

  ds, kps, out, d = pipeline(v, src, drv)
  assert [x.shape for x in ds] == [(B, S, S, 1), (B, S // 2, S // 2, 1), (B, S // 4, S // 4, 1), (B, S // 8, S // 8, 1)]
  assert kps["value"].shape == (B, k, 2) and kps["jacobian"].shape == (B, k, 2, 2)
  assert np.all(np.abs(kps["value"]) <= 1)
  h = S // 4  # dense motion at scale_factor 0.25; 2 down blocks also give S/4 features
  assert out["prediction"].shape == (B, S, S, 3)
  assert out["deformed"].shape == (B, S, S, 3)
  assert out["occlusion_map"].shape == (B, h, h, 1)
  assert out["mask"].shape == (B, h, h, k + 1)
  assert out["sparse_deformed"].shape == (B, k + 1, h, h, 3)
  assert out["attention"].shape == (B, h * h, h * h)
  assert np.all((out["prediction"] > 0) & (out["prediction"] < 1))
  np.testing.assert_allclose(out["mask"].sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(out["attention"].sum(-1), 1.0, atol=1e-5)
  assert [f.shape for f in d["feature_maps"]] == [(B, 30, 30, 16), (B, 13, 13, 32), (B, 10, 10, 64)]
  assert d["prediction_map"].shape == (B, 10, 10, 1)
  np.testing.assert_array_equal(d["prediction_map_1"], d["prediction_map"])


def test_kp_detector_init_gives_identity_jacobians():
  """Official init of the Jacobian head: zero weights, bias [1, 0, 0, 1] -> identity Jacobians."""
  cfg = dagan.Config.tiny()
  det = dagan.build(cfg).kp_detector
  x = jax.random.uniform(jax.random.key(3), (1, S, S, 4))
  v = jax.jit(det.init)(jax.random.key(0, impl="unsafe_rbg"), x)
  np.testing.assert_array_equal(v["params"]["jacobian"]["kernel"], 0.0)
  kp = jax.jit(det.apply)(v, x)
  np.testing.assert_allclose(kp["jacobian"], np.broadcast_to(np.eye(2), (1, cfg.num_kp, 2, 2)), atol=1e-6)


def test_attention_gamma_zero_means_identity(setup):
  """With γ = 0 (its init) the attention adds nothing: the warped features pass through."""
  feat = jax.random.normal(jax.random.key(2), (1, 4, 4, 16))
  src = jax.random.normal(jax.random.key(3), (1, 4, 4, 16))
  attn = dagan.generator.DepthAwareAttention(16)
  v = jax.jit(attn.init)(jax.random.key(0, impl="unsafe_rbg"), src, feat)
  np.testing.assert_array_equal(v["params"]["gamma"], 0.0)
  out, a = jax.jit(attn.apply)(v, src, feat)
  np.testing.assert_array_equal(out, feat)
  assert a.shape == (1, 16, 16)


def test_train_mode_updates_batch_stats(setup):
  cfg, nets, v, src, drv = setup
  kp_s, kp_d = _kp(jax.random.key(4), cfg), _kp(jax.random.key(5), cfg)
  ds = jax.random.uniform(jax.random.key(6), (B, S, S, 1))
  fn = jax.jit(lambda v: nets.generator.apply(v, src, kp_d, kp_s, ds, train=True, mutable=["batch_stats"]))
  out, updates = fn(v["generator"])
  old = jax.tree_util.tree_leaves(v["generator"]["batch_stats"])
  new = jax.tree_util.tree_leaves(updates["batch_stats"])
  assert len(old) == len(new) and any(not np.allclose(a, b) for a, b in zip(old, new))
  eval_out = jax.jit(lambda v: nets.generator.apply(v, src, kp_d, kp_s, ds))(v["generator"])
  assert not np.allclose(out["prediction"], eval_out["prediction"])


def test_spade_generator_and_spectral_state():
  cfg = dagan.Config.tiny(generator="SPADEDepthAwareGenerator")
  gen = dagan.build(cfg).generator
  src = jax.random.uniform(jax.random.key(7), (1, S, S, 3))
  ds = jax.random.uniform(jax.random.key(8), (1, S, S, 1))
  kp = {"value": jnp.zeros((1, cfg.num_kp, 2)), "jacobian": jnp.broadcast_to(jnp.eye(2), (1, cfg.num_kp, 2, 2))}
  v = random_variables(jax.eval_shape(gen.init, jax.random.key(0), src, kp, kp, ds), 5)
  assert set(v) == {"params", "batch_stats", "spectral"}
  assert set(v["spectral"]["decoder"]["G_middle_0"]["conv_0"]) == {"weight_u", "weight_v"}
  out, upd = jax.jit(lambda v: gen.apply(v, src, kp, kp, ds, train=True, mutable=["batch_stats", "spectral"]))(v)
  assert out["prediction"].shape == (1, S, S, 3)
  u_old = v["spectral"]["decoder"]["up_1"]["conv_s"]["weight_u"]
  assert not np.allclose(upd["spectral"]["decoder"]["up_1"]["conv_s"]["weight_u"], u_old)  # power iteration ran


def test_input_checks(setup):
  cfg, nets, v, src, _ = setup
  with pytest.raises(ValueError, match="expected 4 input channels"):
    nets.kp_detector.apply(v["kp_detector"], src)
  kp = _kp(jax.random.key(9), cfg)
  with pytest.raises(ValueError, match="source_depth must be"):
    nets.generator.apply(v["generator"], src, kp, kp, src)
  with pytest.raises(ValueError, match="needs the driving keypoints"):
    nets.discriminator.apply(v["discriminator"], src)

"""Depth-network training step: schedule, configs, validation, and 4 devices = 1 device on the same global batch."""
import dataclasses

import jax
import numpy as np
import pytest

from configs import depth as depth_configs
from jaxreenact.train import depth as dt
from jaxreenact.train import sharding
from jaxreenact.train.depth_runner import hparams_from_config

TINY = depth_configs.get_config("tiny")  # 64 px, ResNet-18 layout with one block per stage, narrow widths
CFG = dt.Config.from_config(TINY.model)
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # same HLO, cheaper LLVM codegen: one step per compile here
# This module's model and hyper-parameters are configs/depth.py's tiny preset at its batch size (4): the one-device
# step of test_four_devices_match_one_device is the program depth_runner_test's run compiles (same group: compiled once).
DEPTH_STEP_GROUP = "depth_tiny_step"


def test_step_lr_matches_official_epoch_start_stepping():
  hp = dt.HParams(steps_per_epoch=100)
  lr = dt.lr_schedule(hp)
  # run_epoch() steps StepLR(15, 0.1) before each epoch: under torch >= 1.1 epochs 0..13 use 1e-4, 14..19 1e-5.
  assert float(lr(0)) == pytest.approx(1e-4) and float(lr(14 * 100 - 1)) == pytest.approx(1e-4)
  assert float(lr(14 * 100)) == pytest.approx(1e-5) and float(lr(20 * 100 - 1)) == pytest.approx(1e-5)
  late = dt.lr_schedule(dataclasses.replace(hp, scheduler_at_epoch_start=False))
  assert float(late(15 * 100 - 1)) == pytest.approx(1e-4) and float(late(15 * 100)) == pytest.approx(1e-5)
  assert float(late(30 * 100)) == pytest.approx(1e-6)
  try:
    from torch_reference.dagan.depth_train import step_lr_lambda
  except ImportError:
    return
  f = step_lr_lambda(100)
  for it in (0, 1399, 1400, 1999, 3000):
    assert float(lr(it)) == pytest.approx(1e-4 * f(it))


def test_configs_have_the_shared_fields_and_official_defaults():
  for variant in depth_configs.VARIANTS:
    c = depth_configs.get_config(variant)
    for field in ("total_steps", "batch_size", "seed", "checkpoint_every", "sample_every", "log_every", "data_dir"):
      assert field in c, (variant, field)
    assert c.model_name == "depth" and c.data_dir is None
    dt.Config.from_config(c.model)
  vox = depth_configs.get_config("vox")
  hp = hparams_from_config(vox)
  assert (vox.model.img_size, vox.model.num_layers, vox.batch_size) == (256, 18, 32)
  assert hp.steps_per_epoch == 3125 and vox.total_steps == 20 * 3125
  assert (hp.lr, hp.beta1, hp.beta2, hp.weight_decay, hp.disparity_smoothness) == (1e-4, 0.9, 0.999, 0.0, 1e-3)
  assert dt.Config.from_config(vox.model) == dt.Config()
  with pytest.raises(ValueError, match="unknown depth config variant"):
    depth_configs.get_config("kitti")


def _batch(b, seed=0):
  rng = np.random.default_rng(seed)
  frames = rng.uniform(0, 1, (b, 3, 64, 64, 3)).astype(np.float32)
  return {"frames": frames, "frames_aug": np.clip(frames * 1.05, 0, 1).astype(np.float32),
          "identity_noise": rng.standard_normal((b, 4, 64, 64, 2)).astype(np.float32)}


def test_batch_validation_names_the_key():
  hp = dt.HParams(steps_per_epoch=10)
  state = jax.eval_shape(lambda: dt.init_state(CFG, hp, jax.random.key(0)))
  bad = _batch(2)
  bad["frames"] = bad["frames"][:, :, :32]
  with pytest.raises(ValueError, match=r"batch\['frames'\]"):
    jax.eval_shape(lambda s: dt.train_step(s, bad, cfg=CFG, hp=hp), state)
  with pytest.raises(ValueError, match="frames_aug"):
    jax.eval_shape(lambda s: dt.train_step(s, {"frames": _batch(2)["frames"]}, cfg=CFG, hp=hp), state)


@pytest.mark.xdist_group(DEPTH_STEP_GROUP)
def test_four_devices_match_one_device():
  if len(jax.devices()) < 4:
    pytest.skip("needs 4 (fake) devices: XLA_FLAGS=--xla_force_host_platform_device_count=4")
  hp = hparams_from_config(TINY)  # steps_per_epoch = 40 // 4: the preset's, as depth_runner_test trains it
  # launch.train's batch: no identity_noise, so each step draws the automasking tie-break noise from its state's key
  # (threefry is partitionable: the same values on any device count)
  batch = {k: v for k, v in _batch(TINY.batch_size).items() if k != "identity_noise"}
  mesh4 = sharding.make_mesh(4)
  state4 = dt.create_sharded_state(CFG, hp, jax.random.key(0), mesh4, compiler_options=FAST_COMPILE)
  host = jax.device_get(state4)
  results = []
  for n in (4, 1):
    mesh = sharding.make_mesh(n)
    state = state4 if n == 4 else sharding.replicate(host, mesh)
    step = dt.jit_train_step(CFG, hp, mesh, compiler_options=FAST_COMPILE)
    new_state, metrics = step(state, sharding.shard_batch(batch, mesh))
    assert len(new_state.params["depth"]["decoder"]["decoder_0"]["conv"]["conv"]["kernel"].sharding.device_set) == n
    results.append(jax.device_get((new_state.params, new_state.batch_stats, metrics)))
  (p4, s4, m4), (p1, s1, m1) = results
  for k in m1:
    np.testing.assert_allclose(m4[k], m1[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # BatchNorm statistics are over the global batch on every device count (= torch SyncBatchNorm).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=0), s4, s1)
  # Adam's first step is ≈ lr·sign(g): a weight whose gradient is within float32 round-off of 0 may step
  # differently after the cross-device reduction; all others agree to round-off.
  d = np.concatenate([np.abs(a - b).ravel() for a, b in zip(jax.tree.leaves(p4), jax.tree.leaves(p1))])
  assert d.max() <= 2 * hp.lr + 1e-6 and np.mean(d > 1e-6) < 1e-3, (d.max(), np.mean(d > 1e-6))
  assert np.isfinite(m1["loss"]) and m1["lr"] == pytest.approx(1e-4)


def test_official_vox_config_traces():
  """The full-size step (256 px, ResNet-18 depth and pose nets, batch 32) traces with the right shapes."""
  config = depth_configs.get_config("vox")
  cfg, hp = dt.Config.from_config(config.model), hparams_from_config(config)
  state = jax.eval_shape(lambda: dt.init_state(cfg, hp, jax.random.key(0)))
  batch = {k: jax.ShapeDtypeStruct((2, 3, 256, 256, 3), np.float32) for k in ("frames", "frames_aug")}
  new_state, metrics = jax.eval_shape(lambda s, b: dt.train_step(s, b, cfg=cfg, hp=hp), state, batch)
  assert jax.tree.map(lambda x: x.shape, new_state.params) == jax.tree.map(lambda x: x.shape, state.params)
  assert set(metrics) >= {"loss", "loss/0", "loss/3", "lr", "focal_x"} and metrics["loss"].shape == ()

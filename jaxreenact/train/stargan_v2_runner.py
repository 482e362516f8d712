"""StarGAN v2: build the training task from a launch config."""
from __future__ import annotations

import functools
import os

import jax
import numpy as np

from jaxreenact.checkpoint.fan_convert import load_wing_checkpoint
from jaxreenact.data import load_image_domains, stargan_v2_pipeline
from jaxreenact.models import stargan_v2
from jaxreenact.train import data_source, loop, samples, sharding
from jaxreenact.train import stargan_v2 as sg_train


def model_config(config) -> stargan_v2.Config:
  """The stargan_v2.Config a launch config trains (its ``model`` section, built from a named preset)."""
  return stargan_v2.Config(**dict(config.model))


def stargan_v2_task(config) -> loop.Task:
  cfg = model_config(config)
  hp = sg_train.HParams.from_config(config.hparams)
  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_divisible(config.batch_size, mesh)
  data_dir = data_source.data_dir(config, "stargan_v2")
  split = load_image_domains(data_dir, config.split)
  if len(split.domains) != cfg.num_domains:
    raise ValueError(f"dataset at {data_dir} has {len(split.domains)} domains {split.domains}, but the config says "
                     f"model.num_domains={cfg.num_domains}; set --config.model.num_domains={len(split.domains)}")
  fan_vars = None
  if cfg.w_hpf > 0:
    if not config.wing_path:
      raise ValueError("model.w_hpf > 0 needs the FAN weights: pass --config.wing_path=/path/to/wing.ckpt "
                       "(official file; nothing is downloaded), or use w_hpf=0")
    fan_vars = load_wing_checkpoint(config.wing_path)
  data = stargan_v2_pipeline(data_dir, config.split, cfg.img_size, config.batch_size, config.seed,
                             crop_prob=config.crop_prob)
  key = jax.random.key(config.seed)
  init = functools.partial(sg_train.create_sharded_state, cfg, hp, mesh=mesh, fan_variables=fan_vars)
  step_fn = sg_train.jit_train_step(cfg, hp, mesh, small_conv_pixels=config.get("small_conv_pixels"))

  # Fixed inputs for the periodic reference-guided grid: (sources × references) through the EMA networks.
  val = next(stargan_v2_pipeline(data_dir, config.split, cfg.img_size, 8, config.seed + 1, augment_images=False,
                                 process_index=0, process_count=1))
  nets = stargan_v2.build(cfg)

  @jax.jit
  def _translate(ema, fan, x_src, x_ref, y_ref):
    s = nets.style_encoder.apply(ema["style_encoder"], x_ref, y_ref)  # (R, style_dim)
    n, r = x_src.shape[0], x_ref.shape[0]
    xs = jax.numpy.repeat(x_src, r, axis=0)
    ss = jax.numpy.tile(s, (n, 1))
    masks = nets.fan.apply(fan, xs, method="get_heatmap") if cfg.w_hpf > 0 else None
    return nets.generator.apply(ema["generator"], xs, ss, masks=masks).reshape(n, r, *x_src.shape[1:])

  def sample_fn(state, step, out_dir):
    x_src, x_ref, y_ref = val["x_src"][:4], val["x_ref"][:6], val["y_ref"][:6]
    out = np.asarray(_translate(jax.device_get(state.ema), jax.device_get(state.fan), x_src, x_ref, y_ref))
    rows = [[None] + [samples.to_uint8(r) for r in x_ref]]
    for i in range(len(x_src)):
      rows.append([samples.to_uint8(x_src[i])] + [samples.to_uint8(o) for o in out[i]])
    img = samples.grid(rows)
    samples.save_png(os.path.join(out_dir, f"{step:06d}_reference.png"), img)
    return {"samples/reference": img}

  return loop.Task(name="stargan_v2", init_state=lambda: init(key),
                   abstract_state=lambda: sharding.abstract_replicated(init, key, mesh),
                   step_fn=step_fn, data=data, mesh=mesh, sample_fn=sample_fn)

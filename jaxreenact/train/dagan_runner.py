"""DaGAN: build the training task from a launch config."""
from __future__ import annotations

import dataclasses
import functools
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxreenact.checkpoint.depth_convert import load_depth_files
from jaxreenact.checkpoint.runs import CheckpointError, restore_training_state
from jaxreenact.checkpoint.vgg_convert import perceptual_trunk
from jaxreenact.data import dagan_pipeline
from jaxreenact.models import dagan, init_jit
from jaxreenact.train import dagan as dg
from jaxreenact.train import data_source, loop, samples, sharding


def model_config(config) -> dagan.Config:
  m = config.model
  try:
    cfg = dagan.Config.preset(m.preset)
  except ValueError as e:
    raise ValueError(f"config.model.preset: {e}") from None
  fields = {k: m.get(k) for k in ("num_kp", "generator", "depth_layers")}
  return cfg.override(**{k: v for k, v in fields.items() if v is not None})


def depth_variables(config, cfg, img_size: int):
  """Frozen depth network: official files, our depth-training checkpoint, or (only if allowed) a fresh init."""
  if config.depth_encoder or config.depth_decoder:
    if not (config.depth_encoder and config.depth_decoder):
      raise ValueError("give both --config.depth_encoder (encoder.pth) and --config.depth_decoder (depth.pth)")
    variables, _ = load_depth_files(config.depth_encoder, config.depth_decoder)
    return variables, f"official depth files {config.depth_encoder}, {config.depth_decoder}"
  if config.depth_checkpoint:
    return load_trained_depth(config.depth_checkpoint, cfg, img_size), f"depth training run {config.depth_checkpoint}"
  if not config.allow_random_depth:
    raise ValueError("DaGAN needs a trained depth network: pass --config.depth_encoder/--config.depth_decoder "
                     "(official encoder.pth/depth.pth) or --config.depth_checkpoint (a `launch.train --config "
                     "configs/depth.py` workdir); --config.allow_random_depth=True trains against an untrained one")
  nets = dagan.build(cfg)
  x = jnp.zeros((1, img_size, img_size, 3))
  v = init_jit(nets.depth.init)(jax.random.key(12345), x)
  logging.warning("DaGAN: using an UNTRAINED depth network (allow_random_depth=True) — smoke runs only")
  return v, "untrained depth network (allow_random_depth=True)"


def load_trained_depth(workdir: str, cfg, img_size: int):
  """Depth-network variables from the latest checkpoint of a ``configs/depth.py`` training run, validated
  against the DaGAN config's depth network (layers and widths must agree)."""
  try:
    _, state, _ = restore_training_state(workdir, items=("params", "batch_stats"))
  except CheckpointError as e:
    raise FileNotFoundError(f"--config.depth_checkpoint={workdir}: {e}") from None
  try:
    variables = {"params": state["params"]["depth"], "batch_stats": state["batch_stats"]["depth"]}
  except (KeyError, TypeError):
    raise ValueError(f"{workdir}: not a depth-training checkpoint (no params/depth, batch_stats/depth)") from None
  want = jax.eval_shape(dagan.build(cfg).depth.init, jax.random.key(0), jnp.zeros((1, img_size, img_size, 3)))
  flat_w = {k: v.shape for k, v in flax.traverse_util.flatten_dict(want).items()}
  flat_g = {k: np.shape(v) for k, v in flax.traverse_util.flatten_dict(variables).items()}
  if flat_w != flat_g:
    bad = sorted(set(flat_w.items()) ^ set(flat_g.items()))[:4]
    raise ValueError(f"{workdir}: its depth network does not match this DaGAN config's (depth_layers="
                     f"{cfg.depth_layers}, depth_widths={cfg.depth_widths}); first differences: {bad}")
  return variables


def dagan_task(config) -> loop.Task:

  cfg = model_config(config)
  hp = dg.HParams.from_config(config.hparams)
  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_divisible(config.batch_size, mesh)
  size = config.img_size
  if size < dagan.min_image_size(cfg):
    raise ValueError(f"img_size {size} is below this model's minimum {dagan.min_image_size(cfg)}")
  depth_vars, depth_desc = depth_variables(config, cfg, size)
  vgg_module, vgg_vars, vgg_desc = (None, None, "perceptual loss off")
  if sum(hp.perceptual):
    vgg_module, vgg_vars, vgg_desc = perceptual_trunk(config.vgg19_path)
  logging.info("DaGAN perceptual trunk: %s; depth: %s", vgg_desc, depth_desc)
  data_dir = data_source.data_dir(config, "dagan")
  data = dagan_pipeline(data_dir, config.split, size, config.batch_size, config.seed)
  key = jax.random.key(config.seed)
  init = functools.partial(dg.create_sharded_state, cfg, hp, mesh=mesh, img_size=size,
                           depth_variables=depth_vars, vgg_variables=vgg_vars)
  step_fn = dg.jit_train_step(cfg, hp, mesh, vgg_module, small_conv_pixels=config.get("small_conv_pixels"))
  nets = dagan.build(cfg)
  val = next(dagan_pipeline(data_dir, config.split, size, 4, config.seed + 1, augment_clip=False,
                            process_index=0, process_count=1))

  @jax.jit
  def _animate(params, depth, source, driving):
    d_src = nets.depth.apply(depth, source)[0]
    d_drv = nets.depth.apply(depth, driving)[0]
    cat = lambda x, d: jnp.concatenate([x, d], -1) if cfg.rgbd else x  # noqa: E731
    kp_s = nets.kp_detector.apply(params["kp_detector"], cat(source, d_src))
    kp_d = nets.kp_detector.apply(params["kp_detector"], cat(driving, d_drv))
    out = nets.generator.apply(params["generator"], source, kp_driving=kp_d, kp_source=kp_s, source_depth=d_src)
    return out["prediction"], d_src

  def sample_fn(state, step, out_dir):
    pred, d_src = _animate(jax.device_get(state.params), jax.device_get(state.depth), val["source"], val["driving"])
    pred, d_src = np.asarray(pred), np.asarray(d_src)
    u8 = lambda x: samples.to_uint8(x, (0.0, 1.0))  # noqa: E731
    rows = [[u8(val["source"][i]), u8(val["driving"][i]), u8(pred[i]),
             u8(np.repeat(d_src[i] / max(float(d_src[i].max()), 1e-6), 3, -1))] for i in range(len(pred))]
    img = samples.grid(rows)
    samples.save_png(os.path.join(out_dir, f"{step:06d}_source_driving_prediction_depth.png"), img)
    return {"samples/reenactment": img}

  return loop.Task(name="dagan", init_state=lambda: init(key),
                   abstract_state=lambda: sharding.abstract_replicated(init, key, mesh),
                   step_fn=step_fn, data=data, mesh=mesh, sample_fn=sample_fn,
                   notes={"perceptual_trunk": vgg_desc, "depth": depth_desc,
                          "model_config": dataclasses.asdict(cfg)})

"""Build the :class:`loop.Task` that trains DaGAN's depth network from a ``configs/depth.py`` config."""
from __future__ import annotations

import dataclasses
import functools
import os

import jax
import numpy as np
from absl import logging

from jaxreenact.checkpoint import torch_io
from jaxreenact.data import depth_pipeline
from jaxreenact.train import data_source, loop, samples, sharding
from jaxreenact.train import depth as depth_train


def _colormap(disp: np.ndarray) -> np.ndarray:
  """(H, W) disparity -> (H, W, 3) uint8 'magma', min–max normalised per image (monodepth2 ``normalize_image``)."""
  import matplotlib

  lo, hi = float(disp.min()), float(disp.max())
  x = (disp - lo) / (hi - lo if hi > lo else 1e5)
  return (matplotlib.colormaps["magma"](x)[..., :3] * 255 + 0.5).astype(np.uint8)


def hparams_from_config(config) -> depth_train.HParams:
  """HParams with ``steps_per_epoch = sample_num // batch_size`` (an official epoch), so the StepLR follows them."""
  if config.batch_size <= 0 or config.sample_num < config.batch_size:
    raise ValueError(f"config.sample_num ({config.sample_num}) must be at least config.batch_size "
                     f"({config.batch_size}): an epoch is sample_num // batch_size steps")
  hp = depth_train.HParams.from_config(config.hparams)
  return dataclasses.replace(hp, steps_per_epoch=config.sample_num // config.batch_size)


def depth_task(config) -> loop.Task:
  """Task for ``launch.train`` with ``model_name='depth'``: state, jitted step, data and preview grids.

  An optional ``config.xla_compiler_options`` dict is passed to ``jax.jit`` for the state and step (tests use
  ``{'xla_backend_optimization_level': 0}`` to halve CPU compile time).
  """
  cfg = depth_train.Config.from_config(config.model)
  hp = hparams_from_config(config)
  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_divisible(config.batch_size, mesh)
  data_dir = data_source.data_dir(config, "depth")
  data = depth_pipeline(data_dir, config.split, cfg.img_size, config.batch_size, config.seed,
                        stride=config.frame_stride)
  xla_options = config.get("xla_compiler_options", None)
  xla_options = dict(xla_options) if xla_options else None
  key = jax.random.key(config.seed)
  init = functools.partial(depth_train.create_sharded_state, cfg, hp, mesh=mesh, compiler_options=xla_options)

  pretrained = None
  if config.pretrained_resnet_path:  # applied (so checked) now: a bad file stops the run before anything is written
    sd = torch_io.load(config.pretrained_resnet_path, "a torchvision ResNet state_dict")
    pretrained = sharding.replicate(depth_train.load_torchvision_resnet(jax.device_get(init(key)), sd, hp,
                                                                        source=config.pretrained_resnet_path), mesh)
    logging.info("depth and pose encoders initialised from %s (official --weights_init pretrained)",
                 config.pretrained_resnet_path)

  def init_state():  # a fresh run only: a resume restores its checkpoint instead
    if pretrained is not None:
      return pretrained
    logging.warning("depth: encoders start from scratch (--weights_init scratch); the official run starts from "
                    "ImageNet ResNet-%d weights — pass --config.pretrained_resnet_path to use them", cfg.num_layers)
    return init(key)

  step_fn = depth_train.jit_train_step(cfg, hp, mesh, compiler_options=xla_options,
                                       small_conv_pixels=config.get("small_conv_pixels"))

  # Fixed, unaugmented triplets for the preview grid: t−1, t, t+1, disparity, t−1 and t+1 warped onto t.
  val = next(depth_pipeline(data_dir, config.split, cfg.img_size, 4, config.seed + 1, augment_frames=False,
                            process_index=0, process_count=1, stride=config.frame_stride))
  nets = depth_train.build(cfg)
  predict = jax.jit(lambda state, frames: depth_train.predict(state, frames, cfg, nets), compiler_options=xla_options)

  def sample_fn(state, step, out_dir):
    frames = np.asarray(val["frames"])
    out = jax.device_get(predict(jax.device_get(state), frames))
    u8 = lambda x: samples.to_uint8(x, (0.0, 1.0))  # noqa: E731
    rows = [[u8(frames[i, 0]), u8(frames[i, 1]), u8(frames[i, 2]), _colormap(np.asarray(out["disp"][i, ..., 0])),
             u8(out["warped_prev"][i]), u8(out["warped_next"][i])] for i in range(frames.shape[0])]
    img = samples.grid(rows)
    samples.save_png(os.path.join(out_dir, f"{step:06d}_depth.png"), img)
    return {"samples/depth": img}

  return loop.Task(name="depth", init_state=init_state,
                   abstract_state=lambda: sharding.abstract_replicated(init, key, mesh),
                   step_fn=step_fn, data=data, mesh=mesh, sample_fn=sample_fn)

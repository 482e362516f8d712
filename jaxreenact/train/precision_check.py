"""bf16 compute vs float32: the same short training run (same initial state, same batches) in both precisions.

Used by ``benchmarks/precision_check.py`` (curves, JSON) and its test. What it measures:
  * every logged loss at every step in both precisions and their relative deviation;
  * the first update's agreement: Adam's first step is ≈ lr·sign(g) per weight, so the fraction of weights whose
    first update has the same sign in bf16 as in float32 measures how faithful the bf16 gradients are, and the
    fraction of weights that did not move at all counts exactly-zero gradients (underflow would raise it).
bf16 keeps float32's 8-bit exponent, so gradients cannot underflow earlier than in float32; the zero-update
fractions confirm it on the real networks, which is why no loss scaling is applied (fp16 would need it).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.checkpoint.vgg_convert import perceptual_trunk
from jaxreenact.models import stargan_v2
from jaxreenact.train import dagan as dg, sharding, stargan_v2 as sg
from jaxreenact.train.dagan_runner import depth_variables, model_config


@dataclasses.dataclass
class _Setup:
  init: Callable[[], Any]  # -> fresh sharded state (identical for both precisions)
  step: Callable[[Any], Callable]  # compute dtype -> jitted step
  batches: list[dict[str, np.ndarray]]
  trained: Callable[[Any], dict[str, Any]]  # state -> {module: params} that the optimisers update


def _stargan_setup(steps: int, batch_size: int, seed: int) -> _Setup:
  from configs import stargan_v2 as configs
  from jaxreenact.data import sample_data_dir, stargan_v2_pipeline  # imports tensorflow_datasets (data builders)

  c = configs.get_config("tiny")
  cfg, hp = stargan_v2.Config(**dict(c.model)), sg.HParams.from_config(c.hparams)
  mesh = sharding.make_mesh(1)
  data = stargan_v2_pipeline(sample_data_dir().stargan_v2, "train", cfg.img_size, batch_size, seed,
                             process_index=0, process_count=1)
  return _Setup(init=lambda: sg.create_sharded_state(cfg, hp, jax.random.key(seed), mesh),
                step=lambda dtype: sg.jit_train_step(cfg, hp, mesh, dtype=dtype),
                batches=[next(data) for _ in range(steps)],
                trained=lambda s: {m: s.params[m]["params"] for m in sg.TRAINED})


def _dagan_setup(steps: int, batch_size: int, seed: int) -> _Setup:
  from configs import dagan as configs
  from jaxreenact.data import dagan_pipeline, sample_data_dir  # imports tensorflow_datasets (data builders)

  c = configs.get_config("tiny")
  cfg, hp = model_config(c), dg.HParams.from_config(c.hparams)
  size = c.img_size
  mesh = sharding.make_mesh(1)
  depth_vars, _ = depth_variables(c, cfg, size)
  vgg_module, vgg_vars, _ = perceptual_trunk(None)
  data = dagan_pipeline(sample_data_dir().dagan, "train", size, batch_size, seed, process_index=0, process_count=1)
  return _Setup(init=lambda: dg.create_sharded_state(cfg, hp, jax.random.key(seed), mesh, size, depth_vars, vgg_vars),
                step=lambda dtype: dg.jit_train_step(cfg, hp, mesh, vgg_module, dtype=dtype),
                batches=[next(data) for _ in range(steps)],
                trained=lambda s: {m: s.params[m]["params"] for m in dg.TRAINED})


SETUPS = {"stargan_v2": _stargan_setup, "dagan": _dagan_setup}


def compare(model: str, steps: int = 20, batch_size: int = 4, seed: int = 0, progress: Callable[[str], None] = print
            ) -> dict[str, Any]:
  """Runs ``steps`` iterations in float32 and in bf16 compute (float32 parameters) and compares them."""
  if model not in SETUPS:
    raise ValueError(f"model must be one of {sorted(SETUPS)}, got {model!r}")
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}")
  setup = SETUPS[model](steps, batch_size, seed)
  mesh = sharding.make_mesh(1)
  curves: dict[str, dict[str, list[float]]] = {}
  first_update: dict[str, Any] = {}
  for name, dtype in (("fp32", None), ("bf16", jnp.bfloat16)):
    state = setup.init()
    before = jax.device_get(setup.trained(state))
    step = setup.step(dtype)
    hist: dict[str, list[float]] = {}
    for i, batch in enumerate(setup.batches):
      state, metrics = step(state, sharding.shard_batch(batch, mesh))
      for k, v in jax.device_get(metrics).items():
        hist.setdefault(k, []).append(float(v))
      if i == 0:
        first_update[name] = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                                          jax.device_get(setup.trained(state)), before)
      progress(f"{model} {name}: step {i + 1}/{steps}")
    curves[name] = hist

  agreement, unchanged = {}, {"fp32": {}, "bf16": {}}
  for m in first_update["fp32"]:
    u32 = np.concatenate([x.ravel() for x in jax.tree.leaves(first_update["fp32"][m])])
    u16 = np.concatenate([x.ravel() for x in jax.tree.leaves(first_update["bf16"][m])])
    agreement[m] = float(np.mean(np.sign(u32) == np.sign(u16)))
    unchanged["fp32"][m] = float(np.mean(u32 == 0))
    unchanged["bf16"][m] = float(np.mean(u16 == 0))

  deviation = {}
  for k, v32 in curves["fp32"].items():
    a, b = np.asarray(v32), np.asarray(curves["bf16"][k])
    scale = np.maximum(np.abs(a), 1e-3)
    deviation[k] = {"first_step": float(abs(b[0] - a[0]) / scale[0]),
                    "median": float(np.median(np.abs(b - a) / scale)),
                    "mean_fp32": float(a.mean()), "mean_bf16": float(b.mean())}
  return {"model": model, "steps": steps, "batch_size": batch_size, "device": str(jax.devices()[0].device_kind),
          "jax_version": jax.__version__, "curves": curves, "relative_deviation": deviation,
          "first_update_sign_agreement": agreement, "first_update_unchanged_fraction": unchanged}

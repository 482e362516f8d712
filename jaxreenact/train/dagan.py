"""DaGAN training (train.py + modules/model.py of harlanhong/CVPR2022-DaGAN) as one pure iteration.

Per iteration: one backward of the summed generator losses updates the generator and the keypoint detector
(each with its own Adam), then the discriminator loss (prediction detached) updates the discriminator. The depth
network is frozen (eval mode); BatchNorm in the keypoint detector and generator uses batch statistics over the
global batch and updates its running statistics in call order (source, driving, transformed driving), as torch does.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxreenact.losses import at_least_f32
from jaxreenact.losses import dagan as dl
from jaxreenact.models import dagan, init_jit
from jaxreenact.models.dagan.utils import Transform, image_pyramid
from jaxreenact.train import optim, sharding

TRAINED = ("kp_detector", "generator", "discriminator")
IMAGE_SIZES = {"vox256": 256, "tiny": 64}  # training image size of each preset


@dataclasses.dataclass(frozen=True)
class HParams:
  """config/vox-adv-256.yaml train_params (loss weights as the official YAML)."""
  lr_generator: float = 2e-4
  lr_discriminator: float = 2e-4
  lr_kp_detector: float = 2e-4
  beta1: float = 0.5
  beta2: float = 0.999
  scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
  sigma_affine: float = 0.05
  sigma_tps: float = 0.005
  points_tps: int = 5
  generator_gan: float = 1.0
  discriminator_gan: float = 1.0
  feature_matching: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0)
  perceptual: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
  equivariance_value: float = 10.0
  equivariance_jacobian: float = 10.0
  kp_distance: float = 10.0
  kp_prior: float = 0.0
  kp_scale: float = 0.0
  depth_constraint: float = 0.0

  @classmethod
  def preset(cls, name: str) -> "HParams":
    """The training settings of a named model preset (``dagan.PRESETS``), defined here once."""
    if name not in dagan.PRESETS:
      raise ValueError(f"unknown DaGAN preset {name!r}; choose one of {', '.join(dagan.PRESETS)}")
    if name == "tiny":
      return cls(scales=(1.0, 0.5))  # 64 px: VGG needs >= 16 px per pyramid level
    return cls()

  @classmethod
  def from_config(cls, c) -> "HParams":
    kw = {}
    for f in dataclasses.fields(cls):
      if f.name in c:
        v = c[f.name]
        kw[f.name] = tuple(v) if isinstance(v, (list, tuple)) else v
    return cls(**kw)


@flax.struct.dataclass
class State:
  step: jax.Array
  params: dict[str, Any]  # kp_detector / generator (params + batch_stats) and discriminator variables
  opt_state: dict[str, Any]
  rng: jax.Array
  depth: Any  # frozen depth-network variables
  vgg: Any  # frozen perceptual trunk variables (None when the perceptual weights are all 0)


def optimizers(hp: HParams) -> dict[str, optax.GradientTransformation]:
  lrs = {"kp_detector": hp.lr_kp_detector, "generator": hp.lr_generator, "discriminator": hp.lr_discriminator}
  return {m: optim.torch_adam(lrs[m], hp.beta1, hp.beta2, 1e-8) for m in TRAINED}


def _split(variables):
  return variables["params"], {k: v for k, v in variables.items() if k != "params"}


def init_state(cfg: dagan.Config, hp: HParams, rng: jax.Array, img_size: int, depth_variables: Any,
               vgg_variables: Any) -> State:
  nets = dagan.build(cfg)
  k_init, k_state = jax.random.split(rng)
  variables = dagan.init_variables(nets, cfg, k_init, size=img_size, names=TRAINED)  # depth comes from outside
  params = {m: variables[m] for m in TRAINED}
  opts = optimizers(hp)
  opt_state = {m: opts[m].init(params[m]["params"]) for m in TRAINED}
  return State(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state, rng=k_state,
               depth=depth_variables, vgg=vgg_variables)


def generator_losses(trainable, others, state: State, nets, vgg_module, batch, transform: Transform, hp: HParams,
                     cfg: dagan.Config):
  """GeneratorFullModel.forward: (total, (loss dict, new kp/generator variables, generated))."""
  source, driving = batch["source"], batch["driving"]
  depth = lambda x: jax.lax.stop_gradient(nets.depth.apply(state.depth, x)[0])  # noqa: E731  frozen, eval
  kp_vars = {"params": trainable["kp_detector"], **others["kp_detector"]}

  def kp(x, d, kp_vars):
    inp = jnp.concatenate([x, d], axis=-1) if cfg.rgbd else x
    out, upd = nets.kp_detector.apply(kp_vars, inp, train=True, mutable=["batch_stats"])
    return at_least_f32(out), {**kp_vars, **upd}  # keypoints/Jacobians (inverted later) in float32 at least

  depth_src, depth_drv = depth(source), depth(driving)
  kp_src, kp_vars = kp(source, depth_src, kp_vars)
  kp_drv, kp_vars = kp(driving, depth_drv, kp_vars)
  gen_vars = {"params": trainable["generator"], **others["generator"]}
  generated, gen_upd = nets.generator.apply(gen_vars, source, kp_driving=kp_drv, kp_source=kp_src,
                                            source_depth=depth_src, driving_depth=depth_drv, train=True,
                                            mutable=["batch_stats"])
  gen_vars = {**gen_vars, **gen_upd}
  pred = at_least_f32(generated["prediction"])
  losses = {}
  pyr_real, pyr_gen = image_pyramid(driving, hp.scales), image_pyramid(pred, hp.scales)
  if sum(hp.perceptual):
    total = 0.0
    for s in hp.scales:
      key = f"prediction_{dagan.utils.scale_key(s)}"
      x_vgg = at_least_f32(vgg_module.apply(state.vgg, pyr_gen[key]))
      y_vgg = at_least_f32(vgg_module.apply(state.vgg, pyr_real[key]))
      for i, w in enumerate(hp.perceptual):
        total = total + w * jnp.mean(jnp.abs(x_vgg[i] - jax.lax.stop_gradient(y_vgg[i])))
    losses["perceptual"] = total
  disc_scales = tuple(cfg.discriminator_params.scales)
  if hp.generator_gan:
    kp_det = jax.tree.map(jax.lax.stop_gradient, kp_drv)  # detach_kp
    d_vars = state.params["discriminator"]
    maps_gen = nets.discriminator.apply(d_vars, pred, kp_det)
    maps_real = nets.discriminator.apply(d_vars, driving, kp_det)
    losses["gen_gan"] = dl.generator_gan_loss(maps_gen, disc_scales, hp.generator_gan)
    if sum(hp.feature_matching):
      losses["feature_matching"] = dl.feature_matching_loss(maps_real, maps_gen, disc_scales, hp.feature_matching)
  if hp.equivariance_value + hp.equivariance_jacobian:
    transformed = transform.transform_frame(driving)
    kp_t, kp_vars = kp(transformed, depth(transformed), kp_vars)
    if hp.equivariance_value:
      losses["equivariance_value"] = dl.equivariance_value_loss(kp_drv, kp_t, transform, hp.equivariance_value)
    if hp.equivariance_jacobian:
      losses["equivariance_jacobian"] = dl.equivariance_jacobian_loss(kp_drv, kp_t, transform,
                                                                      hp.equivariance_jacobian)
  k = cfg.num_kp
  eye = jnp.eye(k, dtype=pred.dtype)
  if hp.kp_distance:  # sign() makes this term's gradient zero (official behaviour, logged for completeness)
    def dist_term(v):
      d = v[:, :, None] - v[:, None]
      return jnp.mean(-jnp.sign(jnp.sqrt(jnp.sum(d * d, -1) + 1e-8) + eye * 0.2 - 0.2) + 1)
    losses["kp_distance"] = hp.kp_distance * (dist_term(kp_src["value"]) + dist_term(kp_drv["value"]))
  if hp.kp_scale:
    kp_pred, kp_vars = kp(pred, depth(pred), kp_vars)
    pk = kp_src["value"] - jnp.mean(kp_pred["value"], 1, keepdims=True)
    dk = kp_drv["value"] - jnp.mean(kp_drv["value"], 1, keepdims=True)
    scale_vec = jnp.sqrt(jnp.sum(dk * dk, -1) + 1e-8) / jnp.sqrt(jnp.sum(pk * pk, -1) + 1e-8)
    losses["kp_scale"] = hp.kp_scale * jnp.mean(jnp.abs(scale_vec[:, :-1] - scale_vec[:, 1:]))
  if hp.depth_constraint:
    losses["depth_constraint"] = hp.depth_constraint * jnp.mean(jnp.abs(depth_drv - depth(pred)))
  total = sum(losses.values())
  new_vars = {"kp_detector": kp_vars, "generator": gen_vars}
  return total, (losses, new_vars, generated, kp_drv)


def train_step(state: State, batch: dict[str, jax.Array], *, cfg: dagan.Config, hp: HParams, nets=None,
               vgg_module=None) -> tuple[State, dict[str, jax.Array]]:
  """One official iteration. ``batch``: source, driving (B, H, W, 3) in [0, 1]; optional ``transform_theta``
  (B, 2, 3) and ``transform_control_params`` (B, 1, P²) — drawn from ``fold_in(rng, step)`` when absent."""
  nets = nets or dagan.build(cfg)
  opts = optimizers(hp)
  b = batch["source"].shape[0]
  if "transform_theta" in batch:
    transform = Transform(batch["transform_theta"], batch.get("transform_control_params"),
                          hp.points_tps if "transform_control_params" in batch else None)
  else:
    transform = Transform.random(jax.random.fold_in(state.rng, state.step), b, hp.sigma_affine, hp.sigma_tps,
                                 hp.points_tps, batch["source"].dtype)
  trainable, others = {}, {}
  for m in ("kp_detector", "generator"):
    trainable[m], others[m] = _split(state.params[m])
  (total, (losses, new_vars, generated, kp_drv)), grads = jax.value_and_grad(generator_losses, has_aux=True)(
      trainable, others, state, nets, vgg_module, batch, transform, hp, cfg)
  params, opt_state = dict(state.params), dict(state.opt_state)
  for m in ("generator", "kp_detector"):
    updates, opt_state[m] = opts[m].update(grads[m], opt_state[m], trainable[m])
    params[m] = {**new_vars[m], "params": optax.apply_updates(trainable[m], updates)}
  metrics = {f"G/{k}": v for k, v in losses.items()}
  metrics["G/total"] = total
  if hp.generator_gan:
    pred = jax.lax.stop_gradient(generated["prediction"])
    kp_det = jax.tree.map(jax.lax.stop_gradient, kp_drv)
    d_params, d_others = _split(state.params["discriminator"])
    disc_scales = tuple(cfg.discriminator_params.scales)

    def d_obj(dp):
      v = {"params": dp, **d_others}
      maps_gen = nets.discriminator.apply(v, pred, kp_det)
      maps_real = nets.discriminator.apply(v, batch["driving"], kp_det)
      return dl.discriminator_gan_loss(maps_real, maps_gen, disc_scales, hp.discriminator_gan)

    d_loss, d_grads = jax.value_and_grad(d_obj)(d_params)
    updates, opt_state["discriminator"] = opts["discriminator"].update(d_grads, opt_state["discriminator"], d_params)
    params["discriminator"] = {**d_others, "params": optax.apply_updates(d_params, updates)}
    metrics["D/disc_gan"] = d_loss
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def step_fn(cfg: dagan.Config, hp: HParams, vgg_module=None, dtype=None):
  """``train_step`` bound to its config and networks: the pure function ``launch.train`` jits and the complexity
  report lowers. ``dtype`` is the compute dtype."""
  return functools.partial(train_step, cfg=cfg, hp=hp, nets=dagan.build(cfg, dtype=dtype), vgg_module=vgg_module)


def jit_train_step(cfg: dagan.Config, hp: HParams, mesh, vgg_module=None, dtype=None, **jit_options):
  """``step_fn`` jitted over ``mesh`` by ``sharding.jit_step`` (state replicated and donated, batch sharded)."""
  return sharding.jit_step(step_fn(cfg, hp, vgg_module, dtype), mesh, **jit_options)


def create_sharded_state(cfg: dagan.Config, hp: HParams, rng: jax.Array, mesh, img_size: int, depth_variables,
                         vgg_variables) -> State:
  rep = sharding.replicated(mesh)
  # One jitted init (op-by-op initialisation of every network took ~40 s for the tiny config on 2 CPU cores).
  state = init_jit(lambda key: init_state(cfg, hp, key, img_size, None, None), out_shardings=rep)(rng)
  state = state.replace(depth=depth_variables, vgg=vgg_variables)
  # Copies (may_alias=False): the jitted step donates the state, which must not delete the caller's depth/VGG arrays.
  return jax.device_put(state, rep, may_alias=False)

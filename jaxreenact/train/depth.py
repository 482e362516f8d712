"""Self-supervised training of DaGAN's depth network (harlanhong/Face-Depth-Network, the monodepth2 recipe).

One iteration (trainer.py ``process_batch`` + one Adam step over all four networks): the depth net sees the
colour-augmented target frame t; the pose net sees the augmented pairs (t−1, t) — inverted — and (t, t+1); the
photometric, auto-masked, smoothness losses of :mod:`jaxreenact.losses.depth` are averaged over 4 scales. BatchNorm
runs in training mode (batch statistics over the global batch; running statistics updated, the pose encoder's
twice). Adam (1e-4, betas 0.9/0.999, no weight decay); StepLR ×0.1 every 15 epochs, stepped at the start of each
epoch as the official trainer does (so, under torch ≥ 1.1, the first drop lands after 14 epochs).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import chex
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxreenact.checkpoint import depth_train_convert
from jaxreenact.losses import depth as losses
from jaxreenact.models import init_jit
from jaxreenact.models.dagan.depth import DepthNet
from jaxreenact.models.dagan.pose import PoseNet
from jaxreenact.train import sharding

FRAME_IDS = (0, -1, 1)  # opt.frame_ids; batch["frames"][:, i] holds t−1, t, t+1 for i = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Config:
  """Architecture. ResNet-18 (``num_layers``) for both encoders, as Face-Depth-Network's ``--num_layers`` default."""
  img_size: int = 256  # height = width (--height 256 --width 256 in the official command)
  num_layers: int = 18
  block: str | None = None  # with ``layers``: override the torchvision preset (tiny nets)
  layers: tuple[int, ...] | None = None
  widths: tuple[int, ...] = (64, 128, 256, 512)
  num_ch_dec: tuple[int, ...] = (16, 32, 64, 128, 256)
  scales: tuple[int, ...] = (0, 1, 2, 3)

  @classmethod
  def from_config(cls, c) -> "Config":
    names = {f.name for f in dataclasses.fields(cls)}
    kw = {k: c[k] for k in names if k in c}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})


@dataclasses.dataclass(frozen=True)
class HParams:
  """options.py defaults (monodepth2) as Face-Depth-Network trains them."""
  lr: float = 1e-4
  beta1: float = 0.9
  beta2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  steps_per_epoch: int = 3125  # sample_num 100000 // batch_size 32
  scheduler_step_size: int = 15  # epochs
  scheduler_gamma: float = 0.1
  scheduler_at_epoch_start: bool = True  # run_epoch() calls model_lr_scheduler.step() before training the epoch
  min_depth: float = 0.1
  max_depth: float = 100.0
  disparity_smoothness: float = 1e-3
  ssim_weight: float = 0.85  # 0 = --no_ssim
  automasking: bool = True
  avg_reprojection: bool = False
  trunc_intrinsics: bool = True  # official: K truncated to integers (no gradient reaches the intrinsics head)

  @classmethod
  def from_config(cls, c) -> "HParams":
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: c[k] for k in names if k in c})


@dataclasses.dataclass(frozen=True)
class Nets:
  depth: DepthNet
  pose: PoseNet


@flax.struct.dataclass
class State:
  step: jax.Array
  params: dict[str, Any]  # {'depth': DepthNet params, 'pose': PoseNet params}
  batch_stats: dict[str, Any]  # {'depth': ..., 'pose': ...} BatchNorm running statistics
  opt_state: Any
  rng: jax.Array


def build(cfg: Config, dtype: Any = None, param_dtype: Any = jnp.float32) -> Nets:
  kw = dict(num_layers=cfg.num_layers, block=cfg.block, layers=cfg.layers, widths=tuple(cfg.widths),
            dtype=dtype, param_dtype=param_dtype)
  return Nets(depth=DepthNet(scales=tuple(cfg.scales), num_ch_dec=tuple(cfg.num_ch_dec), **kw),
              pose=PoseNet(height=cfg.img_size, width=cfg.img_size, **kw))


def lr_schedule(hp: HParams):
  """Learning rate of update ``count`` (0-based): StepLR per epoch, with the official start-of-epoch stepping."""
  def schedule(count):
    epoch = count // hp.steps_per_epoch
    if hp.scheduler_at_epoch_start:
      epoch = epoch + 1  # scheduler.step() at the start of epoch e leaves last_epoch = e + 1 for its updates
    return hp.lr * hp.scheduler_gamma ** (epoch // hp.scheduler_step_size)
  return schedule


def optimizer(hp: HParams) -> optax.GradientTransformation:
  """torch.optim.Adam over all four networks (one optimiser, coupled weight decay if any) with the StepLR schedule."""
  parts = []
  if hp.weight_decay:
    parts.append(optax.add_decayed_weights(hp.weight_decay))  # torch Adam: L2 added to the gradient
  parts += [optax.scale_by_adam(b1=hp.beta1, b2=hp.beta2, eps=hp.eps, eps_root=0.0),
            optax.scale_by_learning_rate(lr_schedule(hp))]
  return optax.chain(*parts)


def init_variables(cfg: Config, rng: jax.Array, nets: Nets | None = None) -> dict[str, Any]:
  """{'depth': {'params', 'batch_stats'}, 'pose': {...}} with torchvision/torch default initialisations."""
  nets = nets or build(cfg)
  img = jnp.zeros((1, cfg.img_size, cfg.img_size, 3), jnp.float32)
  kd, kp = jax.random.split(rng)
  return {"depth": nets.depth.init(kd, img), "pose": nets.pose.init(kp, img, img)}


def state_from_variables(variables: Mapping[str, Any], hp: HParams, rng: jax.Array) -> State:
  params = {k: variables[k]["params"] for k in ("depth", "pose")}
  stats = {k: variables[k]["batch_stats"] for k in ("depth", "pose")}
  return State(step=jnp.zeros((), jnp.int32), params=params, batch_stats=stats,
               opt_state=optimizer(hp).init(params), rng=rng)


def init_state(cfg: Config, hp: HParams, rng: jax.Array) -> State:
  """Fresh state (ImageNet initialisation, the official default, needs :func:`load_torchvision_resnet`)."""
  k_vars, k_state = jax.random.split(rng)
  return state_from_variables(init_variables(cfg, k_vars), hp, k_state)


def _check_batch(batch: Mapping[str, jax.Array], cfg: Config, hp: HParams) -> None:
  for key in ("frames", "frames_aug"):
    if key not in batch:
      raise ValueError(f"depth train_step: batch needs {key!r} (B, 3, H, W, 3) from depth_pipeline; got {list(batch)}")
    chex.assert_rank(batch[key], 5)
    if batch[key].shape[1:] != (3, cfg.img_size, cfg.img_size, 3):
      raise ValueError(f"depth train_step: batch[{key!r}] must be (B, 3, {cfg.img_size}, {cfg.img_size}, 3) "
                       f"(frames t−1, t, t+1 at model.img_size); got {batch[key].shape}")
  if "identity_noise" in batch:
    b = batch["frames"].shape[0]
    n = 1 if hp.avg_reprojection else 2
    want = (b, len(cfg.scales), cfg.img_size, cfg.img_size, n)
    if batch["identity_noise"].shape != want:
      raise ValueError(f"depth train_step: batch['identity_noise'] must be {want}, got {batch['identity_noise'].shape}")


def forward(params: Mapping[str, Any], batch_stats: Mapping[str, Any], frames_aug: jax.Array, nets: Nets,
            train: bool = True) -> tuple[list[jax.Array], dict[int, jax.Array], jax.Array, dict[str, Any]]:
  """Depth of frame t and poses to t∓1 (trainer.py ``process_batch`` / ``predict_poses``, pose_model_input='pairs').

  Returns:
    (disparities scale 0 first, {−1: T, 1: T} (B, 4, 4), intrinsics (B, 3, 3) from the last pair — the official
    trainer overwrites ``outputs['K']`` per pair — and the updated batch_stats).
  """
  mutable = ["batch_stats"] if train else False
  cur = frames_aug[:, 1]
  out = nets.depth.apply({"params": params["depth"], "batch_stats": batch_stats["depth"]}, cur, train=train,
                         mutable=mutable)
  disps, depth_stats = (out[0], out[1]["batch_stats"]) if train else (out, batch_stats["depth"])
  # "To maintain ordering we always pass frames in temporal order": pairs (t−1, t) then (t, t+1), run one after
  # the other (BatchNorm statistics per pair, running statistics updated twice) as a scan: one trace of the net.
  firsts = jnp.stack([frames_aug[:, 0], cur])
  seconds = jnp.stack([cur, frames_aug[:, 2]])

  def one_pair(stats, pair):
    out = nets.pose.apply({"params": params["pose"], "batch_stats": stats}, *pair, train=train, mutable=mutable)
    return (out[1]["batch_stats"], out[0]) if train else (stats, out)

  pose_stats, (axisangle, translation, ks) = jax.lax.scan(one_pair, batch_stats["pose"], (firsts, seconds))
  poses = {f: losses.transformation_from_parameters(axisangle[i][:, 0], translation[i][:, 0], invert=f < 0)
           for i, f in enumerate(FRAME_IDS[1:])}  # the pose to t−1 is inverted
  k = ks[-1]
  return disps, poses, k, {"depth": depth_stats, "pose": pose_stats}


def loss_kwargs(hp: HParams) -> dict[str, Any]:
  return dict(min_depth=hp.min_depth, max_depth=hp.max_depth, disparity_smoothness=hp.disparity_smoothness,
              ssim_weight=hp.ssim_weight, automasking=hp.automasking, avg_reprojection=hp.avg_reprojection,
              trunc_intrinsics=hp.trunc_intrinsics)


def train_step(state: State, batch: Mapping[str, jax.Array], *, cfg: Config, hp: HParams,
               nets: Nets | None = None) -> tuple[State, dict[str, jax.Array]]:
  """One official iteration.

  Args:
    state: current :class:`State`.
    batch: ``frames`` (B, 3, H, W, 3) in [0, 1] (t−1, t, t+1; photometric targets), ``frames_aug`` (same,
      colour-jittered; network inputs), optional ``identity_noise`` (B, S, H, W, 2) standard normal — drawn from
      ``fold_in(state.rng, step)`` when absent (the official ``torch.randn`` tie break).
  Returns:
    (new state, metrics: loss, loss/s, reprojection/s, smoothness/s, automask/s, lr, focal_x, focal_y).
  """
  nets = nets or build(cfg)
  _check_batch(batch, cfg, hp)
  frames, frames_aug = batch["frames"], batch["frames_aug"]
  noise = batch.get("identity_noise")
  if noise is None and hp.automasking:
    b = frames.shape[0]
    shape = (b, len(cfg.scales), cfg.img_size, cfg.img_size, 1 if hp.avg_reprojection else 2)
    noise = jax.random.normal(jax.random.fold_in(state.rng, state.step), shape, frames.dtype)
  colour = {f: frames[:, i] for i, f in enumerate((-1, 0, 1))}

  def loss_fn(params):
    disps, poses, k, stats = forward(params, state.batch_stats, frames_aug, nets, train=True)
    loss, metrics = losses.self_supervised_loss(disps, colour, poses, k, noise, **loss_kwargs(hp))
    metrics["focal_x"], metrics["focal_y"] = jnp.mean(k[:, 0, 0]), jnp.mean(k[:, 1, 1])
    return loss, (metrics, stats)

  (loss, (metrics, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  opt = optimizer(hp)
  updates, opt_state = opt.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {"loss": loss, **metrics, "lr": jnp.asarray(lr_schedule(hp)(state.step), jnp.float32)}
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=stats, opt_state=opt_state)
  return new_state, metrics


def jit_train_step(cfg: Config, hp: HParams, mesh, **jit_options):
  """``train_step`` jitted over ``mesh`` by ``sharding.jit_step`` (state replicated and donated, batch sharded)."""
  return sharding.jit_step(functools.partial(train_step, cfg=cfg, hp=hp, nets=build(cfg)), mesh, **jit_options)


def create_sharded_state(cfg: Config, hp: HParams, rng: jax.Array, mesh, compiler_options: dict | None = None) -> State:
  """Builds the state directly replicated on the mesh (``jit(init, out_shardings=...)``)."""
  return init_jit(functools.partial(init_state, cfg, hp), compiler_options,
                  out_shardings=sharding.replicated(mesh))(rng)


def predict(state: State, frames: jax.Array, cfg: Config, nets: Nets | None = None) -> dict[str, jax.Array]:
  """Evaluation-mode outputs for previews: disparity (B, H, W, 1) and t∓1 warped onto t (B, H, W, 3) each.

  ``frames`` (B, 3, H, W, 3) in [0, 1] (t−1, t, t+1); BatchNorm uses the running statistics.
  """
  nets = nets or build(cfg)
  disps, poses, k, _ = forward(state.params, state.batch_stats, frames, nets, train=False)
  _, depth = losses.disp_to_depth(disps[0])
  k = losses.scale_intrinsics(k, 0, True)
  return {"disp": disps[0], "warped_prev": losses.warp(frames[:, 0], depth, poses[-1], k),
          "warped_next": losses.warp(frames[:, 2], depth, poses[1], k)}


# ---------------------------------------------------------------------------------------------------------------
# weights from files: the converters are jaxreenact.checkpoint.depth_train_convert


def variable_shapes(cfg: Config) -> dict[str, Any]:
  """Shapes of :func:`init_variables` (``jax.ShapeDtypeStruct``): what the converter checks official files against."""
  return jax.eval_shape(lambda: init_variables(cfg, jax.random.key(0)))


def load_torchvision_resnet(state: State, state_dict: Mapping[str, Any], hp: HParams,
                            source: str = "torchvision resnet") -> State:
  """Official ``--weights_init pretrained``: ImageNet ResNet weights into both encoders (nothing is downloaded).

  ``state_dict`` is a torchvision ``resnet{18,50}`` state dict that the user supplies; the conversion is
  ``depth_train_convert.encoders_from_torchvision``. Optimiser moments are re-initialised.
  """
  variables = {n: {"params": state.params[n], "batch_stats": state.batch_stats[n]} for n in ("depth", "pose")}
  variables = depth_train_convert.encoders_from_torchvision(variables, state_dict, source)
  params = {n: variables[n]["params"] for n in ("depth", "pose")}
  stats = {n: variables[n]["batch_stats"] for n in ("depth", "pose")}
  return state.replace(params=params, batch_stats=stats, opt_state=optimizer(hp).init(params))

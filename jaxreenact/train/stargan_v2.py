"""StarGAN v2 training: state, the official four-phase iteration as one pure function, and its jitted form.

One iteration (core/solver.py train): D step (latent), D step (reference), G step (latent; updates G, F, E),
G step (reference; updates G only), then EMA (β=0.999) of G, F, E and the linear decay of λ_ds.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxreenact.losses import stargan_v2 as losses
from jaxreenact.models import init_jit, stargan_v2
from jaxreenact.train import ema as ema_lib
from jaxreenact.train import optim, sharding

TRAINED = ("generator", "mapping_network", "style_encoder", "discriminator")
EMA_MODULES = ("generator", "mapping_network", "style_encoder")


@dataclasses.dataclass(frozen=True)
class HParams:
  """core/solver.py / main.py defaults."""
  lr: float = 1e-4
  f_lr: float = 1e-6
  beta1: float = 0.0
  beta2: float = 0.99
  eps: float = 1e-8
  weight_decay: float = 1e-4
  ema_beta: float = 0.999
  lambda_reg: float = 1.0
  lambda_sty: float = 1.0
  lambda_ds: float = 1.0
  lambda_cyc: float = 1.0
  ds_iter: int = 100_000

  @classmethod
  def preset(cls, name: str) -> "HParams":
    """The training settings of a named model preset (``stargan_v2.PRESETS``), defined here once: the official
    per-dataset λ (main.py / README), the study's λ for its expression domains, a short λ_ds decay for tiny."""
    if name not in stargan_v2.PRESETS:
      raise ValueError(f"unknown StarGAN v2 preset {name!r}; choose one of {', '.join(stargan_v2.PRESETS)}")
    return cls(**{"afhq": dict(lambda_ds=2.0), "expressions": dict(lambda_ds=3.0, lambda_sty=3.0, lambda_cyc=3.0),
                  "tiny": dict(ds_iter=200)}.get(name, {}))

  @classmethod
  def from_config(cls, c) -> "HParams":
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: c[k] for k in names if k in c})


@flax.struct.dataclass
class State:
  step: jax.Array
  params: dict[str, Any]  # {module: Flax variables} for G, F, E, D
  ema: dict[str, Any]  # {module: variables} for G, F, E
  opt_state: dict[str, Any]
  rng: jax.Array
  fan: Any = None  # frozen FAN variables when w_hpf > 0


def optimizers(hp: HParams) -> dict[str, optax.GradientTransformation]:
  """One torch-style Adam per network; the mapping network uses f_lr (official)."""
  return {name: optim.torch_adam(hp.f_lr if name == "mapping_network" else hp.lr, hp.beta1, hp.beta2, hp.eps,
                                 hp.weight_decay) for name in TRAINED}


def init_state(cfg: stargan_v2.Config, hp: HParams, rng: jax.Array, fan_variables: Any = None,
               ema_init: str = "torch") -> State:
  """Fresh state: networks with the official he_init; EMA copies from torch's default init (official deepcopy
  happens before he_init is applied), unless ``ema_init='same'``. With w_hpf > 0 the frozen FAN weights
  (wing.ckpt) must be attached before training (``state.replace(fan=...)``)."""
  k_params, k_ema, k_state = jax.random.split(rng, 3)
  nets = stargan_v2.build(cfg, init="he")
  inputs = stargan_v2.dummy_inputs(cfg)
  keys = jax.random.split(k_params, len(TRAINED))
  params = {m: getattr(nets, m).init(k, *inputs[m]) for k, m in zip(keys, TRAINED)}
  if ema_init == "same":
    ema = {m: params[m] for m in EMA_MODULES}
  else:
    tnets = stargan_v2.build(cfg, init="torch")
    ekeys = jax.random.split(k_ema, len(EMA_MODULES))
    ema = {m: getattr(tnets, m).init(k, *inputs[m]) for k, m in zip(ekeys, EMA_MODULES)}
  opts = optimizers(hp)
  opt_state = {m: opts[m].init(params[m]) for m in TRAINED}
  return State(step=jnp.zeros((), jnp.int32), params=params, ema=ema, opt_state=opt_state, rng=k_state,
               fan=fan_variables)


def lambda_ds_at(step: jax.Array, hp: HParams) -> jax.Array:
  """λ_ds decays linearly from its initial value to 0 over ds_iter iterations (then stays at 0)."""
  if hp.ds_iter <= 0:
    return jnp.asarray(hp.lambda_ds, jnp.float32)
  return jnp.maximum(hp.lambda_ds * (1.0 - step.astype(jnp.float32) / hp.ds_iter), 0.0)


def train_step(state: State, batch: dict[str, jax.Array], *, cfg: stargan_v2.Config, hp: HParams,
               nets: stargan_v2.Nets | None = None) -> tuple[State, dict[str, jax.Array]]:
  """One official iteration.

  Args:
    state: current :class:`State`.
    batch: ``x_src`` (B,H,W,3) in [-1,1], ``y_src`` (B,), ``x_ref``, ``x_ref2``, ``y_ref``; optional ``z_trg``,
      ``z_trg2`` (B, latent_dim) — drawn from ``fold_in(state.rng, step)`` when absent.
  Returns:
    (new state, metrics dict of scalars).
  """
  nets = nets or stargan_v2.build(cfg)
  opts = optimizers(hp)
  x_real, y_org = batch["x_src"], batch["y_src"].astype(jnp.int32)
  x_ref, x_ref2, y_trg = batch["x_ref"], batch["x_ref2"], batch["y_ref"].astype(jnp.int32)
  b = x_real.shape[0]
  if "z_trg" in batch:
    z_trg, z_trg2 = batch["z_trg"], batch["z_trg2"]
  else:
    kz1, kz2 = jax.random.split(jax.random.fold_in(state.rng, state.step))
    z_trg = jax.random.normal(kz1, (b, cfg.latent_dim), x_real.dtype)
    z_trg2 = jax.random.normal(kz2, (b, cfg.latent_dim), x_real.dtype)

  masks_fn = None
  masks = None
  if cfg.w_hpf > 0:
    masks_fn = lambda x: nets.fan.apply(state.fan, x, method="get_heatmap")  # noqa: E731
    masks = jax.lax.stop_gradient(masks_fn(x_real))

  params, opt_state = dict(state.params), dict(state.opt_state)

  def apply_update(name, grads):
    updates, opt_state[name] = opts[name].update(grads, opt_state[name], params[name])
    params[name] = optax.apply_updates(params[name], updates)

  metrics = {}
  for tag, kw in (("latent", dict(z_trg=z_trg)), ("ref", dict(x_ref=x_ref))):
    def d_obj(dvars, kw=kw):
      return losses.d_loss({**params, "discriminator": dvars}, nets, x_real, y_org, y_trg, masks=masks,
                           lambda_reg=hp.lambda_reg, **kw)
    (loss, aux), grads = jax.value_and_grad(d_obj, has_aux=True)(params["discriminator"])
    apply_update("discriminator", grads)
    metrics[f"D/{tag}_loss"] = loss
    metrics.update({f"D/{tag}_{k}": v for k, v in aux.items()})

  lam_ds = lambda_ds_at(state.step, hp)
  g_kw = dict(masks=masks, masks_fn=masks_fn, lambda_sty=hp.lambda_sty, lambda_ds=lam_ds, lambda_cyc=hp.lambda_cyc)
  for tag, kw, updated in (("latent", dict(z_trgs=(z_trg, z_trg2)), EMA_MODULES),
                           ("ref", dict(x_refs=(x_ref, x_ref2)), ("generator",))):
    def g_obj(trainable, kw=kw):
      return losses.g_loss({**params, **trainable}, nets, x_real, y_org, y_trg, **kw, **g_kw)
    (loss, aux), grads = jax.value_and_grad(g_obj, has_aux=True)({m: params[m] for m in updated})
    for m in updated:
      apply_update(m, grads[m])
    metrics[f"G/{tag}_loss"] = loss
    metrics.update({f"G/{tag}_{k}": v for k, v in aux.items()})

  ema = {m: ema_lib.ema_update(params[m], state.ema[m], hp.ema_beta) for m in EMA_MODULES}
  metrics["G/lambda_ds"] = lam_ds
  new_state = state.replace(step=state.step + 1, params=params, ema=ema, opt_state=opt_state)
  return new_state, metrics


def step_fn(cfg: stargan_v2.Config, hp: HParams, dtype=None):
  """``train_step`` bound to its config and networks: the pure function ``launch.train`` jits and the complexity
  report lowers. ``dtype`` (e.g. ``jnp.bfloat16``) is the compute dtype; parameters and optimiser states stay
  float32."""
  return functools.partial(train_step, cfg=cfg, hp=hp, nets=stargan_v2.build(cfg, dtype=dtype))


def jit_train_step(cfg: stargan_v2.Config, hp: HParams, mesh, dtype=None, **jit_options):
  """``step_fn`` jitted over ``mesh`` by ``sharding.jit_step`` (state replicated and donated, batch sharded)."""
  return sharding.jit_step(step_fn(cfg, hp, dtype), mesh, **jit_options)


def create_sharded_state(cfg: stargan_v2.Config, hp: HParams, rng: jax.Array, mesh, fan_variables=None,
                         ema_init: str = "torch") -> State:
  """Builds the state directly replicated on the mesh (``jit(init, out_shardings=...)``)."""
  if cfg.w_hpf > 0 and fan_variables is None:
    raise ValueError("w_hpf > 0 needs the FAN weights (wing.ckpt) for the high-pass masks: set the config field "
                     "wing_path (the official file) — there is no offline default")
  rep = sharding.replicated(mesh)
  state = init_jit(functools.partial(init_state, cfg, hp, ema_init=ema_init), out_shardings=rep)(rng)
  if fan_variables is not None:
    state = state.replace(fan=jax.device_put(fan_variables, rep, may_alias=False))  # donated with the state: copy
  return state

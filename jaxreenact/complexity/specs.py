"""What the complexity report measures, per model: its modules and one training iteration, in JAX and in PyTorch.

A :class:`ModelSpec` is model-agnostic plumbing: each :class:`ModuleSpec` names a pure JAX function of
``(variables, *inputs)`` with shape-only arguments, which inputs the training backward differentiates, and the
matching PyTorch reference call; the :class:`TrainSpec` is "one training iteration": the training step
``launch.train`` runs. ``report.py`` only talks to these objects.

Definitions (the report repeats them):

* module **forward**: one call at the given batch; module **backward**: the gradient of Σ(outputs) with respect to
  the parameters and to the inputs that training differentiates (image inputs of G, E, D; not the noise of F);
  frozen networks (FAN, the DaGAN depth net) have none.
* StarGAN v2 **training iteration** (core/solver.py): D step latent-guided, D step reference-guided (both with R1 by
  double backprop), G step latent-guided (gradients for G, F, E), G step reference-guided (gradients for G), each
  as ``value_and_grad`` of its loss. With w_hpf > 0 the FAN masks of x_real are computed once, and the cycle pass of
  each G step gets FAN masks of x_fake (no gradient: the official ``get_heatmap`` runs under ``torch.no_grad``).
  The iteration is the training step itself (``jaxreenact.train.<model>.step_fn``, what ``launch.train`` jits), so
  its count includes the optimizer updates and the EMA (elementwise, O(params)).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.models import count_params, dagan, stargan_v2 as sg
from jaxreenact.models.dagan.dense_motion import DenseMotionNetwork
from jaxreenact.models.vgg import VGGFeatures
from jaxreenact.train import dagan as dg, stargan_v2 as sg_train

Sds = jax.ShapeDtypeStruct


def sds(*shape, dtype=jnp.float32) -> Sds:
  return Sds(tuple(shape), dtype)


@dataclasses.dataclass
class TorchSide:
  """The PyTorch reference counterpart of a module call."""
  build: Callable[[str], Any]  # device -> nets container (built once per device and cached by the report)
  inputs: Callable[[int, str], tuple]  # (batch, device) -> positional args
  module: Callable[[Any], Any]  # nets -> the nn.Module to profile
  call: Callable[[Any, tuple], Any] | None = None  # (nets, args) -> output; None: module(*args)
  grad_inputs: tuple[int, ...] = ()  # args that require grad for the backward


@dataclasses.dataclass
class ModuleSpec:
  name: str
  fn: Callable  # (variables, *inputs) -> outputs
  variables: Any  # ShapeDtypeStruct tree
  inputs: Callable[[int], tuple]  # batch -> ShapeDtypeStruct args
  grad_inputs: tuple[int, ...] | None  # indices of inputs differentiated by the backward; None: frozen, no backward
  torch: TorchSide | None = None
  official: dict[str, int] = dataclasses.field(default_factory=dict)  # official figures (docs/facts.md) at batch 1
  note: str = ""
  light: bool = False  # counts only: no compile, memory or latency (a variant of a module measured in full)
  param_grads: bool = True  # False: frozen weights, the backward only propagates to the inputs (VGG)

  @property
  def params(self) -> int:
    v = self.variables
    return count_params(v["params"] if isinstance(v, dict) and "params" in v else v)

  def backward_fn(self) -> Callable | None:
    """(variables, *inputs) -> (Σ outputs, grads w.r.t. params and the differentiated inputs)."""
    if self.grad_inputs is None:
      return None
    fn, gi, wrt = self.fn, self.grad_inputs, (0, 1) if self.param_grads else (1,)

    def fwd_bwd(variables, *inputs):
      def loss(params, diff):
        args = list(inputs)
        for i, d in zip(gi, diff):
          args[i] = d
        return sum_outputs(fn({**variables, "params": params}, *args))

      return jax.value_and_grad(loss, argnums=wrt)(variables["params"], tuple(inputs[i] for i in gi))

    return fwd_bwd


@dataclasses.dataclass
class TrainSpec:
  fn: Callable  # the training step launch.train jits: (state, batch) -> (new state, metrics)
  state: Any  # ShapeDtypeStruct tree of the training state
  batch: Callable[[int], dict]  # batch size -> ShapeDtypeStruct dict, as the data pipeline feeds the step
  networks: dict[str, Any]  # the networks' variables (shapes) whose parameters the report counts
  forward_calls: dict[str, int]  # module name -> forward calls per iteration (each at the full batch)
  torch_build: Callable[[str], Any] | None = None
  torch_inputs: Callable[[int, str], tuple] | None = None
  torch_iteration: Callable[..., None] | None = None  # (nets, batch, matched=False) -> runs forward+backward
  torch_wrapper: Callable[[Any], Any] | None = None  # nets -> nn.Module whose forward(*batch) = summed losses
  description: str = ""
  torch_note: str = ""  # why the official torch loop's counts differ from the JAX iteration


@dataclasses.dataclass
class ModelSpec:
  name: str
  config: Any
  config_name: str
  modules: list[ModuleSpec]
  train: TrainSpec
  scaling: Callable[[int], ModuleSpec]  # image size -> the module whose scaling is charted
  study: dict[str, Any] = dataclasses.field(default_factory=dict)  # the study's setting for Table 10
  base_size: int = 256  # image size of the config
  scaling_name: str = "generator"  # the module ``scaling`` builds

  def module(self, name: str) -> ModuleSpec:
    for m in self.modules:
      if m.name == name:
        return m
    raise KeyError(f"{self.name} has no module {name!r} (has {[m.name for m in self.modules]})")


def sum_outputs(out) -> jax.Array:
  """Σ of every floating leaf of an output pytree (a scalar 'loss' whose gradient is the full VJP of ones)."""
  leaves = [jnp.sum(x) for x in jax.tree.leaves(out) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
  return sum(leaves[1:], leaves[0])


def zeros_like_tree(tree, seed: int = 0):
  """Concrete arrays for a ShapeDtypeStruct tree: small random floats (identity-like 2×2 Jacobians), zero ints.

  Drawn with numpy: jax.random would compile one kernel per leaf shape (seconds for a big parameter tree).
  """
  rng = np.random.default_rng(seed)

  def make(s):
    if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key):
      return jax.random.split(jax.random.key(seed), s.shape) if s.shape else jax.random.key(seed)
    if not jnp.issubdtype(s.dtype, jnp.floating):
      return jnp.zeros(s.shape, s.dtype)
    x = 0.02 * rng.standard_normal(s.shape)
    if len(s.shape) >= 3 and s.shape[-2:] == (2, 2):  # keypoint Jacobians: keep them invertible
      x = x + np.eye(2)
    return jnp.asarray(x.astype(s.dtype))

  return jax.tree.map(make, tree)


@contextlib.contextmanager
def meta_item():
  """Lets code that logs ``loss.item()`` run on ``meta`` tensors (returns 0.0 there; real tensors unchanged)."""
  import torch

  original = torch.Tensor.item

  def item(self):
    return 0.0 if self.is_meta else original(self)

  torch.Tensor.item = item
  try:
    yield
  finally:
    torch.Tensor.item = original


# ---------------------------------------------------------------------------------------------------------------
# StarGAN v2.

STARGAN_OFFICIAL = {  # docs/facts.md §1, batch 1, 256 px, CelebA-HQ config: naive MACs, FlopCounterMode, DeepSpeed
    "generator": {"macs_naive": 45_374_676_992, "flopcounter": 90_749_353_984, "deepspeed_flops": 90_966_212_608},
    "generator_masks": {"macs_naive": 45_407_707_136, "flopcounter": 90_815_414_272,
                        "deepspeed_flops": 91_032_273_120},
    "mapping_network": {"macs_naive": 2_433_024, "flopcounter": 4_866_048, "deepspeed_flops": 4_871_168},
    "style_encoder": {"macs_naive": 16_563_372_032, "flopcounter": 33_126_744_064, "deepspeed_flops": 33_176_249_344},
    "discriminator": {"macs_naive": 16_563_307_520, "flopcounter": 33_126_615_040, "deepspeed_flops": 33_176_120_322},
    "fan": {"macs_naive": 8_726_052_864, "flopcounter": 17_452_105_728, "deepspeed_flops": 17_502_592_000,
            # the official DeepSpeed figure is FAN.forward in eval mode; get_heatmap, read inside a module forward as
            # in training, adds its two F.interpolate calls: size=256 (DeepSpeed's size= rule counts just 256) and
            # scale_factor=4 on (1, 98, 64, 64) (98·256·256 = 6,422,528).
            "deepspeed_offset": 256 + 6_422_528,
            "note": "DeepSpeed: the official figure is FAN.forward; get_heatmap adds 256 + 6,422,528 for its two resizes"},
}
STARGAN_PARAMS = {  # docs/facts.md §1
    (256, 2, 1.0): {"generator": 43_467_395, "mapping_network": 2_438_272, "style_encoder": 20_916_928,
                    "discriminator": 20_852_290, "fan": 6_333_603},
    (256, 3, 0.0): {"generator": 33_892_995, "mapping_network": 3_259_072, "style_encoder": 20_949_760,
                    "discriminator": 20_852_803},
    (256, 7, 0.0): {"generator": 33_892_995, "mapping_network": 6_542_272, "style_encoder": 21_081_088,
                    "discriminator": 20_854_855},
}


# The study's Table 10 (StarGAN V2 column) and setting (4 V100 GPUs, Table 11 batch 8).
STARGAN_STUDY = {"gpus": 4, "batch_per_gpu": 8, "dataset": "CelebA-HQ (the study's Table 11)",
                 "paper_config": "celeba_hq",
                 "fwd_flops_G": 2_902_834.73e9, "fwd_latency_s": 1.95, "bwd_latency_s": 5.24,
                 "fwd_FLOPS": 1488.63e12, "bwd_FLOPS": 1107.95218e12, "fwd_bwd_FLOPS": 1211.19668e12,
                 "note": "the official StarGAN v2 code trains on one GPU: the whole batch of 8 is on one device"}


def stargan_v2_config(name: str):
  if name in sg.PRESETS:  # tiny: the FAN always runs at 256 px, so tiny has no masks
    return sg.Config.preset(name)
  if name == "tiny_hpf":  # tiny with the high-pass path (FAN at 256 px: costly)
    return dataclasses.replace(sg.Config.tiny(), w_hpf=1.0)
  raise ValueError(f"unknown StarGAN v2 config {name!r}; choose celeba_hq, afhq, expressions, tiny, tiny_hpf")


def _stargan_torch_build(cfg):
  def build(device: str):
    import torch
    from torch_reference.stargan_v2.model import build_nets_from_config
    with torch.device(device):
      nets = build_nets_from_config(cfg, he=False)  # every field, base_dim included
      if cfg.w_hpf > 0:
        from torch_reference.stargan_v2.wing import FAN
        nets["fan"] = FAN().eval()  # official build_model: FAN(...).eval(), BatchNorm on running statistics
    for name, n in nets.items():
      n.requires_grad_(name != "fan")  # FAN is frozen (get_heatmap runs under no_grad anyway)
    return nets

  return build


def _t(shape, device, kind="float"):
  import torch
  if kind == "int":
    return torch.zeros(shape, dtype=torch.long, device=device)
  if device == "meta":
    return torch.empty(shape, device=device)
  return torch.rand(shape, device=device) * 2 - 1


def stargan_v2_spec(config_name: str = "celeba_hq", *, with_torch: bool = True):
  """The StarGAN v2 ModelSpec for a named config (celeba_hq | afhq | expressions | tiny | tiny_hpf)."""

  cfg = stargan_v2_config(config_name)
  nets = sg.build(cfg)
  shapes = sg.variable_shapes(nets, cfg)
  size, hpf = cfg.img_size, cfg.w_hpf > 0
  img = lambda b: sds(b, size, size, 3)  # noqa: E731
  lab = lambda b: sds(b, dtype=jnp.int32)  # noqa: E731
  official = STARGAN_OFFICIAL if (size, cfg.num_domains, cfg.w_hpf, cfg.max_conv_dim) == (256, 2, 1.0, 512) else {}
  build = _stargan_torch_build(cfg) if with_torch else None

  def g_fn(v, x, s):
    return nets.generator.apply(v, x, s)

  def gm_fn(v, x, s, m1, m2):
    return nets.generator.apply(v, x, s, masks=(m1, m2))

  def apply(name):
    return lambda v, *a: getattr(nets, name).apply(v, *a)

  def fan_fn(v, x):
    return nets.fan.apply(v, x, method=nets.fan.get_heatmap)

  def ts(name, inputs, grad_inputs=(), call=None):
    if not with_torch:
      return None
    return TorchSide(build, inputs, lambda n: n[name], call, grad_inputs)

  modules = [
      ModuleSpec("generator", g_fn, shapes["generator"], lambda b: (img(b), sds(b, cfg.style_dim)), (0, 1),
                 ts("generator", lambda b, d: (_t((b, 3, size, size), d), _t((b, cfg.style_dim), d)), (0, 1)),
                 official.get("generator", {}), "G(x, s) without masks"),
  ]
  if hpf:
    m = lambda b: sds(b, 256, 256, 1)  # noqa: E731
    modules.append(ModuleSpec(
        "generator_masks", gm_fn, shapes["generator"], lambda b: (img(b), sds(b, cfg.style_dim), m(b), m(b)), (0, 1),
        ts("generator", lambda b, d: (_t((b, 3, size, size), d), _t((b, cfg.style_dim), d),
                                      _t((b, 1, 256, 256), d), _t((b, 1, 256, 256), d)), (0, 1),
           call=lambda n, a: n["generator"](a[0], a[1], masks=(a[2], a[3]))),
        official.get("generator_masks", {}), "G(x, s, masks): the training call when w_hpf > 0; counts only "
        "(compile, memory and latency as the generator row)", light=True))
  modules += [
      ModuleSpec("mapping_network", apply("mapping_network"), shapes["mapping_network"],
                 lambda b: (sds(b, cfg.latent_dim), lab(b)), (),
                 ts("mapping_network", lambda b, d: (_t((b, cfg.latent_dim), d), _t((b,), d, "int"))),
                 official.get("mapping_network", {})),
      ModuleSpec("style_encoder", apply("style_encoder"), shapes["style_encoder"], lambda b: (img(b), lab(b)), (0,),
                 ts("style_encoder", lambda b, d: (_t((b, 3, size, size), d), _t((b,), d, "int")), (0,)),
                 official.get("style_encoder", {})),
      ModuleSpec("discriminator", apply("discriminator"), shapes["discriminator"], lambda b: (img(b), lab(b)), (0,),
                 ts("discriminator", lambda b, d: (_t((b, 3, size, size), d), _t((b,), d, "int")), (0,)),
                 official.get("discriminator", {})),
  ]
  if hpf:
    modules.append(ModuleSpec(
        "fan", fan_fn, shapes["fan"], lambda b: (img(b),), None,
        ts("fan", lambda b, d: (_t((b, 3, size, size), d),), call=lambda n, a: n["fan"].get_heatmap(a[0])),
        official.get("fan", {}), "FAN.get_heatmap (resize to 256, FAN, masks); frozen, no gradient"))

  train = _stargan_train_spec(cfg, nets, shapes, build)

  def scaling(s: int) -> ModuleSpec:
    c = dataclasses.replace(cfg, img_size=s)
    n = sg.build(c)
    sh = jax.eval_shape(n.generator.init, jax.random.key(0), *sg.dummy_inputs(c)["generator"])
    return ModuleSpec("generator", lambda v, x, st: n.generator.apply(v, x, st), sh,
                      lambda b: (sds(b, s, s, 3), sds(b, c.style_dim)), (0, 1))

  return ModelSpec("stargan_v2", cfg, config_name, modules, train, scaling, dict(STARGAN_STUDY), size)


def _stargan_train_spec(cfg, nets, shapes, build) -> TrainSpec:

  size, hpf = cfg.img_size, cfg.w_hpf > 0
  hp = sg_train.HParams()  # the λ values do not change the work
  state = jax.eval_shape(functools.partial(sg_train.init_state, cfg, hp), jax.random.key(0))
  if hpf:
    state = state.replace(fan=shapes["fan"])
  networks = {k: shapes[k] for k in ("generator", "mapping_network", "style_encoder", "discriminator")}
  if hpf:
    networks["fan"] = shapes["fan"]

  def batch(b: int) -> dict:  # what the data pipeline feeds the step; z_trg, z_trg2 are drawn inside it
    img, lab = sds(b, size, size, 3), sds(b, dtype=jnp.int32)
    return {"x_src": img, "y_src": lab, "x_ref": img, "x_ref2": img, "y_ref": lab}

  calls = {"generator_masks" if hpf else "generator": 8, "discriminator": 6, "style_encoder": 7, "mapping_network": 3}
  if hpf:
    calls["fan"] = 3

  def torch_inputs(b: int, device: str) -> tuple:
    img = lambda: _t((b, 3, size, size), device)  # noqa: E731
    lab = lambda: _t((b,), device, "int")  # noqa: E731
    z = lambda: _t((b, cfg.latent_dim), device)  # noqa: E731
    return (img(), lab(), img(), img(), lab(), z(), z())

  def torch_iteration(tnets, batch, matched: bool = False) -> None:
    """The official iteration; ``matched`` turns off gradients the official loop computes and then discards
    (D weights in G steps, F/E in the reference G step) so that it computes what the JAX iteration does."""
    from torch_reference.stargan_v2 import losses as TL
    x_real, y_org, x_ref, x_ref2, y_trg, z_trg, z_trg2 = batch
    fan = tnets.get("fan")
    masks = fan.get_heatmap(x_real) if hpf else None
    masks_fn = fan.get_heatmap if hpf else None

    def only(names):
      if matched:
        for k in ("generator", "mapping_network", "style_encoder", "discriminator"):
          tnets[k].requires_grad_(k in names)

    with meta_item():
      only({"discriminator"})
      for kw in ({"z_trg": z_trg}, {"x_ref": x_ref}):
        loss, _ = TL.d_loss(tnets, x_real, y_org, y_trg, masks=masks, **kw)
        loss.backward()
      only({"generator", "mapping_network", "style_encoder"})
      loss, _ = TL.g_loss(tnets, x_real, y_org, y_trg, z_trgs=(z_trg, z_trg2), masks=masks, masks_fn=masks_fn)
      loss.backward()
      only({"generator"})
      loss, _ = TL.g_loss(tnets, x_real, y_org, y_trg, x_refs=(x_ref, x_ref2), masks=masks, masks_fn=masks_fn)
      loss.backward()
      only({"generator", "mapping_network", "style_encoder", "discriminator"})

  def torch_wrapper(tnets):
    import torch
    from torch_reference.stargan_v2 import losses as TL

    class Iteration(torch.nn.Module):
      """All four phases' forwards in one forward (FLOP-equivalent to four separate steps; one backward)."""

      def __init__(self):
        super().__init__()
        # Every network is a registered submodule, as in the official Solver's nets: DeepSpeed's engine only counts
        # functionals called inside submodule forwards at its profile step (its hooks start inside the top module's).
        self.nets = torch.nn.ModuleDict(dict(tnets))

      def forward(self, x_real, y_org, x_ref, x_ref2, y_trg, z_trg, z_trg2):
        n = dict(self.nets)
        fan = n.get("fan")
        masks = fan.get_heatmap(x_real) if fan is not None else None
        mf = fan.get_heatmap if fan is not None else None
        with meta_item():
          total = TL.d_loss(n, x_real, y_org, y_trg, z_trg=z_trg, masks=masks)[0]
          total = total + TL.d_loss(n, x_real, y_org, y_trg, x_ref=x_ref, masks=masks)[0]
          total = total + TL.g_loss(n, x_real, y_org, y_trg, z_trgs=(z_trg, z_trg2), masks=masks, masks_fn=mf)[0]
          return total + TL.g_loss(n, x_real, y_org, y_trg, x_refs=(x_ref, x_ref2), masks=masks, masks_fn=mf)[0]

    return Iteration()

  return TrainSpec(sg_train.step_fn(cfg, hp), state, batch, networks, calls, build,
                   torch_inputs if build else None, torch_iteration if build else None,
                   torch_wrapper if build else None,
                   "jaxreenact.train.stargan_v2.train_step: D latent + D reference (R1 by double backprop) + G latent "
                   "(grads G, F, E) + G reference (grads G)" + (", FAN masks (3 forwards, no gradient)" if hpf else "")
                   + ", each followed by its Adam update, then the EMA of G, F, E",
                   "official: the official loop's autograd (D weight gradients are also computed in the G steps and "
                   "discarded; d_loss makes x_real a leaf requiring grad, so ∂loss/∂x_real is computed too). matched: "
                   "only the updated networks require grad, as in the JAX iteration; the padding-excluded MACs then "
                   "differ only by ∂loss/∂x_real of the two D steps (D's first conv) and the 1×1 head of D's R1 "
                   "double backward (tested exactly).")


def batch_argnums_of(spec: ModuleSpec) -> tuple[int, ...]:
  """Module call args carrying the batch: every input (arg 0 is the variables)."""
  return tuple(range(1, 1 + len(spec.inputs(1))))


def make_args(spec: ModuleSpec, batch: int) -> tuple:
  return (spec.variables, *spec.inputs(batch))


def concrete(args: Sequence[Any], seed: int = 0) -> tuple:
  return tuple(zeros_like_tree(a, seed + i) for i, a in enumerate(args))



# ---------------------------------------------------------------------------------------------------------------
# DaGAN.

_DAGAN_JAX_NOTE = ("docs/facts.md counts the official torch code (reproduced by the torch analytic count); the JAX port "
                   "computes the anti-alias blur only at the kept pixels, see the one-implementation-only table")
DAGAN_OFFICIAL = {  # docs/facts.md §2, batch 1, 256 px, num_kp 15, ResNet-18 depth: 2·naive MACs (GFLOP, 3 decimals)
    "depth": {"gflops_2x_naive": 8.548},
    "kp_detector": {"gflops_2x_naive": 2.961, "note": _DAGAN_JAX_NOTE},
    "dense_motion": {"gflops_2x_naive": 8.792, "note": _DAGAN_JAX_NOTE},
    "generator": {"gflops_2x_naive": 137.968, "note": _DAGAN_JAX_NOTE},
    "discriminator": {"gflops_2x_naive": 12.689},
}
DAGAN_STUDY = {"gpus": 4, "batch_per_gpu": 8, "dataset": "VoxCeleb1, 256 px (the study's Table 13: batch 8)",
               "paper_config": "vox256",
               "fwd_flops_G": 103_490_221.33e9, "fwd_latency_s": 5.89, "bwd_latency_s": 10.02,
               "fwd_FLOPS": 1_757_049.59e12, "bwd_FLOPS": 2_065_673.08e12, "fwd_bwd_FLOPS": 1_951_418.37831e12,
               "note": ("official train.py: DistributedSampler, DataLoader(batch_size=batch_size) per process, so "
                        "batch 8 per GPU")}
DAGAN_TPS_POINTS = 5  # train_params.transform_params.points_tps


def dagan_config(name: str):
  """(model Config, training HParams, image size) of a named config: a ``dagan.PRESETS`` name resolves exactly as
  ``launch.train --config configs/dagan.py:<name>`` does; ``vox256_r50`` is vox256 with the ResNet-50 depth."""
  if name == "vox256_r50":
    return dagan.Config.vox256(depth_layers=50), dg.HParams.preset("vox256"), dg.IMAGE_SIZES["vox256"]
  if name in dagan.PRESETS:
    return dagan.Config.preset(name), dg.HParams.preset(name), dg.IMAGE_SIZES[name]
  raise ValueError(f"unknown DaGAN config {name!r}; choose {', '.join(dagan.PRESETS)}, vox256_r50")


def _dagan_torch_build(cfg, scales: tuple, trunk: str):
  def build(device: str):
    import torch
    from torch import nn as tnn

    from torch_reference.dagan.factory import build_torch
    from torch_reference.dagan.train import VGGFeatures as TorchVGGFeatures

    class Depth(tnn.Module):
      def __init__(self, enc, dec):
        super().__init__()
        self.encoder, self.decoder = enc, dec

      def forward(self, x):
        return self.decoder(self.encoder(x))

    with torch.device(device):
      nets = build_torch(cfg)
      nets["depth"] = Depth(nets.pop("depth_encoder"), nets.pop("depth_decoder")).eval().requires_grad_(False)
      nets["vgg"] = TorchVGGFeatures(trunk).eval()
      from torch_reference.dagan.model import ImagePyramide
      # GeneratorFullModel / DiscriminatorFullModel own their pyramids as submodules.
      nets["pyramid"] = ImagePyramide(scales, cfg.num_channels)
      nets["disc_pyramid"] = ImagePyramide(tuple(cfg.discriminator_params.scales), cfg.num_channels)
    for k in ("kp_detector", "generator", "discriminator"):
      nets[k].train()  # official training: BatchNorm on batch statistics (SyncBatchNorm)
    nets["dense_motion"] = nets["generator"].dense_motion_network
    return nets

  return build


def _t_kp(b, k, device, jacobian=True):
  import torch
  if device == "meta":
    kp = {"value": torch.empty(b, k, 2, device=device)}
    if jacobian:
      kp["jacobian"] = torch.empty(b, k, 2, 2, device=device)
    return kp
  g = torch.Generator().manual_seed(0)
  kp = {"value": torch.rand(b, k, 2, generator=g) * 1.4 - 0.7}
  if jacobian:
    kp["jacobian"] = torch.eye(2) + 0.1 * torch.randn(b, k, 2, 2, generator=g)
  return kp


def _t01(shape, device):
  import torch
  return torch.empty(shape, device=device) if device == "meta" else torch.rand(shape, device=device)


def dagan_spec(config_name: str = "vox256", *, with_torch: bool = True,
               perceptual_trunk: str = "vgg19") -> ModelSpec:
  """The DaGAN ModelSpec: depth, KP detector, dense motion, generator, discriminator, VGG pyramid, train step."""

  cfg, hp, size = dagan_config(config_name)
  scales = tuple(1 if s == 1 else s for s in hp.scales)  # official keys: prediction_1, prediction_0.5, ...
  nets = dagan.build(cfg)
  k = cfg.num_kp
  dm = cfg.generator_params.dense_motion_params
  dense = DenseMotionNetwork(dm.block_expansion, dm.num_blocks, dm.max_features, k, cfg.num_channels,
                             cfg.generator_params.estimate_occlusion_map, dm.scale_factor, dm.kp_variance)
  # perceptual_trunk: vgg19 is the paper's (launch.train with --config.vgg19_path); vgg16 is the lpips trunk
  # launch.train uses when no VGG19 file is given
  vgg = VGGFeatures(perceptual_trunk)
  ex = dagan.example_inputs(cfg, size, 1)
  init = lambda mod, *a: jax.eval_shape(mod.init, jax.random.key(0), *a)  # noqa: E731
  shapes = {n: init(getattr(nets, n), *ex[n]) for n in ("depth", "kp_detector", "generator", "discriminator")}
  shapes["dense_motion"] = {c: v["dense_motion_network"] for c, v in shapes["generator"].items()}
  shapes["vgg"] = init(vgg, sds(1, size, size, 3))
  official = DAGAN_OFFICIAL if (config_name == "vox256") else {}
  build = _dagan_torch_build(cfg, scales, perceptual_trunk) if with_torch else None
  img = lambda b, c=3: sds(b, size, size, c)  # noqa: E731

  def kp(b):
    out = {"value": sds(b, k, 2)}
    if cfg.estimate_jacobian:
      out["jacobian"] = sds(b, k, 2, 2)
    return out

  def train_mode(module, v, *a):
    return module.apply(v, *a, train=True, mutable=["batch_stats"])[0]  # drop the running-statistics update

  def depth_fn(v, x):
    return nets.depth.apply(v, x)  # all four disparities, as the module computes them (training uses scale 0)

  def kp_fn(v, x):
    return train_mode(nets.kp_detector, v, x)

  def dense_fn(v, s, kd, ks):
    return train_mode(dense, v, s, kd, ks)

  def gen_fn(v, s, kd, ks, d):
    return train_mode(nets.generator, v, s, kd, ks, d)

  def disc_fn(v, x, kpd):
    return nets.discriminator.apply(v, x, kpd)

  def vgg_fn(v, x):
    pyr = dagan.image_pyramid(x, scales)
    return [vgg.apply(v, pyr[f"prediction_{s}"]) for s in scales]

  def ts(name, inputs, grad_inputs=(), call=None):
    if not with_torch:
      return None
    return TorchSide(build, inputs, lambda n: n[name], call, grad_inputs)

  def t_pyramid_vgg(n, a):
    pyr = n["pyramid"](a[0])
    return [n["vgg"](pyr[f"prediction_{s}"]) for s in scales]

  kpj = cfg.estimate_jacobian
  modules = [
      ModuleSpec("depth", depth_fn, shapes["depth"], lambda b: (img(b),), None,
                 ts("depth", lambda b, d: (_t01((b, 3, size, size), d),),
                    call=lambda n, a: n["depth"](a[0])),
                 official.get("depth", {}), f"ResNet-{cfg.depth_layers} encoder + decoder (all 4 disparity "
                 "heads; DaGAN uses scale 0); frozen (eval, no gradient)"),
      ModuleSpec("kp_detector", kp_fn, shapes["kp_detector"], lambda b: (img(b, cfg.kp_channels),), (),
                 ts("kp_detector", lambda b, d: (_t01((b, cfg.kp_channels, size, size), d),)),
                 official.get("kp_detector", {}), "RGB + depth input; training mode (batch statistics)"),
      ModuleSpec("dense_motion", dense_fn, shapes["dense_motion"], lambda b: (img(b), kp(b), kp(b)), (),
                 ts("dense_motion", lambda b, d: (_t01((b, 3, size, size), d), _t_kp(b, k, d, kpj),
                                                  _t_kp(b, k, d, kpj)),
                    call=lambda n, a: n["dense_motion"](a[0], kp_driving=a[1], kp_source=a[2])),
                 official.get("dense_motion", {}), "part of the generator (generator.dense_motion_network)"),
      ModuleSpec("generator", gen_fn, shapes["generator"], lambda b: (img(b), kp(b), kp(b), img(b, 1)), (),
                 ts("generator", lambda b, d: (_t01((b, 3, size, size), d), _t_kp(b, k, d, kpj), _t_kp(b, k, d, kpj),
                                               _t01((b, 1, size, size), d)),
                    call=lambda n, a: n["generator"](a[0], kp_driving=a[1], kp_source=a[2], source_depth=a[3])),
                 official.get("generator", {}), "DepthAwareGenerator including the dense motion network"),
      ModuleSpec("discriminator", disc_fn, shapes["discriminator"], lambda b: (img(b), kp(b)), (0,),
                 ts("discriminator", lambda b, d: (_t01((b, 3, size, size), d), _t_kp(b, k, d, kpj)), (0,),
                    call=lambda n, a: n["discriminator"]({"prediction_1": a[0]}, kp=a[1])),
                 official.get("discriminator", {}), "one scale (1), image ⊕ keypoint Gaussians"),
      ModuleSpec(f"{perceptual_trunk}_pyramid", vgg_fn, shapes["vgg"], lambda b: (img(b),), (0,),
                 ts("vgg", lambda b, d: (_t01((b, 3, size, size), d),), (0,), call=t_pyramid_vgg),
                 {}, f"perceptual loss trunk ({perceptual_trunk.upper()}, five ReLU taps, frozen weights) on the pyramid "
                     f"{list(scales)}; backward = input gradient only", param_grads=False),
  ]
  train = _dagan_train_spec(cfg, hp, size, scales, shapes, vgg, build, perceptual_trunk)

  def scaling(s: int) -> ModuleSpec:
    return ModuleSpec("generator", gen_fn, shapes["generator"],
                      lambda b: (sds(b, s, s, 3), kp(b), kp(b), sds(b, s, s, 1)), ())

  return ModelSpec("dagan", cfg, config_name, modules, train, scaling, dict(DAGAN_STUDY), size)


def _dagan_train_spec(cfg, hp, size, scales, shapes, vgg, build, trunk) -> TrainSpec:

  disc_scales = tuple(cfg.discriminator_params.scales)
  p = hp.points_tps
  state = jax.eval_shape(lambda key: dg.init_state(cfg, hp, key, size, None, None), jax.random.key(0))
  state = state.replace(depth=shapes["depth"], vgg=shapes["vgg"])
  networks = {n: shapes[n] for n in ("depth", "kp_detector", "generator", "discriminator", "vgg")}
  w = {k: getattr(hp, k) for k in ("perceptual", "generator_gan", "discriminator_gan", "feature_matching",
                                   "equivariance_value", "equivariance_jacobian")}

  def batch(b: int) -> dict:  # what the data pipeline feeds the step; the equivariance transform is drawn inside it
    return {"source": sds(b, size, size, 3), "driving": sds(b, size, size, 3)}

  calls = {"depth": 3, "kp_detector": 3, "generator": 1, "discriminator": 4, f"{trunk}_pyramid": 2}

  def torch_inputs(b: int, device: str) -> tuple:
    import torch
    src, drv = _t01((b, 3, size, size), device), _t01((b, 3, size, size), device)
    if device == "meta":
      return (src, drv, torch.empty(b, 2, 3, device=device),
              torch.empty(b, 1, p * p, device=device))
    g = torch.Generator().manual_seed(1)
    theta = 0.05 * torch.randn(b, 2, 3, generator=g) + torch.eye(2, 3).view(1, 2, 3)
    return (src, drv, theta, 0.005 * torch.randn(b, 1, p * p, generator=g))

  def g_forward(tn, batch):
    """GeneratorFullModel.forward of the paper model (rgbd, equivariance, perceptual, GAN, feature matching)."""
    import torch

    from torch_reference.dagan import model as TM
    source, driving, theta, tps = batch
    pyramid = tn["pyramid"]
    depth = lambda x: tn["depth"](x)[("disp", 0)]  # noqa: E731
    ds, dd = depth(source), depth(driving)
    kp_s = tn["kp_detector"](torch.cat([source, ds], 1))
    kp_d = tn["kp_detector"](torch.cat([driving, dd], 1))
    gen = tn["generator"](source, kp_driving=kp_d, kp_source=kp_s, source_depth=ds, driving_depth=dd)
    pyr_real, pyr_gen = pyramid(driving), pyramid(gen["prediction"])
    total = 0
    for s in scales:
      xv = tn["vgg"](pyr_gen[f"prediction_{s}"])
      yv = tn["vgg"](pyr_real[f"prediction_{s}"])
      for i, wt in enumerate(w["perceptual"]):
        total = total + wt * torch.abs(xv[i] - yv[i].detach()).mean()
    kp_det = {kk: v.detach() for kk, v in kp_d.items()}
    d_gen = tn["discriminator"](pyr_gen, kp=kp_det)
    d_real = tn["discriminator"](pyr_real, kp=kp_det)
    dscales = [str(s) for s in disc_scales]
    total = total + TM.generator_gan_loss(d_gen, dscales, w["generator_gan"])
    total = total + TM.feature_matching_loss(d_real, d_gen, dscales, w["feature_matching"])
    tf = TM.Transform(theta, tps, p)
    frame = tf.transform_frame(driving)
    kp_t = tn["kp_detector"](torch.cat([frame, depth(frame)], 1))
    total = total + TM.equivariance_value_loss(kp_d, kp_t, tf, w["equivariance_value"])
    if cfg.estimate_jacobian:
      total = total + TM.equivariance_jacobian_loss(kp_d, kp_t, tf, w["equivariance_jacobian"])
    return total, gen["prediction"], kp_det

  def d_forward(tn, batch, pred, kp_det):
    from torch_reference.dagan import model as TM
    _, driving, _, _ = batch
    pyramid = tn["disc_pyramid"]
    d_gen = tn["discriminator"](pyramid(pred.detach()), kp=kp_det)
    d_real = tn["discriminator"](pyramid(driving), kp=kp_det)
    return TM.discriminator_gan_loss(d_real, d_gen, [str(s) for s in disc_scales], w["discriminator_gan"])

  def torch_iteration(tn, batch, matched: bool = False) -> None:
    """train.py: G+KP loss backward (one backward of the summed losses), then the D loss backward. ``matched``:
    no D weight gradients in the G step (the official loop computes and discards them)."""
    if matched:
      tn["discriminator"].requires_grad_(False)
    g_total, pred, kp_det = g_forward(tn, batch)
    g_total.backward()
    tn["discriminator"].requires_grad_(True)
    if matched:
      tn["generator"].requires_grad_(False)
      tn["kp_detector"].requires_grad_(False)
    d_forward(tn, batch, pred, kp_det).backward()
    tn["generator"].requires_grad_(True)
    tn["kp_detector"].requires_grad_(True)

  def torch_wrapper(tn):
    import torch

    class Iteration(torch.nn.Module):
      """G+KP losses and the D loss in one forward (FLOP-equivalent to train.py's two steps; one backward)."""

      def __init__(self):
        super().__init__()
        # All networks and pyramids registered (GeneratorFullModel owns them): see the StarGAN v2 wrapper's note.
        self.nets = torch.nn.ModuleDict({kk: v for kk, v in tn.items() if kk != "dense_motion"})

      def forward(self, *batch):
        t = dict(self.nets)
        g_total, pred, kp_det = g_forward(t, batch)
        return g_total + d_forward(t, batch, pred, kp_det)

    return Iteration()

  desc = ("jaxreenact.train.dagan.train_step: G+KP step (value_and_grad of perceptual " + trunk.upper() + " pyramid "
          f"×{len(scales)} scales + LSGAN + feature matching + equivariance value/jacobian + kp_distance (sign(), zero "
          "gradient, K² work); depth net frozen, 3 depth and 3 keypoint forwards) then D step (LSGAN on "
          "prediction.detach() and the driving frame); each followed by its Adam update")
  note = ("official: train.py's autograd (D weight gradients are also computed in the G+KP step and discarded). "
          "matched: no D gradients in the G+KP step, as in the JAX iteration. Remaining differences: the anti-alias "
          "convolutions (torch: full resolution after F.pad, i.e. no padding taps to exclude; JAX: strided), the "
          "depth decoder's three unused disparity heads (dead code XLA removes), 2×2 matmuls written elementwise "
          "in JAX, and the backward conventions of transposed convolutions (naive counts only).")
  return TrainSpec(dg.step_fn(cfg, hp, vgg), state, batch, networks, calls, build,
                   torch_inputs if build else None, torch_iteration if build else None,
                   torch_wrapper if build else None, desc, note)

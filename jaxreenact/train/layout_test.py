"""NHWC everywhere: the traced training iterations (forward, backward, updates) contain no layout transposes of
feature maps. Convolutions take NHWC activations and HWIO kernels as they are; autodiff's gradient convolutions
use XLA dimension numbers instead of materialised transposes."""
import collections
import functools
import math

import jax
import jax.numpy as jnp

from jaxreenact.models import dagan, stargan_v2, vgg
from jaxreenact.train import dagan as dg
from jaxreenact.train import stargan_v2 as sg


def _transposes_and_convs(closed_jaxpr):
  transposes, convs = [], collections.Counter()

  def walk(jaxpr):
    for e in jaxpr.eqns:
      if e.primitive.name == "transpose" and e.invars[0].aval.ndim >= 4:
        transposes.append((e.params["permutation"], e.invars[0].aval.shape))
      if e.primitive.name == "conv_general_dilated":
        d = e.params["dimension_numbers"]
        convs[(d.lhs_spec, d.rhs_spec, d.out_spec)] += 1
      for p in e.params.values():
        for sub in (p if isinstance(p, (list, tuple)) else [p]):
          if hasattr(sub, "jaxpr"):
            walk(sub.jaxpr)
          elif hasattr(sub, "eqns"):
            walk(sub)

  walk(closed_jaxpr.jaxpr)
  return transposes, convs


NHWC_HWIO = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # lhs N,C,H,W positions in NHWC; rhs O,I,H,W in HWIO


def test_stargan_v2_iteration_has_no_4d_transposes():
  cfg = stargan_v2.Config(img_size=32, num_domains=2, latent_dim=8, style_dim=16, max_conv_dim=32, w_hpf=0,
                          base_dim=8)
  hp = sg.HParams()
  state = jax.eval_shape(lambda: sg.init_state(cfg, hp, jax.random.key(0)))
  x = jnp.zeros((2, 32, 32, 3))
  y = jnp.zeros((2,), jnp.int32)
  batch = {"x_src": x, "x_ref": x, "x_ref2": x, "y_src": y, "y_ref": y}
  step = functools.partial(sg.train_step, cfg=cfg, hp=hp, nets=stargan_v2.build(cfg))
  transposes, convs = _transposes_and_convs(jax.make_jaxpr(step)(state, batch))
  assert transposes == []
  assert convs[NHWC_HWIO] > 100  # every forward convolution is NHWC × HWIO (the rest are their gradients)


def test_dagan_iteration_transposes_only_per_keypoint_tensors():
  cfg = dagan.Config.tiny(depth_widths=(16, 32, 32, 64))
  hp = dg.HParams(scales=(1.0, 0.5))
  nets = dagan.build(cfg)
  vgg_module = vgg.VGGFeatures("vgg19", width_divisor=8)

  def make_state():
    depth_vars = nets.depth.init(jax.random.key(1), jnp.zeros((1, 64, 64, 3)))
    vgg_vars = vgg_module.init(jax.random.key(2), jnp.zeros((1, 32, 32, 3)))
    return dg.init_state(cfg, hp, jax.random.key(0), 64, depth_vars, vgg_vars)

  state = jax.eval_shape(make_state)
  batch = {"source": jnp.zeros((2, 64, 64, 3)), "driving": jnp.zeros((2, 64, 64, 3))}
  step = functools.partial(dg.train_step, cfg=cfg, hp=hp, nets=nets, vgg_module=vgg_module)
  transposes, convs = _transposes_and_convs(jax.make_jaxpr(step)(state, batch))
  k = cfg.num_kp
  # Only the keypoint geometry is rearranged (Jacobians (B, K, 2, 2), per-keypoint heatmaps/motions (B, K+1, h, w…)),
  # as the official (B, K+1, h, w, C) layout requires; feature maps are never transposed.
  assert all(shape[1] in (k, k + 1) or shape[3] in (k, k + 1) for _, shape in transposes), transposes
  # …at most (K+1) maps of the dense-motion resolution (¼ of 64 px) with ≤ 4 values each, per batch element
  assert all(math.prod(shape) <= 2 * (k + 1) * 16 * 16 * 4 for _, shape in transposes), transposes
  assert convs[NHWC_HWIO] > 50

"""DaGAN generators (modules/generator.py) in Flax, NHWC: DepthAwareGenerator and SPADEDepthAwareGenerator.

Both share the encoders: dense motion (FOMM), an RGB encoder (``first``, ``down_blocks``), a source-depth
encoder (``src_first``, ``src_down_blocks``) and the DepthAwareAttention ``AttnModule``; they differ in the decoder.

The two encoders read only the source image and its depth, so ``encode_source`` runs them alone and ``__call__``
accepts their result (``source_features``): reenactment encodes the source once per video, not once per frame.
"""
from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.layers.conv import Conv2d
from jaxreenact.layers.norm import instance_norm
from jaxreenact.layers.resample import resize_bilinear, upsample_nearest
from jaxreenact.layers.spectral_norm import SpectralNormConv2d
from jaxreenact.layers.warp import grid_sample
from jaxreenact.models.dagan.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from jaxreenact.models.dagan.config import DenseMotionParams
from jaxreenact.models.dagan.dense_motion import DenseMotionNetwork
from jaxreenact.models.dagan.utils import Keypoints


def resize_nearest(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """``F.interpolate(x, size=size, mode='nearest')``: src = min(floor(dst · (in/out)), in − 1), float32 scale."""
  _, h, w, _ = x.shape
  ho, wo = size

  def index(n_in, n_out):
    if n_in == n_out:
      return np.arange(n_out)
    scale = np.float32(n_in) / np.float32(n_out)  # torch: (float)input_size / output_size
    return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64), n_in - 1)

  return jnp.take(jnp.take(x, index(h, ho), axis=1), index(w, wo), axis=2)


def deform_input(inp: jax.Array, deformation: jax.Array) -> jax.Array:
  """grid_sample ``inp`` (B, H, W, C) with a (B, h, w, 2) flow bilinearly resized to H×W (align_corners=False)."""
  if deformation.shape[1:3] != inp.shape[1:3]:
    deformation = resize_bilinear(deformation, inp.shape[1:3], align_corners=False)  # F.interpolate(size=...)
  return grid_sample(inp, deformation)


def attention_core(q: jax.Array, k: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
  """softmax(q kᵀ) v without scaling (official): q, k (B, N, C'), v (B, N, C) -> (out (B, N, C), attention)."""
  energy = jnp.einsum("bic,bjc->bij", q, k)  # (B, N, N)
  attention = jax.nn.softmax(energy.astype(jnp.promote_types(energy.dtype, jnp.float32)), axis=-1)  # over keys
  return jnp.einsum("bij,bjc->bic", attention.astype(v.dtype), v), attention


class DepthAwareAttention(nn.Module):
  """q = ReLU(1×1(source depth feats)), k, v = ReLU(1×1(warped feats)); out = γ·softmax(q kᵀ)·v + feat.

  Returns (out (B, h, w, C), attention (B, h·w, h·w)) with row-major (h, w) token order, as torch's view.
  """
  in_dim: int
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, source: jax.Array, feat: jax.Array) -> tuple[jax.Array, jax.Array]:
    chex.assert_equal_shape([source, feat])
    b, h, w, c = feat.shape
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    q = nn.relu(Conv2d(self.in_dim // 8, 1, name="query_conv", **kw)(source)).reshape(b, h * w, -1)  # (B, N, C/8)
    k = nn.relu(Conv2d(self.in_dim // 8, 1, name="key_conv", **kw)(feat)).reshape(b, h * w, -1)
    v = nn.relu(Conv2d(self.in_dim, 1, name="value_conv", **kw)(feat)).reshape(b, h * w, c)  # (B, N, C)
    out, attention = attention_core(q, k, v)
    out = out.reshape(b, h, w, c)
    gamma = self.param("gamma", nn.initializers.zeros, (1,), self.param_dtype)
    return gamma.astype(out.dtype) * out + feat, attention


class _Bottleneck(nn.Module):
  """torch ``nn.Sequential`` of ResBlock2d named r0, r1, ..."""
  num_blocks: int
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    for i in range(self.num_blocks):
      x = ResBlock2d(3, 1, name=f"r{i}", dtype=self.dtype, param_dtype=self.param_dtype)(x, train)
    return x


class _GeneratorBase(nn.Module):
  """Fields and the shared encoder/warp/attention path of both DaGAN generators."""
  num_channels: int
  num_kp: int
  block_expansion: int
  max_features: int
  num_down_blocks: int
  num_bottleneck_blocks: int
  estimate_occlusion_map: bool = False
  dense_motion_params: DenseMotionParams | None = None
  estimate_jacobian: bool = False
  dtype: Any = None
  param_dtype: Any = jnp.float32
  motion_dtype: Any = None  # compute dtype of the dense-motion network (None: ``dtype``); see ``dagan.build``

  @property
  def bottleneck_features(self) -> int:
    return min(self.max_features, self.block_expansion * 2 ** self.num_down_blocks)

  def _check_inputs(self, source_image, kp_driving, kp_source, source_depth):
    chex.assert_rank([source_image, source_depth], 4)
    b, h, w, c = source_image.shape
    if c != self.num_channels:
      raise ValueError(f"{type(self).__name__}: source_image must have {self.num_channels} channels, "
                       f"got {source_image.shape}")
    if source_depth.shape != (b, h, w, 1):
      raise ValueError(f"{type(self).__name__}: source_depth must be (B, H, W, 1) = {(b, h, w, 1)}, "
                       f"got {source_depth.shape}")
    chex.assert_shape([kp_driving["value"], kp_source["value"]], (b, self.num_kp, 2))

  def setup(self):
    # The source encoders live in setup (the decoders stay @compact in __call__) so that ``encode_source`` can be
    # applied on its own. Names and parameter layout are unchanged: a setup list ``down_blocks`` names its items
    # down_blocks_0, down_blocks_1, ... exactly as the torch ModuleList entries down_blocks.0, down_blocks.1, ...
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    widths = [min(self.max_features, self.block_expansion * 2 ** (i + 1)) for i in range(self.num_down_blocks)]
    self.first = SameBlock2d(self.block_expansion, 7, 3, **kw)
    self.down_blocks = [DownBlock2d(f, 3, 1, **kw) for f in widths]
    self.src_first = SameBlock2d(self.block_expansion, 7, 3, **kw)
    self.src_down_blocks = [DownBlock2d(f, 3, 1, **kw) for f in widths]

  def encode_source(self, source_image: jax.Array, source_depth: jax.Array,
                    train: bool = False) -> dict[str, jax.Array]:
    """The generator's source-only work: {'image': RGB features, 'depth': depth features}, both (B, h, w, F).

    Use with ``generator.apply(variables, source_image, source_depth, method="encode_source")``; pass the result
    as ``source_features`` to ``__call__`` (batch 1 broadcasts to the driving batch).
    """
    out = self.first(source_image, train)
    for block in self.down_blocks:
      out = block(out, train)
    src = self.src_first(source_depth, train)
    for block in self.src_down_blocks:
      src = block(src, train)
    return {"image": out, "depth": src}

  def _encode_and_warp(self, source_image, kp_driving, kp_source, source_depth, train, source_features=None):
    """Returns (attended features (B, h, w, F), outputs dict, occlusion map | None, deformed source | None)."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if source_features is None:
      source_features = self.encode_source(source_image, source_depth, train)
    b = source_image.shape[0]
    if any(source_features[k].shape[0] not in (1, b) for k in ("image", "depth")):
      raise ValueError(f"{type(self).__name__}: source_features must have batch 1 or {b} (source_image's), got "
                       f"{ {k: v.shape for k, v in source_features.items()} }")
    # Features of one source (batch 1) serve a batch of driving frames; in eval mode (BatchNorm with running
    # statistics) each sample is independent of the others, so this equals encoding b copies of the source.
    out, src = (jnp.broadcast_to(source_features[k], (b, *source_features[k].shape[1:])) for k in ("image", "depth"))
    outputs: dict[str, jax.Array] = {}
    occlusion_map = deformed = None
    if self.dense_motion_params is not None:
      dm = self.dense_motion_params
      motion = DenseMotionNetwork(dm.block_expansion, dm.num_blocks, dm.max_features, self.num_kp, self.num_channels,
                                  self.estimate_occlusion_map, dm.scale_factor, dm.kp_variance,
                                  name="dense_motion_network", dtype=self.motion_dtype or self.dtype,
                                  param_dtype=self.param_dtype)(source_image, kp_driving, kp_source, train)
      outputs["mask"] = motion["mask"]
      outputs["sparse_deformed"] = motion["sparse_deformed"]
      occlusion_map = motion.get("occlusion_map")
      if occlusion_map is not None:
        outputs["occlusion_map"] = occlusion_map
      out = deform_input(out, motion["deformation"])
      if occlusion_map is not None:
        occ = occlusion_map
        if occ.shape[1:3] != out.shape[1:3]:
          occ = resize_bilinear(occ, out.shape[1:3], align_corners=False)
        out = out * occ.astype(out.dtype)
      out, attention = DepthAwareAttention(self.bottleneck_features, name="AttnModule", **kw)(src, out)
      deformed = deform_input(source_image, motion["deformation"])
      outputs["deformed"] = deformed
      outputs["attention"] = attention
    return out, outputs, occlusion_map, deformed


class DepthAwareGenerator(_GeneratorBase):
  """DaGAN generator: warp + depth-aware attention, 6 ResBlocks, 2 UpBlocks, 7×7 conv, sigmoid.

  ``__call__(source_image (B, H, W, C), kp_driving, kp_source, source_depth (B, H, W, 1), driving_depth=None,
  train=False)`` -> dict prediction (B, H, W, C) in (0, 1), deformed (B, H, W, C), occlusion_map (B, h, w, 1),
  mask (B, h, w, K+1), sparse_deformed (B, K+1, h, w, C), attention (B, h'·w', h'·w'). ``driving_depth`` is
  accepted and unused, as in the official code. ``source_features`` (from ``encode_source``) skips the source
  encoders.
  """

  @nn.compact
  def __call__(self, source_image: jax.Array, kp_driving: Keypoints, kp_source: Keypoints, source_depth: jax.Array,
               driving_depth: jax.Array | None = None, train: bool = False,
               source_features: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
    del driving_depth  # official: accepted, unused
    self._check_inputs(source_image, kp_driving, kp_source, source_depth)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    out, outputs, _, _ = self._encode_and_warp(source_image, kp_driving, kp_source, source_depth, train,
                                               source_features)
    out = _Bottleneck(self.num_bottleneck_blocks, name="bottleneck", **kw)(out, train)
    for i in range(self.num_down_blocks):
      feats = min(self.max_features, self.block_expansion * 2 ** (self.num_down_blocks - i - 1))
      out = UpBlock2d(feats, 3, 1, name=f"up_blocks_{i}", **kw)(out, train)
    out = Conv2d(self.num_channels, 7, padding=3, name="final", **kw)(out)
    outputs["prediction"] = jax.nn.sigmoid(out)
    return outputs


class SPADE(nn.Module):
  """IN(x, affine=False)·(1 + γ(seg)) + β(seg); seg resized nearest to x's size."""
  norm_nc: int
  nhidden: int = 128
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, segmap: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    seg = resize_nearest(segmap, x.shape[1:3])
    actv = nn.relu(Conv2d(self.nhidden, 3, padding=1, name="mlp_shared_0", **kw)(seg))
    gamma = Conv2d(self.norm_nc, 3, padding=1, name="mlp_gamma", **kw)(actv)
    beta = Conv2d(self.norm_nc, 3, padding=1, name="mlp_beta", **kw)(actv)
    return instance_norm(x, 1e-5) * (1 + gamma) + beta  # nn.InstanceNorm2d(affine=False), eps 1e-5


class SPADEResnetBlock(nn.Module):
  """SPADE residual block, spectral-norm convs, LeakyReLU 0.2, learned shortcut when fin != fout."""
  fout: int
  nhidden: int = 128
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, seg: jax.Array, train: bool = False) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    fin = x.shape[-1]
    fmiddle = min(fin, self.fout)
    lrelu = lambda t: jax.nn.leaky_relu(t, 0.2)  # noqa: E731  F.leaky_relu(x, 2e-1)
    if fin != self.fout:
      x_s = SPADE(fin, self.nhidden, name="norm_s", **kw)(x, seg)
      x_s = SpectralNormConv2d(self.fout, 1, use_bias=False, name="conv_s", **kw)(x_s, train)
    else:
      x_s = x
    dx = SpectralNormConv2d(fmiddle, 3, padding=1, name="conv_0", **kw)(
        lrelu(SPADE(fin, self.nhidden, name="norm_0", **kw)(x, seg)), train)
    dx = SpectralNormConv2d(self.fout, 3, padding=1, name="conv_1", **kw)(
        lrelu(SPADE(fmiddle, self.nhidden, name="norm_1", **kw)(dx, seg)), train)
    return x_s + dx


class SPADEGenerator(nn.Module):
  """SPADE decoder; ic is the input width (official hard-codes 256 = the vox bottleneck width)."""
  ic: int
  cc: int = 4
  oc: int = 64
  nhidden: int = 128
  out_channels: int = 3
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feature: jax.Array, image: jax.Array, train: bool = False) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    cp = Conv2d(self.cc, 3, padding=1, name="compress", **kw)(feature)
    seg = jnp.concatenate([resize_nearest(cp, image.shape[1:3]), image], axis=-1)  # (B, H, W, cc + 3)
    x = Conv2d(2 * self.ic, 3, padding=1, name="fc", **kw)(feature)
    for i in range(3):
      x = SPADEResnetBlock(2 * self.ic, self.nhidden, name=f"G_middle_{i}", **kw)(x, seg, train)
    x = SPADEResnetBlock(self.ic, self.nhidden, name="up_0", **kw)(upsample_nearest(x, 2), seg, train)
    x = SPADEResnetBlock(self.oc, self.nhidden, name="up_1", **kw)(upsample_nearest(x, 2), seg, train)
    x = Conv2d(self.out_channels, 3, padding=1, name="conv_img", **kw)(jax.nn.leaky_relu(x, 0.2))
    return jax.nn.sigmoid(x)


class SPADEDepthAwareGenerator(_GeneratorBase):
  """The SPADE DaGAN: shared encoders, then the SPADE decoder conditioned on the occluded deformed source.

  Same call and outputs as :class:`DepthAwareGenerator`. The SPADE decoder always upsamples ×4, so it
  matches the image size only with num_down_blocks == 2 (the official configuration).
  """
  spade_compress: int = 4
  spade_out: int = 64
  spade_hidden: int = 128

  @nn.compact
  def __call__(self, source_image: jax.Array, kp_driving: Keypoints, kp_source: Keypoints, source_depth: jax.Array,
               driving_depth: jax.Array | None = None, train: bool = False,
               source_features: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
    del driving_depth
    if self.dense_motion_params is None:
      raise ValueError("SPADEDepthAwareGenerator needs dense_motion_params (its decoder reads the deformed source)")
    self._check_inputs(source_image, kp_driving, kp_source, source_depth)
    out, outputs, occlusion_map, deformed = self._encode_and_warp(source_image, kp_driving, kp_source, source_depth,
                                                                  train, source_features)
    if occlusion_map is not None:
      occ = occlusion_map
      if occ.shape[1:3] != deformed.shape[1:3]:
        occ = resize_bilinear(occ, deformed.shape[1:3], align_corners=False)
      deformed = deformed * occ
    outputs["prediction"] = SPADEGenerator(self.bottleneck_features, self.spade_compress, self.spade_out,
                                           self.spade_hidden, self.num_channels, name="decoder", dtype=self.dtype,
                                           param_dtype=self.param_dtype)(out, deformed, train)
    return outputs

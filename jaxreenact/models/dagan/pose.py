"""Pose network of DaGAN's depth training (harlanhong/Face-Depth-Network, monodepth2 "separate_resnet"), NHWC.

A ResNet encoder sees two frames stacked on channels (6 inputs) and a pose decoder predicts an axis-angle rotation,
a translation and — Face-Depth-Network's addition — the camera intrinsics:
focal = softplus(conv(f))·[W, H], principal point = (softplus(conv(f)) + 0.5)·[W, H] (spatial means).

Flax paths mirror the two official files: ``pose_encoder.pth`` key ``encoder.layer1.0.conv1.weight`` lives at
``params['pose_encoder']['encoder']['layer1_0']['conv1']['kernel']``; ``pose.pth`` key ``net.4.weight`` (the focal
head) at ``params['pose']['net_4']['kernel']``. The encoder blocks are those of :mod:`jaxreenact.models.dagan.depth`.
"""
from __future__ import annotations

from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.layers.conv import Conv2d
from jaxreenact.models.dagan.depth import ResnetEncoder, resolve_resnet

# Official PoseDecoder ModuleList ``net`` order (self.convs OrderedDict insertion order).
SQUEEZE, POSE_0, POSE_1, POSE_2, FOCAL, OFFSET = (f"net_{i}" for i in range(6))


def intrinsics_matrix(focal: jax.Array, offset: jax.Array) -> jax.Array:
  """(B, 2) focal lengths and (B, 2) principal points -> (B, 3, 3) [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]."""
  b = focal.shape[0]
  zeros = jnp.zeros((b,), focal.dtype)
  ones = jnp.ones((b,), focal.dtype)
  rows = [jnp.stack([focal[:, 0], zeros, offset[:, 0]], -1),
          jnp.stack([zeros, focal[:, 1], offset[:, 1]], -1),
          jnp.stack([zeros, zeros, ones], -1)]
  return jnp.stack(rows, axis=1)  # (B, 3, 3)


class PoseDecoder(nn.Module):
  """Face-Depth-Network ``PoseDecoder`` (monodepth2's, plus the intrinsics head); children ``net_{0..5}``.

  Fields: ``height``/``width`` scale the intrinsics (the official ``opts.height/width``);
  ``num_frames_to_predict_for`` (the trainer passes 2, of which only the first is used); ``stride`` of the two
  3×3 pose convs (1 in the trainer).
  """
  height: int
  width: int
  num_input_features: int = 1
  num_frames_to_predict_for: int = 2
  stride: int = 1
  channels: int = 256  # hard-coded 256 in the official decoder
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, input_features: Sequence[Sequence[jax.Array]]) -> tuple[jax.Array, jax.Array, jax.Array]:
    """input_features: one feature list per input (the trainer passes one: the pose encoder's five maps).

    Returns:
      axisangle (B, N, 1, 3), translation (B, N, 1, 3) with N = num_frames_to_predict_for, intrinsics (B, 3, 3).
    """
    if len(input_features) != self.num_input_features:
      raise ValueError(f"PoseDecoder expects {self.num_input_features} feature lists, got {len(input_features)}")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    c = self.channels
    squeeze = Conv2d(c, 1, name=SQUEEZE, **kw)  # one conv shared by every input (official `convs["squeeze"]`)
    feat = jnp.concatenate([nn.relu(squeeze(f[-1])) for f in input_features], axis=-1)  # (B, h, w, n·256)
    feat = nn.relu(Conv2d(c, 3, stride=self.stride, padding=1, name=POSE_0, **kw)(feat))
    feat = nn.relu(Conv2d(c, 3, stride=self.stride, padding=1, name=POSE_1, **kw)(feat))
    out = Conv2d(6 * self.num_frames_to_predict_for, 1, name=POSE_2, **kw)(feat)
    out = out.mean(axis=(1, 2))  # out.mean(3).mean(2): (B, 6N)
    out = 0.01 * out.reshape(-1, self.num_frames_to_predict_for, 1, 6)
    axisangle, translation = out[..., :3], out[..., 3:]
    scales = jnp.asarray([self.width, self.height], out.dtype)  # torch.tensor([opts.width, opts.height])
    # softplus per pixel, then the spatial mean (official order), as F.softplus(beta=1, threshold=20).
    focal = _torch_softplus(Conv2d(2, 3, padding=1, name=FOCAL, **kw)(feat)).mean(axis=(1, 2)) * scales
    offset = (_torch_softplus(Conv2d(2, 3, padding=1, name=OFFSET, **kw)(feat)).mean(axis=(1, 2)) + 0.5) * scales
    return axisangle, translation, intrinsics_matrix(focal, offset)


def _torch_softplus(x: jax.Array, threshold: float = 20.0) -> jax.Array:
  """``F.softplus(x)`` (beta 1): log1p(exp(x)), and x itself above ``threshold`` (torch's linear regime)."""
  return jnp.where(x > threshold, x, jnp.log1p(jnp.exp(jnp.minimum(x, threshold))))


class PoseNet(nn.Module):
  """Pose encoder (ResNet on two stacked frames) + :class:`PoseDecoder`, children ``pose_encoder`` and ``pose``.

  ``num_layers`` picks a torchvision preset; ``block``/``layers``/``widths`` override it (tiny test nets), as in
  :class:`jaxreenact.models.dagan.depth.DepthNet`. BatchNorm uses batch statistics when ``train=True`` (pass
  ``mutable=['batch_stats']`` to update the running ones, as torch does in ``.train()``).
  """
  height: int
  width: int
  num_layers: int = 18
  block: str | None = None
  layers: tuple[int, ...] | None = None
  widths: tuple[int, ...] = (64, 128, 256, 512)
  num_classes: int = 1000
  dtype: Any = None
  param_dtype: Any = jnp.float32

  def resolved(self) -> tuple[str, tuple[int, ...]]:
    return resolve_resnet("PoseNet", self.num_layers, self.block, self.layers, self.widths)

  @nn.compact
  def __call__(self, frame_a: jax.Array, frame_b: jax.Array, train: bool = False):
    """Two frames (B, H, W, 3) in [0, 1], in temporal order -> (axisangle, translation, intrinsics).

    The trainer passes (t−1, t) for the previous frame and (t, t+1) for the next one.
    """
    chex.assert_rank([frame_a, frame_b], 4)
    chex.assert_equal_shape([frame_a, frame_b])
    if frame_a.shape[-1] != 3:
      raise ValueError(f"PoseNet expects two (B, H, W, 3) frames; got {frame_a.shape}")
    block, layers = self.resolved()
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = jnp.concatenate([frame_a, frame_b], axis=-1)  # torch.cat(pose_inputs, 1): (B, H, W, 6)
    # ResNetMultiImageInput: a torchvision ResNet whose conv1 takes 3·num_input_images channels.
    feats = ResnetEncoder(block, layers, tuple(self.widths), self.num_classes, name="pose_encoder", **kw)(
        x.astype(self.dtype or x.dtype), train)
    return PoseDecoder(self.height, self.width, name="pose", **kw)([feats])

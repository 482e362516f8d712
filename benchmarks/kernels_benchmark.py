r"""Forward + backward time of DaGAN's gather-heavy kernels: bilinear grid_sample and the depth-aware attention core.

Not a test: it prints a Markdown table and the machine it ran on (and writes everything as JSON with --out).
Each implementation is timed on ``value_and_grad(sum(f(inputs)))`` w.r.t. every input (jitted in JAX;
``.backward()`` in torch, with ``torch.cuda.synchronize()`` on a GPU), at the shapes DaGAN vox256 uses at batch 8:

  grid_sample_dense_motion  image (B·(K+1), 64, 64, 3), grid (…, 64, 64, 2), zeros, align_corners=False
  grid_sample_deform_input  features (B, 64, 64, 256), grid (B, 64, 64, 2), zeros, align_corners=False
  grid_sample_equivariance  frames (B, 256, 256, 3), grid (B, 256, 256, 2), reflection, align_corners=False
  attention                 q, k (B, 64·64, 32), v (B, 64·64, 256): einsum -> softmax -> einsum, no 1/√d scale

Implementations: grid_sample — ``jax_warp_flat_1d_gather`` (warp.grid_sample: one gather of the four corners'
rows of the image flattened to (B·H·W, C)), ``jax_take_along_axis_x4_previous`` (warp.py before issue 9: four
batched take_along_axis gathers), the same with ``mode='promise_in_bounds'``, one take_along_axis of the stacked
corners, one lax.gather of 2×2 windows, and torch ``F.grid_sample`` (NCHW). Attention — the einsum core of
generator.py::DepthAwareAttention, ``jax.nn.dot_product_attention`` (q/k zero-padded to v's width, since it wants
one head size; xla, and cudnn on a GPU), torch bmm/softmax/bmm (official) and ``F.scaled_dot_product_attention``.

Every implementation's output and input gradients are compared with a reference computed outside the timing
(torch's, or the current JAX implementation where torch is missing): ``max_abs_diff_vs_reference``; JAX
formulations also against the current JAX one (``max_abs_diff_vs_current``). In bf16 torch also computes the
sampling coordinates in bf16 (JAX in float32), so the bf16 differences to torch are large by construction.

  python -m benchmarks.kernels_benchmark --out /tmp/kernels.json
  python -m benchmarks.kernels_benchmark --dtype bf16 --repeats 20 --cases attention
  python -m benchmarks.kernels_benchmark --scale 0.125 --batch 2 --repeats 3     # seconds, for a smoke run
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Callable

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact import compile_cache, machine, timing
from jaxreenact.layers import warp
from jaxreenact.models.dagan.generator import attention_core

_OUT = flags.DEFINE_string("out", None, "Optional JSON file for the results.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed forward+backward calls per implementation (after warm-up).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls first (the first one compiles).")
_DTYPE = flags.DEFINE_enum("dtype", "f32", ["f32", "bf16"], "Input dtype (f32 runs at highest matmul precision, "
                           "TF32 off).")
_BATCH = flags.DEFINE_integer("batch", 8, "DaGAN batch size (the dense-motion sampler sees batch·(num_kp+1)).")
_SCALE = flags.DEFINE_float("scale", 1.0, "Multiplier on every spatial side (1: vox256; e.g. 0.125 for a smoke run).")
_DEVICE = flags.DEFINE_enum("device", "auto", ["auto", "cpu", "gpu"], "auto: JAX's default backend, torch on CUDA "
                            "if available else CPU; cpu/gpu force both frameworks.")
_CASES = flags.DEFINE_list("cases", None, "Subset of cases to run (default: all).")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip the torch implementations (reference: current JAX).")

NUM_KP = 15  # vox-adv-256.yaml common_params.num_kp
BOTTLENECK = 256  # min(max_features 512, block_expansion 64 · 2**num_down_blocks 2): DepthAwareAttention in_dim
CURRENT_GRID = "jax_warp_flat_1d_gather"  # warp.grid_sample
CURRENT_ATTN = "jax_einsum"


@dataclasses.dataclass(frozen=True)
class GridCase:
  batch: int
  h: int
  w: int
  c: int
  padding_mode: str
  offset: float  # displacement scale of the grid around the identity (how far samples wander, incl. outside)


def grid_cases(batch: int, scale: float) -> dict[str, GridCase]:
  s = lambda n: max(2, int(round(n * scale)))
  return {
      # DenseMotionNetwork: source image at scale_factor 0.25 (64 px) warped by K+1 sparse motions.
      "grid_sample_dense_motion": GridCase(batch * (NUM_KP + 1), s(64), s(64), 3, "zeros", 0.3),
      # DepthAwareGenerator.deform_input: bottleneck features (64 px, 256 ch) warped by the dense deformation.
      "grid_sample_deform_input": GridCase(batch, s(64), s(64), BOTTLENECK, "zeros", 0.2),
      # Transform.transform_frame (equivariance loss): 256-px frames warped by a random TPS, reflection padding.
      "grid_sample_equivariance": GridCase(batch, s(256), s(256), 3, "reflection", 0.2),
  }


def attention_shape(batch: int, scale: float) -> tuple[int, int, int, int]:
  side = max(2, int(round(64 * scale)))
  return batch, side * side, BOTTLENECK // 8, BOTTLENECK  # (B, N tokens, q/k channels = in_dim // 8, v channels)


# --------------------------------------------------------------------------------------------------------------
# grid_sample formulations (all share warp.py's coordinate arithmetic; they differ only in how corners are read).


def _corner_indices_and_weights(img, grid, padding_mode, align_corners):
  """Corners (nw, ne, sw, se) as row indices into img.reshape(B, H·W, C) and masked bilinear weights, each (B, N)."""
  b, h, w, _ = img.shape
  _, ho, wo, _ = grid.shape
  cdtype = jnp.promote_types(grid.dtype, jnp.float32)
  g = grid.astype(cdtype).reshape(b, ho * wo, 2)
  ix = warp._source_index(g[..., 0], w, padding_mode, align_corners)  # pylint: disable=protected-access
  iy = warp._source_index(g[..., 1], h, padding_mode, align_corners)  # pylint: disable=protected-access
  x0, y0 = jnp.floor(ix), jnp.floor(iy)
  x1, y1 = x0 + 1, y0 + 1
  corners = ((y0, x0, (x1 - ix) * (y1 - iy)), (y0, x1, (ix - x0) * (y1 - iy)),
             (y1, x0, (x1 - ix) * (iy - y0)), (y1, x1, (ix - x0) * (iy - y0)))
  idx, wts = [], []
  for yc, xc, wt in corners:
    valid = (xc >= 0) & (xc <= w - 1) & (yc >= 0) & (yc <= h - 1)  # torch within_bounds_2d
    idx.append(jnp.clip(yc, 0, h - 1).astype(jnp.int32) * w + jnp.clip(xc, 0, w - 1).astype(jnp.int32))
    wts.append(jnp.where(valid, wt, 0).astype(img.dtype))
  return idx, wts, (x0, y0, ix, iy)


def _blend(vals, wts):
  # Same summation order as warp.grid_sample: ((nw + ne) + sw) + se.
  return (vals[0] * wts[0][..., None] + vals[1] * wts[1][..., None]) + vals[2] * wts[2][..., None] \
      + vals[3] * wts[3][..., None]


def grid_sample_stacked(img, grid, padding_mode="zeros", align_corners=False):
  """One take_along_axis of the four corners stacked along the token axis (one scatter-add in the backward)."""
  b, h, w, c = img.shape
  _, ho, wo, _ = grid.shape
  idx, wts, _ = _corner_indices_and_weights(img, grid, padding_mode, align_corners)
  n = ho * wo
  stacked = jnp.concatenate(idx, axis=1)[..., None]  # (B, 4N, 1)
  vals = jnp.take_along_axis(img.reshape(b, h * w, c), stacked, axis=1, mode="promise_in_bounds")  # (B, 4N, C)
  vals = [vals[:, i * n:(i + 1) * n] for i in range(4)]
  return _blend(vals, wts).reshape(b, ho, wo, c).astype(img.dtype)


def _four_gathers(img, grid, padding_mode, align_corners, mode):
  b, h, w, c = img.shape
  _, ho, wo, _ = grid.shape
  idx, wts, _ = _corner_indices_and_weights(img, grid, padding_mode, align_corners)
  flat = img.reshape(b, h * w, c)
  vals = [jnp.take_along_axis(flat, i[..., None], axis=1, mode=mode) for i in idx]
  return _blend(vals, wts).reshape(b, ho, wo, c).astype(img.dtype)


def grid_sample_take_along_axis_x4(img, grid, padding_mode="zeros", align_corners=False):
  """warp.grid_sample before issue 9: four take_along_axis gathers (default 'fill' mode) on the (B, H·W) axis."""
  return _four_gathers(img, grid, padding_mode, align_corners, None)


def grid_sample_x4_in_bounds(img, grid, padding_mode="zeros", align_corners=False):
  """The four take_along_axis gathers with mode='promise_in_bounds' (indices are clipped already)."""
  return _four_gathers(img, grid, padding_mode, align_corners, "promise_in_bounds")


def grid_sample_patch(img, grid, padding_mode="zeros", align_corners=False):
  """One lax.gather of a 2×2×C window per sample from a 1-pixel zero-padded image (window-scatter backward)."""
  b, h, w, c = img.shape
  _, ho, wo, _ = grid.shape
  _, wts, (x0, y0, _, _) = _corner_indices_and_weights(img, grid, padding_mode, align_corners)
  padded = jnp.pad(img, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(b * (h + 2), w + 2, c)
  # Window top-left in padded coordinates; clipping only moves windows whose corners all have weight 0.
  ys = jnp.clip(y0, -1, h - 1).astype(jnp.int32) + 1 + (jnp.arange(b, dtype=jnp.int32) * (h + 2))[:, None]
  xs = jnp.clip(x0, -1, w - 1).astype(jnp.int32) + 1
  starts = jnp.stack([ys, xs], axis=-1).reshape(b * ho * wo, 2)
  dnums = jax.lax.GatherDimensionNumbers(offset_dims=(1, 2, 3), collapsed_slice_dims=(), start_index_map=(0, 1))
  win = jax.lax.gather(padded, starts, dnums, (2, 2, c), mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)
  win = win.reshape(b, ho * wo, 2, 2, c)
  vals = [win[:, :, 0, 0], win[:, :, 0, 1], win[:, :, 1, 0], win[:, :, 1, 1]]
  return _blend(vals, wts).reshape(b, ho, wo, c).astype(img.dtype)


JAX_GRID_IMPLS: dict[str, Callable[..., jax.Array]] = {
    CURRENT_GRID: warp.grid_sample,  # one gather along the flattened (B·H·W) row axis with 1-D indices
    "jax_take_along_axis_x4_previous": grid_sample_take_along_axis_x4,
    "jax_take_along_axis_x4_in_bounds": grid_sample_x4_in_bounds,
    "jax_stacked_take_along_axis": grid_sample_stacked,
    "jax_patch_2x2_gather": grid_sample_patch,
}


# --------------------------------------------------------------------------------------------------------------
# attention formulations: DepthAwareAttention's core (generator.py), official DaGAN does not scale the energy.


def attention_einsum(q, k, v):
  """The model's own core (generator.attention_core): einsum -> float32 softmax over keys -> einsum."""
  return attention_core(q, k, v)[0]


def attention_dpa(q, k, v, implementation=None):
  """jax.nn.dot_product_attention, scale=1.0: it wants one head size for q, k and v, so q/k are zero-padded to v's
  channels (zeros add nothing to q·kᵀ) and seen as one head. It cannot return the (B, N, N) map DaGAN outputs."""
  pad = v.shape[-1] - q.shape[-1]
  q = jnp.pad(q, ((0, 0), (0, 0), (0, pad)))[:, :, None]  # (B, N, 1, Cv)
  k = jnp.pad(k, ((0, 0), (0, 0), (0, pad)))[:, :, None]
  out = jax.nn.dot_product_attention(q, k, v[:, :, None], scale=1.0, implementation=implementation)
  return out[:, :, 0]


# --------------------------------------------------------------------------------------------------------------
# timing helpers


def _summary(times_s: list[float]) -> dict[str, Any]:
  ms = np.asarray(times_s) * 1e3
  return {"median_ms": float(np.median(ms)), "min_ms": float(ms.min()), "max_ms": float(ms.max()),
          "times_ms": [round(float(t), 4) for t in ms]}


def _time_jax(fn, args, repeats, warmup, device):
  args = [jax.device_put(a, device) for a in args]
  step = jax.jit(jax.value_and_grad(lambda *a: jnp.sum(fn(*a).astype(jnp.float32)), argnums=tuple(range(len(args)))))
  t0 = time.perf_counter()
  jax.block_until_ready(step(*args))
  compile_s = time.perf_counter() - t0
  times = timing.time_calls(lambda: jax.block_until_ready(step(*args)), repeats, warmup=max(0, warmup - 1))
  # Values for the agreement check (outside the timing): the output and d sum(out) / d each input.
  out = jax.jit(fn)(*args)
  _, grads = step(*args)
  res = _summary(times)
  res["first_call_s"] = compile_s
  return res, np.asarray(out, np.float32), [np.asarray(g, np.float32) for g in grads]


def _time_torch(fn, args, repeats, warmup, torch_device):
  import torch

  sync = torch.cuda.synchronize if torch_device.type == "cuda" else (lambda: None)
  tensors = [a.detach().requires_grad_(True) for a in args]

  def step():
    for t in tensors:
      t.grad = None
    out = fn(*tensors)
    out.float().sum().backward()
    sync()
    return out

  times = timing.time_calls(step, repeats, warmup=warmup)
  out = step()
  grads = [t.grad.float().cpu().numpy() for t in tensors]
  return _summary(times), out.detach().float().cpu().numpy(), grads


def _diffs(out, grads, ref_out, ref_grads, names) -> dict[str, Any]:
  return {"max_abs_diff_vs_reference": float(np.max(np.abs(out - ref_out))),
          "max_abs_grad_diff_vs_reference": {n: float(np.max(np.abs(g - r))) for n, g, r in zip(names, grads, ref_grads)}}


def _machine(jax_device, torch_device) -> dict[str, Any]:
  info = {**machine.describe(("jax",) if torch_device is None else ("jax", "torch")), "jax_device": str(jax_device)}
  if torch_device is not None:
    import torch

    info["torch_device"] = (torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else "cpu")
  return info


def _torch_or_none(use_torch: bool, device: str):
  if not use_torch:
    return None, None
  try:
    import torch
  except ImportError:
    return None, None
  torch.backends.cuda.matmul.allow_tf32 = False  # float32 matmuls really in float32 (docs/facts.md §4)
  torch.backends.cudnn.allow_tf32 = False
  if device in ("auto", "gpu") and torch.cuda.is_available():
    return torch, torch.device("cuda")
  return torch, torch.device("cpu")


def run(batch: int = 8, scale: float = 1.0, repeats: int = 10, warmup: int = 2, dtype: str = "f32",
        device: str = "auto", cases: list[str] | None = None, use_torch: bool = True,
        log: Callable[[str], None] = print) -> dict[str, Any]:
  """Times every implementation of every case; returns a JSON-able dict (see the module docstring)."""
  jax.config.update("jax_default_matmul_precision", "highest")
  if dtype not in ("f32", "bf16"):
    raise ValueError(f"kernels_benchmark: --dtype must be 'f32' or 'bf16', got {dtype!r}")
  jax_device = jax.devices()[0] if device == "auto" else jax.devices(device)[0]
  torch, torch_device = _torch_or_none(use_torch, device)
  jdtype = jnp.float32 if dtype == "f32" else jnp.bfloat16
  tdtype = None if torch is None else (torch.float32 if dtype == "f32" else torch.bfloat16)
  all_cases = list(grid_cases(batch, scale)) + ["attention"]
  cases = all_cases if not cases else cases
  unknown = [c for c in cases if c not in all_cases]
  if unknown:
    raise ValueError(f"kernels_benchmark: --cases {unknown} unknown; expected a subset of {all_cases}")
  result: dict[str, Any] = {"machine": _machine(jax_device, torch_device), "dtype": dtype, "batch": batch,
                            "scale": scale, "repeats": repeats, "warmup": warmup,
                            "matmul_precision": "highest", "cases": {}}
  rng = np.random.default_rng(0)
  for name in cases:
    skipped: dict[str, str] = {}
    if name == "attention":
      b, n, cqk, cv = attention_shape(batch, scale)
      # ReLU(1×1 conv) outputs: non-negative, so energies are all >= 0 as in the real module.
      inputs = [np.abs(rng.standard_normal((b, n, cqk))).astype(np.float32) * 0.5,
                np.abs(rng.standard_normal((b, n, cqk))).astype(np.float32) * 0.5,
                np.abs(rng.standard_normal((b, n, cv))).astype(np.float32)]
      names = ["q", "k", "v"]
      shapes = {"q": [b, n, cqk], "k": [b, n, cqk], "v": [b, n, cv]}
      jax_impls = {CURRENT_ATTN: attention_einsum, "jax_dot_product_attention_xla": attention_dpa}
      if jax_device.platform == "gpu":
        jax_impls["jax_dot_product_attention_cudnn"] = lambda q, k, v: attention_dpa(q, k, v, "cudnn")
      current = CURRENT_ATTN
      torch_impls = {}
      if torch is not None:
        torch_impls["torch_bmm_softmax"] = lambda q, k, v: torch.bmm(torch.softmax(
            torch.bmm(q, k.transpose(1, 2)).float(), dim=-1).to(v.dtype), v)  # official: bmm, softmax(-1), bmm
        torch_impls["torch_scaled_dot_product_attention"] = (
            lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0))
    else:
      case = grid_cases(batch, scale)[name]
      img = rng.standard_normal((case.batch, case.h, case.w, case.c)).astype(np.float32)
      ident = np.asarray(warp.make_coordinate_grid(case.h, case.w))[None]
      grid = (ident + case.offset * rng.standard_normal((case.batch, case.h, case.w, 2))).astype(np.float32)
      inputs, names = [img, grid], ["image", "grid"]
      shapes = {"image": list(img.shape), "grid": list(grid.shape), "padding_mode": case.padding_mode,
                "align_corners": False}
      jax_impls = {k: (lambda f, pm: lambda i, g: f(i, g, pm, False))(f, case.padding_mode)
                   for k, f in JAX_GRID_IMPLS.items()}
      current = CURRENT_GRID
      torch_impls = {}
      if torch is not None and dtype == "bf16" and torch_device.type == "cpu" and max(case.h, case.w) > 128:
        # torch 2.13.0+cpu: bf16 grid_sample on (8, 3, 256, 256) dies with SIGSEGV / "double free" in the forward
        # (fine at 128 px); a crash would take the whole benchmark down, so it is recorded instead of run.
        skipped["torch_grid_sample"] = "skipped: torch CPU bf16 grid_sample crashes (SIGSEGV) above 128 px"
      elif torch is not None:
        torch_impls["torch_grid_sample"] = (lambda pm: lambda i, g: torch.nn.functional.grid_sample(
            i, g, mode="bilinear", padding_mode=pm, align_corners=False))(case.padding_mode)
    log(f"[{name}] {shapes}")
    rows: dict[str, Any] = {impl: {"error": why} for impl, why in skipped.items()}
    values: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    for impl, fn in torch_impls.items():
      targs = [torch.tensor(a) for a in inputs]
      if name != "attention":
        targs[0] = targs[0].permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW at the torch boundary
      targs = [t.to(device=torch_device, dtype=tdtype) for t in targs]
      try:
        rows[impl], out, grads = _time_torch(fn, targs, repeats, warmup, torch_device)
      except (RuntimeError, NotImplementedError) as e:  # e.g. an op without a bf16 kernel on this device
        rows[impl] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        log(f"  {impl}: {rows[impl]['error']}")
        continue
      if name != "attention":
        out, grads = out.transpose(0, 2, 3, 1), [grads[0].transpose(0, 2, 3, 1), grads[1]]
      values[impl] = (out, grads)
      log(f"  {impl}: {rows[impl]['median_ms']:.2f} ms")
    for impl, fn in jax_impls.items():
      try:
        rows[impl], out, grads = _time_jax(fn, [jnp.asarray(a, jdtype) for a in inputs], repeats, warmup, jax_device)
      except Exception as e:  # pylint: disable=broad-except  # e.g. cuDNN refusing a head size; recorded, not fatal
        rows[impl] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
        log(f"  {impl}: {rows[impl]['error']}")
        continue
      values[impl] = (out, grads)
      log(f"  {impl}: {rows[impl]['median_ms']:.2f} ms (first call {rows[impl]['first_call_s']:.1f} s)")
    reference = next((k for k in torch_impls if k in values), current)
    ref_out, ref_grads = values[reference]
    cur_out, cur_grads = values[current]
    for impl, (out, grads) in values.items():
      rows[impl].update(_diffs(out, grads, ref_out, ref_grads, names))
      if impl.startswith("jax_"):
        d = _diffs(out, grads, cur_out, cur_grads, names)
        rows[impl]["max_abs_diff_vs_current"] = d["max_abs_diff_vs_reference"]
        rows[impl]["max_abs_grad_diff_vs_current"] = d["max_abs_grad_diff_vs_reference"]
    result["cases"][name] = {"shapes": shapes, "reference": reference, "current": current, "results": rows}
  return result


def markdown_table(result: dict[str, Any]) -> str:
  m = result["machine"]
  lines = [f"{m['processor']}, {m['cpu_count']} CPUs, jax {m['jax']} on {m['jax_device']}"
           + (f", torch {m['torch']} on {m['torch_device']}" if "torch" in m else "")
           + f"; dtype {result['dtype']}, batch {result['batch']}, scale {result['scale']}, "
           f"{result['repeats']} repeats (forward + backward)"
           + ("; bf16 diffs to torch include torch's bf16 coordinate arithmetic" if result["dtype"] == "bf16" else ""),
           "",
           "| case | implementation | median ms | min–max ms | vs current | max abs diff vs reference (out / grads) |",
           "|---|---|---|---|---|---|"]
  for name, case in result["cases"].items():
    cur = case["results"][case["current"]].get("median_ms")
    for impl, r in case["results"].items():
      tag = impl + (" (reference)" if impl == case["reference"] else "") + (" (current)" if impl == case["current"]
                                                                             else "")
      if "error" in r:
        lines.append(f"| {name} | {tag} | – | – | – | {r['error']} |")
        continue
      grads = " / ".join(f"{v:.1e}" for v in r["max_abs_grad_diff_vs_reference"].values())
      speed = f"{cur / r['median_ms']:.2f}×" if cur else "–"
      lines.append(f"| {name} | {tag} | {r['median_ms']:.2f} | {r['min_ms']:.2f}–{r['max_ms']:.2f} | {speed} | "
                   f"{r['max_abs_diff_vs_reference']:.1e} / {grads} |")
  return "\n".join(lines)


def main(argv) -> None:
  del argv
  compile_cache.setup_from_flags()  # persistent XLA cache (--nocompile_cache: off), before the first jit
  result = run(batch=_BATCH.value, scale=_SCALE.value, repeats=_REPEATS.value, warmup=_WARMUP.value,
               dtype=_DTYPE.value, device=_DEVICE.value, cases=_CASES.value, use_torch=not _NO_TORCH.value)
  print()
  print(markdown_table(result))
  if _OUT.value:
    with open(_OUT.value, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=2)
    print(f"\nresults: {_OUT.value}")


if __name__ == "__main__":
  app.run(main)

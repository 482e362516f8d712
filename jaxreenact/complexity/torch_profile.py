"""PyTorch-side FLOP readings: DeepSpeed FlopsProfiler (standalone and engine) and ``FlopCounterMode``.

DeepSpeed pitfalls this module guards against (docs/facts.md §3):

* a profile that is started once and read after N forwards reports N forwards' worth of FLOPs;
* calling ``start_profile`` again without ``end_profile`` wraps the ``torch.nn.functional`` functions a second time,
  so every call is counted twice (and so on).

:func:`deepspeed_profile` therefore builds a **fresh** ``FlopsProfiler`` for every reading, runs exactly one call,
reads, and ends the profile; it checks before and after that ``F.conv2d`` is the unpatched original.
:func:`accumulated_reading` reproduces both pitfalls on purpose, for the report's explanation of the study's numbers.

DeepSpeed must run on real tensors: on ``meta`` tensors PyTorch runs Python decompositions that call patched functions
again (``leaky_relu`` decomposes into ``torch.mul`` ...), which inflates the count. ``FlopCounterMode`` works at the
aten level and is exact on ``meta`` tensors, so 256-px counts cost nothing there.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import os
import re
import socket
import tempfile
import time
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

_ORIGINAL_CONV2D = F.conv2d
_ORIGINAL_INTERPOLATE = F.interpolate

# DeepSpeed functional name -> reconciliation category.
DS_CATEGORIES = {
    "conv1d": "conv_matmul", "conv2d": "conv_matmul", "conv3d": "conv_matmul", "conv_transpose1d": "conv_matmul",
    "conv_transpose2d": "conv_matmul", "conv_transpose3d": "conv_matmul", "linear": "conv_matmul",
    "matmul": "conv_matmul", "mm": "conv_matmul", "bmm": "conv_matmul", "addmm": "conv_matmul",
    "baddbmm": "conv_matmul", "einsum": "conv_matmul", "__matmul__": "conv_matmul",
    "scaled_dot_product_attention": "conv_matmul",
    "relu": "activations", "prelu": "activations", "elu": "activations", "leaky_relu": "activations",
    "relu6": "activations", "silu": "activations", "gelu": "activations",
    "batch_norm": "normalisation", "layer_norm": "normalisation", "instance_norm": "normalisation",
    "group_norm": "normalisation",
    "avg_pool1d": "resampling", "avg_pool2d": "resampling", "avg_pool3d": "resampling", "max_pool1d": "resampling",
    "max_pool2d": "resampling", "max_pool3d": "resampling", "adaptive_avg_pool1d": "resampling",
    "adaptive_avg_pool2d": "resampling", "adaptive_avg_pool3d": "resampling", "adaptive_max_pool1d": "resampling",
    "adaptive_max_pool2d": "resampling", "adaptive_max_pool3d": "resampling", "upsample": "resampling",
    "interpolate": "resampling", "softmax": "softmax", "embedding": "data_movement", "mul": "elementwise",
    "add": "elementwise",
}


_TORCH_NAMES = ("matmul", "mm", "bmm", "addmm", "mul", "add", "einsum", "baddbmm")
_TENSOR_NAMES = ("matmul", "__matmul__", "mm", "bmm", "addmm", "mul", "add")


@contextlib.contextmanager
def restore_functionals():
  """Puts back every function a DeepSpeed profiler may patch, whatever happened inside.

  Needed because a second ``start_profile`` overwrites DeepSpeed's record of the original with its first wrapper,
  after which DeepSpeed itself can never restore ``torch.nn.functional``.
  """
  saved_f = dict(vars(F))
  saved_t = {n: getattr(torch, n) for n in _TORCH_NAMES}
  saved_tensor = {n: getattr(torch.Tensor, n) for n in _TENSOR_NAMES}
  try:
    import einops
    saved_einops = einops.einsum
  except ImportError:  # pragma: no cover
    einops, saved_einops = None, None
  try:
    yield {"F": saved_f, "torch": saved_t, "Tensor": saved_tensor}
  finally:
    for k, v in saved_f.items():
      if vars(F).get(k) is not v:
        setattr(F, k, v)
    for k, v in saved_t.items():
      setattr(torch, k, v)
    for k, v in saved_tensor.items():
      setattr(torch.Tensor, k, v)
    if einops is not None:
      einops.einsum = saved_einops


_NESTING = [0]


def guard_nested_calls(saved: dict[str, dict[str, Any]]) -> None:
  """Makes every DeepSpeed-patched function count only when it is not called from inside another patched call.

  On real CPU/GPU tensors no patched function calls another, so this changes nothing (tested). On ``meta`` tensors
  PyTorch runs Python decompositions that do (``F.linear`` -> ``torch.mm``, ``leaky_relu`` -> ``torch.mul``), which
  would count twice; with the guard a meta reading equals the real one, at no arithmetic cost.
  """
  owners = {"F": F, "torch": torch, "Tensor": torch.Tensor}
  for key, originals in saved.items():
    owner = owners[key]
    for name, original in originals.items():
      current = getattr(owner, name, None)
      if current is original or not callable(current):
        continue

      def guarded(*args, _patched=current, _original=original, **kwargs):
        if _NESTING[0]:
          return _original(*args, **kwargs)
        _NESTING[0] += 1
        try:
          return _patched(*args, **kwargs)
        finally:
          _NESTING[0] -= 1

      guarded.__str__ = current.__str__  # DeepSpeed finds the original again through this key when it unpatches
      setattr(owner, name, guarded)
  # Functions DeepSpeed does not count but whose meta decompositions call counted ones (grid_sample -> torch.add).
  for name in _NEUTRAL:
    original = saved["F"][name]

    def neutral(*args, _original=original, **kwargs):
      _NESTING[0] += 1
      try:
        return _original(*args, **kwargs)
      finally:
        _NESTING[0] -= 1

    setattr(F, name, neutral)


_NEUTRAL = ("grid_sample", "pad", "affine_grid")


def _check_unpatched(where: str) -> None:
  if F.conv2d is not _ORIGINAL_CONV2D or F.interpolate is not _ORIGINAL_INTERPOLATE:
    raise RuntimeError(f"torch_profile.{where}: torch.nn.functional is still patched by a DeepSpeed FlopsProfiler that "
                       "was started and never ended; its counts would stack (docs/facts.md §3)")


def _fn_name(key) -> str:
  """DeepSpeed keys its records by ``func.__str__`` (a bound method of the original function)."""
  owner = getattr(key, "__self__", None)
  return getattr(owner, "__name__", None) or str(key)


@dataclasses.dataclass
class DeepSpeedReading:
  flops: int
  macs: int
  params: int
  duration_s: float
  by_function: dict[str, int]  # DeepSpeed functional name -> flops
  macs_by_function: dict[str, int]
  root_flops: int = 0  # flops of functionals called directly in the root module's own forward (not a submodule's)

  def by_category(self) -> dict[str, int]:
    """conv/matmul flops split into 2·MACs ('conv_matmul') and the conv bias DeepSpeed adds ('bias')."""
    out: dict[str, int] = collections.defaultdict(int)
    for name, fl in self.by_function.items():
      cat = DS_CATEGORIES.get(name, "elementwise")
      if cat == "conv_matmul":
        two_macs = 2 * self.macs_by_function.get(name, 0)
        out["conv_matmul"] += two_macs
        out["bias"] += fl - two_macs  # conv bias (1/output element); F.linear bias is not counted
      else:
        out[cat] += fl
    return dict(out)

  def as_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["by_category"] = self.by_category()
    return d


class _Wrapper(nn.Module):
  """Runs ``fn(*args)`` inside a module forward, so that DeepSpeed counts functionals called outside the modules'
  own forwards (e.g. FAN.get_heatmap's resizes) the way it would inside a training wrapper."""

  def __init__(self, module: nn.Module, fn: Callable):
    super().__init__()
    self.inner = module
    self._fn = fn

  def forward(self, *args, **kwargs):
    return self._fn(*args, **kwargs)


def deepspeed_profile(module: nn.Module, args: Sequence[Any] = (), kwargs: dict | None = None, *,
                      fn: Callable | None = None, no_grad: bool = True, guard: bool = True) -> DeepSpeedReading:
  """One DeepSpeed FlopsProfiler reading of one call, with a fresh profiler (nothing accumulates or stacks).

  Args:
    module: the ``nn.Module`` whose submodules are profiled (parameters are counted from it).
    args, kwargs: the call's arguments: real tensors, or ``meta`` tensors (shapes only) with ``guard``.
    fn: what to call instead of ``module(*args, **kwargs)`` (e.g. ``fan.get_heatmap``); it runs inside a wrapper
      module's forward so that functionals outside submodule forwards are counted, as in a training wrapper.
    no_grad: run under ``torch.no_grad()``.
    guard: count only outermost patched calls (see :func:`guard_nested_calls`); required for ``meta`` tensors.
  """
  from deepspeed.profiling.flops_profiler import profiler as ds_prof

  _check_unpatched("deepspeed_profile")
  target = module if fn is None else _Wrapper(module, fn)
  by_fn: dict[str, int] = collections.defaultdict(int)
  macs_fn: dict[str, int] = collections.defaultdict(int)
  root = [0]

  def snapshot(m, _i, _o):  # registered before DeepSpeed's own hooks, so it runs first and sees this module's list
    if ds_prof.module_flop_count:
      for key, fl in ds_prof.module_flop_count[-1]:
        by_fn[_fn_name(key)] += int(fl)
        if m is target:
          root[0] += int(fl)
    if ds_prof.module_mac_count:
      for key, m in ds_prof.module_mac_count[-1]:
        macs_fn[_fn_name(key)] += int(m)

  handles = [m.register_forward_hook(snapshot) for m in target.modules()]
  prof = ds_prof.FlopsProfiler(target)
  with restore_functionals() as saved:
    try:
      prof.start_profile()
      if guard:
        guard_nested_calls(saved)
      with torch.no_grad() if no_grad else contextlib.nullcontext():
        target(*args, **(kwargs or {}))
      reading = DeepSpeedReading(int(prof.get_total_flops()), int(prof.get_total_macs()),
                                 int(prof.get_total_params()), float(prof.get_total_duration()), dict(by_fn),
                                 dict(macs_fn), root[0])
    finally:
      prof.end_profile()
      for h in handles:
        h.remove()
  _check_unpatched("deepspeed_profile")
  if sum(by_fn.values()) != reading.flops:
    raise RuntimeError(f"deepspeed_profile: per-function flops {sum(by_fn.values())} != total {reading.flops}")
  return reading


def accumulated_reading(module: nn.Module, args: Sequence[Any], *, forwards: int = 1, restarts: int = 1) -> int:
  """Reproduces the two misuses behind the study's Table 10 and returns the flops DeepSpeed then reports.

  ``forwards``: forwards run between one ``start_profile`` and the reading (counts accumulate ×forwards).
  ``restarts``: ``start_profile`` called this many times without ``end_profile`` (wrappers stack: ×restarts).
  """
  from deepspeed.profiling.flops_profiler import profiler as ds_prof

  _check_unpatched("accumulated_reading")
  prof = ds_prof.FlopsProfiler(module)
  with restore_functionals():  # DeepSpeed cannot unwrap stacked wrappers itself
    try:
      for _ in range(restarts):
        prof.start_profile()
      with torch.no_grad():
        for _ in range(forwards):
          module(*args)
      flops = int(prof.get_total_flops())
    finally:
      prof.end_profile()
  _check_unpatched("accumulated_reading")
  return flops


# ---------------------------------------------------------------------------------------------------------------
# FlopCounterMode.

@dataclasses.dataclass
class FlopCounterReading:
  forward: int
  backward: int
  by_op_forward: dict[str, int]
  by_op_backward: dict[str, int]

  @property
  def total(self) -> int:
    return self.forward + self.backward

  def as_dict(self) -> dict[str, Any]:
    return {"forward": self.forward, "backward": self.backward, "total": self.total,
            "by_op_forward": self.by_op_forward, "by_op_backward": self.by_op_backward}


class _GlobalOnlyTracker:
  """Stands in for FlopCounterMode's ModuleTracker, whose backward hooks break ``torch.autograd.grad`` on leaves
  (R1's double backprop: "A leaf node was passed to _will_engine_execute_node ..."); counts go to 'Global' only."""
  parents = frozenset({"Global"})
  is_bw = False

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


def flop_counter_mode(track_modules: bool = False) -> FlopCounterMode:
  """A silent ``FlopCounterMode``; without module tracking it also works around autograd.grad (see above)."""
  fc = FlopCounterMode(display=False)
  if not track_modules:
    fc.mod_tracker = _GlobalOnlyTracker()
  return fc


def _ops(fc: FlopCounterMode) -> dict[str, int]:
  return {str(k): int(v) for k, v in fc.get_flop_counts().get("Global", {}).items()}


def flop_counter(fn: Callable[[], Any], backward: Callable[[Any], None] | None = None) -> FlopCounterReading:
  """``FlopCounterMode`` around ``out = fn()`` and, separately, around ``backward(out)`` (a real backward).

  Example: ``flop_counter(lambda: model(x), lambda out: out.sum().backward())``.
  """
  with flop_counter_mode() as fc_f:
    out = fn()
  bwd, bwd_ops = 0, {}
  if backward is not None:
    with flop_counter_mode() as fc_b:
      backward(out)
    bwd, bwd_ops = int(fc_b.get_total_flops()), _ops(fc_b)
  return FlopCounterReading(int(fc_f.get_total_flops()), bwd, _ops(fc_f), bwd_ops)


def sum_outputs(out) -> torch.Tensor:
  """Σ of every floating tensor in a (nested) output, for a backward of 'all outputs'."""
  leaves = []

  def visit(o):
    if isinstance(o, torch.Tensor):
      if o.is_floating_point():
        leaves.append(o.sum())
    elif isinstance(o, dict):
      for v in o.values():
        visit(v)
    elif isinstance(o, (list, tuple)):
      for v in o:
        visit(v)

  visit(out)
  return torch.stack(leaves).sum()


# ---------------------------------------------------------------------------------------------------------------
# DeepSpeed engine profile of a training iteration.

ENGINE_FIELDS = {
    "params per GPU": "params_per_gpu",
    "fwd MACs per GPU": "fwd_macs_per_gpu",
    "fwd flops per GPU": "fwd_flops_per_gpu",
    "fwd latency": "fwd_latency",
    "fwd FLOPS per GPU": "fwd_FLOPS_per_gpu",
    "bwd latency": "bwd_latency",
    "bwd FLOPS per GPU": "bwd_FLOPS_per_gpu",
    "fwd+bwd FLOPS per GPU": "fwd_bwd_FLOPS_per_gpu",
    "step latency": "step_latency",
    "iter latency": "iter_latency",
}
_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "k": 1e3}
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


def _parse_number(text: str) -> float:
  text = text.strip()
  m = re.match(r"([-+0-9.eE]+)\s*([a-zµ]*)\s*$", text)
  if m and m.group(2) in _TIME_UNITS:
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]
  m = re.match(r"([-+0-9.eE]+)\s*([KMGTPk]?)", text)
  if not m:
    raise ValueError(f"cannot parse DeepSpeed figure {text!r}")
  return float(m.group(1)) * _UNITS[m.group(2)]


def parse_engine_profile(text: str) -> dict[str, float]:
  """Headline figures of a DeepSpeed engine flops-profiler printout (latencies in s, counts as plain numbers)."""
  out = {}
  for line in text.splitlines():
    if ":" not in line:
      continue
    label, value = line.rsplit(":", 1)
    label = label.split("=")[0].strip()
    label = re.sub(r"^\d+(\.\d+)?\s*\*\s*", "", label)
    if label in ENGINE_FIELDS and value.strip():
      try:
        out[ENGINE_FIELDS[label]] = _parse_number(value)
      except ValueError:
        continue
  return out


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def init_single_process_distributed() -> None:
  """A one-process gloo group on 127.0.0.1, which ``deepspeed.initialize`` requires (CPU friendly)."""
  import deepspeed
  import torch.distributed as dist

  if dist.is_available() and dist.is_initialized():
    return
  for k, v in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(_free_port())), ("RANK", "0"), ("WORLD_SIZE", "1"),
               ("LOCAL_RANK", "0")):
    os.environ.setdefault(k, v)
  with contextlib.redirect_stdout(io.StringIO()):
    deepspeed.init_distributed(dist_backend="gloo", verbose=False)


def deepspeed_engine_profile(model: nn.Module, batch_fn: Callable[[int], tuple], micro_batch: int, *,
                             steps: int = 2, lr: float = 1e-4) -> dict[str, Any]:
  """Runs ``steps`` DeepSpeed engine iterations with the flops profiler on the last and returns its figures.

  ``model(*batch_fn(step))`` must return the iteration's total loss (all forward passes of one training iteration),
  so the engine's "fwd" section covers every forward of the iteration and its backward every gradient.
  Returns the parsed (rounded) figures, the exact ``fwd_flops_exact``/``fwd_macs_exact`` read from the engine's
  profiler just before it prints, and the raw printout (``text``).

  Note: the engine starts its profile inside the model's forward pre-hook, so functionals called directly in the
  top module's own forward (not inside a submodule) are not counted at the profile step.
  """
  import deepspeed

  _check_unpatched("deepspeed_engine_profile")
  init_single_process_distributed()
  with tempfile.TemporaryDirectory() as tmp:
    out_file = os.path.join(tmp, "engine_profile.txt")
    config = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": 1,
        "wall_clock_breakdown": True,
        "flops_profiler": {"enabled": True, "profile_step": steps - 1, "module_depth": -1, "top_modules": 1,
                           "detailed": False, "output_file": out_file},
    }
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.0, 0.99))
    log = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(log), restore_functionals():
      engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
      captured: dict[str, float] = {}
      prof = engine.flops_profiler
      original_print = prof.print_model_profile

      def capture(*a, **k):
        captured.update(fwd_flops_exact=int(prof.get_total_flops()), fwd_macs_exact=int(prof.get_total_macs()))
        return original_print(*a, **k)

      prof.print_model_profile = capture
      for step in range(steps):
        loss = engine(*batch_fn(step))
        engine.backward(loss)
        engine.step()
    wall = time.perf_counter() - t0
    text = open(out_file).read() if os.path.exists(out_file) else log.getvalue()
  _check_unpatched("deepspeed_engine_profile")
  out: dict[str, Any] = parse_engine_profile(text)
  out.update(captured)
  out["text"] = text
  out["wall_s"] = wall
  out["micro_batch"] = micro_batch
  return out


def affine_in_batch(readings: dict[int, int], batch: int) -> int:
  """Extrapolates an exactly-affine-in-batch count (every DeepSpeed formula is) from two batch sizes."""
  (b1, v1), (b2, v2) = sorted(readings.items())[:2]
  slope, rem = divmod(v2 - v1, b2 - b1)
  if rem:
    raise ValueError(f"affine_in_batch: readings {readings} are not affine in the batch size")
  return int(v1 + slope * (batch - b1))

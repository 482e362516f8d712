"""Analytic multiply-accumulate (MAC) counts from layer shapes, in both conventions, for JAX and PyTorch.

Two conventions are computed for every convolution and matrix product:

* **naive**: output elements × (input channels per group) × kernel taps, padding taps included. This is what the
  DeepSpeed FlopsProfiler reports as MACs and what ``torch.utils.flop_counter.FlopCounterMode`` reports as
  FLOPs / 2 (docs/facts.md §3).
* **padding-excluded** (``padx``): only the (output, tap) pairs whose tap lands on a real input element, neither in
  the zero padding nor in a hole of an input (lhs) dilation. This is XLA's ``HloCostAnalysis`` rule; XLA's
  convolution and dot FLOPs are exactly 2 × padx.

On the JAX side the count walks a jaxpr (``jax.make_jaxpr``: no compile, no FLOPs executed), descending into
``jit``/``custom_jvp``/``custom_vjp``/``remat`` sub-jaxprs and multiplying ``scan`` bodies by their length. Every
other equation is also given a *category* (normalisation, activations, resampling, ...) from the Flax module path
and the Python call site that created it, which ``reconcile.py`` uses to tabulate the tools' conventions.

On the PyTorch side :class:`TorchMacCounter` is a ``TorchDispatchMode`` that sees every ``aten.convolution``,
``mm``/``addmm``/``bmm``/``baddbmm`` (forward) and ``convolution_backward`` call, whether it comes from an
``nn.Conv2d``/``nn.Linear`` module or from a functional call, and attributes it to the module path through forward
hooks. It runs on ``meta`` tensors, so counting a 256-px model costs no arithmetic.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import os
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np
from jax.extend import core as jcore

CATEGORIES = ("conv_matmul", "padding", "bias", "normalisation", "activations", "resampling", "grid_sample",
              "softmax", "elementwise", "data_movement")

# jax.nn functions are jitted; their jit equation carries the function's name.
ACTIVATION_NAMES = frozenset({"relu", "relu6", "leaky_relu", "elu", "celu", "selu", "gelu", "silu", "swish", "sigmoid",
                              "log_sigmoid", "softplus", "soft_sign", "hard_tanh", "hard_sigmoid", "hard_silu", "tanh",
                              "mish", "glu"})
SOFTMAX_NAMES = frozenset({"softmax", "log_softmax", "_softmax", "_softmax_deprecated", "logsumexp"})

# Primitives that move or relabel data; XLA assigns them no FLOPs.
DATA_MOVEMENT = frozenset({
    "reshape", "broadcast_in_dim", "transpose", "squeeze", "expand_dims", "concatenate", "pad", "slice",
    "dynamic_slice", "dynamic_update_slice", "gather", "scatter", "rev", "copy", "copy_p", "convert_element_type",
    "iota", "select_and_gather_add", "bitcast_convert_type", "device_put", "stop_gradient", "split", "sharding_constraint", "mesh_cast", "reshard", "optimization_barrier", "pjit", "random_bits",
    "random_seed", "random_wrap", "random_unwrap", "threefry2x32", "argsort", "sort", "shard_to_full",
    "full_to_shard"})

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../jaxreenact
# Call-site files (relative to the jaxreenact package, or a library suffix) -> category.
_FILE_CATEGORIES = (
    ("layers/norm.py", "normalisation"),
    ("layers/batchnorm.py", "normalisation"),
    ("layers/spectral_norm.py", "normalisation"),
    ("flax/linen/normalization.py", "normalisation"),
    ("layers/resample.py", "resampling"),
    ("layers/antialias.py", "resampling"),
    ("layers/warp.py", "grid_sample"),
)


# ---------------------------------------------------------------------------------------------------------------
# Per-primitive MAC formulas (pure functions of shapes; unit-tested against hand counts).

@functools.lru_cache(maxsize=None)
def valid_taps(in_size: int, kernel: int, out_size: int, stride: int, pad_lo: int, lhs_dilation: int,
               rhs_dilation: int) -> int:
  """Number of (output index, kernel tap) pairs along one spatial axis whose tap reads a real input element.

  XLA's rule (HloCostAnalysis::GetConvolutionFlops): position ``o·stride − pad_lo + t·rhs_dilation`` in the
  lhs-dilated, padded input must be a multiple of ``lhs_dilation`` (not a hole) and inside the input.
  """
  o = np.arange(out_size, dtype=np.int64)[:, None]
  t = np.arange(kernel, dtype=np.int64)[None, :]
  u = o * stride - pad_lo + t * rhs_dilation
  ok = (u >= 0) & (u % lhs_dilation == 0) & (u // lhs_dilation < in_size)
  return int(ok.sum())


def conv_macs(lhs_shape: Sequence[int], rhs_shape: Sequence[int], out_shape: Sequence[int], lhs_spec: Sequence[int],
              rhs_spec: Sequence[int], out_spec: Sequence[int], window_strides: Sequence[int],
              padding: Sequence[tuple[int, int]], lhs_dilation: Sequence[int] | None = None,
              rhs_dilation: Sequence[int] | None = None, feature_group_count: int = 1,
              batch_group_count: int = 1) -> tuple[int, int]:
  """(naive, padding-excluded) MACs of one ``conv_general_dilated``.

  Specs are ``ConvDimensionNumbers`` index tuples: lhs (batch, feature, *spatial), rhs (out feature, in feature,
  *spatial), out (batch, feature, *spatial).
  """
  nsp = len(lhs_spec) - 2
  lhs_dilation = tuple(lhs_dilation or (1,) * nsp)
  rhs_dilation = tuple(rhs_dilation or (1,) * nsp)
  rhs_in = rhs_shape[rhs_spec[1]]  # input features per group
  kernel = [rhs_shape[d] for d in rhs_spec[2:]]
  out_sp = [out_shape[d] for d in out_spec[2:]]
  in_sp = [lhs_shape[d] for d in lhs_spec[2:]]
  out_batch = out_shape[out_spec[0]]
  out_feat = out_shape[out_spec[1]]
  naive = out_batch * out_feat * int(np.prod(out_sp, dtype=np.int64)) * rhs_in * int(np.prod(kernel, dtype=np.int64))
  lhs_batch = lhs_shape[lhs_spec[0]]
  lhs_feat = lhs_shape[lhs_spec[1]]
  taps = 1
  for i in range(nsp):
    taps *= valid_taps(in_sp[i], kernel[i], out_sp[i], window_strides[i], padding[i][0], lhs_dilation[i],
                       rhs_dilation[i])
  padx = (lhs_feat // feature_group_count) * out_feat * (lhs_batch // batch_group_count) * taps
  return int(naive), int(padx)


def dot_macs(lhs_shape: Sequence[int], rhs_shape: Sequence[int],
             dimension_numbers: tuple[tuple[Sequence[int], Sequence[int]], tuple[Sequence[int], Sequence[int]]]) -> int:
  """MACs of one ``dot_general``: batch × contracting × lhs free × rhs free (no padding: both conventions agree)."""
  (lc, rc), (lb, rb) = dimension_numbers
  batch = int(np.prod([lhs_shape[d] for d in lb], dtype=np.int64))
  contract = int(np.prod([lhs_shape[d] for d in lc], dtype=np.int64))
  lfree = int(np.prod([s for d, s in enumerate(lhs_shape) if d not in lc and d not in lb], dtype=np.int64))
  rfree = int(np.prod([s for d, s in enumerate(rhs_shape) if d not in rc and d not in rb], dtype=np.int64))
  return batch * contract * lfree * rfree


def torch_conv_macs(input_shape: Sequence[int], weight_shape: Sequence[int], stride: Sequence[int],
                    padding: Sequence[int], dilation: Sequence[int], groups: int, transposed: bool = False,
                    output_padding: Sequence[int] | None = None) -> tuple[int, int]:
  """(naive, padding-excluded) MACs of ``aten.convolution`` (NCHW input, OIHW or IOHW-transposed weight)."""
  nsp = len(input_shape) - 2
  stride, padding, dilation = (tuple(int(v) for v in x) for x in (stride, padding, dilation))
  if len(stride) == 1:
    stride, padding, dilation = stride * nsp, padding * nsp, dilation * nsp
  b, cin, in_sp = input_shape[0], input_shape[1], list(input_shape[2:])
  kernel = list(weight_shape[2:])
  ktaps = int(np.prod(kernel, dtype=np.int64))
  if not transposed:
    cout = weight_shape[0]
    out_sp = [(in_sp[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nsp)]
    naive = b * cout * int(np.prod(out_sp, dtype=np.int64)) * (cin // groups) * ktaps
    taps = 1
    for i in range(nsp):
      taps *= valid_taps(in_sp[i], kernel[i], out_sp[i], stride[i], padding[i], 1, dilation[i])
    return int(naive), int(b * cout * (cin // groups) * taps)
  # Transposed: every input element scatters to all kernel taps (the FlopCounterMode/DeepSpeed convention);
  # taps landing in the cropped border are the padding of this direction.
  output_padding = tuple(output_padding or (0,) * nsp)
  cout = weight_shape[1] * groups
  naive = b * cin * int(np.prod(in_sp, dtype=np.int64)) * (cout // groups) * ktaps
  taps = 1
  for i in range(nsp):
    out_i = (in_sp[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel[i] - 1) + output_padding[i] + 1
    o = np.arange(in_sp[i])[:, None] * stride[i] - padding[i] + np.arange(kernel[i])[None, :] * dilation[i]
    taps *= int(((o >= 0) & (o < out_i)).sum())
  return int(naive), int(b * cin * (cout // groups) * taps)


# ---------------------------------------------------------------------------------------------------------------
# Jaxpr walking.

@dataclasses.dataclass
class Op:
  """One conv/dot equation (times its enclosing scan trip counts)."""
  primitive: str
  path: str
  naive: int
  padx: int
  count: int = 1  # enclosing scan lengths multiplied
  shapes: tuple = ()


@dataclasses.dataclass
class MacCount:
  """MAC totals of one function, with per-op detail and a per-category element count of the other equations."""
  naive: int = 0
  padx: int = 0
  ops: list[Op] = dataclasses.field(default_factory=list)
  # category -> number of non-conv/dot equations (output elements summed), for orientation only
  other_elements: dict[str, int] = dataclasses.field(default_factory=lambda: collections.defaultdict(int))
  notes: list[str] = dataclasses.field(default_factory=list)

  @property
  def padding_macs(self) -> int:
    return self.naive - self.padx

  def by_path(self, depth: int | None = None) -> dict[str, tuple[int, int]]:
    """{module path (first ``depth`` components): (naive, padx)}."""
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for op in self.ops:
      key = "/".join(op.path.split("/")[:depth]) if depth else op.path
      out[key][0] += op.naive * op.count
      out[key][1] += op.padx * op.count
    return {k: (v[0], v[1]) for k, v in out.items()}

  def summary(self) -> dict[str, int]:
    return {"naive": self.naive, "padx": self.padx, "padding": self.padding_macs,
            "conv_ops": sum(op.count for op in self.ops if op.primitive == "conv_general_dilated"),
            "dot_ops": sum(op.count for op in self.ops if op.primitive == "dot_general")}


def _sub_jaxprs(eqn) -> list[tuple[Any, int]]:
  """[(sub-jaxpr, trip count)] of an equation that calls others (jit, custom_jvp/vjp, remat, scan, while, cond)."""
  name = eqn.primitive.name
  if name == "cond":
    return [(b, 1) for b in eqn.params["branches"]]
  trip = int(eqn.params["length"]) if name == "scan" else 1
  if name == "shard_map":
    mesh = eqn.params.get("mesh")
    axes = eqn.params.get("manual_axes") or eqn.params.get("axis_names") or ()
    if mesh is not None:
      trip = int(np.prod([mesh.shape[a] for a in axes])) if axes else int(mesh.size)
  subs = []
  for key, value in eqn.params.items():
    if name == "custom_vjp_call" and key not in ("call_jaxpr", "fun_jaxpr"):
      continue  # bwd is a Python callable; fwd jaxpr thunks are not executed in a forward pass
    if name == "custom_jvp_call" and key != "call_jaxpr":
      continue
    for v in (value if isinstance(value, (tuple, list)) else (value,)):
      if isinstance(v, (jcore.ClosedJaxpr, jcore.Jaxpr)):
        subs.append((v, trip))
  return subs


def _jaxpr(j) -> Any:
  return j.jaxpr if isinstance(j, jcore.ClosedJaxpr) else j


def iter_eqns(jaxpr, count: int = 1, prefix: str = "", ctx: tuple[str, ...] = ()) -> Iterator[tuple[Any, int, str,
                                                                                                      tuple[str, ...]]]:
  """Yields ``(leaf equation, multiplicity, module path, enclosing call names)`` recursively.

  ``cond`` yields every branch (multiplicity 1 each); callers that need "the branch taken" must decide.
  """
  for eqn in _jaxpr(jaxpr).eqns:
    stack = str(eqn.source_info.name_stack)
    path = "/".join(p for p in (prefix, stack) if p)
    subs = _sub_jaxprs(eqn)
    if subs:
      name = eqn.params.get("name") or eqn.primitive.name
      for sub, trip in subs:
        yield from iter_eqns(sub, count * trip, path, ctx + (str(name),))
    else:
      yield eqn, count, path, ctx


def _frames(eqn) -> list[tuple[str, str]]:
  tb = eqn.source_info.traceback
  if tb is None:
    return []
  return [(f.file_name, f.function_name) for f in tb.frames]


def categorize(eqn, ctx: tuple[str, ...]) -> str:
  """Category of a leaf equation (see CATEGORIES), from primitive, enclosing jax.nn function and call site."""
  prim = eqn.primitive.name
  if prim in ("conv_general_dilated", "dot_general"):
    return "conv_matmul"
  for name in reversed(ctx):
    if name in SOFTMAX_NAMES:
      return "softmax"
    if name in ACTIVATION_NAMES:
      return "activations"
  if prim in ("logistic", "tanh") and not ctx:
    return "activations"
  for file_name, function_name in _frames(eqn):
    fn = file_name.replace(os.sep, "/")
    if fn.endswith("jax/_src/nn/functions.py"):
      if function_name in SOFTMAX_NAMES:
        return "softmax"
      if function_name in ACTIVATION_NAMES:
        return "activations"
      continue
    for suffix, cat in _FILE_CATEGORIES:
      if fn.endswith(suffix):
        return cat
    if fn.endswith("jaxreenact/layers/conv.py"):
      if prim == "add":
        return "bias"
      if prim == "pad":
        return "padding"
      break
    if fn.startswith(_PACKAGE_DIR):  # first project frame decides: a model file means "plain arithmetic"
      break
  if prim in DATA_MOVEMENT:
    return "data_movement"
  return "elementwise"


def dce(closed) -> Any:
  """Dead-code-eliminated copy of a ClosedJaxpr (what XLA would execute)."""
  from jax._src.interpreters import partial_eval as pe  # no public DCE entry point in jax 0.10
  jaxpr, _ = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars), instantiate=True)
  return jcore.ClosedJaxpr(jaxpr, closed.consts)


def count_jaxpr(closed, *, eliminate_dead_code: bool = True) -> MacCount:
  """MAC counts of a (Closed)Jaxpr; ``cond`` contributes its costliest branch (noted)."""
  if isinstance(closed, jcore.Jaxpr):
    closed = jcore.ClosedJaxpr(closed, [])
  if eliminate_dead_code:
    closed = dce(closed)
  return _count(closed.jaxpr, 1, "", ())


def _count(jaxpr, count: int, prefix: str, ctx: tuple[str, ...]) -> MacCount:
  res = MacCount()
  for eqn in jaxpr.eqns:
    stack = str(eqn.source_info.name_stack)
    path = "/".join(p for p in (prefix, stack) if p)
    if eqn.primitive.name == "cond":
      branches = [_count(_jaxpr(b), count, path, ctx + ("cond",)) for b in eqn.params["branches"]]
      best = max(branches, key=lambda r: r.naive)
      if len({b.naive for b in branches}) > 1:
        res.notes.append(f"cond at {path or '<top>'}: counted the costliest of {len(branches)} branches")
      _merge(res, best)
      continue
    subs = _sub_jaxprs(eqn)
    if subs:
      name = eqn.params.get("name") or eqn.primitive.name
      if eqn.primitive.name == "while":
        res.notes.append(f"while loop at {path or '<top>'}: body counted once (trip count unknown statically)")
      for sub, trip in subs:
        _merge(res, _count(_jaxpr(sub), count * trip, path, ctx + (str(name),)))
      continue
    op = _leaf_op(eqn, path, count)
    if op is not None:
      res.ops.append(op)
      res.naive += op.naive * count
      res.padx += op.padx * count
    else:
      cat = categorize(eqn, ctx)
      res.other_elements[cat] += count * sum(int(np.prod(v.aval.shape, dtype=np.int64)) for v in eqn.outvars
                                             if hasattr(v.aval, "shape"))
  return res


def _merge(a: MacCount, b: MacCount) -> None:
  a.naive += b.naive
  a.padx += b.padx
  a.ops.extend(b.ops)
  a.notes.extend(b.notes)
  for k, v in b.other_elements.items():
    a.other_elements[k] += v


def _leaf_op(eqn, path: str, count: int) -> Op | None:
  prim = eqn.primitive.name
  if prim == "conv_general_dilated":
    p = eqn.params
    dn = p["dimension_numbers"]
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    out = eqn.outvars[0].aval.shape
    naive, padx = conv_macs(lhs, rhs, out, dn.lhs_spec, dn.rhs_spec, dn.out_spec, p["window_strides"], p["padding"],
                            p["lhs_dilation"], p["rhs_dilation"], p["feature_group_count"], p["batch_group_count"])
    return Op(prim, path, naive, padx, count, (tuple(lhs), tuple(rhs), tuple(out)))
  if prim == "dot_general":
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    m = dot_macs(lhs, rhs, eqn.params["dimension_numbers"])
    return Op(prim, path, m, m, count, (tuple(lhs), tuple(rhs), tuple(eqn.outvars[0].aval.shape)))
  return None


def count_fn(fn: Callable, *args, **kwargs) -> MacCount:
  """MAC counts of ``fn(*args, **kwargs)``; arguments may be arrays or ``jax.ShapeDtypeStruct``s."""
  return count_jaxpr(jax.make_jaxpr(fn)(*args, **kwargs))


# ---------------------------------------------------------------------------------------------------------------
# PyTorch side.

def _torch_ops():
  import torch
  aten = torch.ops.aten
  return aten


def _fcm_conv(x_shape, w_shape, out_shape, transposed: bool) -> int:
  """MACs by FlopCounterMode's ``conv_flop_count`` rule (its FLOPs / 2), used for backward convolutions."""
  conv_shape = (x_shape if transposed else out_shape)[2:]
  c_out, c_in, *filt = w_shape
  return int(np.prod(conv_shape, dtype=np.int64)) * int(np.prod(filt, dtype=np.int64)) * int(x_shape[0]) * c_out * c_in


def _in_backward() -> bool:
  import torch
  try:
    return torch._C._current_graph_task_id() != -1  # set while the autograd engine runs a backward
  except AttributeError:  # pragma: no cover - older torch
    return False


class TorchMacCounter:
  """Counts conv/matmul MACs (naive and padding-excluded) of PyTorch code at the aten level, per module path.

  Use as a context manager around a forward (and optionally a backward). Forward ops are attributed to the module
  whose forward is running; ``convolution_backward``/backward matmuls are collected under ``backward``. Works on
  ``meta`` tensors.

  Example:
    with TorchMacCounter(model) as c:
      model(x)
    c.naive, c.padx, c.by_module()
  """

  def __init__(self, root=None):
    self.root = root
    self.records: list[tuple[str, str, int, int, bool]] = []  # (module path, op, naive, padx, backward)
    self.details: list[str] = []  # one shape description per record
    self._stack: list[str] = []
    self._handles = []
    self._mode = None

  # -- module attribution
  def _attach(self):
    if self.root is None:
      return
    for name, mod in self.root.named_modules():
      self._handles.append(mod.register_forward_pre_hook(functools.partial(self._push, name or "<root>")))
      self._handles.append(mod.register_forward_hook(self._pop))

  def _push(self, name, _mod, _inp):
    self._stack.append(name)

  def _pop(self, _mod, _inp, _out):
    if self._stack:
      self._stack.pop()

  def __enter__(self):
    from torch.utils._python_dispatch import TorchDispatchMode

    counter = self

    class _Mode(TorchDispatchMode):

      def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        counter._record(func, args, kwargs or {}, out)
        return out

    self._attach()
    self._mode = _Mode()
    self._mode.__enter__()
    return self

  def __exit__(self, *exc):
    self._mode.__exit__(*exc)
    for h in self._handles:
      h.remove()
    self._handles.clear()
    return False

  def _record(self, func, args, kwargs, out):
    aten = _torch_ops()
    backward = _in_backward()
    path = "<backward>" if backward else (self._stack[-1] if self._stack else "<functional>")
    packet = getattr(func, "overloadpacket", None)
    if packet is aten.convolution:
      x, w = args[0], args[1]
      stride, padding, dilation, transposed, output_padding, groups = args[3:9]
      naive, padx = torch_conv_macs(x.shape, w.shape, stride, padding, dilation, groups, transposed, output_padding)
      self.records.append((path, "convolution", naive, padx, backward))
      self.details.append(f"conv x{tuple(x.shape)} w{tuple(w.shape)} stride {tuple(stride)} pad {tuple(padding)} "
                          f"groups {groups}")
    elif packet in (aten.mm, aten.bmm):
      a, b = args[0], args[1]
      m = int(np.prod(a.shape, dtype=np.int64)) * int(b.shape[-1])
      self.records.append((path, packet.__name__, m, m, backward))
      self.details.append(f"{packet.__name__} {tuple(a.shape)} @ {tuple(b.shape)}")
    elif packet in (aten.addmm, aten.baddbmm):
      a, b = args[1], args[2]
      m = int(np.prod(a.shape, dtype=np.int64)) * int(b.shape[-1])
      self.records.append((path, packet.__name__, m, m, backward))
      self.details.append(f"{packet.__name__} {tuple(a.shape)} @ {tuple(b.shape)}")
    elif packet is aten.convolution_backward:
      grad_out, x, w = args[0], args[1], args[2]
      stride, padding, dilation, transposed, output_padding, groups, mask = args[4:11]
      _, f_padx = torch_conv_macs(x.shape, w.shape, stride, padding, dilation, groups, transposed, output_padding)
      naive = padx = 0
      if mask[0]:  # grad input: FlopCounterMode counts it over the grad_out positions (a transposed conv)
        naive += _fcm_conv(grad_out.shape, w.shape, x.shape, not transposed)
        padx += f_padx  # the real (output, tap) pairs are the forward's, traversed the other way
      if mask[1]:  # grad weight
        t = lambda s: [s[1], s[0], *s[2:]]  # noqa: E731
        if transposed:
          naive += _fcm_conv(t(grad_out.shape), t(x.shape), t(w.shape), False)
        else:
          naive += _fcm_conv(t(x.shape), t(grad_out.shape), t(w.shape), False)
        padx += f_padx
      self.records.append((path, "convolution_backward", naive, padx, True))
      self.details.append(f"conv_backward x{tuple(x.shape)} w{tuple(w.shape)} mask {tuple(mask)}")

  @property
  def naive(self) -> int:
    return sum(r[2] for r in self.records)

  @property
  def padx(self) -> int:
    return sum(r[3] for r in self.records)

  @property
  def forward_naive(self) -> int:
    return sum(r[2] for r in self.records if not r[4])

  @property
  def forward_padx(self) -> int:
    return sum(r[3] for r in self.records if not r[4])

  def by_module(self) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for path, _, n, p, _ in self.records:
      out[path][0] += n
      out[path][1] += p
    return {k: (v[0], v[1]) for k, v in out.items()}


def _jax_kind(op: Op) -> str:
  lhs, rhs, out = op.shapes
  if op.primitive == "dot_general":
    return f"dot {lhs} · {rhs} -> {out}"
  return f"conv lhs{lhs} rhs{rhs} -> {out}"


def _cause(desc: str, side: str) -> str:
  """A best-effort cause for a conv/matmul present in one implementation only (see reconcile.CAUSES)."""
  import re
  m = re.search(r"w\((\d+), 1, (\d+), (\d+)\).*groups (\d+)", desc)
  if side == "torch" and m and int(m.group(4)) == int(m.group(1)) and int(m.group(2)) >= 5:
    return ("anti-alias downsampling: torch convolves the Gaussian at every pixel then keeps every k-th "
            "(AntiAliasInterpolation2d); the JAX port convolves only the kept pixels (stride k): same output")
  m = re.search(r"rhs\((\d+), \1, 1, (\d+)\)", desc)
  if side == "jax" and desc.startswith("conv") and m and int(m.group(1)) >= 5:
    return "anti-alias downsampling computed only at the kept pixels (strided depthwise Gaussian)"
  if side == "torch" and re.search(r"bmm \(\d+, 2, 2\) @ \(\d+, 2, 1\)", desc):
    return ("2×2 Jacobian times coordinate (FOMM sparse motions / Transform): torch.matmul → bmm; the JAX port "
            "writes the 2×2 product elementwise (no dot)")
  if side == "jax" and desc.startswith("dot") and re.search(r"2, 2\) · \(\d+, 2, 2\)", desc):
    return ("jnp.linalg.inv of 2×2 Jacobians: its linear solve applies products that torch.inverse (not a matmul "
            "for the counters) does not show")
  return "computed by this implementation only"


def compare_ops(jax_ops: Sequence[Op], counter: "TorchMacCounter", backward: bool = False) -> dict[str, Any]:
  """Matches JAX conv/dot ops with torch conv/matmul records by naive MACs; lists what only one side computes.

  Returns totals of the unmatched ops (``torch_only_naive − jax_only_naive`` equals the naive difference) and
  the matched pairs whose padding-excluded counts differ (e.g. torch pads with F.pad, JAX inside the conv).
  """
  tmap: dict[int, list[tuple[str, int, str]]] = collections.defaultdict(list)
  for (path, _, naive, padx, bw), desc in zip(counter.records, counter.details):
    if bw == backward:
      tmap[naive].append((path, padx, desc))
  jax_only, padx_mismatch = [], []
  for op in jax_ops:
    for _ in range(op.count):
      if tmap.get(op.naive):
        path, padx, desc = tmap[op.naive].pop()
        if padx != op.padx:
          padx_mismatch.append({"jax_path": op.path, "torch_path": path, "naive": op.naive, "jax_padx": op.padx,
                                "torch_padx": padx, "torch": desc})
      else:
        d = _jax_kind(op)
        jax_only.append({"path": op.path, "naive": op.naive, "padx": op.padx, "op": d, "cause": _cause(d, "jax")})
  torch_only = [{"path": p, "naive": n, "padx": x, "op": d, "cause": _cause(d, "torch")}
                for n, lst in tmap.items() for p, x, d in lst]

  def group(items):
    out: dict[tuple, dict[str, Any]] = {}
    for it in items:
      key = (it["op"], it["cause"])
      g = out.setdefault(key, {"op": it["op"], "cause": it["cause"], "count": 0, "naive": 0, "padx": 0,
                               "paths": []})
      g["count"] += 1
      g["naive"] += it["naive"]
      g["padx"] += it["padx"]
      if len(g["paths"]) < 4 and it["path"] not in g["paths"]:
        g["paths"].append(it["path"])
    return sorted(out.values(), key=lambda g: -g["naive"])

  return {"jax_only": group(jax_only), "torch_only": group(torch_only),
          "jax_only_naive": sum(i["naive"] for i in jax_only), "torch_only_naive": sum(i["naive"] for i in torch_only),
          "jax_only_padx": sum(i["padx"] for i in jax_only), "torch_only_padx": sum(i["padx"] for i in torch_only),
          "matched_padx_difference": sum(m["torch_padx"] - m["jax_padx"] for m in padx_mismatch)}

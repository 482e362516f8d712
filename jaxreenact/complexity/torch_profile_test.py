"""DeepSpeed FlopsProfiler readings: fresh per reading, the two misuses reproduced, meta == real, engine profile."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from jaxreenact.complexity import analytic, torch_profile as tp  # noqa: E402


class Toy(nn.Module):
  """Conv (bias), leaky ReLU, instance norm, nearest upsampling, linear, grid_sample, softmax, bmm."""

  def __init__(self):
    super().__init__()
    self.conv = nn.Conv2d(3, 8, 3, padding=1)
    self.norm = nn.InstanceNorm2d(8, affine=True)
    self.fc = nn.Linear(8, 4)

  def forward(self, x):
    h = F.leaky_relu(self.norm(self.conv(x)), 0.2)
    h = F.interpolate(h, scale_factor=2, mode="nearest")
    grid = torch.zeros(x.shape[0], 4, 4, 2, device=x.device)
    h = F.grid_sample(h, grid, align_corners=False)  # (B, 8, 4, 4)
    a = torch.bmm(h.flatten(2).transpose(1, 2), h.flatten(2))  # (B, 16, 16)
    return self.fc(F.softmax(a, -1) @ h.flatten(2).transpose(1, 2))


def _inputs(device, batch=2):
  return (torch.rand(batch, 3, 8, 8, device=device),)


def test_fresh_readings_do_not_accumulate_and_restore_functionals():
  model = Toy()
  r1 = tp.deepspeed_profile(model, _inputs("cpu"))
  r2 = tp.deepspeed_profile(model, _inputs("cpu"))
  assert r1.flops == r2.flops > 0
  assert F.conv2d is tp._ORIGINAL_CONV2D and F.interpolate is tp._ORIGINAL_INTERPOLATE
  assert sum(r1.by_function.values()) == r1.flops
  cats = r1.by_category()
  assert cats["bias"] == 8 * 64 * 2  # conv bias: one add per output element
  assert cats["conv_matmul"] == 2 * r1.macs


def test_accumulation_and_stacked_wrappers_multiply_the_count():
  """The study's misuse: read after N forwards -> N×; start_profile twice without end -> every call counted twice."""
  model = Toy()
  one = tp.deepspeed_profile(model, _inputs("cpu"), guard=False).flops
  assert tp.accumulated_reading(model, _inputs("cpu"), forwards=3) == 3 * one
  assert tp.accumulated_reading(model, _inputs("cpu"), restarts=2) == 2 * one
  assert F.conv2d is tp._ORIGINAL_CONV2D  # even a stacked profile leaves torch.nn.functional clean
  assert tp.deepspeed_profile(model, _inputs("cpu")).flops == one


def test_meta_reading_with_guard_equals_real_reading():
  real = tp.deepspeed_profile(Toy(), _inputs("cpu"), guard=False)
  with torch.device("meta"):
    meta_model = Toy()
  meta = tp.deepspeed_profile(meta_model, _inputs("meta"), guard=True)
  assert (meta.flops, meta.macs, meta.params) == (real.flops, real.macs, real.params)
  unguarded = tp.deepspeed_profile(meta_model, _inputs("meta"), guard=False)
  assert unguarded.flops > real.flops  # meta decompositions call patched functions again


def test_deepspeed_macs_equal_torch_analytic_and_flop_counter():
  model = Toy()
  r = tp.deepspeed_profile(model, _inputs("cpu"))
  with analytic.TorchMacCounter(model) as tc, torch.no_grad():
    model(*_inputs("cpu"))
  fc = tp.flop_counter(lambda: model(*_inputs("cpu")))
  assert r.macs == tc.naive
  assert fc.forward == 2 * tc.naive


def test_affine_in_batch_extrapolation_is_exact():
  model = Toy()
  readings = {b: tp.deepspeed_profile(model, _inputs("cpu", b)).flops for b in (1, 2, 5)}
  assert tp.affine_in_batch({1: readings[1], 2: readings[2]}, 5) == readings[5]
  with pytest.raises(ValueError):
    tp.affine_in_batch({1: 10, 3: 15}, 4)


def test_flop_counter_counts_real_backward_including_double_backprop():
  model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Softplus(), nn.Conv2d(4, 1, 3, padding=1))
  x = torch.rand(2, 3, 8, 8, requires_grad=True)

  def r1_backward(out):
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    g.pow(2).sum().backward()

  fc = tp.flop_counter(lambda: model(x), r1_backward)
  assert fc.forward > 0 and fc.backward > 2 * fc.forward  # first and second order


ENGINE_TEXT = """
-------------------------- DeepSpeed Flops Profiler --------------------------
Profile Summary at step 1:
params per GPU:                                                         13.94 M
fwd MACs per GPU:                                                       152.3 GMACs
fwd flops per GPU:                                                      304.88 G
fwd flops of model = fwd flops per GPU * mp_size:                       304.88 G
fwd latency:                                                            5.19 s
fwd FLOPS per GPU = fwd flops per GPU / fwd latency:                    58.78 GFLOPS
bwd latency:                                                            9.44 s
bwd FLOPS per GPU = 2 * fwd flops per GPU / bwd latency:                64.58 GFLOPS
fwd+bwd FLOPS per GPU = 3 * fwd flops per GPU / (fwd+bwd latency):      62.52 GFLOPS
step latency:                                                           240.78 ms
"""


def test_parse_engine_profile():
  p = tp.parse_engine_profile(ENGINE_TEXT)
  assert p["fwd_flops_per_gpu"] == pytest.approx(304.88e9)
  assert p["fwd_macs_per_gpu"] == pytest.approx(152.3e9)
  assert p["fwd_latency"] == pytest.approx(5.19)
  assert p["bwd_FLOPS_per_gpu"] == pytest.approx(64.58e9)
  assert p["fwd_bwd_FLOPS_per_gpu"] == pytest.approx(62.52e9)
  assert p["step_latency"] == pytest.approx(0.24078)


def test_engine_profile_counts_one_iteration_of_forwards():
  class Loss(nn.Module):
    def __init__(self):
      super().__init__()
      self.net = Toy()

    def forward(self, x):
      return self.net(x).square().mean()

  model = Loss()
  x = _inputs("cpu")[0]
  res = tp.deepspeed_engine_profile(model, lambda step: (x,), micro_batch=2, steps=2)
  fresh = tp.deepspeed_profile(model, (x,)).flops
  # the printout rounds to 2 decimals of its unit
  assert res["fwd_flops_per_gpu"] == pytest.approx(fresh, rel=5e-3)
  assert res["bwd_latency"] > 0 and "DeepSpeed Flops Profiler" in res["text"]
  assert F.conv2d is tp._ORIGINAL_CONV2D

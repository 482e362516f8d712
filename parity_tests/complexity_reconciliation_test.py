"""FLOP reconciliation between XLA, DeepSpeed, FlopCounterMode and the analytic count (docs/facts.md §3).

Exact identities on small configs (every module of both models), the official 256-px figures of docs/facts.md
reproduced by the analytic count (jaxpr only) and by the torch tools on ``meta`` tensors (shapes only, no compute),
and the training iteration's identities.
"""
import jax
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

from jaxreenact.complexity import analytic, specs, torch_profile as tp, xla  # noqa: E402

# one xdist worker runs this module, so its module-scoped fixtures (shared runs/models) are built once
pytestmark = pytest.mark.xdist_group("complexity_reconciliation_test")


def _jax_counts(m, batch=1):
  traced = jax.jit(m.fn).trace(*specs.make_args(m, batch))
  return analytic.count_jaxpr(traced.jaxpr), traced


def _torch_counts(m, nets, batch=1, device="meta"):
  ts = m.torch
  args = ts.inputs(batch, device)
  call = (lambda: ts.call(nets, args)) if ts.call is not None else (lambda: ts.module(nets)(*args))
  with analytic.TorchMacCounter(ts.module(nets)) as tc, tp.flop_counter_mode() as fc, torch.no_grad():
    call()
  fn = (lambda *a: ts.call(nets, a)) if ts.call is not None else None
  ds = tp.deepspeed_profile(ts.module(nets), args, fn=fn)
  return tc, int(fc.get_total_flops()), ds


@pytest.fixture(scope="module")
def stargan_tiny():
  spec = specs.stargan_v2_spec("tiny")
  return spec, spec.modules[0].torch.build("meta")


@pytest.fixture(scope="module")
def dagan_tiny():
  spec = specs.dagan_spec("tiny")
  return spec, spec.modules[0].torch.build("meta")


@pytest.mark.parametrize("name", ["generator", "mapping_network", "style_encoder", "discriminator"])
def test_stargan_identities_exact(stargan_tiny, name):
  spec, nets = stargan_tiny
  m = spec.module(name)
  count, traced = _jax_counts(m, batch=2)
  tc, fcm, ds = _torch_counts(m, nets, batch=2)
  assert ds.macs == count.naive  # DeepSpeed MACs == analytic naive
  assert fcm == 2 * count.naive  # FlopCounterMode == 2 × analytic naive
  assert xla.category_costs(traced.jaxpr, only_conv_dot=True).conv_dot_flops == 2 * count.padx  # XLA == 2 × padx
  assert (tc.naive, tc.padx) == (count.naive, count.padx)  # both frameworks compute the same products
  diff = analytic.compare_ops(count.ops, tc)
  assert diff["jax_only"] == [] and diff["torch_only"] == []


@pytest.mark.parametrize("name", ["depth", "kp_detector", "dense_motion", "generator", "discriminator",
                                  "vgg19_pyramid"])
def test_dagan_identities_exact(dagan_tiny, name):
  spec, nets = dagan_tiny
  m = spec.module(name)
  count, traced = _jax_counts(m)
  tc, fcm, ds = _torch_counts(m, nets)
  assert ds.macs == tc.naive and fcm == 2 * tc.naive  # each torch tool against the torch analytic count
  assert xla.category_costs(traced.jaxpr, only_conv_dot=True).conv_dot_flops == 2 * count.padx
  diff = analytic.compare_ops(count.ops, tc)
  # Every product computed by one side only has a known cause, and they account for the whole difference.
  assert tc.naive - count.naive == diff["torch_only_naive"] - diff["jax_only_naive"]
  for g in diff["torch_only"] + diff["jax_only"]:
    assert g["cause"] != "computed by this implementation only", g
  if name in ("depth", "discriminator"):
    assert count.naive == tc.naive == ds.macs


def test_deepspeed_on_meta_equals_real_forwards(stargan_tiny, dagan_tiny):
  """The report reads DeepSpeed on meta tensors (with the nested-call guard): identical to real CPU forwards."""
  for spec, _ in (stargan_tiny, dagan_tiny):
    cpu, meta = spec.modules[0].torch.build("cpu"), spec.modules[0].torch.build("meta")
    for m in spec.modules:
      ts = m.torch
      got = []
      for dev, nets in (("cpu", cpu), ("meta", meta)):
        torch.manual_seed(0)
        fn = (lambda *a, n=nets: ts.call(n, a)) if ts.call is not None else None
        r = tp.deepspeed_profile(ts.module(nets), ts.inputs(2, dev), fn=fn)
        got.append((r.flops, r.macs, r.by_function))
      assert got[0] == got[1], (spec.name, m.name)


def test_fan_forward_meta_equals_real_and_official_rule():
  """FAN at 64 px (cheap): DeepSpeed real == meta; MACs == FlopCounterMode / 2; eval-mode BatchNorm 2/element."""
  from torch_reference.stargan_v2.wing import FAN
  fan = FAN().eval()
  with torch.device("meta"):
    fan_meta = FAN().eval()
  real = tp.deepspeed_profile(fan, (torch.rand(1, 3, 64, 64),))
  meta = tp.deepspeed_profile(fan_meta, (torch.empty(1, 3, 64, 64, device="meta"),))
  assert (real.flops, real.macs) == (meta.flops, meta.macs)
  fc = tp.flop_counter(lambda: fan_meta(torch.empty(1, 3, 64, 64, device="meta")))
  assert fc.forward == 2 * real.macs
  relu = real.by_function["relu"]  # every BatchNorm output goes through one ReLU in FAN
  assert real.by_function["batch_norm"] == 2 * relu


# ---------------------------------------------------------------------------------------------------------------
# Official 256-px figures (docs/facts.md §1, §2): jaxpr and meta tensors only.

def test_stargan_celeba_hq_official_figures():
  spec = specs.stargan_v2_spec("celeba_hq")
  nets = spec.modules[0].torch.build("meta")
  for m in spec.modules:
    off = m.official
    count, _ = _jax_counts(m)
    assert count.naive == off["macs_naive"], m.name
    tc, fcm, ds = _torch_counts(m, nets)
    assert fcm == off["flopcounter"], m.name
    assert ds.macs == off["macs_naive"], m.name
    assert ds.flops == off["deepspeed_flops"] + off.get("deepspeed_offset", 0), m.name
  assert spec.module("generator").params == 43_467_395
  assert spec.module("fan").params == 6_333_603


def test_stargan_official_generator_and_xla_identity_at_256():
  spec = specs.stargan_v2_spec("celeba_hq", with_torch=False)
  count, traced = _jax_counts(spec.module("generator"))
  assert count.naive == 45_374_676_992
  assert xla.category_costs(traced.jaxpr, only_conv_dot=True).conv_dot_flops == 2 * count.padx
  # XLA's convention: padx, 2.5% below naive (docs/facts.md: pad-excluded ≈ 2.4% lower for AFHQ)
  assert 0.02 < 1 - count.padx / count.naive < 0.03


def test_dagan_vox256_official_figures():
  spec = specs.dagan_spec("vox256")
  nets = spec.modules[0].torch.build("meta")
  for m in spec.modules:
    if not m.official:
      continue
    count, _ = _jax_counts(m)
    tc, fcm, ds = _torch_counts(m, nets)
    assert round(2 * tc.naive / 1e9, 3) == m.official["gflops_2x_naive"], m.name
    assert fcm == 2 * tc.naive and ds.macs == tc.naive, m.name
    diff = analytic.compare_ops(count.ops, tc)
    assert tc.naive - count.naive == diff["torch_only_naive"] - diff["jax_only_naive"], m.name
  gen = spec.module("generator")
  tc, _, _ = _torch_counts(gen, nets)
  assert tc.naive == 68_984_160_376  # docs/facts.md: 137.968 GFLOP = 2 × 68,984 M MACs
  assert gen.params == 46_096_917 and spec.module("kp_detector").params == 14_262_519


# ---------------------------------------------------------------------------------------------------------------
# Training iteration (tiny StarGAN v2, batch 2).

def test_stargan_train_iteration_identities(stargan_tiny):
  spec, nets = stargan_tiny
  tr = spec.train
  traced = jax.jit(tr.fn).trace(tr.state, tr.batch(2))
  count = analytic.count_jaxpr(traced.jaxpr)
  assert xla.category_costs(traced.jaxpr, only_conv_dot=True).conv_dot_flops == 2 * count.padx
  results = {}
  for matched in (False, True):
    with analytic.TorchMacCounter() as tc, tp.flop_counter_mode() as fc:
      tr.torch_iteration(nets, tr.torch_inputs(2, "meta"), matched=matched)
    assert fc.get_total_flops() == 2 * tc.naive  # FlopCounterMode, real backward incl. R1 double backprop
    results[matched] = tc
  # Forward passes: 8 G + 6 D + 7 E + 3 F.
  fwd = sum(n * _jax_counts(spec.module(k), 2)[0].naive for k, n in tr.forward_calls.items())
  assert results[True].forward_naive == fwd
  # Matched gradients: padding-excluded MACs agree except torch's ∂loss/∂x_real in both D steps (the official
  # d_loss makes x_real a leaf requiring grad): first conv's padx + the 1×1 head of the R1 double backward.
  d = spec.module("discriminator")
  first = next(op for op in _jax_counts(d, 2)[0].ops if op.path.endswith("main_0"))
  cfg = spec.config
  head = 2 * 64 * cfg.num_domains  # B · C_last · domains of the 1×1 conv
  assert results[True].padx - count.padx == 2 * (first.padx + head)
  assert results[False].naive > results[True].naive  # the official loop also computes discarded D gradients


def test_deepspeed_composition_equals_a_fresh_reading_of_the_whole_iteration(stargan_tiny):
  """What a DeepSpeed profile read after exactly one iteration reports = Σ calls × fresh module readings."""
  spec, nets = stargan_tiny
  tr = spec.train
  wrapper = tr.torch_wrapper(nets)
  batch = tr.torch_inputs(2, "meta")
  whole = tp.deepspeed_profile(wrapper, batch, no_grad=False)  # R1 needs autograd inside the forward
  composed = 0
  for name, calls in tr.forward_calls.items():
    m = spec.module(name)
    fn = (lambda *a, m=m: m.torch.call(nets, a)) if m.torch.call is not None else None
    composed += calls * tp.deepspeed_profile(m.torch.module(nets), m.torch.inputs(2, "meta"), fn=fn).flops
  assert whole.flops == composed


def test_dagan_train_iteration_identities(dagan_tiny):
  spec, nets = dagan_tiny
  tr = spec.train
  traced = jax.jit(tr.fn).trace(tr.state, tr.batch(2))
  count = analytic.count_jaxpr(traced.jaxpr)
  assert xla.category_costs(traced.jaxpr, only_conv_dot=True).conv_dot_flops == 2 * count.padx
  official, matched = {}, {}
  for store, flag in ((official, False), (matched, True)):
    with analytic.TorchMacCounter() as tc, tp.flop_counter_mode() as fc:
      tr.torch_iteration(nets, tr.torch_inputs(2, "meta"), matched=flag)
    assert fc.get_total_flops() == 2 * tc.naive
    store["naive"] = tc.naive
  assert official["naive"] > matched["naive"]  # the official G+KP backward also computes D weight gradients
  # DeepSpeed around one iteration = Σ calls × module readings, except the loss code's own torch.matmul calls
  # (equivariance transform), which only the whole-iteration reading sees.
  whole = tp.deepspeed_profile(tr.torch_wrapper(nets), tr.torch_inputs(2, "meta"), no_grad=False)
  composed = {}
  for name, calls in tr.forward_calls.items():
    m = spec.module(name)
    fn = (lambda *a, m=m: m.torch.call(nets, a)) if m.torch.call is not None else None
    for k, v in tp.deepspeed_profile(m.torch.module(nets), m.torch.inputs(2, "meta"), fn=fn).by_function.items():
      composed[k] = composed.get(k, 0) + calls * v
  differing = {k for k in set(whole.by_function) | set(composed)
               if whole.by_function.get(k, 0) != composed.get(k, 0)}
  assert differing == {"matmul"}


def test_deepspeed_engine_profile_of_a_dagan_iteration(dagan_tiny):
  """The engine's 'fwd flops per GPU' after one step = a fresh reading of the iteration's forward, minus only the
  functionals called directly in the top module's forward (the engine's hooks start inside that module)."""
  spec, _ = dagan_tiny
  tr = spec.train
  torch.manual_seed(0)
  nets = tr.torch_build("cpu")
  batch = tr.torch_inputs(1, "cpu")
  wrapper = tr.torch_wrapper(nets)
  fresh = tp.deepspeed_profile(wrapper, batch, no_grad=False)
  eng = tp.deepspeed_engine_profile(wrapper, lambda step: batch, micro_batch=1, steps=2)
  assert eng["fwd_flops_exact"] == fresh.flops - fresh.root_flops
  assert 0 < fresh.root_flops < 1e-3 * fresh.flops  # loss-code matmuls only
  assert eng["fwd_flops_per_gpu"] == pytest.approx(eng["fwd_flops_exact"], rel=5e-3)  # printout rounding

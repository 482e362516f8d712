"""XLA cost analysis helpers: lowered vs compiled, per-device under a mesh, per-equation costs and categories."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.complexity import analytic, latency, xla

DN = ("NHWC", "HWIO", "NHWC")


def _net(w1, w2, x):
  h = jax.lax.conv_general_dilated(x, w1, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN)
  h = jax.nn.relu(h)
  h = jax.lax.conv_general_dilated(h, w2, (2, 2), ((1, 1), (1, 1)), dimension_numbers=DN)
  return jnp.mean(h, axis=(1, 2)) @ jnp.ones((h.shape[-1], 3))


ARGS = (jax.ShapeDtypeStruct((3, 3, 4, 8), jnp.float32), jax.ShapeDtypeStruct((4, 4, 8, 8), jnp.float32),
        jax.ShapeDtypeStruct((8, 12, 12, 4), jnp.float32))


def test_lowered_and_compiled_costs_and_memory():
  c = xla.xla_costs(_net, *ARGS, compile=True)
  assert c.lowered["flops"] > 0 and c.compiled["flops"] > 0
  assert set(c.memory) >= {"argument_size_in_bytes", "temp_size_in_bytes", "peak_bytes"}
  assert c.memory["argument_size_in_bytes"] == 4 * (9 * 32 + 16 * 64 + 8 * 144 * 4)
  traced = jax.jit(_net).trace(*ARGS)
  assert xla.xla_costs(traced, compile=False).lowered == c.lowered


@pytest.mark.parametrize("grad", [False, True])
def test_xla_conv_dot_flops_are_twice_padding_excluded_macs(grad):
  """Strided/padded convs and their transposes (lhs-dilated, weight-gradient convs) included."""
  fn = jax.grad(lambda *a: jnp.sum(_net(*a)), argnums=(0, 1, 2)) if grad else _net
  closed = jax.make_jaxpr(fn)(*ARGS)
  cc = xla.category_costs(closed, only_conv_dot=True)
  count = analytic.count_jaxpr(closed)
  assert cc.conv_dot_flops == 2 * count.padx == 2 * cc.conv_dot_padx_macs
  assert count.naive > count.padx


def test_per_equation_sum_matches_whole_module_lowering():
  closed = jax.make_jaxpr(_net)(*ARGS)
  cc = xla.category_costs(closed)
  whole = xla.xla_costs(_net, *ARGS, compile=False).lowered["flops"]
  assert cc.flops == pytest.approx(whole, rel=1e-3)
  assert cc.by_category["conv_matmul"]["flops"] == cc.conv_dot_flops
  assert cc.by_category["activations"]["flops"] > 0
  assert not cc.failed


def test_data_parallel_costs_split_flops_across_devices():
  if jax.device_count() < 4:
    pytest.skip("needs 4 (fake) devices: XLA_FLAGS=--xla_force_host_platform_device_count=4")
  per = {n: xla.data_parallel_costs(_net, ARGS, (2,), n) for n in (1, 2, 4)}
  assert per[1].lowered["flops"] == per[4].lowered["flops"]  # lowered is global
  for n in (2, 4):
    assert per[n].compiled["flops"] == pytest.approx(per[1].compiled["flops"] / n, rel=0.02)
  with pytest.raises(ValueError, match="not divisible"):
    xla.data_parallel_costs(_net, (ARGS[0], ARGS[1], jax.ShapeDtypeStruct((6, 12, 12, 4), jnp.float32)), (2,), 4)


def test_time_jax_reports_spread_and_device():
  f = jax.jit(lambda x: jnp.tanh(x) @ x.T)
  x = jnp.ones((64, 64))
  lat = latency.time_jax(f, x, repeats=4, warmup=1)
  assert lat.repeats == 4 and lat.min_ms <= lat.median_ms <= lat.max_ms
  assert "cpu" in lat.device
  d = lat.as_dict()
  assert d["iqr_ms"] >= 0
  slow = latency.time_jax(f, x, repeats=50, warmup=0, budget_s=0.0)
  assert slow.repeats == 2  # the budget stops after the second timed call


def test_vjp_timer_runs_the_backward_alone():
  f = lambda w, x: jnp.sum(jnp.tanh(x @ w))  # noqa: E731
  w, x = jnp.ones((8, 8)), jnp.ones((4, 8))
  _, bwd, args = latency.jax_vjp_timer(f, (w, x), (0,))
  (gw,) = bwd(*args)
  np.testing.assert_allclose(gw, jax.grad(f)(w, x), rtol=1e-6)


def test_time_torch():
  torch = pytest.importorskip("torch")
  a = torch.ones(32, 32)
  lat = latency.time_torch(lambda: a @ a, "cpu", repeats=3)
  assert lat.repeats == 3 and lat.device.startswith("cpu")

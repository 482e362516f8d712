"""Analytic MAC counts: hand counts, jaxpr traversal (jit, custom_jvp/vjp, scan, cond, remat), categories."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.complexity import analytic
from jaxreenact.layers import conv as conv_lib
from jaxreenact.layers import norm, resample

DN = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, stride=1, pad=1, dil=1, lhs_dil=1, groups=1):
  return jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)), lhs_dilation=(lhs_dil,) * 2,
                                      rhs_dilation=(dil, dil), dimension_numbers=DN, feature_group_count=groups)


def _brute_valid_taps(in_size, k, out_size, stride, pad, lhs_dil, rhs_dil):
  n = 0
  for o, t in itertools.product(range(out_size), range(k)):
    u = o * stride - pad + t * rhs_dil
    if u >= 0 and u % lhs_dil == 0 and u // lhs_dil < in_size:
      n += 1
  return n


@pytest.mark.parametrize("in_size,k,stride,pad,lhs_dil,rhs_dil", [
    (16, 3, 1, 1, 1, 1), (15, 3, 2, 1, 1, 1), (16, 4, 1, 0, 1, 1), (16, 7, 1, 3, 1, 1), (9, 3, 1, 2, 1, 2),
    (8, 3, 1, 1, 2, 1), (7, 4, 1, 2, 3, 1), (1, 4, 1, 3, 1, 1)])
def test_valid_taps_matches_brute_force(in_size, k, stride, pad, lhs_dil, rhs_dil):
  span = (in_size - 1) * lhs_dil + 1 + 2 * pad
  out = (span - ((k - 1) * rhs_dil + 1)) // stride + 1
  assert analytic.valid_taps(in_size, k, out, stride, pad, lhs_dil, rhs_dil) == _brute_valid_taps(
      in_size, k, out, stride, pad, lhs_dil, rhs_dil)


def test_conv3x3_hand_count():
  """3×3/s1/p1 over H×W: naive = N·Cin·Cout·9·H·W; padx = N·Cin·Cout·(3H−2)(3W−2) (docs/facts.md §3)."""
  n, h, w, cin, cout = 2, 10, 12, 3, 5
  c = analytic.count_fn(_conv, jax.ShapeDtypeStruct((n, h, w, cin), jnp.float32),
                        jax.ShapeDtypeStruct((3, 3, cin, cout), jnp.float32))
  assert c.naive == n * cin * cout * 9 * h * w
  assert c.padx == n * cin * cout * (3 * h - 2) * (3 * w - 2)


def test_strided_valid_and_depthwise_counts():
  x = jax.ShapeDtypeStruct((1, 8, 8, 4), jnp.float32)
  c = analytic.count_fn(lambda x, w: _conv(x, w, stride=2, pad=0), x, jax.ShapeDtypeStruct((4, 4, 4, 6), jnp.float32))
  assert c.naive == c.padx == 1 * 6 * 3 * 3 * 4 * 16  # no padding: both conventions agree
  c = analytic.count_fn(lambda x, w: _conv(x, w, groups=4), x, jax.ShapeDtypeStruct((3, 3, 1, 4), jnp.float32))
  assert c.naive == 4 * 64 * 9  # one input channel per group
  assert c.padx == 4 * (3 * 8 - 2) ** 2


def test_dot_general_counts():
  a = jax.ShapeDtypeStruct((3, 5, 7), jnp.float32)
  b = jax.ShapeDtypeStruct((3, 7, 2), jnp.float32)
  c = analytic.count_fn(lambda a, b: jnp.einsum("bij,bjk->bik", a, b), a, b)
  assert c.naive == c.padx == 3 * 5 * 7 * 2
  assert analytic.dot_macs((4, 6), (6, 9), (((1,), (0,)), ((), ()))) == 4 * 6 * 9


def test_nested_calls_scan_and_cond():
  w = jnp.ones((4, 4))

  @jax.jit
  def inner(x):
    return x @ w  # 2·4·4 MACs for x (2, 4)

  @jax.custom_jvp
  def cj(x):
    return inner(x)

  cj.defjvp(lambda p, t: (cj(p[0]), t[0]))

  @jax.custom_vjp
  def cv(x):
    return inner(x)

  cv.defvjp(lambda x: (cv(x), None), lambda _, g: (g,))

  def body(carry, _):
    return inner(carry), None

  def f(x):
    y = cj(x) + cv(x) + jax.checkpoint(inner)(x)
    y, _ = jax.lax.scan(body, y, None, length=5)
    return jax.lax.cond(x.sum() > 0, lambda v: inner(inner(v)), lambda v: v, y)

  c = analytic.count_fn(f, jax.ShapeDtypeStruct((2, 4), jnp.float32))
  assert c.naive == 32 * (3 + 5 + 2)  # three calls, scan body × 5, costliest cond branch (2)
  assert any("cond" in n for n in c.notes)


def test_dead_code_is_not_counted():
  def f(x, w):
    _ = x @ w  # unused
    return x + 1

  c = analytic.count_fn(f, jax.ShapeDtypeStruct((2, 3), jnp.float32), jax.ShapeDtypeStruct((3, 3), jnp.float32))
  assert c.naive == 0


def _categories(fn, *args):
  closed = analytic.dce(jax.make_jaxpr(fn)(*args))
  out = {}
  for eqn, _, _, ctx in analytic.iter_eqns(closed.jaxpr):
    out.setdefault(analytic.categorize(eqn, ctx), set()).add(eqn.primitive.name)
  return out


def test_categories_from_call_sites():
  x = jnp.ones((1, 8, 8, 4))
  layer = conv_lib.Conv2d(4, 3, padding=1)
  v = layer.init(jax.random.key(0), x)

  def f(x):
    y = layer.apply(v, x)  # conv + bias
    y = norm.instance_norm(y, 1e-5)
    y = jax.nn.leaky_relu(y, 0.2)
    y = resample.avg_pool(y, 2)
    y = jax.nn.softmax(y, axis=-1)
    return y * 2.0

  cats = _categories(f, x)
  assert cats["conv_matmul"] == {"conv_general_dilated"}
  assert "add" in cats["bias"]
  assert "rsqrt" in cats["normalisation"]
  assert cats.keys() >= {"activations", "resampling", "softmax", "elementwise"}
  assert "exp" in cats["softmax"]


def test_torch_counter_matches_flop_counter_mode_forward_and_backward():
  torch = pytest.importorskip("torch")
  from torch import nn

  from jaxreenact.complexity.torch_profile import flop_counter_mode

  model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 4, stride=2, padding=1),
                        nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
                        nn.Flatten(), nn.Linear(4 * 16 * 16, 10))
  x = torch.randn(2, 3, 16, 16, requires_grad=True)
  with analytic.TorchMacCounter(model) as tc, flop_counter_mode() as fc:
    out = model(x)
  assert fc.get_total_flops() == 2 * tc.naive
  with analytic.TorchMacCounter() as tb, flop_counter_mode() as fb:
    out.sum().backward()
  assert fb.get_total_flops() == 2 * tb.naive
  assert all(r[4] for r in tb.records)  # every backward record is flagged as backward
  a, b = torch.randn(4, 5, 6), torch.randn(4, 6, 7)
  with analytic.TorchMacCounter() as tm:
    torch.bmm(a, b)
  assert tm.naive == 4 * 5 * 6 * 7


def test_torch_and_jax_padding_excluded_counts_agree():
  torch = pytest.importorskip("torch")
  from torch import nn

  tconv = nn.Conv2d(3, 6, 5, stride=2, padding=2)
  with analytic.TorchMacCounter(tconv) as tc, torch.no_grad():
    tconv(torch.zeros(2, 3, 17, 17))
  c = analytic.count_fn(lambda x, w: _conv(x, w, stride=2, pad=2), jax.ShapeDtypeStruct((2, 17, 17, 3), jnp.float32),
                        jax.ShapeDtypeStruct((5, 5, 3, 6), jnp.float32))
  assert (tc.naive, tc.padx) == (c.naive, c.padx)
  assert c.padx < c.naive


def test_by_path_groups_flax_module_names():
  import flax.linen as nn

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      return conv_lib.Conv2d(4, 3, padding=1, name="b")(conv_lib.Conv2d(4, 3, padding=1, name="a")(x))

  x = jnp.ones((1, 6, 6, 2))
  v = Net().init(jax.random.key(0), x)
  c = analytic.count_fn(lambda v, x: Net().apply(v, x), v, x)
  paths = c.by_path(2)
  assert set(paths) == {"Net/a", "Net/b"}
  assert sum(n for n, _ in paths.values()) == c.naive
  assert np.isclose(paths["Net/a"][0], 1 * 6 * 6 * 4 * 2 * 9)

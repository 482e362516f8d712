"""Torch-faithful layers vs torch.nn.functional on random inputs."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
import chex

from jaxreenact.layers import conv, filters, norm, resample
from jaxreenact.testing import nchw_to_nhwc, nhwc_to_nchw

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _rand(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("k,stride,pad,groups,bias", [(3, 1, 1, 1, True), (3, 2, 1, 1, True), (4, 1, 0, 1, True),
                                                      (1, 1, 0, 1, False), (7, 1, 3, 1, True), (3, 1, 1, 4, True),
                                                      (4, 2, ((1, 2), (2, 1)), 1, True)])
def test_conv2d_matches_torch(k, stride, pad, groups, bias):
  x = _rand((2, 8, 11, 12))
  layer = conv.Conv2d(features=8, kernel_size=k, stride=stride, padding=pad, groups=groups, use_bias=bias)
  params = layer.init(jax.random.key(0), jnp.asarray(x))
  params = jax.tree.map(lambda p: p + 0.1, params)  # non-trivial bias
  y = layer.apply(params, jnp.asarray(x))
  w = torch.from_numpy(np.asarray(params["params"]["kernel"]).transpose(3, 2, 0, 1).copy())
  b = torch.from_numpy(np.array(params["params"]["bias"])) if bias else None
  xt = torch.from_numpy(nhwc_to_nchw(x))
  if isinstance(pad, int):
    ref = F.conv2d(xt, w, b, stride=stride, padding=pad, groups=groups)
  else:
    (t, bo), (l, r) = pad
    ref = F.conv2d(F.pad(xt, (l, r, t, bo)), w, b, stride=stride, groups=groups)
  np.testing.assert_allclose(np.asarray(y), nchw_to_nhwc(ref), atol=1e-5)


def test_conv2d_reflect_padding():
  x = _rand((1, 6, 7, 3))
  layer = conv.Conv2d(features=4, kernel_size=3, padding=1, padding_mode="reflect")
  params = layer.init(jax.random.key(1), jnp.asarray(x))
  y = layer.apply(params, jnp.asarray(x))
  tl = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
  with torch.no_grad():
    tl.weight.copy_(torch.from_numpy(np.asarray(params["params"]["kernel"]).transpose(3, 2, 0, 1).copy()))
    tl.bias.copy_(torch.from_numpy(np.array(params["params"]["bias"])))
    ref = tl(torch.from_numpy(nhwc_to_nchw(x)))
  np.testing.assert_allclose(np.asarray(y), nchw_to_nhwc(ref), atol=1e-5)


def test_linear_matches_torch_and_default_init_bounds():
  x = _rand((3, 17))
  layer = conv.Linear(5)
  params = layer.init(jax.random.key(0), jnp.asarray(x))
  kernel = np.asarray(params["params"]["kernel"])
  assert np.abs(kernel).max() <= 1 / np.sqrt(17) and np.abs(kernel).max() > 0.5 / np.sqrt(17)
  y = layer.apply(params, jnp.asarray(x))
  ref = F.linear(torch.from_numpy(x), torch.from_numpy(kernel.T.copy()), torch.from_numpy(np.array(params["params"]["bias"])))
  np.testing.assert_allclose(np.asarray(y), ref.numpy(), atol=1e-6)


def test_kaiming_normal_std():
  w = conv.kaiming_normal_fan_in(jax.random.key(0), (3, 3, 64, 256))
  np.testing.assert_allclose(float(jnp.std(w)), np.sqrt(2 / (9 * 64)), rtol=0.02)


@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm_matches_torch(affine):
  x = _rand((2, 9, 7, 6)) * 3 + 5  # large mean: a one-pass variance would lose precision
  layer = norm.InstanceNorm2d(affine=affine)
  params = layer.init(jax.random.key(0), jnp.asarray(x))
  tl = torch.nn.InstanceNorm2d(6, affine=affine)
  if affine:
    rng = np.random.default_rng(3)
    scale, bias = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    params = {"params": {"scale": jnp.asarray(scale), "bias": jnp.asarray(bias)}}
    with torch.no_grad():
      tl.weight.copy_(torch.from_numpy(scale))
      tl.bias.copy_(torch.from_numpy(bias))
  y = layer.apply(params, jnp.asarray(x))
  ref = tl(torch.from_numpy(nhwc_to_nchw(x)))
  np.testing.assert_allclose(np.asarray(y), nchw_to_nhwc(ref), atol=2e-5)


def test_adain_matches_formula():
  x, s = _rand((2, 5, 5, 4)), _rand((2, 7), 1)
  layer = norm.AdaIN(num_features=4)
  params = layer.init(jax.random.key(0), jnp.asarray(x), jnp.asarray(s))
  y = layer.apply(params, jnp.asarray(x), jnp.asarray(s))
  w, b = np.asarray(params["params"]["fc"]["kernel"]), np.asarray(params["params"]["fc"]["bias"])
  h = torch.from_numpy(s) @ torch.from_numpy(w) + torch.from_numpy(b)
  gamma, beta = torch.chunk(h.view(2, 8, 1, 1), 2, dim=1)
  ref = (1 + gamma) * F.instance_norm(torch.from_numpy(nhwc_to_nchw(x)), eps=1e-5) + beta
  chex.assert_shape(y, x.shape)
  np.testing.assert_allclose(np.asarray(y), nchw_to_nhwc(ref), atol=2e-5)


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 9, 7, 2)])
def test_avg_pool_matches_torch(shape):
  x = _rand(shape)
  ref = F.avg_pool2d(torch.from_numpy(nhwc_to_nchw(x)), 2)
  np.testing.assert_allclose(np.asarray(resample.avg_pool(jnp.asarray(x))), nchw_to_nhwc(ref), atol=1e-6)


def test_nearest_matches_torch():
  x = _rand((2, 4, 5, 3))
  ref = F.interpolate(torch.from_numpy(nhwc_to_nchw(x)), scale_factor=2, mode="nearest")
  np.testing.assert_array_equal(np.asarray(resample.upsample_nearest(jnp.asarray(x))), nchw_to_nhwc(ref))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(32, 32), (7, 13), (3, 2), (64, 20)])
def test_bilinear_matches_torch(size, align_corners):
  x = _rand((2, 16, 10, 3))
  ref = F.interpolate(torch.from_numpy(nhwc_to_nchw(x)), size=size, mode="bilinear", align_corners=align_corners)
  y = resample.resize_bilinear(jnp.asarray(x), size, align_corners=align_corners)
  np.testing.assert_allclose(np.asarray(y), nchw_to_nhwc(ref), atol=1e-5)


def test_bilinear_scale_factor_matches_torch():
  x = _rand((1, 64, 64, 1))
  ref = F.interpolate(torch.from_numpy(nhwc_to_nchw(x)), scale_factor=4, mode="bilinear", align_corners=True)
  y = resample.resize_bilinear(jnp.asarray(x), (256, 256), align_corners=True, scale_factor=4)
  np.testing.assert_allclose(np.asarray(y), nchw_to_nhwc(ref), atol=1e-5)


def test_high_pass_matches_torch():
  x = _rand((2, 8, 8, 5))
  k = torch.tensor(filters.HIGH_PASS_KERNEL) / 1.0
  ref = F.conv2d(torch.from_numpy(nhwc_to_nchw(x)), k.unsqueeze(0).unsqueeze(1).repeat(5, 1, 1, 1), padding=1, groups=5)
  np.testing.assert_allclose(np.asarray(filters.high_pass(jnp.asarray(x), 1.0)), nchw_to_nhwc(ref), atol=1e-5)
  np.testing.assert_allclose(np.asarray(filters.high_pass(jnp.asarray(x), 2.0)), nchw_to_nhwc(ref) / 2, atol=1e-5)


@pytest.mark.parametrize("kernel,stride,padding,dilation,hw", [
    (3, 1, 1, 1, 2), (3, 1, 1, 1, 4), (4, 1, 0, 1, 4), (3, 2, 1, 1, 8), (1, 1, 0, 1, 3), (3, 1, 2, 2, 4),
    (7, 1, 3, 1, 3), (3, 2, ((0, 1), (1, 0)), 1, 7)])
def test_small_convolutions_as_matmul_equal_conv(kernel, stride, padding, dilation, hw):
  """CPU fast path for tiny outputs (patches × kernel) == conv_general_dilated; a threshold of 0 turns it off."""
  from jaxreenact.layers import conv as conv_lib
  layer = conv_lib.Conv2d(6, kernel, stride=stride, padding=padding, dilation=dilation)
  x = jax.random.normal(jax.random.key(0), (2, hw, hw, 5))
  v = layer.init(jax.random.key(1), x)
  plain = layer.apply(v, x)

  def prims(fn):
    return {e.primitive.name for e in jax.make_jaxpr(fn)(x).eqns}

  with conv_lib.small_convs_as_matmul(conv_lib.DEFAULT_SMALL_CONV_PIXELS):
    fast = layer.apply(v, x)
    assert "conv_general_dilated" not in prims(lambda x: layer.apply(v, x))
    with conv_lib.small_convs_as_matmul(0):
      assert "conv_general_dilated" in prims(lambda x: layer.apply(v, x))
  assert "conv_general_dilated" in prims(lambda x: layer.apply(v, x))  # off outside the context
  assert fast.shape == plain.shape
  np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-5)
  g_fast = jax.grad(lambda v: jnp.sum(conv_lib.traced_with_small_convs(layer.apply, 16)(v, x) ** 2))(v)
  g_plain = jax.grad(lambda v: jnp.sum(layer.apply(v, x) ** 2))(v)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), g_fast, g_plain)


def test_large_outputs_keep_the_convolution():
  from jaxreenact.layers import conv as conv_lib
  layer = conv_lib.Conv2d(4, 3, padding=1)
  x = jnp.zeros((1, 8, 8, 3))  # 64 output pixels > DEFAULT_SMALL_CONV_PIXELS
  v = layer.init(jax.random.key(1), x)
  with conv_lib.small_convs_as_matmul(conv_lib.DEFAULT_SMALL_CONV_PIXELS):
    assert "conv_general_dilated" in {e.primitive.name for e in jax.make_jaxpr(lambda x: layer.apply(v, x))(x).eqns}

"""SpectralNormConv2d vs torch.nn.utils.spectral_norm(nn.Conv2d): eval, train steps, gradients."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from jaxreenact.layers.spectral_norm import SPECTRAL, SpectralNormConv2d
from jaxreenact.testing import nchw_to_nhwc, nhwc_to_nchw

torch = pytest.importorskip("torch")


def _pair(cin=3, cout=6, k=3, stride=1, pad=1, seed=0):
  torch.manual_seed(seed)
  tm = torch.nn.utils.spectral_norm(torch.nn.Conv2d(cin, cout, k, stride=stride, padding=pad))
  m = SpectralNormConv2d(cout, k, stride=stride, padding=pad)
  x = np.random.default_rng(seed).standard_normal((2, 7, 6, cin)).astype(np.float32)
  init = m.init(jax.random.key(0), jnp.asarray(x))
  assert init[SPECTRAL]["weight_u"].shape == (cout,) and init[SPECTRAL]["weight_v"].shape == (cin * k * k,)
  np.testing.assert_allclose(np.linalg.norm(init[SPECTRAL]["weight_u"]), 1.0, rtol=1e-6)
  sd = tm.state_dict()
  assert set(sd) == {"weight_orig", "weight_u", "weight_v", "bias"}
  variables = {
      "params": {"kernel": jnp.asarray(sd["weight_orig"].numpy().transpose(2, 3, 1, 0)),
                 "bias": jnp.asarray(sd["bias"].numpy())},
      SPECTRAL: {"weight_u": jnp.asarray(sd["weight_u"].numpy()), "weight_v": jnp.asarray(sd["weight_v"].numpy())},
  }
  return tm, m, variables, x


@pytest.mark.parametrize("k,stride,pad", [(3, 1, 1), (4, 2, 0)])
def test_eval_uses_stored_vectors(k, stride, pad):
  tm, m, variables, x = _pair(k=k, stride=stride, pad=pad)
  # Perturb u, v away from the power-iteration fixed point so a hidden iteration would show.
  g = torch.Generator().manual_seed(5)
  with torch.no_grad():
    tm.weight_u.copy_(torch.nn.functional.normalize(torch.randn(tm.weight_u.shape, generator=g), dim=0))
    tm.weight_v.copy_(torch.nn.functional.normalize(torch.randn(tm.weight_v.shape, generator=g), dim=0))
  variables[SPECTRAL] = {"weight_u": jnp.asarray(tm.weight_u.numpy()), "weight_v": jnp.asarray(tm.weight_v.numpy())}
  tm.eval()
  with torch.no_grad():
    ref = nchw_to_nhwc(tm(torch.tensor(nhwc_to_nchw(x))))
  u_before = tm.weight_u.clone()
  y = m.apply(variables, jnp.asarray(x))
  # random u, v make sigma small and outputs large (~30): compare relatively too
  np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-5)
  assert torch.equal(u_before, tm.weight_u)  # torch eval did not iterate either


def test_train_steps_update_vectors_and_gradients():
  tm, m, variables, x = _pair(cin=4, cout=5)
  tm.train()
  cot = np.random.default_rng(2).standard_normal((2, 7, 6, 5)).astype(np.float32)
  for step in range(2):
    tm.zero_grad()
    xt = torch.tensor(nhwc_to_nchw(x))
    ref = tm(xt)
    (ref * torch.tensor(nhwc_to_nchw(cot))).sum().backward()

    def loss(params, v):
      y, upd = m.apply({**v, "params": params}, jnp.asarray(x), train=True, mutable=[SPECTRAL])
      return jnp.sum(y * cot), (y, upd)

    (_, (y, upd)), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"], variables)
    np.testing.assert_allclose(np.asarray(y), nchw_to_nhwc(ref.detach()), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(upd[SPECTRAL]["weight_u"]), tm.weight_u.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(upd[SPECTRAL]["weight_v"]), tm.weight_v.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(grads["kernel"]), tm.weight_orig.grad.numpy().transpose(2, 3, 1, 0),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads["bias"]), tm.bias.grad.numpy(), rtol=1e-5, atol=1e-5)
    variables = {**variables, **upd}
  # Train without permission to write keeps the stored vectors.
  y2 = m.apply(variables, jnp.asarray(x), train=True, update_stats=False)
  assert y2.shape == (2, 7, 6, 5)
  _, upd = m.apply(variables, jnp.asarray(x), train=True, update_stats=False, mutable=[SPECTRAL])
  np.testing.assert_array_equal(np.asarray(upd[SPECTRAL]["weight_u"]), np.asarray(variables[SPECTRAL]["weight_u"]))

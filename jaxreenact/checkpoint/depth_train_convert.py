"""Face-Depth-Network training weights (monodepth2's four files) <-> the depth-training variables, and the
torchvision ImageNet ResNet that initialises both encoders (``--weights_init pretrained``).

The four official files ``encoder.pth``, ``depth.pth``, ``pose_encoder.pth``, ``pose.pth`` are the children
``encoder``/``decoder`` of the Flax ``DepthNet`` and ``pose_encoder``/``pose`` of the Flax ``PoseNet``
(``jaxreenact.train.depth``: variables ``{'depth': {'params', 'batch_stats'}, 'pose': {...}}``). Naming follows
``jaxreenact.checkpoint.naming``; expected shapes are given by the caller (``jaxreenact.train.depth.variable_shapes``),
so this module needs no training code.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.checkpoint.depth_convert import ENCODER_EXTRAS
from jaxreenact.checkpoint.naming import convert_from_torch, convert_to_torch, to_numpy

NETWORKS = ("encoder", "depth", "pose_encoder", "pose")  # official model names / weight files
# Flax network -> (official file, Flax child module) pairs
FILES = (("depth", (("encoder", "encoder"), ("depth", "decoder"))),
         ("pose", (("pose_encoder", "pose_encoder"), ("pose", "pose"))))


def _child(tree: Mapping[str, Any], child: str) -> dict[str, Any]:
  return {c: tree[c][child] for c in ("params", "batch_stats") if child in tree.get(c, {})}


def variables_from_torch(state_dicts: Mapping[str, Mapping[str, Any]], expected: Mapping[str, Any]) -> dict[str, Any]:
  """The four official state dicts {encoder, depth, pose_encoder, pose} -> {'depth': vars, 'pose': vars}.

  Args:
    state_dicts: official file name (:data:`NETWORKS`) -> state dict (tensors or arrays).
    expected: the variables to fill or their shapes, ``{'depth': {'params', 'batch_stats'}, 'pose': {...}}``
      (``jaxreenact.train.depth.variable_shapes(cfg)``).
  Returns:
    {'depth': {'params', 'batch_stats'}, 'pose': {...}} of float32 jnp arrays.
  Raises:
    ValueError when a state dict is missing; ``ConversionError`` (a ValueError) naming the file, key, expected and
    found shapes. Non-tensor entries monodepth2 saves in encoder.pth (height, width, use_stereo) are ignored.
  """
  missing = [n for n in NETWORKS if n not in state_dicts]
  if missing:
    raise ValueError(f"variables_from_torch: missing state dicts {missing}; expected {list(NETWORKS)}")
  out = {}
  for flax_net, pairs in FILES:
    merged: dict[str, dict] = {"params": {}, "batch_stats": {}}
    for file_name, child in pairs:
      sd = {k: v for k, v in state_dicts[file_name].items() if k not in ENCODER_EXTRAS}
      conv = convert_from_torch(sd, _child(expected[flax_net], child), source=f"{file_name}.pth")
      for col, tree in conv.items():
        merged[col][child] = jax.tree.map(jnp.asarray, tree)
    out[flax_net] = {c: v for c, v in merged.items() if v}
  return out


def variables_to_torch(variables: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
  """{'depth': vars, 'pose': vars} -> the four official state dicts as numpy arrays (no num_batches_tracked)."""
  out = {}
  for flax_net, pairs in FILES:
    v = variables[flax_net]
    for file_name, child in pairs:
      out[file_name] = convert_to_torch(_child(v, child))
  return out


def encoders_from_torchvision(variables: Mapping[str, Any], state_dict: Mapping[str, Any],
                              source: str = "torchvision resnet") -> dict[str, Any]:
  """Official ``--weights_init pretrained``: ImageNet ResNet weights into both encoders (nothing is downloaded).

  Args:
    variables: {'depth': {'params', 'batch_stats'}, 'pose': {...}}; the decoders' entries are kept as they are.
    state_dict: a torchvision ``resnet{18,50}`` state dict (keys ``conv1.weight``, ``layer1.0.bn1.*``, ``fc.*``)
      that the user supplies. The pose encoder's 6-channel conv1 gets the weights repeated twice and halved
      (monodepth2 ``resnet_multiimage_input``).
    source: what to name in errors (the file).
  Returns:
    the same structure with the ``encoder`` (depth) and ``pose_encoder`` (pose) children replaced.
  """
  sd = {f"encoder.{k}": v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
  variables = {n: {"params": variables[n]["params"], "batch_stats": variables[n]["batch_stats"]}
               for n in ("depth", "pose")}
  for net, child in (("depth", "encoder"), ("pose", "pose_encoder")):
    want = {c: variables[net][c][child] for c in ("params", "batch_stats")}
    this = dict(sd)
    if net == "pose":
      w = to_numpy(this["encoder.conv1.weight"])
      this["encoder.conv1.weight"] = np.concatenate([w, w], axis=1) / 2  # torch.cat([w] * 2, 1) / 2
    conv = convert_from_torch(this, jax.eval_shape(lambda: want), source=f"{source} -> {net}/{child}")
    for col, tree in conv.items():
      variables[net][col] = {**variables[net][col], child: jax.tree.map(jnp.asarray, tree)}
  return variables

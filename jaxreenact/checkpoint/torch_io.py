"""The one place PyTorch files are read: ``torch.load(weights_only=True)`` with an error naming the file.

An untrusted file never runs code (weights_only), and a file that is not a checkpoint (text, truncated, a pickle
with disallowed globals) ends in one :class:`ConversionError` naming the file and what was expected — never
torch's own advice to retry with ``weights_only=False``, which would run arbitrary code from the file.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from jaxreenact.checkpoint.naming import ConversionError


def _reason(e: Exception) -> str:
  text = " ".join(str(e).split())
  # torch's UnpicklingError message goes on to recommend weights_only=False: keep only what went wrong
  for cut in ("Weights only load failed", "(1) In PyTorch", "In PyTorch 2.6", "Please file an issue",
              "WeightsUnpickler error:"):
    if cut in text and not text.startswith(cut):
      text = text[:text.index(cut)]
  if "weights_only=False" in text:
    text = "the file holds objects other than tensors and plain containers"
  return f"{type(e).__name__}: {text.strip()[:200]}"


def load(path: str | os.PathLike, what: str = "a PyTorch checkpoint", *, mapping: bool = True) -> Any:
  """``torch.load(path, weights_only=True)`` on CPU.

  Args:
    path: the file.
    what: what the caller expects, for the message (e.g. "the DaGAN checkpoint (.pth.tar)").
    mapping: the top level must be a dict (a state_dict or a dict of them).
  Raises:
    FileNotFoundError: no such file. ConversionError: not readable as ``what``.
  """
  import torch
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file (expected {what})")
  if os.path.getsize(path) == 0:
    raise ConversionError(f"{path}: empty file (expected {what})")
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001 - pickle errors, truncated zips, text files, disallowed globals
    raise ConversionError(f"{path}: not readable as {what} with torch.load(weights_only=True) "
                          f"({_reason(e)})") from None
  if mapping and not isinstance(obj, Mapping):
    raise ConversionError(f"{path}: expected {what} (a dict), found {type(obj).__name__}")
  return obj

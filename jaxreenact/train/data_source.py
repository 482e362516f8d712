"""Where a launch config's training data is: ``config.data_dir``, else the embedded sample data (every runner)."""
from __future__ import annotations

from absl import logging

from jaxreenact.data import sample_data_dir


def data_dir(config, name: str) -> str:
  """``config.data_dir`` when set, else the embedded sample data of ``name`` (``stargan_v2``, ``dagan``, ``depth``)."""
  if config.data_dir:
    return config.data_dir
  path = getattr(sample_data_dir(), name)
  logging.info("no data_dir given: training on the embedded sample data at %s", path)
  return path

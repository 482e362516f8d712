"""Data: TFDS builders (no TensorFlow), grain pipelines, official augmentations, face cropping, sample data.

Training code calls `stargan_v2_pipeline`, `dagan_pipeline`, `depth_pipeline` and, when no dataset is given,
`sample_data_dir()`. Preparation lives behind `python -m launch.prepare_data`. Names are resolved lazily so
that preparing data does not import grain/JAX.
"""
import importlib

_EXPORTS = {
    "ImageDomains": "builders",
    "PrepareError": "builders",
    "PrepareReport": "builders",
    "TalkingHeads": "builders",
    "load_image_domains": "builders",
    "load_talking_heads": "builders",
    "prepare_image_domains": "builders",
    "prepare_talking_heads": "builders",
    "dagan_pipeline": "pipelines",
    "depth_pipeline": "pipelines",
    "stargan_v2_pipeline": "pipelines",
    "video_frames": "pipelines",
    "SampleData": "sample",
    "sample_data_dir": "sample",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(f"jaxreenact.data.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'jaxreenact.data' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + __all__)

"""PyTorch <-> Flax converters for both models (public entry points; see each model's module for details)."""
from jaxreenact.checkpoint import dagan_convert
from jaxreenact.checkpoint.naming import ConversionError
from jaxreenact.checkpoint.stargan_v2_convert import (infer_config as infer_stargan_v2_config,
                                                      load_stargan_v2_checkpoint, stargan_v2_from_torch,
                                                      stargan_v2_to_torch)


def dagan_from_torch(*args, **kwargs):
  return dagan_convert.dagan_from_torch(*args, **kwargs)


def dagan_to_torch(*args, **kwargs):
  return dagan_convert.dagan_to_torch(*args, **kwargs)


def load_dagan_checkpoint(*args, **kwargs):
  return dagan_convert.load_dagan_checkpoint(*args, **kwargs)


__all__ = ["ConversionError", "stargan_v2_from_torch", "stargan_v2_to_torch", "load_stargan_v2_checkpoint",
           "infer_stargan_v2_config", "dagan_from_torch", "dagan_to_torch", "load_dagan_checkpoint"]

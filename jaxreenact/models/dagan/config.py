"""DaGAN model configuration: every knob of the official ``config/vox-adv-256.yaml`` model_params plus run.py flags.

Sections mirror the YAML (``common_params`` fields at top level, then ``kp_detector_params``,
``generator_params`` with its ``dense_motion_params``, ``discriminator_params``) so that
``Config.from_official_yaml`` is a direct read. Override with ``dataclasses.replace`` or :meth:`Config.override`.
:class:`AnimationOptions` holds demo.py's animation flags (reenactment and the reconstruction protocol).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

GENERATORS = ("DepthAwareGenerator", "SPADEDepthAwareGenerator")


@dataclasses.dataclass(frozen=True)
class KPDetectorParams:
  temperature: float = 0.1
  block_expansion: int = 32
  max_features: int = 1024
  scale_factor: float = 0.25
  num_blocks: int = 5
  single_jacobian_map: bool = False  # KPDetector keyword (not in the YAML; official default)
  pad: int = 0  # KPDetector keyword (not in the YAML; official default)


@dataclasses.dataclass(frozen=True)
class DenseMotionParams:
  block_expansion: int = 64
  max_features: int = 1024
  num_blocks: int = 5
  scale_factor: float = 0.25
  kp_variance: float = 0.01  # DenseMotionNetwork keyword (not in the YAML; official default)


@dataclasses.dataclass(frozen=True)
class GeneratorParams:
  block_expansion: int = 64
  max_features: int = 512
  num_down_blocks: int = 2
  num_bottleneck_blocks: int = 6
  estimate_occlusion_map: bool = True
  dense_motion_params: DenseMotionParams | None = dataclasses.field(default_factory=DenseMotionParams)
  # SPADE decoder constants (SPADEGenerator hard-codes cc=4, oc=64, nhidden=128; ic is the bottleneck width).
  spade_compress: int = 4
  spade_out: int = 64
  spade_hidden: int = 128


@dataclasses.dataclass(frozen=True)
class DiscriminatorParams:
  scales: tuple[float, ...] = (1,)
  block_expansion: int = 32
  max_features: int = 512
  num_blocks: int = 4
  sn: bool = False
  use_kp: bool = True
  kp_variance: float = 0.01  # Discriminator keyword (not in the YAML; official default)


@dataclasses.dataclass(frozen=True)
class Config:
  """Architecture of the four DaGAN networks (depth, keypoints, generator, discriminator)."""
  # common_params
  num_kp: int = 15
  num_channels: int = 3  # image channels; the keypoint detector sees num_channels + 1 with rgbd
  estimate_jacobian: bool = True
  kp_detector_params: KPDetectorParams = dataclasses.field(default_factory=KPDetectorParams)
  generator_params: GeneratorParams = dataclasses.field(default_factory=GeneratorParams)
  discriminator_params: DiscriminatorParams = dataclasses.field(default_factory=DiscriminatorParams)
  # run.py flags and the depth network
  generator: str = "DepthAwareGenerator"  # --generator: 'DepthAwareGenerator' | 'SPADEDepthAwareGenerator'
  rgbd: bool = True  # --rgbd: keypoints from RGB + depth
  depth_layers: int = 18  # ResNet depth encoder: 18 (released DaGAN weights) or 50
  depth_widths: tuple[int, ...] | None = None  # ResNet stage widths override (None: torchvision's)

  def __post_init__(self):
    if self.generator not in GENERATORS:
      raise ValueError(f"Config.generator must be one of {GENERATORS}, got {self.generator!r}")
    if self.depth_layers not in (18, 34, 50, 101, 152):
      raise ValueError(f"Config.depth_layers must be a torchvision ResNet depth (18 or 50), got {self.depth_layers!r}")
    if self.num_kp < 1:
      raise ValueError(f"Config.num_kp must be >= 1, got {self.num_kp}")

  @property
  def kp_channels(self) -> int:
    """Input channels of the keypoint detector (run.py sets num_channels=4 under --rgbd)."""
    return self.num_channels + 1 if self.rgbd else self.num_channels

  @classmethod
  def vox256(cls, **overrides: Any) -> "Config":
    """The paper model: vox-adv-256.yaml, ``--kp_num 15 --rgbd --generator DepthAwareGenerator``, ResNet-18 depth."""
    return cls().override(**overrides) if overrides else cls()

  @classmethod
  def tiny(cls, **overrides: Any) -> "Config":
    """A small model for CPU training, CI and the shipped weights (works from 32 px up; 64 px is typical)."""
    cfg = cls(
        num_kp=5,
        depth_widths=(16, 32, 32, 64),
        kp_detector_params=KPDetectorParams(block_expansion=8, max_features=64, num_blocks=3),
        generator_params=GeneratorParams(block_expansion=8, max_features=32, num_bottleneck_blocks=2,
                                         dense_motion_params=DenseMotionParams(block_expansion=8, max_features=64,
                                                                               num_blocks=3),
                                         spade_out=8, spade_hidden=16),
        discriminator_params=DiscriminatorParams(block_expansion=8, max_features=64, num_blocks=3))
    return cfg.override(**overrides) if overrides else cfg

  @classmethod
  def preset(cls, name: str) -> "Config":
    """The named configuration (every consumer resolves names here): one of :data:`PRESETS`."""
    if name not in PRESETS:
      raise ValueError(f"unknown DaGAN preset {name!r}; choose one of {', '.join(PRESETS)}")
    return getattr(cls, name)()

  def override(self, **kwargs: Any) -> "Config":
    """Returns a copy with fields replaced; nested fields by dotted or double-underscore names.

    Example: ``cfg.override(num_kp=10, **{"generator_params.dense_motion_params.block_expansion": 32})``.
    """
    cfg = self
    for key, value in kwargs.items():
      cfg = _replace_path(cfg, key.replace("__", ".").split("."), value, key)
    return cfg

  @classmethod
  def from_official_yaml(cls, path_or_model_params_dict: str | os.PathLike | Mapping[str, Any], kp_num: int = 15,
                         rgbd: bool = True, depth_layers: int = 18, depth_widths: tuple[int, ...] | None = None,
                         generator: str = "DepthAwareGenerator") -> "Config":
    """Reads an official DaGAN YAML (or its ``model_params`` dict, or the whole parsed YAML) plus run.py flags.

    Args:
      path_or_model_params_dict: path to e.g. ``config/vox-adv-256.yaml``, or the parsed mapping.
      kp_num: ``--kp_num`` (the released models use 15; -1 keeps the YAML's num_kp).
      rgbd: ``--rgbd``.
      depth_layers: ResNet depth of the depth encoder (18 for the released weights).
      depth_widths: optional ResNet stage widths.
      generator: ``--generator``.
    """
    if isinstance(path_or_model_params_dict, Mapping):
      data, source = dict(path_or_model_params_dict), "<dict>"
    else:
      import yaml

      source = os.fspath(path_or_model_params_dict)
      with open(source) as f:
        data = yaml.safe_load(f)
      if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a YAML mapping, found {type(data).__name__}")
    mp = data.get("model_params", data)
    for section in ("common_params", "kp_detector_params", "generator_params", "discriminator_params"):
      if section not in mp:
        raise ValueError(f"{source}: model_params has no '{section}' section (found {sorted(mp)})")
    common = dict(mp["common_params"])
    gen = dict(mp["generator_params"])
    dm = gen.pop("dense_motion_params", None)
    disc = dict(mp["discriminator_params"])
    if "scales" in disc:
      disc["scales"] = tuple(disc["scales"])
    num_kp = common.pop("num_kp", 10) if kp_num == -1 else kp_num
    common.pop("num_kp", None)
    try:
      return cls(
          num_kp=num_kp,
          num_channels=common.pop("num_channels", 3),
          estimate_jacobian=common.pop("estimate_jacobian", False),
          kp_detector_params=_build(KPDetectorParams, mp["kp_detector_params"], f"{source}: kp_detector_params"),
          generator_params=_build(
              GeneratorParams,
              dict(gen, dense_motion_params=(None if dm is None else
                                             _build(DenseMotionParams, dm, f"{source}: dense_motion_params"))),
              f"{source}: generator_params"),
          discriminator_params=_build(DiscriminatorParams, disc, f"{source}: discriminator_params"),
          generator=generator, rgbd=rgbd, depth_layers=depth_layers,
          depth_widths=None if depth_widths is None else tuple(depth_widths),
      )._check_unused(common, f"{source}: common_params")
    except TypeError as e:  # pragma: no cover - _build already names unknown keys
      raise ValueError(f"{source}: {e}") from e

  def _check_unused(self, rest: Mapping[str, Any], where: str) -> "Config":
    if rest:
      raise ValueError(f"{where}: unknown keys {sorted(rest)}")
    return self


def _build(kind, values: Mapping[str, Any], where: str):
  names = {f.name for f in dataclasses.fields(kind)}
  unknown = sorted(set(values) - names)
  if unknown:
    raise ValueError(f"{where}: unknown keys {unknown} (expected a subset of {sorted(names)})")
  return kind(**values)


def _replace_path(obj, parts: list[str], value: Any, full: str):
  names = {f.name for f in dataclasses.fields(obj)}
  if parts[0] not in names:
    raise ValueError(f"Config.override: {full!r}: {type(obj).__name__} has no field {parts[0]!r} "
                     f"(fields: {sorted(names)})")
  if len(parts) == 1:
    return dataclasses.replace(obj, **{parts[0]: value})
  child = getattr(obj, parts[0])
  if not dataclasses.is_dataclass(child):
    raise ValueError(f"Config.override: {full!r}: {parts[0]!r} is not a section")
  return dataclasses.replace(obj, **{parts[0]: _replace_path(child, parts[1:], value, full)})


PRESETS = ("vox256", "tiny")


@dataclasses.dataclass(frozen=True)
class AnimationOptions:
  """How a source is animated by a driving video: demo.py's flags (``animate_params.normalization_params`` for the
  keypoint motion). Defined beside the model so the evaluation protocols can ask for reconstruction (absolute
  keypoints) without importing inference; ``jaxreenact.inference.reenact`` uses it as ``Options``."""
  relative: bool = True  # relative keypoint motion and Jacobians (demo --relative)
  adapt_scale: bool = False  # scale motion by sqrt(hull area ratio) (demo --adapt_scale)
  find_best_frame: bool = False  # initial driving frame = the one best aligned with the source (landmarks)
  best_frame: int | None = None  # explicit initial frame (demo --best_frame)
  batch_size: int = 4  # driving frames per jitted call

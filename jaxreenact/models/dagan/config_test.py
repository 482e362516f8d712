"""Config: the paper preset, the official YAML reader and overrides."""
import dataclasses

import pytest

from jaxreenact.models import dagan

# model_params of config/vox-adv-256.yaml in harlanhong/CVPR2022-DaGAN @052ad35 (values, as data).
OFFICIAL_YAML = """
dataset_params:
  frame_shape: [256, 256, 3]
model_params:
  common_params:
    num_kp: 10
    num_channels: 3
    estimate_jacobian: True
  kp_detector_params:
     temperature: 0.1
     block_expansion: 32
     max_features: 1024
     scale_factor: 0.25
     num_blocks: 5
  generator_params:
    block_expansion: 64
    max_features: 512
    num_down_blocks: 2
    num_bottleneck_blocks: 6
    estimate_occlusion_map: True
    dense_motion_params:
      block_expansion: 64
      max_features: 1024
      num_blocks: 5
      scale_factor: 0.25
  discriminator_params:
    scales: [1]
    block_expansion: 32
    max_features: 512
    num_blocks: 4
    use_kp: True
train_params:
  num_epochs: 150
"""


def test_vox256_is_the_paper_model():
  cfg = dagan.Config.vox256()
  assert (cfg.num_kp, cfg.num_channels, cfg.estimate_jacobian, cfg.rgbd, cfg.depth_layers) == (15, 3, True, True, 18)
  assert cfg.kp_channels == 4
  assert cfg.generator == "DepthAwareGenerator"
  kp = cfg.kp_detector_params
  assert (kp.temperature, kp.block_expansion, kp.max_features, kp.scale_factor, kp.num_blocks) == \
      (0.1, 32, 1024, 0.25, 5)
  g = cfg.generator_params
  assert (g.block_expansion, g.max_features, g.num_down_blocks, g.num_bottleneck_blocks) == (64, 512, 2, 6)
  assert g.estimate_occlusion_map and g.dense_motion_params == dagan.DenseMotionParams(64, 1024, 5, 0.25)
  d = cfg.discriminator_params
  assert (d.scales, d.block_expansion, d.max_features, d.num_blocks, d.sn, d.use_kp) == ((1,), 32, 512, 4, False, True)


def test_from_official_yaml_file_equals_vox256(tmp_path):
  path = tmp_path / "vox-adv-256.yaml"
  path.write_text(OFFICIAL_YAML)
  assert dagan.Config.from_official_yaml(path) == dagan.Config.vox256()
  assert dagan.Config.from_official_yaml(str(path), kp_num=10).num_kp == 10
  assert dagan.Config.from_official_yaml(path, kp_num=-1).num_kp == 10  # -1: keep the YAML's value (run.py)
  spade = dagan.Config.from_official_yaml(path, generator="SPADEDepthAwareGenerator", depth_layers=50,
                                          depth_widths=[32, 64, 128, 256], rgbd=False)
  assert spade.generator == "SPADEDepthAwareGenerator" and spade.depth_layers == 50
  assert spade.depth_widths == (32, 64, 128, 256) and spade.kp_channels == 3


def test_from_official_yaml_dict():
  import yaml
  data = yaml.safe_load(OFFICIAL_YAML)
  assert dagan.Config.from_official_yaml(data["model_params"]) == dagan.Config.vox256()
  assert dagan.Config.from_official_yaml(data) == dagan.Config.vox256()


def test_from_official_yaml_rejects_unknown_keys():
  import yaml
  data = yaml.safe_load(OFFICIAL_YAML)["model_params"]
  data["kp_detector_params"]["bogus"] = 1
  with pytest.raises(ValueError, match="kp_detector_params.*bogus"):
    dagan.Config.from_official_yaml(data)
  with pytest.raises(ValueError, match="generator_params"):
    dagan.Config.from_official_yaml({"common_params": {}, "kp_detector_params": {}, "discriminator_params": {}})


def test_override_nested_and_errors():
  cfg = dagan.Config.vox256().override(num_kp=10, **{"generator_params.dense_motion_params.block_expansion": 32,
                                                     "kp_detector_params__num_blocks": 4})
  assert cfg.num_kp == 10 and cfg.generator_params.dense_motion_params.block_expansion == 32
  assert cfg.kp_detector_params.num_blocks == 4
  with pytest.raises(ValueError, match="no field 'nope'"):
    cfg.override(nope=1)
  with pytest.raises(ValueError, match="generator must be one of"):
    dataclasses.replace(cfg, generator="OcclusionAwareGenerator")
  with pytest.raises(ValueError, match="depth_layers"):
    dataclasses.replace(cfg, depth_layers=19)

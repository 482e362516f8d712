"""Every consumer resolves a preset name to the same network: launch configs (training), inference's random:<name>,
the complexity report and the speed benchmark all go through stargan_v2.Config.preset / dagan.Config.preset."""
import ast
import os

import pytest

from jaxreenact.models import dagan, stargan_v2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _launch_config(model, name):
  import importlib
  return importlib.import_module(f"configs.{model}").get_config(name)


@pytest.mark.parametrize("name", stargan_v2.PRESETS)
def test_stargan_v2_presets_agree(name):
  from jaxreenact.complexity import specs
  from jaxreenact.inference import loading
  from jaxreenact.train import stargan_v2_runner
  want = stargan_v2.Config.preset(name)
  assert stargan_v2_runner.model_config(_launch_config("stargan_v2", name)) == want
  assert specs.stargan_v2_config(name) == want
  if want.w_hpf == 0:  # random w_hpf > 0 models also need the FAN weights file
    assert loading.load_stargan_v2(f"random:{name}").config == want


@pytest.mark.parametrize("name", dagan.PRESETS)
def test_dagan_presets_agree(name):
  from jaxreenact.complexity import specs
  from jaxreenact.train import dagan_runner
  want = dagan.Config.preset(name)
  assert dagan_runner.model_config(_launch_config("dagan", name)) == want
  assert specs.dagan_config(name)[0] == want
  if name == "tiny":  # drawing random vox256 weights is slow; the name resolution is the same code path
    from jaxreenact.inference import loading
    assert loading.load_dagan("random:tiny").config == want


@pytest.mark.parametrize("name", dagan.PRESETS)
def test_dagan_training_settings_are_defined_once(name):
  """Loss weights, pyramid scales and image size: the launch config and the complexity report read the same ones."""
  from jaxreenact.complexity import specs
  from jaxreenact.train import dagan as dg
  config = _launch_config("dagan", name)
  _, hp, size = specs.dagan_config(name)
  assert dg.HParams.from_config(config.hparams) == hp == dg.HParams.preset(name)
  assert config.img_size == size == dg.IMAGE_SIZES[name]


@pytest.mark.parametrize("name", stargan_v2.PRESETS)
def test_stargan_v2_training_settings_are_defined_once(name):
  from jaxreenact.train import stargan_v2 as sg
  assert sg.HParams.from_config(_launch_config("stargan_v2", name).hparams) == sg.HParams.preset(name)


def test_benchmark_builds_its_models_from_the_presets():
  # launch.benchmark's measurement lives in jaxreenact.complexity.speed, with its --config -> preset table
  from jaxreenact.complexity import speed
  table = speed.PRESETS
  assert set(table["stargan_v2"].values()) <= set(stargan_v2.PRESETS)
  assert set(table["dagan"].values()) <= set(dagan.PRESETS)
  for path in (os.path.join(ROOT, "jaxreenact", "complexity", "speed.py"),
               os.path.join(ROOT, "launch", "benchmark.py")):
    tree = ast.parse(open(path).read())
    hand_built = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "Config"]
    assert not hand_built, f"{os.path.relpath(path, ROOT)} builds a Config by hand instead of resolving a preset"

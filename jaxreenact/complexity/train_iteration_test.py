"""The complexity report's training iteration is the step ``launch.train`` runs, not a copy of it.

For both models at the tiny presets: the XLA FLOPs (and the whole lowered cost analysis) of the iteration that
``launch.complexity`` reports equal those of the jitted ``step_fn`` of the task ``launch.train`` builds from
``configs/<model>.py:tiny``, lowered on that task's own state (its shapes, dtypes and shardings: nothing is
initialised) and first batch. A loss term, a loss weight that turns a term on or off, a pyramid scale or a preset
changed on one side only changes the count and fails this test.
"""
import importlib

import pytest

from jaxreenact.complexity import report, specs
from jaxreenact.train import runners, sharding


def _launch_train_costs(model: str) -> dict:
  config = importlib.import_module(f"configs.{model}").get_config("tiny")
  config.small_conv_pixels = 0  # the report counts convolutions as convolutions (layers/conv.py)
  config.prefetch = 0
  task = runners.TASKS[model](config)
  batch = sharding.shard_batch(next(task.data), task.mesh)
  return task.step_fn.lower(task.abstract_state(), batch).cost_analysis()


def _report_costs(model: str, batch: int) -> dict:
  if model == "stargan_v2":
    spec = specs.stargan_v2_spec("tiny", with_torch=False)
  else:  # launch.train's tiny run has no VGG19 file: its perceptual trunk is lpips' VGG16 (checkpoint/vgg_convert.py)
    spec = specs.dagan_spec("tiny", with_torch=False, perceptual_trunk="vgg16")
  opts = report.Options(train_batch=batch, torch=False, deepspeed=False, compile_train=False)
  rec = report.train_record(spec, {}, opts, report.Progress(enabled=False), None)
  assert rec["xla_flops"] == int(rec["xla_lowered"]["flops"])  # the headline figure is the cost analysis's
  return rec["xla_lowered"]  # the cost analysis of the iteration the report lowered, as it reports it


@pytest.mark.slow
@pytest.mark.parametrize("model", ["stargan_v2", "dagan"])
def test_report_iteration_is_the_training_step(model):
  config = importlib.import_module(f"configs.{model}").get_config("tiny")
  train = _launch_train_costs(model)
  ours = _report_costs(model, config.batch_size)
  assert train["flops"] > 0
  assert int(ours["flops"]) == int(train["flops"])
  assert int(ours["transcendentals"]) == int(train["transcendentals"])

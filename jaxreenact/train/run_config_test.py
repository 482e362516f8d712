"""Resume config check: run-length/logging fields may change; anything shaping parameters or data may not."""
import json
import os

import pytest

from configs import stargan_v2
from jaxreenact.train import run_config


def _run_dir(tmp_path, config):
  (tmp_path / "checkpoints" / "10").mkdir(parents=True)  # a step folder is what marks a resumable run
  (tmp_path / "config.json").write_text(config.to_json_best_effort(indent=2))
  return str(tmp_path)


def test_fresh_workdir_and_allowed_changes(tmp_path):
  config = stargan_v2.get_config("tiny")
  assert run_config.check_resume(str(tmp_path), config.to_json_best_effort()) == {}  # nothing stored yet
  workdir = _run_dir(tmp_path, config)
  config.total_steps, config.log_every, config.num_devices = 500, 1, 1
  assert run_config.check_resume(workdir, config.to_json_best_effort()) == {
      "log_every": (10, 1), "num_devices": (0, 1), "total_steps": (200, 500)}


@pytest.mark.parametrize("key, value", [("model.style_dim", 8), ("batch_size", 4), ("data_dir", "/data/x"),
                                        ("split", "val"), ("hparams.lr", 2e-4), ("seed", 1)])
def test_changes_that_shape_the_run_are_refused(tmp_path, key, value):
  config = stargan_v2.get_config("tiny")
  workdir = _run_dir(tmp_path, config)
  stored = (tmp_path / "config.json").read_bytes()
  parent, _, leaf = key.rpartition(".")
  old = (config[parent] if parent else config)[leaf]
  (config[parent] if parent else config)[leaf] = value
  config.total_steps = 400  # an allowed change alongside is not named
  with pytest.raises(run_config.ConfigMismatchError) as e:
    run_config.check_resume(workdir, config.to_json_best_effort())
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith(os.path.join(workdir, "config.json"))
  assert f"{key}: {json.dumps(old)} in the run, {json.dumps(value)} requested" in msg
  assert "total_steps:" not in msg
  assert (tmp_path / "config.json").read_bytes() == stored  # only read


def test_missing_fields_and_unreadable_config_are_refused(tmp_path):
  config = stargan_v2.get_config("tiny")
  workdir = _run_dir(tmp_path, config)
  stored = json.loads((tmp_path / "config.json").read_text())
  del stored["crop_prob"]
  (tmp_path / "config.json").write_text(json.dumps(stored))
  with pytest.raises(run_config.ConfigMismatchError, match=r"crop_prob: \(absent\) in the run, 0.5 requested"):
    run_config.check_resume(workdir, config.to_json_best_effort())
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(run_config.ConfigMismatchError, match="cannot read the config of the run to resume"):
    run_config.check_resume(workdir, config.to_json_best_effort())

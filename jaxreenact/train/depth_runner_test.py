"""depth_task through the shared loop on the embedded sample data: checkpoints, metrics, preview PNG, resume."""
import json
import os

import numpy as np
import pytest

from configs import depth as depth_configs
from jaxreenact.train import loop
from jaxreenact.train.depth_runner import depth_task, hparams_from_config
from jaxreenact.train.depth_test import DEPTH_STEP_GROUP, FAST_COMPILE


# The preset's one-device step (batch 4) is also depth_test.py's one-device reference: one worker compiles it once.
@pytest.mark.xdist_group(DEPTH_STEP_GROUP)
def test_tiny_run_writes_checkpoint_metrics_samples_and_resumes(tmp_path):
  config = depth_configs.get_config("tiny")
  config.num_devices = 1  # one device compiles fastest; 4 devices = 1 device is tested in depth_test.py
  config.xla_compiler_options = FAST_COMPILE  # compile time dominates a 3-step run
  task = depth_task(config)
  assert task.name == "depth" and hparams_from_config(config).steps_per_epoch == 40 // config.batch_size
  workdir = str(tmp_path / "run")
  summary = loop.run(task, workdir=workdir, total_steps=2, checkpoint_every=2, log_every=1, sample_every=2,
                     progress=False)
  assert summary["status"] == "completed" and summary["end_step"] == 2
  m = summary["last_metrics"]
  assert all(np.isfinite(v) for v in m.values()) and 0 < m["loss"] < 1 and m["lr"] == pytest.approx(1e-4)
  assert os.path.isfile(os.path.join(workdir, "samples", "000002_depth.png"))
  lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [x["step"] for x in lines] == [1, 2]
  # Resuming the same workdir continues from step 2 (same jitted step: no recompilation).
  summary = loop.run(task, workdir=workdir, total_steps=3, checkpoint_every=2, log_every=1, sample_every=100,
                     progress=False)
  assert summary["start_step"] == 2 and summary["end_step"] == 3
  assert np.isfinite(summary["last_metrics"]["loss"])


def test_rejects_inconsistent_epoch_length():
  config = depth_configs.get_config("tiny")
  config.sample_num = 2
  with pytest.raises(ValueError, match="sample_num"):
    hparams_from_config(config)

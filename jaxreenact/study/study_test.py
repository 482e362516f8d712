"""The comparison's report and runner without running models: busy-machine marking, wording, progress, options."""
import os

import pytest

from jaxreenact import machine
from jaxreenact.study import compare, report


def _bench(speedup=1.6):
  return {"config": "tiny", "batch": 8, "device": "cpu:x86_64 (2 cores)", "jax_ms_per_iter": 100.0,
          "torch_ms_per_iter": 100.0 * speedup, "speedup": speedup, "jax_images_per_s": 80.0,
          "xla_flops_per_iter": 2e11, "achieved_tflops": 0.002, "mfu": 0.2}


def _load(share):
  return {"before": {"other_share": share, "top_others": ["python 90%"]}, "after": {"other_share": share},
          "other_share_mean": share, "other_share_max": share, "busy": share > machine.BUSY_SHARE}


def _opts(tmp_path):
  return compare.Options(workdir=str(tmp_path))


def test_a_timing_taken_on_a_loaded_machine_is_marked_with_how_to_rerun_it(tmp_path):
  R = {"speed_stargan_v2": {"status": "ok", "benchmark": _bench(6.5), "load": _load(0.9),
                            "rerun": "python -m launch.compare --workdir W --rerun speed_stargan_v2"},
       "speed_dagan": {"status": "ok", "benchmark": _bench(1.1), "load": _load(0.01), "rerun": "x"}}
  md = "\n".join(report.speed_section(R, _opts(tmp_path)))
  assert "90% / 90% ⚠ busy" in md and "1% / 1% |" in md
  assert "stargan_v2 was timed on a busy machine" in md and "--rerun speed_stargan_v2" in md
  assert "dagan was timed on a busy machine" not in md
  lines = report.conclusion(R, {}, _opts(tmp_path))
  assert any("StarGAN v2" in l and "busy machine" in l for l in lines)
  assert any("DaGAN" in l and "busy" not in l and "1.10×" in l for l in lines)


def test_conclusion_says_which_iteration_costs_more():
  R = {"complexity": {"complexity": {"models": {"stargan_v2": {"train_iteration": {"xla_flops_fwd_bwd": 20.56e12}},
                                                "dagan": {"train_iteration": {"xla_flops_fwd_bwd": 5.98e12}}}}}}
  line = report.conclusion(R, {}, compare.Options(workdir="."))[0]
  assert "5.98 TFLOP for DaGAN and 20.56 TFLOP for StarGAN v2" in line
  assert "StarGAN v2's iteration costs 3.4× DaGAN's" in line


def test_other_cpu_share_counts_only_processes_outside_this_tree(monkeypatch):
  import psutil

  class _P:
    def __init__(self, pid, pct, name):
      self.pid, self._pct, self.info = pid, pct, {"name": name}

    def cpu_percent(self, interval=None):
      return self._pct

  me = os.getpid()
  procs = [_P(me, 100.0, "us"), _P(10**7, 150.0, "burner"), _P(10**7 + 1, 0.0, "idle")]
  monkeypatch.setattr(psutil, "process_iter", lambda attrs=None: iter(procs))
  monkeypatch.setattr(psutil, "cpu_count", lambda: 2)
  s = machine.other_cpu_share(0.0)
  assert s["other_share"] == 0.75  # 150% of 2 cores; our own 100% is not counted
  assert s["top_others"] == ["burner 150%"]
  mon = machine.LoadMonitor(every_s=3600, window_s=0.0)
  with mon:
    pass
  res = mon.result()
  assert res["busy"] and res["other_share_mean"] == 0.75


def test_progress_line_reads_the_stage_log_and_gives_an_eta(tmp_path):
  r = compare.Runner(compare.Options(workdir=str(tmp_path), progress=False))
  log = tmp_path / "x.log"
  log.write_text("train dagan:  40%|####      | 12/30 [00:10<00:15,  1.2it/s]")
  r.current = {"name": "train_dagan", "t0": 0.0, "done": None, "total": None, "log": str(log)}
  import time
  r.current["t0"] = time.time() - 20
  line = r.line()
  assert "stage 2/8 train_dagan: 12/30" in line and "ETA" in line
  r.current.update(log=None, done=3, total=4)
  assert "train_dagan: 3/4" in r.line()


@pytest.mark.parametrize("kw,msg", [({"skip": ("qualty_dagan",)}, "--skip: unknown stage(s) qualty_dagan"),
                                    ({"rerun": ("nope",)}, "--rerun"),
                                    ({"dagan_data": "/no/such/dir"}, "--dagan_data=/no/such/dir"),
                                    ({"dagan_depth_encoder": __file__}, "go together")])
def test_options_are_validated_before_anything_runs(tmp_path, kw, msg):
  with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
    compare.Options(workdir=str(tmp_path), **kw).validate()

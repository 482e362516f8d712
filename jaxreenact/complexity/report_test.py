"""Report assembly: Table 10 arithmetic, scaling checks, reconciliation rows, and a tiny end-to-end report."""
import pytest

from jaxreenact.complexity import reconcile, report, specs


def _train(fwd_ds, fwd_naive, total):
  return {"batch": 8, "deepspeed_flops_fwd": fwd_ds, "forward_passes_analytic_macs_naive": fwd_naive,
          "xla_flops_fwd": 2 * fwd_naive, "xla_flops": total, "flopcounter_flops": total}


class _Spec:
  def __init__(self, study):
    self.study = study


def test_table10_stargan_rows():
  st = dict(specs.STARGAN_STUDY)
  t = report.table10(_Spec(st), _train(9.7e12, 4.8e12, 23e12))
  rows = {r["measure"]: r for r in t["rows"]}
  assert rows["fwd flops per GPU"]["ratio"] == pytest.approx(2_902_834.73e9 / 9.7e12)
  assert rows["fwd FLOPS per GPU"]["correct"] == pytest.approx(9.7e12 / 1.95)
  assert rows["bwd FLOPS per GPU"]["correct"] == pytest.approx(2 * 9.7e12 / 5.24)
  assert rows["fwd+bwd FLOPS per GPU"]["correct"] == pytest.approx(3 * 9.7e12 / (1.95 + 5.24))
  assert rows["fwd latency"]["correct"] == pytest.approx(9.7e12 / report.V100_FP32_PEAK)
  assert t["study_internal_consistency"]["fwd_flops / fwd_latency / fwd_FLOPS"] == pytest.approx(1.0, abs=1e-4)


def test_table10_dagan_flags_its_unit_slip():
  st = dict(specs.DAGAN_STUDY)
  t = report.table10(_Spec(st), _train(2.8e12, 1.3e12, 6.4e12))
  c = t["study_internal_consistency"]["fwd_flops / fwd_latency / fwd_FLOPS"]
  assert c == pytest.approx(0.01, rel=1e-3)  # its FLOPS rows are 100× its own flops / latency
  assert "not its own" in t["study_internal_consistency"]["comment"]
  assert "100×" in t["rows"][3]["explanation"]


def test_scaling_checks():
  sc = {"batch": {"1": {"analytic_macs_naive": 10, "xla_flops": 21}, "2": {"analytic_macs_naive": 20, "xla_flops": 42}},
        "resolution": {"128": {"analytic_macs_naive": 25, "pixels": 128 ** 2},
                       "256": {"analytic_macs_naive": 100, "pixels": 256 ** 2}}}
  ch = report.scaling_checks(sc, 256)
  assert ch["analytic_linear_in_batch"] and ch["linear_in_pixels"]
  assert ch["xla_flops_over_batch_times_b1"] == {"1": 1.0, "2": 1.0}
  sc["resolution"]["128"]["analytic_macs_naive"] = 30
  assert not report.scaling_checks(sc, 256)["linear_in_pixels"]


def test_reconcile_rows_and_identities():
  rec = {"analytic_macs_naive": 100, "analytic_macs_padx": 90, "torch_analytic_macs_naive": 100,
         "torch_analytic_macs_padx": 90, "deepspeed_macs_fwd": 100, "deepspeed_flops_fwd": 215,
         "flopcounter_flops_fwd": 200, "xla_conv_dot_flops_fwd": 180, "xla_flops_fwd": 190,
         "deepspeed_by_category": {"conv_matmul": 200, "bias": 5, "activations": 10},
         "xla_categories_fwd": {"by_category": {"conv_matmul": {"flops": 180}, "bias": {"flops": 5},
                                                "activations": {"flops": 4}}}}
  r = reconcile.reconcile_module(rec)
  assert all(r["identities"].values())
  assert r["rows"]["padding"]["analytic_naive_x2"] == 20
  assert r["totals"] == {"xla": 189, "deepspeed": 215, "flopcounter": 200}
  assert r["residual"]["xla_whole_minus_per_equation"] == 1
  assert "| bias |" in reconcile.format_table(r)
  rec["deepspeed_macs_fwd"] = 99
  assert reconcile.identities(rec)["deepspeed_macs == torch_analytic_naive"] is False


def test_official_match_with_offset():
  rec = {"analytic_macs_naive": 5, "torch_analytic_macs_naive": 5, "flopcounter_flops_fwd": 10,
         "deepspeed_flops_fwd": 17}
  m = report.official_match(rec, {"macs_naive": 5, "flopcounter": 10, "deepspeed_flops": 12, "deepspeed_offset": 5})
  assert all(ok for _, _, ok in m.values())
  m = report.official_match({"analytic_macs_naive": 4_273_864_704, "torch_analytic_macs_naive": None},
                            {"gflops_2x_naive": 8.548})
  assert m["jax 2·naive (GFLOP, 3 dp)"] == ("8.548", "8.548", True)

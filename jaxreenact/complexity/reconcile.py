"""Per-category reconciliation of the FLOP counts of XLA, DeepSpeed, FlopCounterMode and the analytic count.

The exact common ground (docs/facts.md §3) is the analytic conv/matmul MAC count in two conventions:

* DeepSpeed MACs == analytic naive MACs,
* FlopCounterMode FLOPs == 2 × analytic naive MACs,
* XLA convolution + dot FLOPs == 2 × analytic padding-excluded MACs,

and these are checked exactly. Everything else is a convention difference, tabulated per category with its cause.
"""
from __future__ import annotations

from typing import Any

from jaxreenact.complexity.analytic import CATEGORIES

TOOLS = ("analytic_naive_x2", "analytic_padx_x2", "xla", "deepspeed", "flopcounter")

CAUSES = {
    "conv_matmul": "conv/linear/matmul multiply-adds. DeepSpeed and FlopCounterMode count every kernel tap "
                   "(2·naive MACs); XLA counts only taps that touch real input (2·padding-excluded MACs).",
    "padding": "taps on the zero padding (and, in backward, on the holes of dilated gradients): in DeepSpeed and "
               "FlopCounterMode, not in XLA. Shown as 2·(naive − padx); already inside the conv_matmul row of "
               "the naive tools.",
    "bias": "XLA: one add per output element for every conv and linear bias. DeepSpeed: conv bias 1/output "
            "element, F.linear bias not counted. FlopCounterMode: not counted.",
    "normalisation": "DeepSpeed: instance/layer/group norm 4/elt (5 with affine), batch norm 2/elt in eval (1 without "
                     "affine, 5 in training). XLA: the mean/variance reductions (input − output elements) and the "
                     "normalise arithmetic, rsqrt under transcendentals. FlopCounterMode: not counted.",
    "activations": "DeepSpeed: 1/input element for F.relu/leaky_relu/elu/silu/gelu; sigmoid/tanh/exp not counted. "
                   "XLA: the primitive ops (leaky_relu = compare + multiply + select), exp/logistic/tanh under "
                   "transcendentals. FlopCounterMode: not counted.",
    "resampling": "DeepSpeed: pooling 1/input element, interpolate 1/output element (with size= only h·w: a "
                  "DeepSpeed bug). XLA: avg pool = sum reduction + divide; nearest upsampling is a broadcast (0); "
                  "bilinear = gathers + lerp arithmetic. FlopCounterMode: not counted.",
    "grid_sample": "bilinear warping: counted by neither DeepSpeed nor FlopCounterMode; XLA counts its weight and "
                   "blend arithmetic (the gathers themselves are free).",
    "softmax": "DeepSpeed: 1/element; XLA: max and sum reductions, subtract and divide, exp under transcendentals. "
               "FlopCounterMode: not counted.",
    "elementwise": "residual adds, scalings, losses written with Python operators: invisible to DeepSpeed (it patches "
                   "torch.add/mul calls, not operators), 1/element in XLA (reductions: input − output elements).",
    "data_movement": "reshape, transpose, concat, pad, gather, slice, convert: no FLOPs in any tool.",
}


def reconcile_module(rec: dict[str, Any]) -> dict[str, Any]:
  """Builds the per-category table of one module record (see report.module_record) and checks the identities.

  Returns ``{"rows": {category: {tool: flops, "cause": str}}, "totals": {tool: flops}, "identities": {...},
  "residual": {...}}``. Tools missing from the record are ``None``.
  """
  naive, padx = rec.get("analytic_macs_naive"), rec.get("analytic_macs_padx")
  xla_cat = (rec.get("xla_categories_fwd") or {}).get("by_category", {})
  ds_cat = rec.get("deepspeed_by_category") or {}
  fcm = rec.get("flopcounter_flops_fwd")
  rows: dict[str, dict[str, Any]] = {}
  for cat in CATEGORIES:
    row: dict[str, Any] = dict.fromkeys(TOOLS)
    if cat == "conv_matmul":
      row.update(analytic_naive_x2=2 * naive if naive is not None else None,
                 analytic_padx_x2=2 * padx if padx is not None else None, flopcounter=fcm)
    elif cat == "padding":
      if naive is not None:
        row.update(analytic_naive_x2=2 * (naive - padx), analytic_padx_x2=0)
      row["xla"] = 0 if xla_cat else None
      row["flopcounter"] = 2 * (naive - padx) if fcm is not None and naive is not None else None
      row["deepspeed"] = 2 * (naive - padx) if ds_cat and naive is not None else None
      row["included_in_conv_matmul"] = True
    else:
      row["flopcounter"] = 0 if fcm is not None else None
    if cat != "padding":
      if xla_cat:
        row["xla"] = int(xla_cat.get(cat, {}).get("flops", 0))
      if ds_cat:
        row["deepspeed"] = int(ds_cat.get(cat, 0))
    row["cause"] = CAUSES[cat]
    rows[cat] = row
  totals = {t: sum(r[t] for c, r in rows.items() if c != "padding" and r[t] is not None) if any(
      r[t] is not None for r in rows.values()) else None for t in ("xla", "deepspeed", "flopcounter")}
  xla_whole = rec.get("xla_flops_fwd")
  residual = {}
  if xla_whole is not None and totals["xla"] is not None:
    residual["xla_whole_minus_per_equation"] = int(xla_whole - totals["xla"])
    residual["cause"] = ("XLA costs each equation in context when the module is lowered whole (constants folded "
                         "into literals, jnp helpers inlined); the per-equation sum lowers each alone")
  if rec.get("deepspeed_flops_fwd") is not None and totals["deepspeed"] is not None:
    residual["deepspeed_total_minus_categories"] = int(rec["deepspeed_flops_fwd"] - totals["deepspeed"])
  return {"rows": rows, "totals": totals, "identities": identities(rec), "residual": residual}


def identities(rec: dict[str, Any]) -> dict[str, Any]:
  """The exact identities (True/False), or None where a tool was not run."""
  naive, padx = rec.get("analytic_macs_naive"), rec.get("analytic_macs_padx")

  def check(value, expected):
    if value is None or expected is None:
      return None
    return int(value) == int(expected)

  tnaive = rec.get("torch_analytic_macs_naive")
  return {
      # each tool against the analytic count of its own framework: must always hold
      "deepspeed_macs == torch_analytic_naive": check(rec.get("deepspeed_macs_fwd"), tnaive),
      "flopcounter == 2*torch_analytic_naive": check(rec.get("flopcounter_flops_fwd"),
                                                     None if tnaive is None else 2 * tnaive),
      "xla_conv_dot == 2*jax_analytic_padx": check(rec.get("xla_conv_dot_flops_fwd"),
                                                   None if padx is None else 2 * padx),
      # across frameworks: hold when both implementations compute the same products (see op_diff_jax_vs_torch)
      "jax_analytic_naive == torch_analytic_naive": check(naive, tnaive),
      "jax_analytic_padx == torch_analytic_padx": check(padx, rec.get("torch_analytic_macs_padx")),
      "deepspeed_macs == jax_analytic_naive": check(rec.get("deepspeed_macs_fwd"), naive),
      "flopcounter == 2*jax_analytic_naive": check(rec.get("flopcounter_flops_fwd"),
                                                   None if naive is None else 2 * naive),
  }


def format_table(recon: dict[str, Any], unit: float = 1e9, unit_name: str = "GFLOP") -> str:
  """Markdown table of one reconciliation (values in ``unit_name``)."""
  def f(v):
    if v is None:
      return "–"
    return f"{v / unit:,.4f}"

  head = (f"| category | 2·naive MACs | 2·padx MACs | XLA | DeepSpeed | FlopCounterMode | cause |\n"
          f"|---|---:|---:|---:|---:|---:|---|\n")
  lines = []
  for cat, r in recon["rows"].items():
    if all(r[t] in (None, 0) for t in TOOLS):
      continue
    name = cat + (" (inside conv_matmul)" if r.get("included_in_conv_matmul") else "")
    lines.append(f"| {name} | {f(r['analytic_naive_x2'])} | {f(r['analytic_padx_x2'])} | {f(r['xla'])} | "
                 f"{f(r['deepspeed'])} | {f(r['flopcounter'])} | {r['cause']} |")
  t = recon["totals"]
  lines.append(f"| **total** ({unit_name}) | | | {f(t['xla'])} | {f(t['deepspeed'])} | {f(t['flopcounter'])} | "
               "sum of the rows above (padding excluded, it is inside conv_matmul) |")
  return head + "\n".join(lines) + "\n"

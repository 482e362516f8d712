"""Complexity reports: XLA cost analysis, DeepSpeed FlopsProfiler, FlopCounterMode and an analytic MAC count, reconciled.

Modules:
  analytic        conv/dot MACs from a jaxpr (naive and padding-excluded) and from PyTorch aten calls; categories.
  xla             lowered/compiled cost analysis, memory analysis, per-device costs under a mesh, per-equation costs.
  torch_profile   DeepSpeed FlopsProfiler (fresh per reading; meta-tensor guard; engine profile) and FlopCounterMode.
  latency         warm, synchronised latencies (median and spread), device named.
  reconcile       per-category reconciliation table and the exact identities.
  specs           what is measured per model (modules, one training iteration) for StarGAN v2 and DaGAN.
  report          orchestration, complexity.json, the study's Table 10 re-done; report_writers: Markdown and charts.

Entry point: ``python -m launch.complexity --model all --out DIR``.
"""

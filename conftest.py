"""Shared pytest setup: float32 at highest matmul precision in both frameworks (docs/facts.md §4)."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

try:
  import torch  # noqa: E402

  torch.backends.cuda.matmul.allow_tf32 = False
  torch.backends.cudnn.allow_tf32 = False
  torch.set_num_threads(max(1, os.cpu_count() or 1))
except ImportError:  # torch is an optional extra; torch-dependent tests importorskip it.
  pass

"""Honest reference points for the quality figures, and the statistics that say whether a model beats them.

Baselines run through the *same* protocol code as the models (``protocols.evaluate_dagan`` /
``protocols.evaluate_stargan_v2``), so a difference in a figure is a difference in outputs, never in metric code:

- :class:`CopySource` (DaGAN): "no motion" — every predicted frame is the source frame.
- :class:`NoTranslation` (StarGAN v2): every output is its source image, whatever the style.

Statistics: a percentile bootstrap over the evaluated items (frames or source images). Two systems evaluated on the
same items are compared *paired* (the same resampled items for both), which is what "model X beats baseline Y on
these frames" means; the verdict is "better" or "worse" only when the whole confidence interval of the difference
lies on one side of zero.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

# Which way is better, per metric (DaGAN frame metrics and StarGAN v2 metrics).
HIGHER_IS_BETTER = {"l1": False, "psnr": True, "ssim": True, "lpips": False, "akd": False, "aed": False,
                    "csim": True, "fid": False, "lpips_diversity": True}


class CopySource:
  """A DaGAN stand-in whose prediction for every driving frame is the source frame (no motion)."""

  def run(self, source: np.ndarray, driving: np.ndarray, opts: Any = None, progress: bool = False,
          initial_index: int = 0) -> dict[str, np.ndarray]:
    del opts, progress, initial_index  # no model: nothing to configure
    source, driving = np.asarray(source, np.float32), np.asarray(driving, np.float32)
    if driving.ndim != 4 or driving.shape[1:] != source.shape:
      raise ValueError(f"CopySource.run: source {source.shape} and driving {driving.shape} disagree")
    return {"prediction": np.repeat(source[None], len(driving), 0),
            "depth": np.zeros((*driving.shape[:3], 1), np.float32)}


class NoTranslation:
  """A StarGAN v2 stand-in whose output is the source image for every style (the sampler interface)."""

  def __init__(self, latent_dim: int, style_dim: int):
    self.latent_dim, self.style_dim = latent_dim, style_dim
    self.cfg = self  # protocols read sampler.cfg.latent_dim

  def style_from_latent(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.zeros((len(z), self.style_dim), np.float32)

  def style_from_reference(self, x_ref: np.ndarray, y_ref: np.ndarray) -> np.ndarray:
    return np.zeros((len(x_ref), self.style_dim), np.float32)

  def generate(self, x_src: np.ndarray, s: np.ndarray) -> np.ndarray:
    del s
    return np.asarray(x_src, np.float32).copy()


def _indices(n: int, n_boot: int, seed: int) -> np.ndarray:
  if n < 1:
    raise ValueError("bootstrap needs at least one item")
  return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 statistic: Callable[[np.ndarray], float] = np.mean) -> dict[str, float | int]:
  """Point value and percentile-bootstrap interval of ``statistic`` over items (None/NaN/inf items dropped)."""
  v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
  if v.size == 0:
    return {"value": None, "lo": None, "hi": None, "n": 0}
  idx = _indices(v.size, n_boot, seed)
  boots = np.asarray([statistic(v[i]) for i in idx])
  a = (1 - level) / 2
  return {"value": float(statistic(v)), "lo": float(np.quantile(boots, a)), "hi": float(np.quantile(boots, 1 - a)),
          "n": int(v.size)}


def verdict(lo: float | None, hi: float | None, higher_is_better: bool) -> str:
  """'better' / 'worse' when the interval of (model - baseline) excludes 0, else 'no clear difference'."""
  if lo is None or hi is None:
    return "not measurable"
  if lo > 0 or hi < 0:
    return "better" if (lo > 0) == higher_is_better else "worse"
  return "no clear difference"


def paired_comparison(model: Sequence[float | None], baseline: Sequence[float | None], *, higher_is_better: bool,
                      n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
  """Mean of (model - baseline) over the items both define, its bootstrap interval and the verdict."""
  if len(model) != len(baseline):
    raise ValueError(f"paired comparison needs the same items: {len(model)} vs {len(baseline)} values")
  d = [m - b for m, b in zip(model, baseline)
       if m is not None and b is not None and np.isfinite(m) and np.isfinite(b)]
  ci = bootstrap_ci(d, n_boot=n_boot, level=level, seed=seed)
  return {"diff": ci["value"], "lo": ci["lo"], "hi": ci["hi"], "n": ci["n"],
          "verdict": verdict(ci["lo"], ci["hi"], higher_is_better)}


def paired_statistic_comparison(statistic: Callable[[np.ndarray, str], float], n_items: int, systems: Sequence[str],
                                *, n_boot: int = 500, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
  """Bootstrap of a set-level statistic (e.g. FID) for several systems over the same resampled items.

  Args:
    statistic: f(item indices, system) -> value on that resample of items (e.g. the FID of the outputs of those
      source images).
    n_items: how many items (source images) there are.
    systems: names passed to ``statistic``.
  Returns:
    {'values': {system: value on all items}, 'boots': {system: (n_boot,) values}, 'ci': {system: (lo, hi)}}.
  """
  idx = _indices(n_items, n_boot, seed)
  everything = np.arange(n_items)
  a = (1 - level) / 2
  out: dict[str, Any] = {"values": {}, "boots": {}, "ci": {}}
  for s in systems:
    out["values"][s] = float(statistic(everything, s))
    b = np.asarray([statistic(i, s) for i in idx])
    out["boots"][s] = b
    out["ci"][s] = (float(np.quantile(b, a)), float(np.quantile(b, 1 - a)))
  return out


def compare_boots(boots_model: np.ndarray, boots_base: np.ndarray, value_model: float, value_base: float, *,
                  higher_is_better: bool, level: float = 0.95) -> dict[str, Any]:
  """Paired verdict from two bootstrap series drawn over the same resampled items."""
  d = np.asarray(boots_model) - np.asarray(boots_base)
  a = (1 - level) / 2
  lo, hi = float(np.quantile(d, a)), float(np.quantile(d, 1 - a))
  return {"diff": float(value_model - value_base), "lo": lo, "hi": hi, "n": int(len(d)),
          "verdict": verdict(lo, hi, higher_is_better)}

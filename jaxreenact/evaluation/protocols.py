"""The two evaluation protocols, on images already in memory.

StarGAN v2 (metrics/eval.py calculate_metrics): for every target domain and every other source domain
("src2trg" task), ``num_outs`` outputs per validation source image — styles from random latent codes (latent
mode) or from validation images of the target domain (reference mode) — saved as PNG; LPIPS diversity = mean
over source batches of the mean pairwise LPIPS of the outputs; FID of all outputs of a task against the
target domain's *training* images; means over tasks.

DaGAN (reconstruction.py + the papers' metrics): same-identity reconstruction, source = first frame (or the
pair list's source), driving = every frame (or the pair list's driving frame), absolute keypoints; L1, PSNR,
SSIM, LPIPS between prediction and driving frame; AKD, AED (prediction vs driving) and CSIM (source vs
prediction) with dlib.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from jaxreenact.evaluation import image_metrics
from jaxreenact.evaluation.face_metrics import frame_face_metrics
from jaxreenact.evaluation.fid import fid_from_features
from jaxreenact.evaluation.lpips import LPIPS, diversity_of, pairwise_values
from jaxreenact.models.dagan.config import AnimationOptions


# ------------------------------------------------------------------------------------------------------------
# StarGAN v2


@dataclasses.dataclass
class StarGANEvalData:
  domains: list[str]
  val_images: np.ndarray  # (N, S, S, 3) in [-1, 1]: sources and references
  val_labels: np.ndarray
  train_images: np.ndarray  # (M, S, S, 3) in [-1, 1]: FID real sets per target domain
  train_labels: np.ndarray


def _save_png(path: str, img_m11: np.ndarray) -> None:
  from PIL import Image
  Image.fromarray((np.clip((img_m11 + 1) / 2, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def evaluate_stargan_v2(sampler, data: StarGANEvalData, *, out_dir: str, modes: Sequence[str] = ("latent", "reference"),
                        num_outs: int = 10, batch_size: int = 32, fid_extractors: dict | None = None,
                        lpips_metric: LPIPS | None = None, seed: int = 0, progress: bool = True,
                        details: dict[str, Any] | None = None,
                        real_features: dict[tuple[str, int], np.ndarray] | None = None) -> dict[str, Any]:
  """Runs the official protocol; returns {'LPIPS_<mode>/<task>', 'FID[_<variant>]_<mode>/<task>', means, ...}.

  Generated images are written to ``out_dir/<mode>/<task>/<index>_<out>.png`` (official naming). When ``details``
  is a dict it receives, per '<mode>/<task>', what per-source statistics need (bootstrap intervals, paired
  comparisons): 'lpips_per_source' (N,) — each source's mean pairwise LPIPS over its outputs — and
  'fake_features' {variant: (N, num_outs, D)}, plus 'real_features' {(variant, target domain): (M, D)}.
  ``real_features`` is a cache of the real images' features shared between calls on the same data (filled here).
  """
  if len(data.domains) < 2:
    raise ValueError(f"StarGAN v2 evaluation needs at least two domains, got {data.domains}")
  fid_extractors = fid_extractors or {}
  rng = np.random.default_rng(seed)
  results: dict[str, Any] = {}
  real_feats: dict[tuple[str, int], np.ndarray] = {} if real_features is None else real_features
  t0 = time.perf_counter()
  for mode in modes:
    if mode not in ("latent", "reference"):
      raise ValueError(f"mode must be 'latent' or 'reference', got {mode!r}")
    lpips_tasks, fid_tasks = {}, {k: {} for k in fid_extractors}
    for trg, trg_name in enumerate(data.domains):
      refs = data.val_images[data.val_labels == trg]
      ref_stream: list[int] = []  # official: batches of a shuffled reference loader, reshuffled when exhausted
      for src, src_name in enumerate(data.domains):
        if src == trg:
          continue
        task = f"{src_name}2{trg_name}"
        task_dir = os.path.join(out_dir, mode, task)
        os.makedirs(task_dir, exist_ok=True)
        x_all = data.val_images[data.val_labels == src]
        fakes, lpips_values, per_source = [], [], []
        bar = tqdm(range(0, len(x_all), batch_size), desc=f"{mode} {task}", disable=not progress)
        for bi, i in enumerate(bar):
          x = x_all[i:i + batch_size]
          n = len(x)
          y = np.full((n,), trg, np.int32)
          group = []
          for j in range(num_outs):
            if mode == "latent":
              s = sampler.style_from_latent(rng.standard_normal((n, sampler.cfg.latent_dim)).astype(np.float32), y)
            else:
              if len(refs) == 0:
                raise ValueError(f"reference mode: no validation image of target domain {trg_name!r}")
              while len(ref_stream) < n:
                ref_stream += rng.permutation(len(refs)).tolist()
              idx, ref_stream = np.asarray(ref_stream[:n]), ref_stream[n:]
              s = sampler.style_from_reference(refs[idx], y)
            out = sampler.generate(x, s)
            group.append(out)
            for k in range(n):
              _save_png(os.path.join(task_dir, f"{i + k + 1:04d}_{j + 1:02d}.png"), out[k])
          fakes.append(np.concatenate(group))
          if lpips_metric is not None and num_outs > 1:
            pair_values = pairwise_values(lpips_metric, group)  # (pairs, n)
            lpips_values.append(diversity_of(pair_values))
            per_source.append(pair_values.mean(axis=0))
        if lpips_values:
          lpips_tasks[task] = float(np.mean(lpips_values))
        fake = np.concatenate(fakes)  # per batch: output j of every source of the batch, j = 1..num_outs
        task_details: dict[str, Any] = {"target": trg, "fake_features": {}}
        if per_source:
          task_details["lpips_per_source"] = np.concatenate(per_source)
        for variant, extractor in fid_extractors.items():
          if (variant, trg) not in real_feats:
            real = data.train_images[data.train_labels == trg]
            real_feats[(variant, trg)] = extractor.features(real, (-1, 1), desc=f"inception real {trg_name}")
          fake_feats = extractor.features(fake, (-1, 1), desc=f"inception {task}")
          fid_tasks[variant][task] = fid_from_features(real_feats[(variant, trg)], fake_feats)
          task_details["fake_features"][variant] = _per_source(fake_feats, len(x_all), batch_size, num_outs)
        if details is not None:
          details[f"{mode}/{task}"] = task_details
    for task, v in lpips_tasks.items():
      results[f"LPIPS_{mode}/{task}"] = v
    if lpips_tasks:
      results[f"LPIPS_{mode}/mean"] = float(np.mean(list(lpips_tasks.values())))
    for variant, tasks in fid_tasks.items():
      prefix = "FID" if variant == "standard" else f"FID_{variant}"
      for task, v in tasks.items():
        results[f"{prefix}_{mode}/{task}"] = v
      if tasks:
        results[f"{prefix}_{mode}/mean"] = float(np.mean(list(tasks.values())))
  results["seconds"] = round(time.perf_counter() - t0, 2)
  if details is not None:
    details["real_features"] = real_feats
  return results


def _per_source(features: np.ndarray, n: int, batch_size: int, num_outs: int) -> np.ndarray:
  """Features in generation order (per source batch: output-major) -> (n sources, num_outs, D)."""
  out, k = [], 0
  for i in range(0, n, batch_size):
    b = min(batch_size, n - i)
    out.append(features[k:k + b * num_outs].reshape(num_outs, b, -1).transpose(1, 0, 2))
    k += b * num_outs
  return np.concatenate(out)


def stargan_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
  """Results as table rows: metric | mode | task | value."""
  rows = []
  for k, v in results.items():
    if "/" not in k:
      continue
    metric_mode, task = k.split("/", 1)
    metric, mode = metric_mode.rsplit("_", 1)
    rows.append({"metric": metric, "mode": mode, "task": task, "value": v})
  return rows


# ------------------------------------------------------------------------------------------------------------
# DaGAN


FRAME_METRICS = ("l1", "psnr", "ssim", "lpips", "akd", "aed", "csim")


def reconstruction_metrics(source: np.ndarray, driving: np.ndarray, prediction: np.ndarray, *,
                           metrics: Sequence[str] = FRAME_METRICS, lpips_metric: LPIPS | None = None,
                           analyzer=None) -> list[dict[str, float | None]]:
  """Per-frame metrics; images (T, S, S, 3) in [0, 1] (source (S, S, 3)). None where a face was not found."""
  unknown = sorted(set(metrics) - set(FRAME_METRICS))
  if unknown:
    raise ValueError(f"unknown metrics {unknown}; choose from {list(FRAME_METRICS)}")
  t = len(driving)
  cols: dict[str, Sequence[float | None]] = {}
  if "l1" in metrics:
    cols["l1"] = np.asarray(image_metrics.l1(prediction, driving)).tolist()
  if "psnr" in metrics:
    cols["psnr"] = np.asarray(image_metrics.psnr(prediction, driving)).tolist()
  if "ssim" in metrics:
    cols["ssim"] = np.asarray(image_metrics.ssim(prediction, driving)).tolist()
  if "lpips" in metrics:
    if lpips_metric is None:
      raise ValueError("metric 'lpips' needs an LPIPS instance")
    cols["lpips"] = lpips_metric(prediction * 2 - 1, driving * 2 - 1).tolist()
  face = [m for m in ("akd", "aed", "csim") if m in metrics]
  if face:
    if analyzer is None:
      raise ValueError(f"metrics {face} need a FaceAnalyzer")
    to_u8 = lambda x: (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    src_info = analyzer.analyze(to_u8(source))
    per = [frame_face_metrics(analyzer, to_u8(p), to_u8(d), src_info) for p, d in zip(prediction, driving)]
    for m in face:
      cols[m] = [r[m] for r in per]
  return [{k: v[i] for k, v in cols.items()} for i in range(t)]


def summarize(rows: Sequence[dict[str, float | None]]) -> dict[str, Any]:
  """Mean of each metric over frames where it is defined (finite); PSNR of identical frames (inf) is excluded
  from the mean and counted; plus the count of missing values (no face found)."""
  out: dict[str, Any] = {"frames": len(rows)}
  keys = list(rows[0].keys()) if rows else []
  for k in keys:
    vals = [r[k] for r in rows if r[k] is not None]
    finite = [v for v in vals if np.isfinite(v)]
    out[k] = float(np.mean(finite)) if finite else None
    if len(vals) < len(rows):
      out[f"{k}_missing"] = len(rows) - len(vals)
    if len(finite) < len(vals):
      out[f"{k}_infinite"] = len(vals) - len(finite)
  return out


def evaluate_dagan(reenactor, clips: Sequence[tuple[str, np.ndarray, Sequence[tuple[int, int]] | None]], *,
                   metrics: Sequence[str] = FRAME_METRICS, lpips_metric: LPIPS | None = None, analyzer=None,
                   on_clip: Callable[[str, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
                   batch_size: int = 4, progress: bool = True) -> dict[str, Any]:
  """Same-identity reconstruction over clips.

  Args:
    reenactor: an inference.reenact.Reenactor.
    clips: (name, frames (T, S, S, 3) in [0, 1], pairs) with pairs = [(source_frame, driving_frame)] or None
      (source = frame 0, driving = every frame).
    on_clip: called with (name, source, driving, prediction) per source frame group, e.g. to save videos.
  Returns:
    {'summary': means over all frames, 'per_clip': [{'clip', ...means}], 'frames': per-frame rows}.
  """
  # reconstruction: absolute keypoints
  opts = AnimationOptions(relative=False, adapt_scale=False, batch_size=batch_size)
  all_rows, per_clip = [], []
  t0 = time.perf_counter()
  for name, frames, pairs in tqdm(clips, desc="clips", disable=not progress):
    if pairs is None:
      pairs = [(0, i) for i in range(len(frames))]
    groups: dict[int, list[int]] = {}
    for s, d in pairs:
      if not (0 <= s < len(frames) and 0 <= d < len(frames)):
        raise ValueError(f"{name}: pair ({s}, {d}) outside the clip's {len(frames)} frames")
      groups.setdefault(int(s), []).append(int(d))
    clip_rows = []
    for s, ds in groups.items():
      driving = frames[np.asarray(ds)]
      out = reenactor.run(frames[s], driving, opts, progress=False)
      rows = reconstruction_metrics(frames[s], driving, out["prediction"], metrics=metrics,
                                    lpips_metric=lpips_metric, analyzer=analyzer)
      for d, r in zip(ds, rows):
        r.update({"clip": name, "source_frame": s, "driving_frame": d})
      clip_rows += rows
      if on_clip is not None:
        on_clip(name if len(groups) == 1 else f"{name}_src{s}", frames[s], driving, out["prediction"])
    metric_rows = [{k: v for k, v in r.items() if k in metrics} for r in clip_rows]
    per_clip.append({"clip": name, **summarize(metric_rows)})
    all_rows += clip_rows
  summary = summarize([{k: v for k, v in r.items() if k in metrics} for r in all_rows])
  summary["clips"] = len(per_clip)
  summary["seconds"] = round(time.perf_counter() - t0, 2)
  return {"summary": summary, "per_clip": per_clip, "frames": all_rows}

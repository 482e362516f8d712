"""Quality of each model beside honest baselines, on the same held-out data and by the same metric code.

DaGAN: same-identity reconstruction of the held-out clip(s) (source = first frame, driving = every frame, absolute
keypoints) by each system — the model trained in this run, the shipped weights, the untrained model and
"copy the source frame" — with per-frame metrics, a bootstrap interval per system and paired verdicts against each
baseline.

StarGAN v2: the official protocol (latent and reference modes, every source→target task) for each system — the
model trained in this run, the shipped weights, the untrained model and "no translation" — with FID and LPIPS
diversity bootstrapped over the source images (the same resamples for every system, so comparisons are paired).
"""
from __future__ import annotations

import csv
import dataclasses
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from jaxreenact.evaluation import baselines, face_metrics, fid, lpips, protocols
from jaxreenact.evaluation.fid import fid_from_features
from jaxreenact.images import to_uint8
from jaxreenact.inference import loading, reenact, stargan_v2 as sgi
from jaxreenact.train import samples

Progress = Callable[[int, int], None]  # (done, total) of the current stage

DAGAN_METRICS = ("l1", "lpips", "psnr", "ssim", "akd", "aed", "csim")
BOOTSTRAP = 1000


# System.spec values that are not checkpoints
COPY_SOURCE = "baseline:copy_source"  # DaGAN: every prediction is the source frame
NO_TRANSLATION = "baseline:no_translation"  # StarGAN v2: every output is its source image
UNTRAINED = "baseline:untrained"  # a fresh initialisation of the trained models' architecture


@dataclasses.dataclass
class System:
  """One thing whose outputs are measured: a checkpoint (``spec`` as ``--checkpoint`` takes it) or a baseline."""
  name: str  # as shown in the report, e.g. "shipped (20,000 steps)"
  kind: str  # "model" (judged) | "baseline" (a reference point)
  spec: str  # checkpoint spec, or COPY_SOURCE / NO_TRANSLATION / UNTRAINED
  note: str = ""


def load_checkpoint(model: str, spec: str, depth_files: tuple[str, str] | None = None, config: Any = None):
  """``loading.load_*`` of a System spec (UNTRAINED: a fresh initialisation of ``config``)."""
  if model == "stargan_v2":
    if spec == UNTRAINED:
      return loading.load_stargan_v2("random:tiny", config=config)
    return loading.load_stargan_v2(spec)
  if spec == UNTRAINED:
    return loading.Loaded("dagan", config, loading.random_dagan_variables(config), "fresh initialisation",
                              "random")
  enc, dec = depth_files or (None, None)
  return loading.load_dagan(spec, depth_encoder=enc, depth_decoder=dec)


def safe_name(name: str) -> str:
  """A system name as a file name."""
  return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _comparisons(per_item: Mapping[str, Mapping[str, Sequence[float | None]]], systems: Sequence[System],
                 metrics: Sequence[str]) -> list[dict[str, Any]]:
  """Paired verdicts: every model against every baseline, per metric."""
  rows = []
  for m in (s for s in systems if s.kind == "model"):
    for b in (s for s in systems if s.kind == "baseline"):
      for metric in metrics:
        c = baselines.paired_comparison(per_item[m.name][metric], per_item[b.name][metric],
                                        higher_is_better=baselines.HIGHER_IS_BETTER[metric], n_boot=BOOTSTRAP)
        rows.append({"model": m.name, "baseline": b.name, "metric": metric, **c})
  return rows


# ------------------------------------------------------------------------------------------------------------
# DaGAN


def dagan_quality(systems: Sequence[System], *, out_dir: str, size: int, data_dir: str | None = None,
                  split: str = "test", max_frames: int | None = None, reference_config: Any = None,
                  depth_files: tuple[str, str] | None = None, progress: Progress | None = None) -> dict[str, Any]:
  """Evaluates every system on the held-out clips; returns summaries, intervals, verdicts and file paths.

  Args:
    systems: models and baselines; ``UNTRAINED`` is drawn fresh with ``reference_config`` (the trained models'
      architecture).
    size: evaluation resolution (the trained models' size).
    data_dir: prepared talking_heads TFDS dir (default: the embedded sample data).
    depth_files: (encoder.pth, depth.pth) for official PyTorch checkpoints.
  """
  from jaxreenact.data import load_talking_heads, sample_data_dir, video_frames  # imports tensorflow_datasets

  os.makedirs(out_dir, exist_ok=True)
  data_dir = data_dir or sample_data_dir().dagan
  view = load_talking_heads(data_dir, split)
  clips = []
  for name, *_ in view.videos:
    frames = video_frames(data_dir, split, name, size)
    clips.append((name, frames[:max_frames] if max_frames else frames, None))
  lp = lpips.default_lpips()
  analyzer = face_metrics.FaceAnalyzer(embeddings=True)
  per_frame: dict[str, dict[str, list]] = {}
  summaries, loaded_info, strips = {}, {}, {}
  for i, s in enumerate(systems):
    if s.spec == COPY_SOURCE:
      model = baselines.CopySource()
    else:
      loaded = load_checkpoint("dagan", s.spec, depth_files, reference_config)
      loaded_info[s.name] = {"source": loaded.source, "kind": loaded.kind, "step": loaded.step}
      model = reenact.Reenactor(loaded.config, loaded.variables)
    shown = {}

    def keep(name, source, driving, prediction, shown=shown):
      shown.setdefault("row", (source, driving, prediction))

    res = protocols.evaluate_dagan(model, clips, metrics=DAGAN_METRICS, lpips_metric=lp, analyzer=analyzer,
                                   on_clip=keep, progress=False)
    per_frame[s.name] = {m: [r[m] for r in res["frames"]] for m in DAGAN_METRICS}
    per_frame[s.name]["_keys"] = [(r["clip"], r["driving_frame"]) for r in res["frames"]]
    summaries[s.name] = {m: baselines.bootstrap_ci(per_frame[s.name][m], n_boot=BOOTSTRAP) for m in DAGAN_METRICS}
    strips[s.name] = shown["row"]
    if progress:
      progress(i + 1, len(systems))
  keys = {tuple(v["_keys"]) for v in per_frame.values()}
  if len(keys) != 1:
    raise RuntimeError("systems were evaluated on different frames; paired comparisons are impossible")
  comparisons = _comparisons(per_frame, systems, DAGAN_METRICS)
  # per-frame table (one row per frame, one column per system × metric)
  frame_keys = per_frame[systems[0].name]["_keys"]
  with open(os.path.join(out_dir, "frames.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["clip", "driving_frame", *[f"{s.name}:{m}" for s in systems for m in DAGAN_METRICS]])
    for j, (clip, d) in enumerate(frame_keys):
      w.writerow([clip, d, *[per_frame[s.name][m][j] for s in systems for m in DAGAN_METRICS]])
  # one picture: per system, source | driving | prediction at three frames of the first clip
  rows, labels = [], []
  for s in systems:
    src, drv, pred = strips[s.name]
    idx = sorted({0, len(drv) // 2, len(drv) - 1})
    rows.append([to_uint8(src, (0.0, 1.0))] + [np.concatenate([to_uint8(drv[k], (0.0, 1.0)),
                                                               to_uint8(pred[k], (0.0, 1.0))], 1) for k in idx])
    labels.append(s.name)
  grid = samples.save_png(os.path.join(out_dir, "systems.png"), _label_rows(rows, labels))
  return {"split": split, "size": size, "clips": [c[0] for c in clips], "frames": len(frame_keys),
          "data_dir": data_dir, "systems": [dataclasses.asdict(s) for s in systems], "loaded": loaded_info,
          "summary": summaries, "comparisons": comparisons, "metrics": list(DAGAN_METRICS),
          "higher_is_better": {m: baselines.HIGHER_IS_BETTER[m] for m in DAGAN_METRICS},
          "files": {"frames_csv": os.path.join(out_dir, "frames.csv"), "systems_png": grid}}


def _label_rows(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str]) -> np.ndarray:
  """Rows of uint8 images side by side, each row preceded by its label rendered as text."""
  from PIL import Image, ImageDraw
  h = max(im.shape[0] for r in rows for im in r)
  out = []
  for r, label in zip(rows, labels):
    tag = Image.new("RGB", (150, h), (255, 255, 255))
    ImageDraw.Draw(tag).multiline_text((4, 4), _wrap(label, 22), fill=(0, 0, 0))
    row = [np.asarray(tag)] + [np.pad(im, ((0, h - im.shape[0]), (2, 2), (0, 0)), constant_values=255) for im in r]
    out.append(np.concatenate(row, 1))
  w = max(r.shape[1] for r in out)
  return np.concatenate([np.pad(r, ((2, 2), (0, w - r.shape[1]), (0, 0)), constant_values=255) for r in out], 0)


def _wrap(text: str, width: int) -> str:
  words, lines, cur = text.split(), [], ""
  for wd in words:
    if cur and len(cur) + 1 + len(wd) > width:
      lines.append(cur)
      cur = wd
    else:
      cur = f"{cur} {wd}".strip()
  return "\n".join(lines + [cur])


# ------------------------------------------------------------------------------------------------------------
# StarGAN v2


def stargan_quality(systems: Sequence[System], *, out_dir: str, num_outs: int = 4, max_per_domain: int | None = 8,
                    reference_config: Any = None, seed: int = 0, progress: Progress | None = None) -> dict[str, Any]:
  """Runs the official protocol for every system on the embedded sample data's val images (FID reals: train).

  ``UNTRAINED`` is a fresh initialisation (the official he_init) of ``reference_config``.
  """

  os.makedirs(out_dir, exist_ok=True)
  cfg = reference_config
  val = sgi.load_sample_domains(cfg.img_size, "val", max_per_domain, cfg.num_domains)
  train = sgi.load_sample_domains(cfg.img_size, "train", None, cfg.num_domains)
  data = protocols.StarGANEvalData(val.domains, val.images, val.labels, train.images, train.labels)
  extractors = fid.make_extractors(["standard"], None, cfg.img_size)
  lp = lpips.default_lpips()
  details: dict[str, dict] = {}
  official, loaded_info, real_cache = {}, {}, {}
  for i, s in enumerate(systems):
    if s.spec == NO_TRANSLATION:
      sampler = baselines.NoTranslation(cfg.latent_dim, cfg.style_dim)
    else:
      loaded = load_checkpoint("stargan_v2", s.spec, config=cfg)
      loaded_info[s.name] = {"source": loaded.source, "kind": loaded.kind, "step": loaded.step}
      sampler = sgi.Sampler(loaded.config, loaded.variables, batch_size=8)
    d: dict[str, Any] = {}
    official[s.name] = protocols.evaluate_stargan_v2(
        sampler, data, out_dir=os.path.join(out_dir, safe_name(s.name)), num_outs=num_outs, batch_size=8,
        fid_extractors=extractors, lpips_metric=lp, seed=seed, progress=False, details=d,
        real_features=real_cache)
    details[s.name] = d
    if progress:
      progress(i + 1, len(systems) + 1)
  stats = _stargan_bootstrap(details, systems, seed)
  if progress:
    progress(len(systems) + 1, len(systems) + 1)
  grid = _stargan_grid(out_dir, systems, val)
  return {"domains": val.domains, "num_val_images": int(len(val.images)), "num_train_images": int(len(train.images)),
          "num_outs_per_source": num_outs, "systems": [dataclasses.asdict(s) for s in systems],
          "loaded": loaded_info, "official": official, **stats, "files": {"systems_png": grid}}


def _stargan_bootstrap(details: Mapping[str, Mapping[str, Any]], systems: Sequence[System],
                       seed: int) -> dict[str, Any]:
  """FID and LPIPS diversity per mode (mean over tasks), bootstrapped over source images; paired verdicts."""
  first = details[systems[0].name]
  real = first["real_features"]
  tasks = sorted(k for k in first if k != "real_features")
  modes = sorted({t.split("/")[0] for t in tasks})
  rng = np.random.default_rng(seed)
  n_src = {t: len(first[t]["lpips_per_source"]) for t in tasks}
  resamples = [{t: rng.integers(0, n, n) for t, n in n_src.items()} for _ in range(BOOTSTRAP // 4)]
  everything = {t: np.arange(n) for t, n in n_src.items()}

  def stat(system: str, metric: str, mode: str, idx: Mapping[str, np.ndarray]) -> float:
    vals = []
    for t in (t for t in tasks if t.startswith(mode + "/")):
      d = details[system][t]
      if metric == "lpips_diversity":
        vals.append(float(np.mean(d["lpips_per_source"][idx[t]])))
      else:
        fake = d["fake_features"]["standard"][idx[t]]  # (n, num_outs, D)
        vals.append(fid_from_features(real[("standard", d["target"])], fake.reshape(-1, fake.shape[-1])))
    return float(np.mean(vals))

  summary: dict[str, dict] = {s.name: {} for s in systems}
  boots: dict[tuple[str, str], np.ndarray] = {}
  for mode in modes:
    for metric in ("fid", "lpips_diversity"):
      key = f"{metric}_{mode}"
      for s in systems:
        b = np.asarray([stat(s.name, metric, mode, r) for r in resamples])
        boots[(s.name, key)] = b
        summary[s.name][key] = {"value": stat(s.name, metric, mode, everything), "lo": float(np.quantile(b, 0.025)),
                                "hi": float(np.quantile(b, 0.975)), "n": int(sum(n_src.values()) // len(modes))}
  comparisons = []
  for m in (s for s in systems if s.kind == "model"):
    for bsys in (s for s in systems if s.kind == "baseline"):
      for key in next(iter(summary.values())):
        metric = key.rsplit("_", 1)[0]
        c = baselines.compare_boots(boots[(m.name, key)], boots[(bsys.name, key)], summary[m.name][key]["value"],
                                    summary[bsys.name][key]["value"],
                                    higher_is_better=baselines.HIGHER_IS_BETTER[metric])
        comparisons.append({"model": m.name, "baseline": bsys.name, "metric": key, **c})
  return {"summary": summary, "comparisons": comparisons, "metrics": list(next(iter(summary.values()))),
          "higher_is_better": {k: baselines.HIGHER_IS_BETTER[k.rsplit("_", 1)[0]]
                               for k in next(iter(summary.values()))},
          "bootstrap": {"resamples": len(resamples), "over": "source images, per task; same resamples for every "
                                                               "system"}}


def _stargan_grid(out_dir: str, systems: Sequence[System], val) -> str:
  """Per system: the first latent-mode outputs of each task (the PNGs the figures were computed from)."""
  from PIL import Image

  rows, labels = [], []
  to_u8 = lambda x: (np.clip((x + 1) / 2, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
  for s in systems:
    base = os.path.join(out_dir, safe_name(s.name), "latent")
    for task in sorted(os.listdir(base)):
      src = next(y for y, d in enumerate(val.domains) if task.startswith(f"{d}2"))
      files = sorted(f for f in os.listdir(os.path.join(base, task)) if f.startswith("0001_"))
      rows.append([to_u8(val.images[val.labels == src][0])] +  # the source, then its outputs
                  [np.asarray(Image.open(os.path.join(base, task, f)).convert("RGB")) for f in files])
      labels.append(f"{s.name}: {task}")
  scale = max(1, 64 // rows[0][0].shape[0])  # tiny images are shown at >= 64 px
  rows = [[im.repeat(scale, 0).repeat(scale, 1) for im in r] for r in rows]
  return samples.save_png(os.path.join(out_dir, "systems.png"), _label_rows(rows, labels))

"""StarGAN v2 sample sheets: the command behind ``python -m launch.sample``.

:func:`run` loads any ``--checkpoint`` (``inference.loading``), draws a reference-guided grid, latent-guided grids
per domain and ψ, and the two interpolation videos, and writes ``results.json`` / ``README.md`` beside them. User
errors raise ``ValueError`` / ``FileNotFoundError`` naming the option or file; a checkpoint that cannot be used
raises ``loading.CheckpointError`` / ``naming.ConversionError`` (both ``ValueError``).
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np
from absl import logging
from tqdm.auto import tqdm

from jaxreenact.data.media import unwritable_reason
from jaxreenact.inference import loading, reports, video
from jaxreenact.inference import stargan_v2 as sgi
from jaxreenact.train import samples

SAMPLE_DATA = "embedded sample data (val)"


@dataclasses.dataclass
class Options:
  """What ``launch.sample`` draws; its flags fill this one to one (see the flags' help)."""
  checkpoint: str
  out_dir: str
  wing_ckpt: str | None = None
  step: int | None = None
  src_dir: str | None = None
  ref_dir: str | None = None
  num_src: int = 6
  num_ref: int = 8
  num_latent: int = 10
  psi: tuple[float, ...] = (1.0,)
  seed: int = 777
  videos: bool = True
  video_latent_codes: int = 4
  fps: float = 15.0
  batch_size: int = 8

  def validate(self) -> None:
    """ValueError naming the option: a missing one, a count below 1, or an --out_dir that cannot be written."""
    if not self.checkpoint or not self.out_dir:
      raise ValueError("--checkpoint and --out_dir are required")
    for name in ("num_src", "num_ref", "num_latent", "video_latent_codes", "batch_size"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name}={getattr(self, name)}: must be at least 1")
    if not self.psi:
      raise ValueError("--psi: give at least one truncation value")
    if self.fps <= 0:
      raise ValueError(f"--fps={self.fps}: must be positive")
    problem = unwritable_reason(self.out_dir)
    if problem:
      raise ValueError(f"--out_dir={self.out_dir}: {problem}")


def pick(images: np.ndarray, labels: np.ndarray, n: int, round_robin: bool) -> tuple[np.ndarray, np.ndarray]:
  """``n`` images: taken in turn from each domain (``round_robin``) or grouped by domain, an equal share each."""
  domains = sorted(set(int(y) for y in labels))
  per = {d: [i for i in range(len(labels)) if labels[i] == d] for d in domains}
  order: list[int] = []
  if round_robin:
    k = 0
    while len(order) < n and any(k < len(v) for v in per.values()):
      order += [per[d][k] for d in domains if k < len(per[d])]
      k += 1
  else:
    share = max(1, -(-n // len(domains)))
    for d in domains:
      order += per[d][:share]
  order = order[:n]
  return images[np.asarray(order)], labels[np.asarray(order)]


def run(opts: Options) -> dict:
  """Draws the sample sheets ``opts`` asks for under ``opts.out_dir``; returns the result written to results.json."""
  opts.validate()
  t0 = time.perf_counter()
  loaded = loading.load_stargan_v2(opts.checkpoint, wing_ckpt=opts.wing_ckpt, step=opts.step)
  cfg = loaded.config
  logging.info("loaded %s (%s, step %s): %s", loaded.source, loaded.kind, loaded.step, cfg)
  if opts.src_dir:
    src = sgi.load_domain_folder(opts.src_dir, cfg.img_size, cfg.num_domains, flag="--src_dir")
  else:
    src = sgi.load_sample_domains(cfg.img_size, "val", num_domains=cfg.num_domains)
  ref = sgi.load_domain_folder(opts.ref_dir, cfg.img_size, cfg.num_domains, flag="--ref_dir") if opts.ref_dir else src
  x_src, _ = pick(src.images, src.labels, opts.num_src, round_robin=True)
  x_ref, y_ref = pick(ref.images, ref.labels, opts.num_ref, round_robin=False)
  sampler = sgi.Sampler(cfg, loaded.variables, batch_size=opts.batch_size)
  os.makedirs(opts.out_dir, exist_ok=True)
  out = lambda name: os.path.join(opts.out_dir, name)  # noqa: E731

  logging.info("reference-guided grid: %d sources × %d references", len(x_src), len(x_ref))
  images = {"reference": samples.save_png(out("reference.png"), sgi.reference_grid(sampler, x_src, x_ref, y_ref))}
  z = np.asarray(jax.random.normal(jax.random.key(opts.seed), (opts.num_latent, cfg.latent_dim)), np.float32)
  psis = [float(p) for p in opts.psi]
  for y, name in enumerate(tqdm(src.domains, desc="latent grids")):
    s_avg = sampler.average_style(y) if any(p != 1.0 for p in psis) else None
    for psi in psis:
      key = f"latent_{name}_psi{psi:g}"
      images[key] = samples.save_png(out(f"{key}.png"), sgi.latent_grid(sampler, x_src, y, z, psi, s_avg))

  videos = {}
  if opts.videos:
    frames = sgi.reference_video(sampler, x_src, x_ref, y_ref)
    if frames:
      videos["video_ref"] = video.write_video(out("video_ref.mp4"), frames, opts.fps)
    else:
      logging.warning("video_ref: needs two references of the same domain; none written")
    frames = sgi.latent_video(sampler, x_src, range(cfg.num_domains), z[:opts.video_latent_codes], psis[0])
    if frames:
      videos["video_latent"] = video.write_video(out("video_latent.mp4"), frames, opts.fps)

  result = {
      "command": "launch.sample",
      "checkpoint": {"path": loaded.source, "kind": loaded.kind, "step": loaded.step},
      "config": dataclasses.asdict(cfg),
      "domains": src.domains,
      "sources": opts.src_dir or SAMPLE_DATA,
      "references": opts.ref_dir or opts.src_dir or SAMPLE_DATA,
      "num_src": int(len(x_src)), "num_ref": int(len(x_ref)), "num_latent": opts.num_latent, "psi": psis,
      "seed": opts.seed,
      "images": {k: os.path.relpath(v, opts.out_dir) for k, v in images.items()},
      "videos": {k: {**v, "path": os.path.relpath(v["path"], opts.out_dir)} for k, v in videos.items()},
      "seconds": round(time.perf_counter() - t0, 2),
      "device": str(jax.devices()[0]),
  }
  reports.write(opts.out_dir, "results", result, title="StarGAN v2 samples")
  return result

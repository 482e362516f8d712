"""Golden outputs of the shipped weights: fixed inputs from the sample data, outputs stored in ``golden.npz``.

  python -m jaxreenact.shipped.golden          # rewrite golden.npz after re-training the shipped weights

The test (``shipped_test.py``) recomputes the outputs and compares them with the stored ones, so a change to the
weights, the loader or the networks that alters what users get is caught.
"""
from __future__ import annotations

import os

import numpy as np

from jaxreenact.study import media

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.npz")


def compute() -> dict[str, np.ndarray]:
  """Outputs of both shipped models on fixed sample-data inputs."""
  from jaxreenact.inference import loading, reenact  # imports jax: keeps this module jax-free
  from jaxreenact.inference import stargan_v2 as sgi  # imports jax: keeps this module jax-free
  out = {}
  dg = loading.load_dagan("shipped:dagan_tiny")
  size = 64
  clips = media.held_out_clips(None, size)
  model = reenact.Reenactor(dg.config, dg.variables)
  res = model.run(clips["train"][0], clips["test"][:4], reenact.Options(relative=False, batch_size=4), progress=False)
  out["dagan_prediction"] = res["prediction"]
  out["dagan_depth"] = res["depth"]
  sg = loading.load_stargan_v2("shipped:stargan_v2_tiny")
  cfg = sg.config
  val = sgi.load_sample_domains(cfg.img_size, "val", 2, cfg.num_domains)
  sampler = sgi.Sampler(cfg, sg.variables, batch_size=4)
  y = np.ones(len(val.images), np.int32)
  z = np.random.default_rng(0).standard_normal((len(val.images), cfg.latent_dim)).astype(np.float32)
  out["stargan_latent"] = sampler.generate(val.images, sampler.style_from_latent(z, y))
  out["stargan_reference"] = sampler.generate(val.images, sampler.style_from_reference(val.images[::-1],
                                                                                       val.labels[::-1]))
  return out


if __name__ == "__main__":
  arrays = compute()
  np.savez_compressed(GOLDEN, **arrays)
  print(f"wrote {GOLDEN}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))

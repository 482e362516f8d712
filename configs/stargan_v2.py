r"""StarGAN v2 experiment configs (big_vision style: one ``get_config(arg)``, variants via ``arg``).

Variants:
  celeba_hq    256 px, 2 domains, w_hpf=1 (needs wing.ckpt: --config.wing_path), λ all 1 (official)
  afhq         256 px, 3 domains, w_hpf=0, λ_ds=2 (official)
  expressions  the study's Table 12: 7 emotion domains (48×48 grayscale faces upsampled to 256), λ_cyc=λ_sty=λ_ds=3
  tiny         32 px, narrow (base_dim 16, max_conv_dim 64): CPU smoke runs and CI

Example launch commands:
  python -m launch.train --config configs/stargan_v2.py:tiny --workdir runs/sg_tiny
  python -m launch.train --config configs/stargan_v2.py:afhq --workdir runs/afhq --config.data_dir=/data/tfds
  python -m launch.train --config configs/stargan_v2.py:tiny --workdir /tmp/t --config.total_steps=20 --dry_run
"""
import dataclasses

import ml_collections
from ml_collections import config_dict

VARIANTS = ("celeba_hq", "afhq", "expressions", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "celeba_hq"
  if variant not in VARIANTS:
    raise ValueError(f"unknown stargan_v2 config variant {variant!r}; choose one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.model_name = "stargan_v2"
  c.variant = variant
  # Top-level run fields shared by every config in configs/.
  c.total_steps = 100_000
  c.batch_size = 8
  c.seed = 777
  c.checkpoint_every = 10_000
  c.sample_every = 5_000
  c.log_every = 10
  c.data_dir = config_dict.placeholder(str)  # None = the embedded sample data (launch.prepare_data sample)
  c.split = "train"
  c.keep_checkpoints = 3
  c.prefetch = 2  # batches read and placed on the devices ahead of the step (0 = synchronous reads)
  c.num_devices = 0  # 0 = every device of every host
  # CPU: convolutions with at most this many output pixels run as matmuls (None = 16 on CPU, 0 elsewhere; 0 keeps
  # every convolution, as the complexity report counts them)
  c.small_conv_pixels = config_dict.placeholder(int)
  # The model is the named preset of stargan_v2.Config (defined once there); base_dim None = official 2**14//img.
  from jaxreenact.models import stargan_v2
  from jaxreenact.train.stargan_v2 import HParams
  model = dataclasses.asdict(stargan_v2.Config.preset(variant))
  c.model = ml_collections.ConfigDict(
      {**model, "base_dim": model["base_dim"] if model["base_dim"] is not None else config_dict.placeholder(int)})
  c.hparams = ml_collections.ConfigDict(dataclasses.asdict(HParams.preset(variant)))  # solver/main.py + per-dataset λ
  c.crop_prob = 0.5
  c.wing_path = config_dict.placeholder(str)  # FAN weights (official wing.ckpt); required when w_hpf > 0
  if variant == "tiny":
    c.total_steps = 200
    c.batch_size = 8
    c.checkpoint_every = 100
    c.sample_every = 100
    c.log_every = 10
  return c

r"""StarGAN v2 experiment configs (big_vision style: one ``get_config(arg)``, variants via ``arg``).

Variants: ``celeba_hq`` (256 px, 2 domains, w_hpf=1, λ all 1), ``afhq`` (256 px, 3 domains, w_hpf=0, λ_ds=2),
``expressions`` (the study's 7-emotion run: λ_cyc=λ_sty=λ_ds=3), ``tiny`` (CPU smoke runs and CI).

Example launch commands:
  python -m launch.convert --model stargan_v2 --torch_ckpt expr/checkpoints/celeba_hq/100000_nets_ema.ckpt \
      --config configs/stargan_v2.py:celeba_hq --out ckpt/celeba_hq
  python -m launch.train --config configs/stargan_v2.py:afhq --workdir runs/afhq
  python -m launch.train --config configs/stargan_v2.py:tiny --workdir /tmp/tiny --config.train.steps=20
"""
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
  c.model = ml_collections.ConfigDict(dict(img_size=256, num_domains=2, latent_dim=16, style_dim=64,
                                           max_conv_dim=512, w_hpf=1.0,
                                           base_dim=config_dict.placeholder(int)))  # None = official 2**14//img
  # core/solver.py + main.py defaults
  c.train = ml_collections.ConfigDict(dict(
      batch_size=8, steps=100_000, lr=1e-4, f_lr=1e-6, beta1=0.0, beta2=0.99, eps=1e-8, weight_decay=1e-4,
      ema_beta=0.999, lambda_reg=1.0, lambda_sty=1.0, lambda_ds=1.0, lambda_cyc=1.0, ds_iter=100_000,
      seed=777, log_every=10, sample_every=5_000, save_every=10_000, keep=3))
  c.data = ml_collections.ConfigDict(dict(data_dir="", split="train", prob_crop=0.5))
  c.wing_path = ""  # FAN weights (wing.ckpt) for w_hpf > 0; required to train/sample with masks
  if variant == "afhq":
    c.model.update(num_domains=3, w_hpf=0.0)
    c.train.lambda_ds = 2.0
  elif variant == "expressions":
    c.model.update(num_domains=7, w_hpf=0.0)
    c.train.update(lambda_ds=3.0, lambda_sty=3.0, lambda_cyc=3.0)
  elif variant == "tiny":
    c.model.update(img_size=32, num_domains=2, latent_dim=8, style_dim=16, max_conv_dim=64, w_hpf=0.0, base_dim=16)
    c.train.update(batch_size=4, steps=20, ds_iter=20, log_every=5, sample_every=10, save_every=10)
  return c

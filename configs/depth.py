r"""DaGAN depth-network configs (self-supervised, harlanhong/Face-Depth-Network = monodepth2 + learned intrinsics).

Variants:
  vox   the official run: 256×256, ResNet-18 depth and pose encoders, batch 32 (README command; run.sh uses 2),
        100k VoxCeleb frames (--sample_num 100000) → 3,125 iterations per epoch, 20 epochs, Adam 1e-4,
        StepLR ×0.1 every 15 epochs (stepped at each epoch start, so the drop lands after epoch 14)
  tiny  64 px, narrow ResNet (one block per stage, widths 8–64): CPU smoke runs and CI

Official defaults that cannot be reproduced offline: ``--weights_init pretrained`` starts both encoders from
torchvision's ImageNet ResNet-18, which is never downloaded here — pass a torchvision state-dict file with
``--config.pretrained_resnet_path=/path/resnet18-f37072fd.pth`` (else training starts from scratch, the
``--weights_init scratch`` option, and the log says so).

Example launch commands:
  python -m launch.train --config configs/depth.py:tiny --workdir runs/depth_tiny
  python -m launch.train --config configs/depth.py:vox --workdir runs/depth_vox --config.data_dir=/data/tfds
  python -m launch.train --config configs/depth.py:tiny --workdir /tmp/d --config.total_steps=20 --dry_run
"""
import ml_collections
from ml_collections import config_dict

VARIANTS = ("vox", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "vox"
  if variant not in VARIANTS:
    raise ValueError(f"unknown depth config variant {variant!r}; choose one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.model_name = "depth"
  c.variant = variant
  # Top-level run fields shared by every config in configs/.
  c.batch_size = 32
  c.num_epochs = 20
  c.sample_num = 100_000  # training frames per epoch (--sample_num); an epoch = sample_num // batch_size steps
  c.total_steps = c.num_epochs * (c.sample_num // c.batch_size)  # 62,500
  c.seed = 777
  c.checkpoint_every = c.sample_num // c.batch_size  # save_frequency: every epoch
  c.sample_every = 2_000  # log_frequency 250 early, every 2000 steps later
  c.log_every = 250
  c.data_dir = config_dict.placeholder(str)  # None = the embedded sample data (launch.prepare_data sample)
  c.split = "train"
  c.keep_checkpoints = 3
  c.prefetch = 2  # batches read and placed on the devices ahead of the step (0 = synchronous reads)
  c.num_devices = 0  # 0 = every device of every host
  # CPU: convolutions with at most this many output pixels run as matmuls (None = 16 on CPU, 0 elsewhere; 0 keeps
  # every convolution, as the complexity report counts them)
  c.small_conv_pixels = config_dict.placeholder(int)
  c.frame_stride = 1  # frame_ids [0, -1, 1]
  c.pretrained_resnet_path = config_dict.placeholder(str)  # torchvision ImageNet ResNet state dict (optional)
  c.model = ml_collections.ConfigDict(dict(
      img_size=256, num_layers=18, block=config_dict.placeholder(str), layers=config_dict.placeholder(tuple),
      widths=(64, 128, 256, 512), num_ch_dec=(16, 32, 64, 128, 256), scales=(0, 1, 2, 3)))
  # options.py defaults as trainer.py uses them
  c.hparams = ml_collections.ConfigDict(dict(
      lr=1e-4, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
      scheduler_step_size=15, scheduler_gamma=0.1, scheduler_at_epoch_start=True, min_depth=0.1, max_depth=100.0,
      disparity_smoothness=1e-3, ssim_weight=0.85, automasking=True, avg_reprojection=False,
      trunc_intrinsics=True))
  if variant == "tiny":
    c.model.update(img_size=64, block="basic", layers=(1, 1, 1, 1), widths=(8, 16, 32, 64),
                   num_ch_dec=(8, 8, 16, 16, 32))
    c.batch_size = 4
    c.sample_num = 40  # 10 iterations per epoch: the lr drop shows up at step 140 of 200
    c.total_steps = c.num_epochs * (c.sample_num // c.batch_size)
    c.checkpoint_every = 100
    c.sample_every = 100
    c.log_every = 10
  return c

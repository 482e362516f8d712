"""Inference: checkpoints from any source, StarGAN v2 sampling, DaGAN reenactment, video I/O, reports.

  checkpoints  --checkpoint resolution: training workdir | launch.convert Orbax dir | official PyTorch file |
               random:<preset> (freshly drawn weights, for pipeline checks)
  stargan_v2   Sampler, reference/latent grids, interpolation videos (core/utils.py layouts)
  reenact      Reenactor (DaGAN demo.py): relative motion, adapt_scale, best frame, face crop, side-by-side, depth
  video        read with frame rate, write H.264 MP4, copy audio (imageio-ffmpeg's binary)
  reports      <name>.json + Markdown
  testing      cached tiny models for tests
"""

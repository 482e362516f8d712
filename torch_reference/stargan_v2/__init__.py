"""PyTorch StarGAN v2 reference (official state_dict layout)."""

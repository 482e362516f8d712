"""PyTorch StarGAN v2 training iteration (the official four phases) for step parity and DeepSpeed profiling."""
from __future__ import annotations

import copy

import torch

from torch_reference.stargan_v2 import losses

TRAINED = ("generator", "mapping_network", "style_encoder", "discriminator")
EMA_MODULES = ("generator", "mapping_network", "style_encoder")


def make_optimizers(nets, lr=1e-4, f_lr=1e-6, beta1=0.0, beta2=0.99, eps=1e-8, weight_decay=1e-4):
  """core/solver.py: torch Adam per network (coupled L2 weight decay), f_lr for the mapping network."""
  return {name: torch.optim.Adam(nets[name].parameters(), lr=f_lr if name == "mapping_network" else lr,
                                 betas=(beta1, beta2), eps=eps, weight_decay=weight_decay) for name in TRAINED}


def make_ema(nets):
  return {name: copy.deepcopy(nets[name]) for name in EMA_MODULES}


@torch.no_grad()
def moving_average(model, model_ema, beta=0.999):
  for p, pe in zip(model.parameters(), model_ema.parameters()):
    pe.data = torch.lerp(p.data, pe.data, beta)


def train_iteration(nets, nets_ema, optims, batch, z_trg, z_trg2, *, lambda_reg=1.0, lambda_sty=1.0, lambda_ds=1.0,
                    lambda_cyc=1.0, ema_beta=0.999, fan=None):
  """One official iteration; ``batch`` holds NCHW tensors x_src, y_src, x_ref, x_ref2, y_ref. Returns losses."""
  x_real, y_org = batch["x_src"], batch["y_src"]
  x_ref, x_ref2, y_trg = batch["x_ref"], batch["x_ref2"], batch["y_ref"]
  masks = fan.get_heatmap(x_real) if fan is not None else None
  masks_fn = fan.get_heatmap if fan is not None else None
  out = {}

  def zero_all():
    for o in optims.values():
      o.zero_grad(set_to_none=False)

  for tag, kw in (("latent", dict(z_trg=z_trg)), ("ref", dict(x_ref=x_ref))):
    loss, aux = losses.d_loss(nets, x_real, y_org, y_trg, masks=masks, lambda_reg=lambda_reg, **kw)
    zero_all()
    loss.backward()
    optims["discriminator"].step()
    out[f"D/{tag}_loss"] = loss.item()
    out.update({f"D/{tag}_{k}": v for k, v in aux.items()})
  g_kw = dict(masks=masks, masks_fn=masks_fn, lambda_sty=lambda_sty, lambda_ds=lambda_ds, lambda_cyc=lambda_cyc)
  for tag, kw, stepped in (("latent", dict(z_trgs=(z_trg, z_trg2)), EMA_MODULES),
                           ("ref", dict(x_refs=(x_ref, x_ref2)), ("generator",))):
    loss, aux = losses.g_loss(nets, x_real, y_org, y_trg, **kw, **g_kw)
    zero_all()
    loss.backward()
    for name in stepped:
      optims[name].step()
    out[f"G/{tag}_loss"] = loss.item()
    out.update({f"G/{tag}_{k}": v for k, v in aux.items()})
  for name in EMA_MODULES:
    moving_average(nets[name], nets_ema[name], ema_beta)
  return out

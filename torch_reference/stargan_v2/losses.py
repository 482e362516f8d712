"""StarGAN v2 objectives in PyTorch (our own rendering of core/solver.py's losses), for parity and training."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def adv_loss(logits, target: int):
  return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def r1_reg(d_out, x_in):
  (grad,) = torch.autograd.grad(d_out.sum(), x_in, create_graph=True, retain_graph=True, only_inputs=True)
  return 0.5 * grad.pow(2).flatten(1).sum(1).mean(0)


def d_loss(nets, x_real, y_org, y_trg, z_trg=None, x_ref=None, masks=None, lambda_reg=1.0):
  x_real = x_real.detach().requires_grad_(True)
  out = nets["discriminator"](x_real, y_org)
  loss_real = adv_loss(out, 1)
  loss_reg = r1_reg(out, x_real)
  with torch.no_grad():
    s_trg = nets["mapping_network"](z_trg, y_trg) if z_trg is not None else nets["style_encoder"](x_ref, y_trg)
    x_fake = nets["generator"](x_real, s_trg, masks=masks)
  loss_fake = adv_loss(nets["discriminator"](x_fake, y_trg), 0)
  loss = loss_real + loss_fake + lambda_reg * loss_reg
  return loss, {"real": loss_real.item(), "fake": loss_fake.item(), "reg": loss_reg.item()}


def g_loss(nets, x_real, y_org, y_trg, z_trgs=None, x_refs=None, masks=None, masks_fn=None, lambda_sty=1.0,
           lambda_ds=1.0, lambda_cyc=1.0):
  if z_trgs is not None:
    s_trg, s_trg2 = (nets["mapping_network"](z, y_trg) for z in z_trgs)
  else:
    s_trg, s_trg2 = (nets["style_encoder"](x, y_trg) for x in x_refs)
  x_fake = nets["generator"](x_real, s_trg, masks=masks)
  loss_adv = adv_loss(nets["discriminator"](x_fake, y_trg), 1)
  loss_sty = (nets["style_encoder"](x_fake, y_trg) - s_trg).abs().mean()
  x_fake2 = nets["generator"](x_real, s_trg2, masks=masks).detach()
  loss_ds = (x_fake - x_fake2).abs().mean()
  cyc_masks = None
  if masks_fn is not None:
    with torch.no_grad():  # official get_heatmap is decorated with @torch.no_grad()
      cyc_masks = masks_fn(x_fake)
  x_rec = nets["generator"](x_fake, nets["style_encoder"](x_real, y_org), masks=cyc_masks)
  loss_cyc = (x_rec - x_real).abs().mean()
  loss = loss_adv + lambda_sty * loss_sty - lambda_ds * loss_ds + lambda_cyc * loss_cyc
  return loss, {"adv": loss_adv.item(), "sty": loss_sty.item(), "ds": loss_ds.item(), "cyc": loss_cyc.item()}

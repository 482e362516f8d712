"""StarGAN v2 objectives (core/solver.py compute_d_loss / compute_g_loss) as pure functions.

``variables`` is ``{module: Flax variables}``; gradients flow only where the official code lets them (fakes are
generated under ``stop_gradient`` in the D loss, the second diversity image is detached in the G loss).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from jaxreenact.losses import at_least_f32

Array = jax.Array
MasksFn = Callable[[Array], tuple[Array, Array]]


def adv_loss(logits: Array, target: int) -> Array:
  """``F.binary_cross_entropy_with_logits(logits, full_like(target))`` (mean)."""
  if target not in (0, 1):
    raise ValueError(f"target must be 0 or 1, got {target}")
  # softplus(-x) = BCE(x, 1); softplus(x) = BCE(x, 0)
  logits = at_least_f32(logits)
  return jnp.mean(jax.nn.softplus(-logits if target == 1 else logits))


def r1_reg(d_fn: Callable[[Array], Array], x_real: Array) -> tuple[Array, Array]:
  """Returns (D(x_real), R1) with R1 = 0.5·mean_b Σ_pixels (∂ΣD/∂x)² (double backprop when differentiated)."""
  out, vjp = jax.vjp(d_fn, x_real)
  (grad,) = vjp(jnp.ones_like(out))  # ∂(Σ out)/∂x
  grad = at_least_f32(grad)
  reg = 0.5 * jnp.mean(jnp.sum(jnp.square(grad).reshape(grad.shape[0], -1), axis=1))
  return out, reg


def d_loss(variables: Mapping[str, Any], nets, x_real: Array, y_org: Array, y_trg: Array, *,
           z_trg: Array | None = None, x_ref: Array | None = None, masks=None,
           lambda_reg: float = 1.0) -> tuple[Array, dict[str, Array]]:
  """Discriminator loss (latent-guided when ``z_trg`` is given, reference-guided when ``x_ref`` is)."""
  if (z_trg is None) == (x_ref is None):
    raise ValueError("give exactly one of z_trg and x_ref")
  disc = lambda x, y: nets.discriminator.apply(variables["discriminator"], x, y)  # noqa: E731
  out, loss_reg = r1_reg(lambda x: disc(x, y_org), x_real)
  loss_real = adv_loss(out, 1)
  if z_trg is not None:
    s_trg = nets.mapping_network.apply(variables["mapping_network"], z_trg, y_trg)
  else:
    s_trg = nets.style_encoder.apply(variables["style_encoder"], x_ref, y_trg)
  x_fake = jax.lax.stop_gradient(nets.generator.apply(variables["generator"], x_real,
                                                      jax.lax.stop_gradient(s_trg), masks=masks))  # torch.no_grad
  loss_fake = adv_loss(disc(x_fake, y_trg), 0)
  loss = loss_real + loss_fake + lambda_reg * loss_reg
  return loss, {"real": loss_real, "fake": loss_fake, "reg": loss_reg}


def g_loss(variables: Mapping[str, Any], nets, x_real: Array, y_org: Array, y_trg: Array, *,
           z_trgs: tuple[Array, Array] | None = None, x_refs: tuple[Array, Array] | None = None, masks=None,
           masks_fn: MasksFn | None = None, lambda_sty: float = 1.0, lambda_ds: float | Array = 1.0,
           lambda_cyc: float = 1.0) -> tuple[Array, dict[str, Array]]:
  """Generator loss: adversarial + style reconstruction − diversity + cycle consistency.

  ``masks_fn`` (the FAN's ``get_heatmap``) computes the cycle pass's masks from ``x_fake`` when w_hpf > 0.
  """
  if (z_trgs is None) == (x_refs is None):
    raise ValueError("give exactly one of z_trgs and x_refs")
  # Network outputs in float32 (at least): with a bf16 compute dtype the loss arithmetic stays float32.
  G = lambda x, s, m: at_least_f32(nets.generator.apply(variables["generator"], x, s, masks=m))  # noqa: E731
  E = lambda x, y: at_least_f32(nets.style_encoder.apply(variables["style_encoder"], x, y))  # noqa: E731
  if z_trgs is not None:
    F_ = lambda z: at_least_f32(nets.mapping_network.apply(variables["mapping_network"], z, y_trg))  # noqa: E731
    s_trg, s_trg2 = F_(z_trgs[0]), F_(z_trgs[1])
  else:
    s_trg, s_trg2 = E(x_refs[0], y_trg), E(x_refs[1], y_trg)
  x_fake = G(x_real, s_trg, masks)
  loss_adv = adv_loss(nets.discriminator.apply(variables["discriminator"], x_fake, y_trg), 1)
  loss_sty = jnp.mean(jnp.abs(E(x_fake, y_trg) - s_trg))
  x_fake2 = jax.lax.stop_gradient(G(x_real, s_trg2, masks))  # official .detach()
  loss_ds = jnp.mean(jnp.abs(x_fake - x_fake2))
  # official FAN.get_heatmap runs under @torch.no_grad(): no gradient through the cycle pass's masks
  cyc_masks = jax.lax.stop_gradient(masks_fn(x_fake)) if masks_fn is not None else None
  x_rec = G(x_fake, E(x_real, y_org), cyc_masks)
  loss_cyc = jnp.mean(jnp.abs(x_rec - x_real))
  loss = loss_adv + lambda_sty * loss_sty - lambda_ds * loss_ds + lambda_cyc * loss_cyc
  return loss, {"adv": loss_adv, "sty": loss_sty, "ds": loss_ds, "cyc": loss_cyc}

"""StarGAN v2: JAX vs torch_reference, module by module and loss by loss (float32, highest precision)."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp

from jaxreenact.checkpoint import torch_convert
from jaxreenact.losses import stargan_v2 as jlosses
from jaxreenact.models import stargan_v2
from jaxreenact.testing import nchw_to_nhwc, nhwc_to_nchw

torch = pytest.importorskip("torch")
from torch_reference.stargan_v2 import losses as tlosses  # noqa: E402
from torch_reference.stargan_v2 import model as tmodel  # noqa: E402

# one xdist worker runs this module, so its module-scoped fixtures (shared runs/models) are built once
pytestmark = pytest.mark.xdist_group("stargan_v2_parity_test")

# 64 px exercises both high-pass masks (32 and 64 px); base_dim 32 keeps it cheap. The w_hpf=0 case keeps the
# official base width (2**14 // 32 = 512 channels).
HPF = stargan_v2.Config(img_size=64, num_domains=3, latent_dim=8, style_dim=16, max_conv_dim=64, w_hpf=1, base_dim=32)
NOHPF = stargan_v2.Config(img_size=32, num_domains=2, latent_dim=16, style_dim=64, max_conv_dim=128, w_hpf=0)


def _torch_nets(cfg, seed=0):
  torch.manual_seed(seed)
  nets = tmodel.build_nets_from_config(cfg, he=True)
  g = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for net in nets.values():
      for name, p in net.named_parameters():
        if name.endswith("bias"):
          p.copy_(0.1 * torch.randn(p.shape, generator=g))
        elif p.ndim == 1:  # InstanceNorm affine weight
          p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
    for net in nets.values():
      net.eval()
  return nets


def _convert(nets_t, cfg):
  sds = {k: v.state_dict() for k, v in nets_t.items()}
  return torch_convert.stargan_v2_from_torch(sds, cfg)


def _inputs(cfg, batch=2, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, (batch, cfg.img_size, cfg.img_size, 3)).astype(np.float32)
  x2 = rng.uniform(-1, 1, (batch, cfg.img_size, cfg.img_size, 3)).astype(np.float32)
  x3 = rng.uniform(-1, 1, (batch, cfg.img_size, cfg.img_size, 3)).astype(np.float32)
  z = rng.standard_normal((batch, cfg.latent_dim)).astype(np.float32)
  z2 = rng.standard_normal((batch, cfg.latent_dim)).astype(np.float32)
  y = np.arange(batch, dtype=np.int64) % cfg.num_domains
  y2 = (np.arange(batch, dtype=np.int64) + 1) % cfg.num_domains
  m0 = rng.uniform(0, 1, (batch, 256, 256, 1)).astype(np.float32)
  m1 = rng.uniform(0, 1, (batch, 256, 256, 1)).astype(np.float32)
  return dict(x=x, x2=x2, x3=x3, z=z, z2=z2, y=y, y2=y2, masks=(m0, m1))


def _t(a):
  a = np.asarray(a)
  return torch.from_numpy(nhwc_to_nchw(a) if a.ndim == 4 else a.copy())


@pytest.fixture(scope="module", params=[HPF, NOHPF], ids=["w_hpf1_64px", "w_hpf0_32px"])
def setup(request):
  cfg = request.param
  nets_t = _torch_nets(cfg)
  return cfg, nets_t, stargan_v2.build(cfg), _convert(nets_t, cfg), _inputs(cfg)


def test_param_counts_and_keys_one_to_one(setup):
  cfg, nets_t, nets_j, variables, _ = setup
  for name, net in nets_t.items():
    n_torch = sum(p.numel() for p in net.parameters())
    assert stargan_v2.count_params(variables[name]) == n_torch, name
    back = torch_convert.stargan_v2_to_torch({name: variables[name]}, cfg)[name]
    assert set(back) == set(net.state_dict()), name


def test_mapping_network(setup):
  cfg, nets_t, nets_j, v, inp = setup
  s_j = nets_j.mapping_network.apply(v["mapping_network"], inp["z"], inp["y"].astype(np.int32))
  with torch.no_grad():
    s_t = nets_t["mapping_network"](_t(inp["z"]), _t(inp["y"]))
  np.testing.assert_allclose(np.asarray(s_j), s_t.numpy(), atol=1e-5, rtol=0)


def test_style_encoder(setup):
  cfg, nets_t, nets_j, v, inp = setup
  s_j = nets_j.style_encoder.apply(v["style_encoder"], inp["x"], inp["y"].astype(np.int32))
  with torch.no_grad():
    s_t = nets_t["style_encoder"](_t(inp["x"]), _t(inp["y"]))
  assert s_j.shape == (2, cfg.style_dim)
  np.testing.assert_allclose(np.asarray(s_j), s_t.numpy(), atol=1e-5, rtol=0)


def test_discriminator(setup):
  cfg, nets_t, nets_j, v, inp = setup
  d_j = nets_j.discriminator.apply(v["discriminator"], inp["x"], inp["y"].astype(np.int32))
  with torch.no_grad():
    d_t = nets_t["discriminator"](_t(inp["x"]), _t(inp["y"]))
  assert d_j.shape == (2,)
  np.testing.assert_allclose(np.asarray(d_j), d_t.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("with_masks", [False, True])
def test_generator(setup, with_masks):
  cfg, nets_t, nets_j, v, inp = setup
  if with_masks and cfg.w_hpf <= 0:
    with pytest.raises(ValueError, match="w_hpf"):
      nets_j.generator.apply(v["generator"], inp["x"], jnp.zeros((2, cfg.style_dim)), masks=inp["masks"])
    return
  s = np.random.default_rng(5).standard_normal((2, cfg.style_dim)).astype(np.float32)
  masks = inp["masks"] if with_masks else None
  out_j = jax.jit(nets_j.generator.apply)(v["generator"], inp["x"], s, masks=masks)
  with torch.no_grad():
    out_t = nets_t["generator"](_t(inp["x"]), _t(s), masks=None if masks is None else tuple(_t(m) for m in masks))
  assert out_j.shape == inp["x"].shape
  assert float(np.abs(nchw_to_nhwc(out_t)).max()) > 0.1  # non-trivial output
  np.testing.assert_allclose(np.asarray(out_j), nchw_to_nhwc(out_t), atol=1e-4, rtol=0)


def test_round_trip_exact(setup):
  cfg, nets_t, _, v, _ = setup
  back = torch_convert.stargan_v2_to_torch(v, cfg)
  for name, net in nets_t.items():
    for key, val in net.state_dict().items():
      np.testing.assert_array_equal(back[name][key], val.numpy(), err_msg=f"{name}.{key}")


def _masks_fn_jax(x):
  """A deterministic stand-in for FAN.get_heatmap, the same in both frameworks (exercises the cycle-mask path)."""
  from jaxreenact.layers.resample import resize_bilinear
  m = jax.nn.sigmoid(jnp.mean(x, axis=-1, keepdims=True) * 3.0)
  m = resize_bilinear(m, (256, 256), align_corners=False)
  return m, 1.0 - m


def _masks_fn_torch(x):
  m = torch.sigmoid(x.mean(1, keepdim=True) * 3.0)
  m = torch.nn.functional.interpolate(m, size=(256, 256), mode="bilinear", align_corners=False)
  return m, 1.0 - m


@pytest.mark.parametrize("mode", ["latent", "reference"])
def test_losses_match(setup, mode):
  cfg, nets_t, nets_j, v, inp = setup
  hp = cfg.w_hpf > 0
  masks_j = inp["masks"] if hp else None
  masks_t = tuple(_t(m) for m in inp["masks"]) if hp else None
  y_org, y_trg = inp["y"], inp["y2"]
  kw_j = dict(z_trg=inp["z"]) if mode == "latent" else dict(x_ref=inp["x2"])
  kw_t = dict(z_trg=_t(inp["z"])) if mode == "latent" else dict(x_ref=_t(inp["x2"]))
  dl_j, daux_j = jlosses.d_loss(v, nets_j, jnp.asarray(inp["x"]), y_org.astype(np.int32), y_trg.astype(np.int32),
                                masks=masks_j, **kw_j)
  dl_t, daux_t = tlosses.d_loss(nets_t, _t(inp["x"]), _t(y_org), _t(y_trg), masks=masks_t, **kw_t)
  assert daux_t["reg"] > 0
  np.testing.assert_allclose(float(dl_j), dl_t.item(), rtol=1e-5)
  for k in daux_t:
    np.testing.assert_allclose(float(daux_j[k]), daux_t[k], rtol=1e-5, err_msg=k)

  if mode == "latent":
    gkw_j, gkw_t = dict(z_trgs=(inp["z"], inp["z2"])), dict(z_trgs=(_t(inp["z"]), _t(inp["z2"])))
  else:
    gkw_j, gkw_t = dict(x_refs=(inp["x2"], inp["x3"])), dict(x_refs=(_t(inp["x2"]), _t(inp["x3"])))
  lam = dict(lambda_sty=3.0, lambda_ds=2.0, lambda_cyc=3.0)
  gl_j, gaux_j = jlosses.g_loss(v, nets_j, jnp.asarray(inp["x"]), y_org.astype(np.int32), y_trg.astype(np.int32),
                                masks=masks_j, masks_fn=_masks_fn_jax if hp else None, **gkw_j, **lam)
  gl_t, gaux_t = tlosses.g_loss(nets_t, _t(inp["x"]), _t(y_org), _t(y_trg), masks=masks_t,
                                masks_fn=_masks_fn_torch if hp else None, **gkw_t, **lam)
  np.testing.assert_allclose(float(gl_j), gl_t.item(), rtol=1e-5)
  for k in gaux_t:
    np.testing.assert_allclose(float(gaux_j[k]), gaux_t[k], rtol=1e-5, err_msg=k)


def test_r1_gradient_flows_to_discriminator_params(setup):
  """The R1 term is differentiable w.r.t. D's parameters (double backprop), like torch's create_graph=True."""
  cfg, nets_t, nets_j, v, inp = setup
  x = jnp.asarray(inp["x"])
  y = inp["y"].astype(np.int32)

  def reg(dvars):
    return jlosses.r1_reg(lambda xx: nets_j.discriminator.apply(dvars, xx, y), x)[1]

  g_j = jax.grad(reg)(v["discriminator"])
  xt = _t(inp["x"]).requires_grad_(True)
  out = nets_t["discriminator"](xt, _t(inp["y"]))
  tlosses.r1_reg(out, xt).backward()
  w = nets_t["discriminator"].main[0].weight.grad.numpy().transpose(2, 3, 1, 0)
  np.testing.assert_allclose(np.asarray(g_j["params"]["main_0"]["kernel"]), w, rtol=1e-4,
                             atol=1e-6 * float(np.abs(w).max()))

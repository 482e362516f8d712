"""DaGAN networks, Flax vs our PyTorch reference (eval mode, randomised weights and BN statistics, float32 at
highest precision): keypoints, dense motion, both generators, the discriminator, and a train-mode step."""
import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.checkpoint.dagan_convert import dagan_from_torch
from jaxreenact.models import dagan
from jaxreenact.models.dagan.dense_motion import DenseMotionNetwork
from jaxreenact.testing import nchw_to_nhwc
from parity_tests.dagan_common import B, S, close, nhwc, random_kp, state_dicts, tiny_config, torch_networks

# one xdist worker runs this module, so its module-scoped fixtures (shared runs/models) are built once
pytestmark = pytest.mark.xdist_group("dagan_parity_test")

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def dagan_pair():
  cfg = tiny_config()
  tnets = torch_networks(cfg, seed=0)
  variables = dagan_from_torch(state_dicts(tnets), cfg)
  return cfg, tnets, dagan.build(cfg), variables


@pytest.fixture(scope="module")
def images():
  g = torch.Generator().manual_seed(123)
  return torch.rand(B, 3, S, S, generator=g), torch.rand(B, 3, S, S, generator=g)


def test_torch_reference_parameter_counts():
  """The reference classes reproduce the official parameter counts (docs/facts.md §2)."""
  from torch_reference.dagan.factory import build_torch
  from torch_reference.dagan.util import count_params

  for num_kp, kp, gen, dense, disc in ((15, 14_262_519, 46_096_917, 37_796_433, 2_774_209),
                                       (10, 14_218_394, 46_030_752, 37_730_268, 2_769_089)):
    nets = build_torch(dagan.Config.vox256(num_kp=num_kp), depth=False)
    assert count_params(nets["kp_detector"]) == kp
    assert count_params(nets["generator"]) == gen
    assert count_params(nets["generator"].dense_motion_network) == dense
    assert count_params(nets["generator"].AttnModule) == 82_241
    assert count_params(nets["discriminator"]) == disc
    sizes = {k: len(m.state_dict()) for k, m in nets.items()}
    assert sizes == {"kp_detector": 75, "generator": 224, "discriminator": 16}  # official key counts
  spade = build_torch(dagan.Config.vox256(generator="SPADEDepthAwareGenerator"), depth=False)["generator"]
  assert count_params(spade) == 67_545_305


def test_depth_to_keypoints(dagan_pair, images):
  cfg, tnets, nets, v = dagan_pair
  src, _ = images
  with torch.no_grad():
    disp = tnets["depth_decoder"](tnets["depth_encoder"](src))[("disp", 0)]
    kp = tnets["kp_detector"](torch.cat([src, disp], 1))

  @jax.jit
  def run(v, img):
    d = nets.depth.apply(v["depth"], img)[0]
    return d, nets.kp_detector.apply(v["kp_detector"], jnp.concatenate([img, d], -1))

  jd, jkp = run(v, nhwc(src))
  close(jd, nchw_to_nhwc(disp), 1e-5, "depth")
  close(jkp["value"], kp["value"], 1e-5, "kp value")
  close(jkp["jacobian"], kp["jacobian"], 1e-5, "kp jacobian")
  assert float(np.std(kp["value"].numpy())) > 1e-3  # the keypoints are not all at one place


def test_dense_motion(dagan_pair, images):
  cfg, tnets, _, v = dagan_pair
  src, _ = images
  tkp_s, jkp_s = random_kp(1, B, cfg.num_kp)
  tkp_d, jkp_d = random_kp(2, B, cfg.num_kp)
  tdm = tnets["generator"].dense_motion_network
  with torch.no_grad():
    out = tdm(src, kp_driving=tkp_d, kp_source=tkp_s)
  dm = cfg.generator_params.dense_motion_params
  net = DenseMotionNetwork(dm.block_expansion, dm.num_blocks, dm.max_features, cfg.num_kp, cfg.num_channels,
                           cfg.generator_params.estimate_occlusion_map, dm.scale_factor, dm.kp_variance)
  sub = {col: v["generator"][col]["dense_motion_network"] for col in ("params", "batch_stats")}
  jout = jax.jit(net.apply)(sub, nhwc(src), jkp_d, jkp_s)
  close(jout["deformation"], out["deformation"], 1e-5, "deformation")
  close(jout["mask"], nchw_to_nhwc(out["mask"]), 1e-5, "mask")
  close(jout["occlusion_map"], nchw_to_nhwc(out["occlusion_map"]), 1e-5, "occlusion")
  close(jout["sparse_deformed"], out["sparse_deformed"].numpy().transpose(0, 1, 3, 4, 2), 1e-4, "sparse_deformed")


def _compare_generator(cfg, tgen, gen, gvars, src, pred_atol):
  tkp_s, jkp_s = random_kp(3, B, cfg.num_kp)
  tkp_d, jkp_d = random_kp(4, B, cfg.num_kp)
  depth = torch.rand(B, 1, S, S, generator=torch.Generator().manual_seed(5))
  with torch.no_grad():
    out = tgen(src, kp_driving=tkp_d, kp_source=tkp_s, source_depth=depth, driving_depth=depth)
  jout = jax.jit(gen.apply)(gvars, nhwc(src), jkp_d, jkp_s, nhwc(depth))
  assert set(jout) == {"prediction", "deformed", "occlusion_map", "mask", "sparse_deformed", "attention"}
  close(jout["prediction"], nchw_to_nhwc(out["prediction"]), pred_atol, "prediction")
  close(jout["deformed"], nchw_to_nhwc(out["deformed"]), 1e-4, "deformed")  # grid_sample of a ×4 upsampled flow
  close(jout["occlusion_map"], nchw_to_nhwc(out["occlusion_map"]), 1e-5, "occlusion_map")
  close(jout["mask"], nchw_to_nhwc(out["mask"]), 1e-5, "mask")
  close(jout["sparse_deformed"], out["sparse_deformed"].numpy().transpose(0, 1, 3, 4, 2), 1e-4, "sparse_deformed")
  close(jout["attention"], out["attention"], 1e-5, "attention")
  assert float(out["prediction"].std()) > 1e-3


def test_depth_aware_generator(dagan_pair, images):
  cfg, tnets, nets, v = dagan_pair
  _compare_generator(cfg, tnets["generator"], nets.generator, v["generator"], images[0], 1e-5)


def test_spade_depth_aware_generator(images):
  cfg = tiny_config(generator="SPADEDepthAwareGenerator")
  tnets = torch_networks(cfg, seed=10, depth=False)
  v = dagan_from_torch({"generator": tnets["generator"].state_dict()}, cfg)
  assert "spectral" in v["generator"]
  _compare_generator(cfg, tnets["generator"], dagan.build(cfg).generator, v["generator"], images[0], 1e-5)


def test_multiscale_discriminator(images):
  """Scales (1, 0.5): keys discs.1 / discs.0-5, pyramid inputs, keypoint heatmaps, feature maps."""
  cfg = tiny_config(**{"discriminator_params.scales": (1, 0.5)})
  tnets = torch_networks(cfg, seed=20, depth=False)
  tdisc = tnets["discriminator"]
  assert any(k.startswith("discs.0-5.") for k in tdisc.state_dict())
  v = dagan_from_torch({"discriminator": tdisc.state_dict()}, cfg)
  from torch_reference.dagan.model import ImagePyramide
  img = images[1]
  tkp, jkp = random_kp(6, B, cfg.num_kp)
  with torch.no_grad():
    out = tdisc(ImagePyramide([1, 0.5], 3)(img), kp=tkp)
  jout = jax.jit(dagan.build(cfg).discriminator.apply)(v["discriminator"], nhwc(img), jkp)
  for s in ("1", "0.5"):
    assert len(jout[f"feature_maps_{s}"]) == len(out[f"feature_maps_{s}"]) == 3
    for i, (a, b) in enumerate(zip(jout[f"feature_maps_{s}"], out[f"feature_maps_{s}"])):
      close(a, nchw_to_nhwc(b), 1e-4, f"feature map {i} at scale {s}")
    close(jout[f"prediction_map_{s}"], nchw_to_nhwc(out[f"prediction_map_{s}"]), 1e-4, f"prediction map {s}")


def test_kp_detector_train_mode_step(dagan_pair, images):
  """train=True with mutable batch_stats == torch train mode: outputs and updated running statistics."""
  cfg, tnets, nets, v = dagan_pair
  tkp = copy.deepcopy(tnets["kp_detector"]).train()
  x = torch.cat([images[0], torch.rand(B, 1, S, S, generator=torch.Generator().manual_seed(7))], 1)
  with torch.no_grad():
    out = tkp(x)
  jout, upd = jax.jit(lambda v, x: nets.kp_detector.apply(v, x, train=True, mutable=["batch_stats"]))(
      v["kp_detector"], nhwc(x))
  close(jout["value"], out["value"], 1e-5, "value")
  close(jout["jacobian"], out["jacobian"], 1e-5, "jacobian")
  sd = tkp.state_dict()
  for name, block in (("encoder.down_blocks.0", ("encoder", "down_blocks_0")),
                      ("decoder.up_blocks.2", ("decoder", "up_blocks_2"))):
    stats = upd["batch_stats"]["predictor"][block[0]][block[1]]["norm"]
    close(stats["mean"], sd[f"predictor.{name}.norm.running_mean"], 1e-5, f"{name} running_mean")
    close(stats["var"], sd[f"predictor.{name}.norm.running_var"], 1e-5, f"{name} running_var")

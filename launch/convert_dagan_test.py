"""launch.convert --model dagan: official-layout files written by torch_reference -> Orbax -> same outputs -> back."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxreenact.checkpoint import orbax_io
from jaxreenact.inference.loading import dagan_config_from_dict
from jaxreenact.models import dagan
from jaxreenact.testing import nchw_to_nhwc

torch = pytest.importorskip("torch")
from parity_tests import dagan_common as common  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
  return subprocess.run([sys.executable, "-m", "launch.convert", *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=600, env=dict(os.environ, JAX_PLATFORMS="cpu"))


@pytest.mark.slow
def test_cli_round_trip_reproduces_reference_keypoints_and_depth(tmp_path):
  from jaxreenact.train.dagan_runner import model_config
  from configs import dagan as dcfg
  cfg = model_config(dcfg.get_config("tiny"))
  tnets = common.torch_networks(cfg, seed=5)
  sds = {k: v.state_dict() for k, v in tnets.items()}
  prefixed = lambda sd: {f"module.{k}": v for k, v in sd.items()}  # noqa: E731  DDP checkpoints
  torch.save({"generator": prefixed(sds["generator"]), "kp_detector": prefixed(sds["kp_detector"]),
              "discriminator": prefixed(sds["discriminator"]), "epoch": 3}, tmp_path / "DaGAN.pth.tar")
  torch.save(dict(sds["depth_encoder"], height=64, width=64, use_stereo=False), tmp_path / "encoder.pth")
  torch.save(sds["depth_decoder"], tmp_path / "depth.pth")
  res = _run("--model", "dagan", "--torch_ckpt", str(tmp_path / "DaGAN.pth.tar"), "--depth_encoder",
             str(tmp_path / "encoder.pth"), "--depth_decoder", str(tmp_path / "depth.pth"),
             "--config", "configs/dagan.py:tiny", "--out", str(tmp_path / "orbax"))
  assert res.returncode == 0, res.stderr[-3000:]
  variables, meta = orbax_io.load_variables(tmp_path / "orbax")
  assert sorted(variables) == ["depth", "discriminator", "generator", "kp_detector"]
  jcfg = dagan_config_from_dict(meta["config"])
  assert jcfg == cfg
  nets = dagan.build(jcfg)
  x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
  with torch.no_grad():
    disp = tnets["depth_decoder"](tnets["depth_encoder"](x))[("disp", 0)]
    kp = tnets["kp_detector"](torch.cat([x, disp], 1))
  d_j = nets.depth.apply(variables["depth"], nchw_to_nhwc(x))[0]
  np.testing.assert_allclose(np.asarray(d_j), nchw_to_nhwc(disp), atol=1e-5)
  kp_j = nets.kp_detector.apply(variables["kp_detector"], np.concatenate([nchw_to_nhwc(x), np.asarray(d_j)], -1))
  np.testing.assert_allclose(np.asarray(kp_j["value"]), kp["value"].numpy(), atol=1e-5)
  np.testing.assert_allclose(np.asarray(kp_j["jacobian"]), kp["jacobian"].numpy(), atol=1e-5)
  # back to the official layout: .pth.tar + encoder.pth + depth.pth that load strictly into the reference classes
  back = tmp_path / "back" / "DaGAN.pth.tar"
  res = _run("--model", "dagan", "--to_torch", "--orbax_dir", str(tmp_path / "orbax"), "--out", str(back))
  assert res.returncode == 0, res.stderr[-3000:]
  obj = torch.load(back, weights_only=True)
  fresh = common.torch_networks(cfg, seed=99)
  for name in ("generator", "kp_detector", "discriminator"):
    fresh[name].load_state_dict(obj[name], strict=True)
  fresh["depth_decoder"].load_state_dict(torch.load(back.parent / "depth.pth", weights_only=True), strict=True)
  enc = {k: v for k, v in torch.load(back.parent / "encoder.pth", weights_only=True).items() if hasattr(v, "shape")}
  fresh["depth_encoder"].load_state_dict(enc, strict=True)
  for name in ("kp_detector", "generator"):
    for k, v in sds[name].items():
      if v.dtype.is_floating_point:
        torch.testing.assert_close(fresh[name].state_dict()[k], v, rtol=0, atol=0)

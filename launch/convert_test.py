"""launch.convert end to end: an official-layout file written by torch_reference -> Orbax -> same outputs."""
import os
import subprocess
import sys

import numpy as np
import pytest
import jax

from jaxreenact.checkpoint import orbax_io, torch_convert
from jaxreenact.models import stargan_v2
from jaxreenact.testing import nchw_to_nhwc, nhwc_to_nchw

torch = pytest.importorskip("torch")
from torch_reference.stargan_v2 import model as tmodel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = stargan_v2.Config(img_size=32, num_domains=3, latent_dim=8, style_dim=16, max_conv_dim=64, w_hpf=1)


def _run(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "launch.convert", *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
  """Mimics the released CelebA-HQ quirks: DataParallel 'module.' prefix and no 'hpf.filter' buffer."""
  torch.manual_seed(0)
  nets = tmodel.build_nets(CFG.img_size, CFG.num_domains, CFG.latent_dim, CFG.style_dim, CFG.max_conv_dim, CFG.w_hpf)
  obj = {}
  for name, net in nets.items():
    if name == "discriminator":
      continue  # a *_nets_ema.ckpt holds G, F, E only
    sd = {k: v for k, v in net.state_dict().items() if k != "hpf.filter"}
    obj[name] = {"module." + k: v for k, v in sd.items()}
  path = tmp_path_factory.mktemp("ckpt") / "100000_nets_ema.ckpt"
  torch.save(obj, path)
  return path, nets


def test_cli_converts_and_reproduces_reference_outputs(official_file, tmp_path):
  path, nets = official_file
  res = _run("--model", "stargan_v2", "--torch_ckpt", str(path), "--out", str(tmp_path / "orbax"))
  assert res.returncode == 0, res.stderr[-3000:]
  variables, meta = orbax_io.load_variables(tmp_path / "orbax")
  assert meta["config"]["img_size"] == 32 and meta["config"]["num_domains"] == 3 and meta["config"]["w_hpf"] == 1.0
  assert sorted(variables) == ["generator", "mapping_network", "style_encoder"]
  cfg = stargan_v2.Config(**meta["config"])
  jn = stargan_v2.build(cfg)
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  z = rng.standard_normal((2, 8)).astype(np.float32)
  y = np.array([2, 0])
  masks = tuple(rng.uniform(0, 1, (2, 256, 256, 1)).astype(np.float32) for _ in range(2))
  s_j = jn.mapping_network.apply(variables["mapping_network"], z, y)
  out_j = jn.generator.apply(variables["generator"], x, s_j, masks=masks)
  e_j = jn.style_encoder.apply(variables["style_encoder"], x, y)
  with torch.no_grad():
    s_t = nets["mapping_network"](torch.from_numpy(z), torch.from_numpy(y))
    out_t = nets["generator"](torch.from_numpy(nhwc_to_nchw(x)), s_t,
                              masks=tuple(torch.from_numpy(nhwc_to_nchw(m)) for m in masks))
    e_t = nets["style_encoder"](torch.from_numpy(nhwc_to_nchw(x)), torch.from_numpy(y))
  np.testing.assert_allclose(np.asarray(s_j), s_t.numpy(), atol=1e-5)
  np.testing.assert_allclose(np.asarray(e_j), e_t.numpy(), atol=1e-5)
  np.testing.assert_allclose(np.asarray(out_j), nchw_to_nhwc(out_t), atol=1e-4)

  # ... and back to the official layout, which loads strictly into the reference classes.
  back = tmp_path / "back_nets_ema.ckpt"
  res = _run("--model", "stargan_v2", "--to_torch", "--orbax_dir", str(tmp_path / "orbax"), "--out", str(back))
  assert res.returncode == 0, res.stderr[-3000:]
  obj = torch.load(back, weights_only=True)
  for name in obj:
    fresh = tmodel.build_nets(32, 3, 8, 16, 64, 1)[name]
    fresh.load_state_dict(obj[name], strict=True)
    for k, v in nets[name].state_dict().items():
      torch.testing.assert_close(fresh.state_dict()[k], v, rtol=0, atol=0)


def test_shape_mismatch_names_file_and_key(official_file, tmp_path):
  path, _ = official_file
  obj = torch.load(path, weights_only=True)
  obj["generator"]["module.decode.1.conv2.weight"] = torch.zeros(5, 5, 3, 3)
  bad = tmp_path / "bad.ckpt"
  torch.save(obj, bad)
  with pytest.raises(torch_convert.ConversionError) as e:
    torch_convert.load_stargan_v2_checkpoint(bad, CFG)
  msg = str(e.value)
  assert str(bad) in msg and "decode.1.conv2.weight" in msg and "(5, 5, 3, 3)" in msg


def test_missing_and_unknown_keys_are_refused(official_file, tmp_path):
  path, _ = official_file
  obj = torch.load(path, weights_only=True)
  del obj["style_encoder"]["module.unshared.1.bias"]
  obj["style_encoder"]["module.extra.weight"] = torch.zeros(3)
  bad = tmp_path / "bad2.ckpt"
  torch.save(obj, bad)
  with pytest.raises(torch_convert.ConversionError, match=r"missing keys: unshared\.1\.bias") as e:
    torch_convert.load_stargan_v2_checkpoint(bad, CFG)
  assert "unknown keys: extra.weight" in str(e.value)


def test_wrong_domain_count_is_refused(official_file):
  path, _ = official_file
  with pytest.raises(torch_convert.ConversionError, match="mapping_network"):
    torch_convert.load_stargan_v2_checkpoint(path, stargan_v2.Config(img_size=32, num_domains=2, latent_dim=8,
                                                                     style_dim=16, max_conv_dim=64, w_hpf=1))


def test_non_checkpoint_file_is_refused(tmp_path):
  bad = tmp_path / "junk.ckpt"
  bad.write_bytes(b"this is not a checkpoint")
  with pytest.raises(torch_convert.ConversionError, match="junk.ckpt"):
    torch_convert.load_stargan_v2_checkpoint(bad, CFG)
  res = _run("--model", "stargan_v2", "--torch_ckpt", str(bad), "--out", str(tmp_path / "o"))
  assert res.returncode != 0 and "junk.ckpt" in res.stderr

"""DaGAN depth network (monodepth2): Flax DepthNet vs our PyTorch reference, converter and official files."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.checkpoint.depth_convert import (depth_from_torch, depth_to_torch, infer_depth_fields,
                                                 load_depth_files)
from jaxreenact.models.dagan.depth import DepthNet
from jaxreenact.testing import nchw_to_nhwc, nhwc_to_nchw, randomize_torch_module
from parity_tests.tolerance import IMAGE_ATOL, assert_close_to_reference, torch64

torch = pytest.importorskip("torch")
from torch_reference.dagan.depth import DepthDecoder, ResnetEncoder  # noqa: E402


def _torch_pair(num_layers: int, seed: int):
  enc = ResnetEncoder(num_layers, pretrained=False).eval()
  dec = DepthDecoder(enc.num_ch_enc, scales=range(4)).eval()
  randomize_torch_module(enc, seed)
  randomize_torch_module(dec, seed + 1, scale=1.5)  # gain ~1.5 keeps the ELU decoder's activations O(1)
  with torch.no_grad():  # non-trivial BN counters, to check they survive a round trip
    for i, (name, buf) in enumerate(n for n in enc.named_buffers() if n[0].endswith("num_batches_tracked")):
      buf.fill_(1000 + i)
  return enc, dec


def _calibrate(enc, dec, img_nhwc, target: float = 1.5):
  """A random decoder's disparities hug 0.5 (logit std ~0.02): rescale each dispconv to logit std ``target`` so
  the comparison covers the sigmoid range. The gain also amplifies float32 rounding (see test_r50_small_check)."""
  with torch.no_grad():
    feats = enc(torch.tensor(nhwc_to_nchw(img_nhwc)))
    out = dec(feats)
    for s in dec.scales:
      conv = dec.decoder[dec.index[("dispconv", s)]].conv
      logit = torch.logit(out[("disp", s)].double())
      k = target / float(logit.std())
      conv.weight.mul_(k)
      conv.bias.copy_((conv.bias - float(logit.mean())) * k)


def _torch_disps(enc, dec, img_nhwc):
  with torch.no_grad():
    out = dec(enc(torch.tensor(nhwc_to_nchw(img_nhwc))))
  return [nchw_to_nhwc(out[("disp", s)]) for s in range(4)]


def _official_encoder_sd(enc, height=64, width=64):
  sd = enc.state_dict()
  sd.update(height=height, width=width, use_stereo=False)  # what monodepth2's trainer.save_model writes
  return sd


def _float64_disps(enc, dec, img_nhwc):
  import copy
  return _torch_disps(torch64(enc), torch64(dec), img_nhwc.astype(np.float64))


@pytest.fixture(scope="module")
def r18():
  enc, dec = _torch_pair(18, seed=0)
  img = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
  _calibrate(enc, dec, img)
  ref, ref64 = _torch_disps(enc, dec, img), _float64_disps(enc, dec, img)
  # torch's own float32 round-off per scale (its float32 result against its float64 result): the unit every
  # float32 tolerance below is stated in. Measured 9.4e-6, 7.1e-6, 8.5e-6, 1.3e-5 (scales 0-3), the same with 1
  # and 2 torch threads: a fixed atol of 1e-5 sat inside torch's own error (parity_tests/tolerance.py).
  return dict(enc=enc, dec=dec, img=img, ref=ref, ref64=ref64)


def test_torch_reference_layout_and_counts():
  for n, enc_count, dec_count, no_fc in ((18, 11_689_512, 3_152_724, 11_176_512), (50, 25_557_032, 9_014_100, 23_508_032)):
    enc = ResnetEncoder(n)
    dec = DepthDecoder(enc.num_ch_enc)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(enc) == enc_count and count(enc) - count(enc.encoder.fc) == no_fc
    assert count(dec) == dec_count
  sd = DepthDecoder(ResnetEncoder(18).num_ch_enc).state_dict()
  assert list(sd)[:2] == ["decoder.0.conv.conv.weight", "decoder.0.conv.conv.bias"]
  assert list(sd)[-2:] == ["decoder.13.conv.weight", "decoder.13.conv.bias"]
  keys = list(ResnetEncoder(18).state_dict())
  assert keys[:3] == ["encoder.conv1.weight", "encoder.bn1.weight", "encoder.bn1.bias"]
  assert "encoder.layer2.0.downsample.0.weight" in keys and keys[-2:] == ["encoder.fc.weight", "encoder.fc.bias"]
  with pytest.raises(ValueError, match="pretrained"):
    ResnetEncoder(18, pretrained=True)


def test_r18_disparities_match_torch(r18):
  variables, meta = depth_from_torch(_official_encoder_sd(r18["enc"]), r18["dec"].state_dict(), {"num_layers": 18})
  assert meta["height"] == 64 and meta["width"] == 64 and meta["use_stereo"] is False
  disps = jax.jit(DepthNet(18).apply)(variables, jnp.asarray(r18["img"]))
  with jax.enable_x64(True):  # the port itself, without float32 round-off on either side
    f64 = lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a  # noqa: E731
    disps64 = [np.asarray(d) for d in jax.jit(DepthNet(18).apply)(jax.tree.map(f64, variables),
                                                                    jnp.asarray(r18["img"], jnp.float64))]
  assert len(disps) == 4 and disps64[0].dtype == np.float64
  for s, (d, ref, ref64) in enumerate(zip(disps, r18["ref"], r18["ref64"])):
    assert d.shape == (2, 64 >> s, 64 >> s, 1)
    assert 0.1 < ref.std() < 0.4  # spread over the sigmoid range (see _calibrate), not saturated
    # float64 against float64: exact up to float64 round-off (measured <= 2.4e-14; bound 1e-12, 40x margin).
    np.testing.assert_allclose(disps64[s], ref64, rtol=0, atol=1e-12, err_msg=f"float64 disp scale {s}")
    # float32 against float32: the two round-offs add; measured 1.04-1.29 x torch's own (bound 3x, >2.3x margin).
    # Our float32 path is no less accurate than torch's: its distance to float64 measured 0.48-0.73 x torch's
    # own (bound 2x, margin64).
    assert_close_to_reference(d, ref, ref64, f"r18 disp scale {s}", margin=3, margin64=2, image_atol=IMAGE_ATOL)


def test_r50_small_check():
  enc, dec = _torch_pair(50, seed=3)
  img = np.random.default_rng(1).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
  _calibrate(enc, dec, img, target=1.0)
  ref, ref64 = _torch_disps(enc, dec, img), _float64_disps(enc, dec, img)
  variables, meta = depth_from_torch(enc.state_dict(), dec.state_dict())  # fields inferred: ResNet-50
  assert meta["fields"]["num_layers"] == 50 and meta["fields"]["block"] == "bottleneck"
  disps = jax.jit(DepthNet(50).apply)(variables, jnp.asarray(img))
  with jax.enable_x64(True):
    f64 = lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a  # noqa: E731
    disps64 = jax.jit(DepthNet(50).apply)(jax.tree.map(f64, variables), jnp.asarray(img, jnp.float64))
  for s in range(4):
    assert ref[s].std() > 0.1
    # Same three bounds as the ResNet-18 test. The 1024/2048-channel skips (random BN statistics, calibration
    # gain) put torch's own float32 result 6.3-8.7e-6, 5.2e-6, 3.2-4.1e-5, 3.0e-5 from its float64 result (scales
    # 0-3, 1 and 2 torch threads); ours is 0.47-0.69 x that from float64, and 0.90-1.38 x that from torch's float32
    # result. At scale 2, 3 x 4.1e-5 exceeds the 1e-4 image bar, which is then the binding bound.
    np.testing.assert_allclose(np.asarray(disps64[s]), ref64[s], rtol=0, atol=1e-12, err_msg=f"float64 scale {s}")
    assert_close_to_reference(disps[s], ref[s], ref64[s], f"r50 disp scale {s}", margin=3, margin64=2,
                              image_atol=IMAGE_ATOL)


def test_round_trip_is_exact(r18):
  enc_sd, dec_sd = _official_encoder_sd(r18["enc"]), r18["dec"].state_dict()
  variables, meta = depth_from_torch(enc_sd, dec_sd, DepthNet(18))
  enc2, dec2 = depth_to_torch(variables, metadata=meta)
  for want, got in ((enc_sd, enc2), (dec_sd, dec2)):
    assert list(got) == list(want)  # same keys, official order
    for k in want:
      if isinstance(want[k], torch.Tensor):
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
      else:
        assert got[k] == want[k], k
  variables2, _ = depth_from_torch(enc2, dec2, meta["fields"])
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), variables, variables2)
  # Without metadata the counters restart at 0 and the extras are left out (torch load_state_dict accepts it).
  enc3, _ = depth_to_torch(variables)
  assert "height" not in enc3 and int(enc3["encoder.bn1.num_batches_tracked"]) == 0
  ResnetEncoder(18).load_state_dict(enc3, strict=True)


def test_official_files_load(r18, tmp_path):
  torch.save(_official_encoder_sd(r18["enc"]), tmp_path / "encoder.pth")
  torch.save(r18["dec"].state_dict(), tmp_path / "depth.pth")
  variables, meta = load_depth_files(tmp_path / "encoder.pth", tmp_path / "depth.pth")
  assert meta["fields"]["num_layers"] == 18 and meta["use_stereo"] is False
  direct, _ = depth_from_torch(_official_encoder_sd(r18["enc"]), r18["dec"].state_dict(), {"num_layers": 18})
  jax.tree.map(np.testing.assert_array_equal, variables, direct)  # the files load to the very same weights
  disps = jax.jit(DepthNet(18).apply)(variables, jnp.asarray(r18["img"]))
  # Tolerance in units of torch's own float32 round-off (see the r18 fixture and test_r18_disparities_match_torch).
  assert_close_to_reference(disps[0], r18["ref"][0], r18["ref64"][0], "official files disp scale 0", margin=3,
                            image_atol=IMAGE_ATOL)


def test_bad_checkpoints_are_refused(r18):
  enc_sd = collections.OrderedDict(r18["enc"].state_dict())
  dec_sd = r18["dec"].state_dict()
  bad = collections.OrderedDict(enc_sd)
  bad["encoder.layer9.0.conv1.weight"] = torch.zeros(3)
  with pytest.raises(ValueError, match=r"encoder\.pth.*encoder\.layer9\.0\.conv1\.weight"):
    depth_from_torch(bad, dec_sd, {"num_layers": 18})
  missing = collections.OrderedDict(dec_sd)
  del missing["decoder.12.conv.bias"]
  with pytest.raises(ValueError, match=r"depth\.pth.*missing.*decoder\.12\.conv\.bias"):
    depth_from_torch(enc_sd, missing, {"num_layers": 18})
  wrong = collections.OrderedDict(enc_sd)
  wrong["encoder.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
  with pytest.raises(ValueError, match=r"encoder\.pth.*encoder\.layer1\.0\.conv1\.weight.*\(64, 64, 3, 3\).*"
                                       r"\(64, 64, 1, 1\)"):
    depth_from_torch(wrong, dec_sd, {"num_layers": 18})
  with pytest.raises(ValueError, match=r"encoder\.pth.*shape mismatch.*missing keys.*inferred.*num_layers=18"):
    depth_from_torch(enc_sd, dec_sd, {"num_layers": 50})


def test_infer_fields():
  enc = ResnetEncoder(34)
  fields = infer_depth_fields(enc.state_dict(), DepthDecoder(enc.num_ch_enc).state_dict())
  assert fields["num_layers"] == 34 and fields["layers"] == (3, 4, 6, 3) and fields["scales"] == (0, 1, 2, 3)
  assert fields["num_ch_dec"] == (16, 32, 64, 128, 256) and fields["widths"] == (64, 128, 256, 512)

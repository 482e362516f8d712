"""The shipped weights load through every entry point's loader, hold inference networks only, carry their
provenance and reproduce the stored golden outputs."""
import os

import numpy as np
import pytest

from jaxreenact import shipped
from jaxreenact.inference import loading


@pytest.mark.parametrize("name,modules", [("dagan_tiny", {"depth", "kp_detector", "generator"}),
                                          ("stargan_v2_tiny", {"generator", "mapping_network", "style_encoder"})])
def test_shipped_weights_are_inference_only_with_provenance(name, modules):
  load = loading.load_dagan if shipped.MODELS[name] == "dagan" else loading.load_stargan_v2
  loaded = load(f"shipped:{name}")
  assert set(loaded.variables) == modules  # no optimiser state, discriminator or frozen VGG
  prov = shipped.provenance(name)
  for key in ("command", "steps", "wall_time_s", "machine", "data"):
    assert prov.get(key), f"{name}: provenance lacks {key}"
  assert isinstance(prov.get("seed"), int)  # seed 0 is a seed
  assert f"--config configs/{shipped.MODELS[name]}.py:tiny" in prov["command"] and prov["steps"] >= 1000
  size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(shipped.path(name)) for f in fs)
  assert size < 12 * 2**20, f"{name}: {size / 2**20:.1f} MiB on disk"


def test_unknown_shipped_name_is_a_clear_error():
  with pytest.raises(loading.CheckpointError, match="shipped:dagan_tiny"):
    loading.load_dagan("shipped:nope")


def test_shipped_weights_reproduce_the_golden_outputs():
  from jaxreenact.shipped import golden
  want = np.load(golden.GOLDEN)
  got = golden.compute()
  assert set(got) == set(want.files)
  for k in want.files:
    # float32 on CPU; the tolerance covers thread-count and instruction-set reordering, not a changed network
    np.testing.assert_allclose(got[k], want[k], atol=1e-4, rtol=0, err_msg=k)
  # the DaGAN prediction is a picture, not a constant: the golden check would catch a blank output
  assert want["dagan_prediction"].std() > 0.05

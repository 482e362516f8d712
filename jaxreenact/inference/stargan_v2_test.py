"""StarGAN v2 sampling with a tiny model: grid layouts, ψ truncation, video lengths, checkpoint formats, folders."""
import numpy as np
import pytest
from PIL import Image
from skimage import data

from jaxreenact.inference import loading, testing
from jaxreenact.inference import stargan_v2 as sgi

S = 32


@pytest.fixture(scope="module")
def loaded():
  return loading.load_stargan_v2("random:tiny")


@pytest.fixture(scope="module")
def sampler():
  return testing.tiny_sampler()


@pytest.fixture(scope="module")
def images():
  photo = data.astronaut()
  crops = [photo[y:y + 200, x:x + 200] for y, x in ((0, 0), (100, 150), (250, 250), (300, 50), (50, 300))]
  return np.stack([sgi.to_model_input(c, S) for c in crops])


def test_reference_grid_layout_and_style_effect(sampler, images):
  x_src, x_ref, y_ref = images[:2], images[2:5], np.array([0, 1, 1], np.int32)
  grid = sgi.reference_grid(sampler, x_src, x_ref, y_ref)
  assert grid.shape == ((1 + 3) * S, (1 + 2) * S, 3)
  assert (grid[:S, :S] == 255).all()  # official blank corner
  np.testing.assert_array_equal(grid[S:2 * S, :S], ((np.clip((x_ref[0] + 1) / 2, 0, 1)) * 255 + 0.5).astype(np.uint8))
  out_a, out_b = grid[2 * S:3 * S, S:2 * S], grid[3 * S:, S:2 * S]  # same source, two references
  assert np.abs(out_a.astype(int) - out_b.astype(int)).max() > 0


def test_latent_grid_and_truncation(sampler, images):
  z = np.random.default_rng(0).standard_normal((3, sampler.cfg.latent_dim)).astype(np.float32)
  g1 = sgi.latent_grid(sampler, images[:2], 1, z, psi=1.0)
  assert g1.shape == ((1 + 3) * S, 2 * S, 3)
  assert np.abs(g1[S:2 * S].astype(int) - g1[2 * S:3 * S].astype(int)).max() > 0  # codes differ -> outputs differ
  s_avg = sampler.average_style(1, num=256)
  g0 = sgi.latent_grid(sampler, images[:2], 1, z, psi=0.0, s_avg=s_avg)  # ψ = 0: every code -> the mean style
  np.testing.assert_array_equal(g0[S:2 * S], g0[3 * S:])
  direct = sampler.generate(images[:2], np.repeat(s_avg[None], 2, 0))
  np.testing.assert_array_equal(g0[S:2 * S, :S], ((np.clip((direct[0] + 1) / 2, 0, 1)) * 255 + 0.5).astype(np.uint8))


def test_video_lengths(sampler, images):
  alphas = sgi.get_alphas()
  assert len(alphas) == 31 and alphas[0] == 0 and alphas[-1] == 1 and np.all(np.diff(alphas) >= 0)
  y_ref = np.array([0, 0, 1, 1, 1], np.int32)  # pairs within a domain: (0,1), (2,3), (3,4)
  frames = sgi.reference_video(sampler, images[:2], images, y_ref, progress=False)
  assert len(frames) == 3 * 31 + 10
  assert frames[0].shape == (2 * S, S + 32 + 2 * S, 3)
  z = np.zeros((3, sampler.cfg.latent_dim), np.float32)
  assert len(sgi.latent_video(sampler, images[:1], [0, 1], z, progress=False)) == 2 * 2 * 31 + 10


def test_checkpoint_formats_load_the_same_weights(loaded, tmp_path, images):
  import dataclasses

  import jax
  from jaxreenact.checkpoint import orbax_io
  from jaxreenact.checkpoint.runs import CheckpointManager
  cfg = loaded.config
  # launch.convert layout
  orbax_io.save_variables(tmp_path / "orbax", loaded.variables, {"model": "stargan_v2",
                                                                 "config": dataclasses.asdict(cfg)})
  a = loading.load_stargan_v2(tmp_path / "orbax")
  # training workdir layout (the training loop's CheckpointManager; EMA networks are what sampling uses)
  mngr = CheckpointManager(tmp_path / "run" / "checkpoints", save_every=1)
  state = {"step": np.int32(3), "params": {}, "ema": loaded.variables, "rng": np.zeros(2, np.uint32)}
  mngr.save(3, state, {}, force=True)
  mngr.close()
  (tmp_path / "run" / "config.json").write_text(
      '{"model_name": "stargan_v2", "model": %s}' % __import__("json").dumps(dataclasses.asdict(cfg)))
  b = loading.load_stargan_v2(tmp_path / "run")
  assert a.kind == "orbax" and b.kind == "workdir" and b.step == 3 and a.config == cfg == b.config
  for got in (a, b):
    for m in loading.STARGAN_MODULES:
      jax.tree.map(np.testing.assert_array_equal, got.variables[m], jax.tree.map(np.asarray, loaded.variables[m]))
  torch = pytest.importorskip("torch")
  from jaxreenact.checkpoint import torch_convert
  sds = torch_convert.stargan_v2_to_torch(loaded.variables, cfg)
  torch.save({k: {n: torch.from_numpy(np.array(v)) for n, v in sd.items()} for k, sd in sds.items()},
             tmp_path / "100_nets_ema.ckpt")
  c = loading.load_stargan_v2(tmp_path / "100_nets_ema.ckpt")
  assert c.kind == "torch" and c.config == cfg
  x, y = images[:1], np.zeros((1,), np.int32)
  s_ref = sgi.Sampler(cfg, loaded.variables).style_from_reference(x, y)
  np.testing.assert_allclose(sgi.Sampler(cfg, c.variables).style_from_reference(x, y), s_ref, atol=1e-5)


def test_bad_checkpoints_and_folders(tmp_path):
  with pytest.raises(loading.CheckpointError, match="does not exist"):
    loading.load_stargan_v2(tmp_path / "nope")
  (tmp_path / "empty").mkdir()
  with pytest.raises(loading.CheckpointError, match="not a training workdir"):
    loading.load_stargan_v2(tmp_path / "empty")
  root = tmp_path / "src"
  for d in ("a", "b", "c"):
    (root / d).mkdir(parents=True)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / d / "x.png")
  with pytest.raises(ValueError, match=r"3 domain folders .*num_domains=2"):
    sgi.load_domain_folder(root, S, num_domains=2)
  ok = sgi.load_domain_folder(root, S, num_domains=3)
  assert ok.domains == ["a", "b", "c"] and ok.images.shape == (3, S, S, 3) and ok.labels.tolist() == [0, 1, 2]
  assert ok.images.min() == -1.0
  (root / "d").mkdir()
  with pytest.raises(ValueError, match="holds no .jpg/.png"):
    sgi.load_domain_folder(root, S)

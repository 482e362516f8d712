"""DaGAN reenactment with a tiny freshly drawn model at 64 px: shapes, motion transfer identities, best frame."""
import numpy as np
import pytest
from PIL import Image
from skimage import data

from jaxreenact.inference import reenact, testing

SIZE = 64


@pytest.fixture(scope="module")
def model():
  return testing.tiny_reenactor()


@pytest.fixture(scope="module")
def clip():
  from jaxreenact.data import sample_data_dir, video_frames
  return video_frames(sample_data_dir().dagan, "test", 0, SIZE)[:5]  # (5, 64, 64, 3) in [0, 1]


def test_shapes_ranges_and_batching(model, clip):
  source = clip[0]
  a = model.run(source, clip[1:], reenact.Options(batch_size=4), progress=False)
  assert a["prediction"].shape == (4, SIZE, SIZE, 3) and a["depth"].shape == (4, SIZE, SIZE, 1)
  assert np.isfinite(a["prediction"]).all() and a["prediction"].min() >= 0 and a["prediction"].max() <= 1  # sigmoid
  assert (a["depth"] > 0).all() and (a["depth"] < 1).all()  # disparity sigmoid
  # absolute mode: frames are independent of their batch neighbours and of the padding of partial batches
  absolute = reenact.Options(relative=False)
  a = model.run(source, clip[1:], absolute, progress=False)["prediction"]
  b = np.concatenate([model.run(source, clip[1:3], absolute, progress=False)["prediction"],
                      model.run(source, clip[3:], absolute, progress=False)["prediction"]])
  np.testing.assert_allclose(a, b, atol=1e-5)


def test_relative_motion_of_a_static_video_is_the_source_pose(model, clip):
  """Relative mode: kp_new = kp_source + (kp_d − kp_d0) and J_new = J_d·J_d0⁻¹·J_s. A driving video that does
  not move (every frame = frame 0) must therefore give generator(source, kp_source → kp_source) for every frame,
  which is what absolute mode gives when the source itself drives."""
  source = clip[0]
  static = np.repeat(clip[3:4], 3, axis=0)
  rel = model.run(source, static, reenact.Options(relative=True), progress=False)["prediction"]
  rel_scaled = model.run(source, static, reenact.Options(relative=True, adapt_scale=True), progress=False)
  ref = model.run(source, source[None], reenact.Options(relative=False), progress=False)["prediction"]
  np.testing.assert_allclose(rel, np.repeat(ref, 3, axis=0), atol=2e-5)
  np.testing.assert_allclose(rel_scaled["prediction"], rel, atol=2e-5)
  moving = model.run(source, clip[1:], reenact.Options(relative=False), progress=False)["prediction"]
  assert np.abs(moving - np.repeat(ref, 4, 0)).max() > 1e-3  # different driving poses do change the output


def test_initial_frame_choice_matters(model, clip):
  source = clip[0]
  a = model.run(source, clip, reenact.Options(), progress=False, initial_index=0)["prediction"]
  b = model.run(source, clip, reenact.Options(), progress=False, initial_index=2)["prediction"]
  np.testing.assert_allclose(a[0], b[2], atol=2e-5)  # each initial frame reproduces the source pose
  assert np.abs(a[2] - b[2]).max() > 1e-4


def test_cached_source_features_equal_the_full_forward(model, clip):
  """prepare() encodes the source once per video; animate() must give what the generator gives when it encodes
  the (tiled) source itself, and its per-batch program must not contain the source encoders any more."""
  import jax
  import jax.numpy as jnp

  from jaxreenact.complexity import analytic
  source, initial, driving = clip[0], clip[2], clip[1:]
  b = len(driving)
  v = model.variables
  depth_s, kp_s = model.encode(source[None])
  _, kp_0 = model.encode(initial[None])

  def full(v, source, depth_s, kp_s, kp_0, driving, relative):  # the generator encodes b copies of the source
    depth_d, kp_d = model._encode_fn(v, driving)
    kp_norm = model._motion(kp_s, kp_d, kp_0, relative, False)
    tile = lambda x: jnp.repeat(x, b, axis=0)  # noqa: E731
    out = model.nets.generator.apply(v["generator"], tile(source), kp_norm, jax.tree.map(tile, kp_s), tile(depth_s))
    return out["prediction"], depth_d

  args = (jnp.asarray(source[None]), depth_s, kp_s, kp_0, jnp.asarray(driving))
  prepared = model.prepare(source, initial)
  for relative in (True, False):
    pred, depth = model.animate(prepared, driving, reenact.Options(relative=relative))
    want_pred, want_depth = jax.jit(full)(v, *args, jnp.asarray(relative))
    np.testing.assert_allclose(np.asarray(pred), np.asarray(want_pred), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(depth), np.asarray(want_depth), atol=1e-5, rtol=0)

  # MACs per batch: the full path minus exactly the generator's source encoders on b images.
  step = analytic.count_jaxpr(jax.make_jaxpr(model._step_fn)(v, prepared, args[-1], True, False))
  whole = analytic.count_jaxpr(jax.make_jaxpr(full)(v, *args, True))
  enc = analytic.count_jaxpr(jax.make_jaxpr(
      lambda v, x, d: model.nets.generator.apply(v, x, d, method="encode_source"))(
          v["generator"], jnp.repeat(args[0], b, 0), jnp.repeat(depth_s, b, 0)))
  assert enc.naive > 0 and step.naive == whole.naive - enc.naive
  n_down = model.cfg.generator_params.num_down_blocks
  assert step.summary()["conv_ops"] == whole.summary()["conv_ops"] - 2 * (1 + n_down)  # first + down, RGB and depth


def test_find_best_frame_picks_the_aligned_frame():
  photo = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.LANCZOS))
  other = np.asarray(Image.fromarray(data.astronaut()[:, ::-1]).rotate(25).resize((256, 256)))
  blank = np.full_like(photo, 128)
  shifted = np.roll(photo, (9, -7), axis=(0, 1))  # translation: normalised landmarks are invariant
  idx, info = reenact.find_best_frame(photo, [other, blank, shifted, other], progress=False)
  assert idx == 2 and info["frames_with_face"] == 3 and info["distance"] < 0.05


def test_outputs_and_crop():
  photo = data.astronaut()
  crop, info = reenact.crop_source(photo)
  assert info["face_found"] and crop.shape[0] == crop.shape[1] and 100 < crop.shape[0] < photo.shape[0]
  depth = np.linspace(0.1, 0.5, 2 * 8 * 8).reshape(2, 8, 8, 1)
  gray = reenact.depth_to_gray(depth)
  assert gray.shape == (2, 8, 8, 3) and gray.dtype == np.uint8
  assert gray[0].min() == 0 and gray[1].min() == 0  # the farthest-disparity pixel of each frame maps to 0
  frames = reenact.side_by_side(np.zeros((8, 8, 3)), np.ones((2, 8, 8, 3)), np.ones((2, 8, 8, 3)) / 2, depth)
  assert len(frames) == 2 and frames[0].shape == (8, 32, 3)
  resized = reenact.resize_frames([photo[:300, :200]], 64, "test")
  assert resized.shape == (1, 64, 64, 3) and resized.dtype == np.float32 and 0 <= resized.min() <= resized.max() <= 1

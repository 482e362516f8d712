"""`python -m launch.prepare_data` end to end, as a user runs it (subprocesses, real flags, JSON summaries)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from jaxreenact.data import media, testdata
from launch import prepare_data

REPO = Path(__file__).resolve().parents[1]


class _Result:
  def __init__(self, returncode, stdout, stderr):
    self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _subprocess(*args, timeout=300):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  return subprocess.run([sys.executable, "-m", "launch.prepare_data", *map(str, args)], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _run(*args, capsys=None):
  """The command in-process (same flags, same main) — subprocess start-up would dominate the test time."""
  with flagsaver.flagsaver():
    try:
      argv = flags.FLAGS(["prepare_data", *map(str, args)])
      prepare_data.main(argv)
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # app.UsageError and friends: what absl.app would print and exit 1 for
      print(str(e), file=sys.stderr)
      code = 1
    finally:
      flags.FLAGS.unparse_flags()
  out = capsys.readouterr()
  return _Result(code, out.out, out.err)


def test_help_lists_every_command():
  r = _subprocess("--help")
  assert r.returncode in (0, 1)  # absl's --help handler exits with 1 after printing the usage
  assert r.stdout.startswith("Prepare training data")
  for cmd in ("images", "videos", "crop", "align", "sample"):
    assert f"\n  {cmd} " in r.stdout
  for flag in ("--src", "--data_dir", "--out", "--summary", "--min_size", "--detector", "--format"):
    assert flag in r.stdout
  bad = _subprocess("frobnicate")
  assert bad.returncode != 0 and "expected exactly one command" in bad.stderr


def test_images_and_videos_commands(tmp_path, capsys):
  src_i, src_v, out = tmp_path / "imgs", tmp_path / "vids", tmp_path / "tfds"
  bad = testdata.write_bad_image_tree(src_i)
  r = _run("images", "--src", src_i, "--data_dir", out, "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  assert "train: 9 images" in r.stdout and f"skipped {len(bad)} file(s)" in r.stdout
  summary = json.loads((out / "prepare_images.json").read_text(encoding="utf-8"))
  assert summary["totals"] == {"train": 9, "val": 1} and summary["num_skipped"] == len(bad)
  assert any(s["path"].endswith("zero.png") and "zero-byte" in s["reason"] for s in summary["skipped"])

  testdata.write_video_tree(src_v, with_bad=True)
  r = _run("videos", "--src", src_v, "--data_dir", out, "--frame_format", "jpeg", "--summary", tmp_path / "v.json",
           "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  summary = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
  assert summary["examples"]["train"] == {"id10001": 2, "id10002": 1, "vidéo_x": 1}
  assert summary["frames"] == {"test": 6, "train": 33} and summary["num_skipped"] == 5
  again = _run("images", "--src", src_i, "--data_dir", out, "--noprogress", capsys=capsys)
  assert again.returncode == 0 and "already prepared, reused" in again.stdout


def test_nothing_usable_exits_with_an_error(tmp_path, capsys):
  (tmp_path / "src" / "train" / "faces").mkdir(parents=True)
  (tmp_path / "src" / "train" / "faces" / "x.jpg").write_bytes(b"")
  r = _run("images", "--src", tmp_path / "src", "--data_dir", tmp_path / "out", "--noprogress", capsys=capsys)
  assert r.returncode == 1 and "no usable image" in r.stderr and str(tmp_path / "src" / "train") in r.stderr
  r = _run("images", "--data_dir", tmp_path / "out", capsys=capsys)
  assert r.returncode != 0 and "needs --src" in r.stderr


def test_align_and_crop_commands(tmp_path, capsys):
  from skimage import data as skdata

  from jaxreenact.data import sample

  (tmp_path / "stills" / "train" / "x").mkdir(parents=True)
  Image.fromarray(skdata.astronaut()).save(tmp_path / "stills" / "train" / "x" / "a.jpg")
  r = _run("align", "--src", tmp_path / "stills", "--out", tmp_path / "aligned", "--img_size", 64, "--noprogress",
           capsys=capsys)
  assert r.returncode == 0, r.stderr
  assert np.asarray(Image.open(tmp_path / "aligned" / "train" / "x" / "a.png")).shape == (64, 64, 3)
  assert json.loads((tmp_path / "aligned" / "prepare_align.json").read_text())["examples"]["aligned"]["images"] == 1

  frames, _ = media.read_video_frames(sample.carphone_path(), max_frames=32)
  media.write_video(tmp_path / "clip.mp4", frames)
  r = _run("crop", "--src", tmp_path / "clip.mp4", "--out", tmp_path / "crops", "--img_size", 64, "--min_frames", 16,
           "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  clips = [p for p in (tmp_path / "crops").iterdir() if p.is_dir()]
  assert len(clips) == 1 and clips[0].name.startswith("clip#000000#")


def test_sample_command_builds_offline(tmp_path):
  env_root = tmp_path / "sample"
  r = _subprocess("sample", "--data_dir", env_root, "--noprogress")  # a real run, as from a clean install
  assert r.returncode == 0, r.stderr
  assert "sample data ready" in r.stdout and (env_root / "image_domains").is_dir()
  summary = json.loads((env_root / "prepare_sample.json").read_text(encoding="utf-8"))
  assert summary["image_domains"]["totals"]["train"] >= 90 and summary["talking_heads"]["frames"]["train"] >= 30


def _tree_state(root: Path) -> dict:
  """Every path under root (links not followed) with its bytes, to show that nothing was written or overwritten."""
  return {os.fspath(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
          for p in sorted(root.rglob("*"))}


def test_align_and_crop_refuse_an_output_inside_the_input(tmp_path, capsys):
  src = tmp_path / "stills"
  testdata.write_image_tree(src, {"a": 1}, size=32)
  (tmp_path / "link_to_src").symlink_to(src, target_is_directory=True)
  before = _tree_state(src)
  cases = [("align", src, src), ("align", src, src / "train" / "aligned"), ("align", src / "train", src),
           ("align", src / "train" / "a" / "img_0.png", src),  # a single file inside --out
           ("align", tmp_path / "link_to_src", src / "out"),  # links are resolved
           ("crop", src, src / "crops")]
  for command, s, o in cases:
    r = _run(command, "--src", s, "--out", o, "--noprogress", capsys=capsys)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, (command, s, o, r.stderr)
    assert lines[0].startswith(f"prepare_data {command}: error: --src {s} and --out {o}: "), lines[0]
    assert "inside" in lines[0]
    assert _tree_state(src) == before  # nothing written, nothing overwritten


def test_align_gives_colliding_inputs_distinct_names(tmp_path, capsys):
  src = tmp_path / "stills"
  (src / "x").mkdir(parents=True)
  pixels = {name: testdata.tagged_image(10 * i, 32) for i, name in enumerate(["a.jpg", "a.png", "a_jpg.png", "b.png"])}
  for name, rgb in pixels.items():
    Image.fromarray(rgb).save(src / "x" / name, quality=100)
  r = _run("align", "--src", src, "--out", tmp_path / "out", "--on_miss", "center", "--img_size", 32, "--noprogress",
           capsys=capsys)
  assert r.returncode == 0, r.stderr
  got = sorted(p.name for p in (tmp_path / "out" / "x").iterdir())
  # a.jpg and a.png both want a.png: each gets its extension; a_jpg is a real input's own name, so a.jpg → a_jpg_2.
  assert got == ["a_jpg.png", "a_jpg_2.png", "a_png.png", "b.png"]
  red = lambda name: int(np.asarray(Image.open(tmp_path / "out" / "x" / name))[..., 0].mean().round())  # noqa: E731
  assert [red(n) for n in ("a_jpg_2.png", "a_png.png", "a_jpg.png", "b.png")] == [0, 10, 20, 30]  # who went where
  notes = json.loads((tmp_path / "out" / "prepare_align.json").read_text())["notes"]
  renamed = {n["path"].rsplit("/", 1)[-1]: n["note"] for n in notes if "written as" in n["note"]}
  assert renamed.keys() == {"a.jpg", "a.png"} and "x/a_jpg_2.png" in renamed["a.jpg"]
  # Deterministic: a second run into a fresh folder gives the same names.
  r = _run("align", "--src", src, "--out", tmp_path / "out2", "--on_miss", "center", "--img_size", 32, "--noprogress",
           capsys=capsys)
  assert sorted(p.name for p in (tmp_path / "out2" / "x").iterdir()) == got


def test_distinct_names_for_crop_inputs():
  from jaxreenact.data.faces import distinct_names
  P = Path
  # Two videos and a frame folder named v: the folder keeps v, the files get their extension.
  assert distinct_names([(P("d/v"), "mp4"), (P("d/v"), ""), (P("d/v"), "avi"), (P("d/w"), "mp4")]) == [
      P("d/v_mp4"), P("d/v"), P("d/v_avi"), P("d/w")]
  # The same name in different folders is no collision; case-different extensions still collide.
  assert distinct_names([(P("a/v"), "mp4"), (P("b/v"), "mp4")]) == [P("a/v"), P("b/v")]
  assert distinct_names([(P("v"), "MP4"), (P("v"), "mp4")]) == [P("v_mp4"), P("v_mp4_2")]


def test_data_dir_built_from_another_source_is_refused(tmp_path, capsys):
  a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "tfds"
  testdata.write_image_tree(a, {"x": 1, "y": 1})
  testdata.write_image_tree(b, {"p": 1, "q": 1, "r": 1})
  assert _run("images", "--src", a, "--data_dir", out, "--noprogress", capsys=capsys).returncode == 0
  meta_path = out / "image_domains" / "1.0.0" / "metadata.json"
  assert json.loads(meta_path.read_text())["source"] == os.fspath(a.resolve())
  before = _tree_state(out)
  r = _run("images", "--src", b, "--data_dir", out, "--noprogress", capsys=capsys)
  lines = r.stderr.strip().splitlines()
  assert r.returncode == 1 and len(lines) == 1, r.stderr
  assert f"--data_dir {out} already holds image_domains built from {a.resolve()}" in lines[0]
  assert f"--src {b}" in lines[0] and "fresh --data_dir" in lines[0] and "--overwrite" in lines[0]
  assert _tree_state(out) == before  # the old dataset is untouched
  # The same source (through a link) is reused; --overwrite rebuilds from the new one.
  (tmp_path / "a_link").symlink_to(a, target_is_directory=True)
  r = _run("images", "--src", tmp_path / "a_link", "--data_dir", out, "--noprogress", capsys=capsys)
  assert r.returncode == 0 and "already prepared, reused" in r.stdout, r.stderr
  r = _run("images", "--src", b, "--data_dir", out, "--overwrite", "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  meta = json.loads(meta_path.read_text())
  assert meta["source"] == os.fspath(b.resolve()) and meta["domains"] == ["p", "q", "r"]


def test_symbolic_links_are_treated_alike_by_every_command(tmp_path, capsys):
  """Links to files are read, links to directories are never followed (skipped and reported): images, videos,
  align, crop."""
  outside = tmp_path / "outside"
  testdata.write_image_tree(outside, {"o": 2}, size=32)
  src = tmp_path / "stills"
  testdata.write_image_tree(src, {"a": 1, "b": 1}, size=32)
  (src / "train" / "a" / "linked.png").symlink_to(outside / "train" / "o" / "img_0.png")  # file link: read
  (src / "train" / "linked_domain").symlink_to(outside / "train" / "o", target_is_directory=True)  # dir: skipped
  (src / "train" / "b" / "sub").symlink_to(outside / "train", target_is_directory=True)  # nested dir link: skipped
  r = _run("images", "--src", src, "--data_dir", tmp_path / "tfds", "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  s = json.loads((tmp_path / "tfds" / "prepare_images.json").read_text())
  assert s["examples"]["train"] == {"a": 2, "b": 1}
  links = sorted(k["path"].split("/stills/")[1] for k in s["skipped"] if "symbolic link" in k["reason"])
  assert links == ["train/b/sub", "train/linked_domain"]

  r = _run("align", "--src", src, "--out", tmp_path / "aligned", "--on_miss", "center", "--img_size", 32,
           "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  s = json.loads((tmp_path / "aligned" / "prepare_align.json").read_text())
  assert s["examples"]["aligned"]["images"] == 3  # a/img_0, a/linked, b/img_0
  assert sorted(k["path"].split("/stills/")[1] for k in s["skipped"] if "symbolic link" in k["reason"]) == links

  vids = tmp_path / "vids"
  testdata.write_video_tree(vids, with_bad=False)
  (vids / "train" / "linked_video").symlink_to(vids / "test" / "id10003#ddd", target_is_directory=True)
  (vids / "train" / "linked.mp4").symlink_to(vids / "train" / "id10001#bbb#000001#000009.mp4")
  r = _run("videos", "--src", vids, "--data_dir", tmp_path / "tfds", "--noprogress", capsys=capsys)
  assert r.returncode == 0, r.stderr
  s = json.loads((tmp_path / "tfds" / "prepare_videos.json").read_text())
  assert s["examples"]["train"]["linked"] == 1 and "linked_video" not in s["examples"]["train"]
  assert [k["reason"] for k in s["skipped"] if k["path"].endswith("linked_video")] == [
      s["skipped"][0]["reason"]] and "symbolic link to a directory" in s["skipped"][0]["reason"]

  # crop lists its inputs through the same walk: a linked frame folder is skipped, not cropped.
  from jaxreenact.data import builders
  report = builders.PrepareReport("crop", "", "")
  files, dirs = builders.walk_tree(vids, report)
  assert vids / "train" / "linked.mp4" in files and not any("linked_video" in os.fspath(d) for d in dirs)
  assert [k["path"].endswith("linked_video") for k in report.skipped] == [True]

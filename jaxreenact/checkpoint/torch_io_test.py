"""Reading PyTorch files: one clear error naming the file; never torch's advice to drop weights_only."""
import collections
import pickle

import pytest
import torch

from jaxreenact.checkpoint import torch_io
from jaxreenact.checkpoint.naming import ConversionError


class _Evil:
  def __reduce__(self):  # would run code on unpickling without weights_only
    return (print, ("pwned",))


def test_reads_a_state_dict(tmp_path):
  p = tmp_path / "ok.pth"
  torch.save({"w": torch.ones(2)}, p)
  assert torch.equal(torch_io.load(p)["w"], torch.ones(2))


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "pickle_with_code", "not_a_dict"])
def test_bad_files_end_in_one_message_naming_the_file(tmp_path, kind, capsys):
  p = tmp_path / f"{kind}.pth.tar"
  if kind == "text":
    p.write_text("hello, I am not a checkpoint\n")
  elif kind == "empty":
    p.write_bytes(b"")
  elif kind == "truncated":
    torch.save({"w": torch.ones(1000)}, p)
    p.write_bytes(p.read_bytes()[:300])
  elif kind == "pickle_with_code":
    p.write_bytes(pickle.dumps(collections.OrderedDict(x=_Evil())))
  else:
    torch.save([torch.ones(1)], p)
  with pytest.raises(ConversionError) as e:
    torch_io.load(p, "a DaGAN checkpoint")
  msg = str(e.value)
  assert str(p) in msg and "a DaGAN checkpoint" in msg and "\n" not in msg
  assert "weights_only=False" not in msg
  assert "pwned" not in capsys.readouterr().out  # nothing from the file ran


def test_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="no_such.pth"):
    torch_io.load(tmp_path / "no_such.pth")

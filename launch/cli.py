"""What every ``launch/*.py`` entry point shares: ``cli.run(main)`` instead of ``app.run(main)``.

absl answers an ``app.UsageError`` raised in ``main`` with the module docstring and every flag's help on stderr
(60+ lines with the actual error at the end); here it is one line, ``python -m launch.X: error: <message>``, and a
non-zero exit. Positional arguments are refused before ``main`` runs unless the command takes them: absl hands
them to ``main`` silently, so ``launch.benchmark dagan`` used to benchmark the default model.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from absl import app


def prog() -> str:
  """``launch.train`` for ``python -m launch.train``; the script name otherwise."""
  main = sys.modules.get("__main__")
  spec = getattr(main, "__spec__", None)
  return spec.name if spec is not None and spec.name else os.path.basename(sys.argv[0])


def error(message: str, exitcode: int = 1) -> None:
  """Prints ``<prog>: error: <message>`` (one line) on stderr and exits with ``exitcode``."""
  print(f"{prog()}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  sys.exit(exitcode)


def run(main: Callable[[list[str]], object], *, positional: bool = False) -> None:
  """``app.run(main)`` with one-line usage errors; refuses positional arguments unless ``positional``."""

  def checked(argv):
    try:
      if not positional and len(argv) > 1:
        raise app.UsageError(f"unexpected positional arguments {argv[1:]}: every option is a --flag "
                             f"(e.g. --model=NAME, not NAME)")
      return main(argv)
    except app.UsageError as e:
      error(str(e), e.exitcode)

  app.run(checked)


def require_writable_dir(flag: str, path: str | os.PathLike) -> None:
  """``app.UsageError`` naming ``--flag`` when files cannot be written under directory ``path``."""
  from jaxreenact.data.media import unwritable_reason
  problem = unwritable_reason(path)
  if problem:
    raise app.UsageError(f"--{flag}={os.fspath(path)}: {problem}")

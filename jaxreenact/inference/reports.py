"""Result files a person can open: ``<name>.json`` (everything) and ``README.md`` (tables, images, videos)."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

from jaxreenact.jsonutil import jsonable


def fmt(v: Any) -> str:
  if v is None:
    return "–"
  if isinstance(v, float):
    if not math.isfinite(v):
      return str(v)
    return f"{v:.4g}" if (abs(v) < 1e-3 and v != 0) else (f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}")
  return str(v)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
  """Markdown table from a list of dicts."""
  if not rows:
    return "_(none)_\n"
  columns = list(columns or rows[0].keys())
  out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
  out += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
  return "\n".join(out) + "\n"


def write(out_dir: str, name: str, result: Mapping[str, Any], *, title: str,
          tables: Mapping[str, tuple[Sequence[Mapping[str, Any]], Sequence[str] | None]] | None = None,
          notes: Sequence[str] = (), markdown_name: str = "README.md", skip: Sequence[str] = ()) -> tuple[str, str]:
  """Writes ``out_dir/<name>.json`` and ``out_dir/<markdown_name>``; returns both paths."""
  os.makedirs(out_dir, exist_ok=True)
  jpath = os.path.join(out_dir, f"{name}.json")
  with open(jpath, "w") as f:
    json.dump(jsonable(result), f, indent=2, sort_keys=False)
  lines = [f"# {title}", ""]
  for k, v in result.items():
    if isinstance(v, (str, int, float, bool)) or v is None:
      lines.append(f"- **{k}**: {fmt(v)}")
  for k, v in result.items():
    if isinstance(v, (Mapping, list, tuple)) and k not in ("images", "videos", *skip):
      lines.append(f"- **{k}**: `{json.dumps(jsonable(v))}`")
  lines.append("")
  for heading, (rows, cols) in (tables or {}).items():
    lines += [f"## {heading}", "", table(rows, cols)]
  images = result.get("images") or {}
  if images:
    lines += ["## Images", ""]
    lines += [f"**{k}**\n\n![{k}]({v})\n" for k, v in images.items()]
  videos = result.get("videos") or {}
  if videos:
    lines += ["## Videos", ""]
    for k, v in videos.items():
      if isinstance(v, Mapping):
        extra = f" — {v.get('frames')} frames at {fmt(v.get('fps'))} fps" + (", with audio" if v.get("audio") else "")
        lines.append(f"- [{k}]({v.get('path')}){extra}")
      else:
        lines.append(f"- [{k}]({v})")
    lines.append("")
  if notes:
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
  lines.append(f"Full results: [{name}.json]({name}.json)\n")
  mpath = os.path.join(out_dir, markdown_name)
  with open(mpath, "w") as f:
    f.write("\n".join(lines))
  return jpath, mpath

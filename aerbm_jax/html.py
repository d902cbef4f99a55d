"""A run directory's `report.html`: its markdown reports as one self-contained page.

Every picture is inlined as a data URI and the style sheet is in the page, so the file opens
anywhere (a phone, an e-mail attachment, a laptop without the run directory) with no network
and no scripts. The page holds `report.md` and, when present, `evaluation.md`.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

from aerbm_jax import checkpoint

__all__ = ["REPORTS", "render", "write_report_html"]

REPORTS = ("report.md", "evaluation.md")  # in page order; missing ones are left out

_STYLE = """
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fdfdfc; --rule: #d0d0cc; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8e6; --bg: #161616; --rule: #444; } }
* { box-sizing: border-box; }
body { margin: 0 auto; padding: 1rem; max-width: 72rem; color: var(--fg); background: var(--bg);
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-top: 1px solid var(--rule);
     padding-top: 0.8rem; }
img { max-width: 100%; height: auto; image-rendering: pixelated; border-radius: 4px; }
.table { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid var(--rule); padding: 0.3rem 0.5rem; vertical-align: top; }
td img { min-width: 12rem; }
code { font-size: 0.9em; }
@media (max-width: 40rem) { body { padding: 0.6rem; font-size: 15px; } td img { min-width: 8rem; } }
"""


def _inline_images(body: str, folder: Path) -> tuple[str, list[str]]:
  """`<img src="x.png">` of files in `folder` become data URIs; returns the page and the
  names of pictures that were missing (left as a visible note instead of a broken image)."""
  missing = []

  def repl(match: re.Match) -> str:
    src = html.unescape(match.group(2))
    path = folder / src
    if src.startswith(("data:", "http:", "https:")) or not path.is_file():
      if not src.startswith("data:"):
        missing.append(src)
        return f'<em class="missing">[picture {html.escape(src)} is missing]</em>'
      return match.group(0)
    kind = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else path.suffix.lower()[1:]
    data = base64.b64encode(path.read_bytes()).decode()
    return f'{match.group(1)}data:image/{kind};base64,{data}{match.group(3)}'

  return re.sub(r'(<img[^>]*\ssrc=")([^"]+)(")', repl, body), missing


def render(folder: str | Path, title: str | None = None) -> tuple[str, list[str]]:
  """The HTML page of the markdown reports in `folder`, and the pictures it could not find.

  Args:
    folder: a run directory (or any folder with `report.md`).
    title: the page title (default: the first heading).
  """
  folder = Path(folder)
  parts = [folder / name for name in REPORTS if (folder / name).is_file()]
  if not parts:
    raise FileNotFoundError(f"{folder} has no report.md: it is not a finished run directory")
  text = "\n\n".join(p.read_text() for p in parts)
  body = markdown.markdown(text, extensions=["tables", "sane_lists"])
  body = re.sub(r"(<table>.*?</table>)", r'<div class="table">\1</div>', body, flags=re.S)
  body, missing = _inline_images(body, folder)
  if title is None:
    heading = re.search(r"<h1>(.*?)</h1>", body, re.S)
    title = re.sub(r"<[^>]+>", "", heading.group(1)) if heading else folder.name
  page = (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
          f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
          f"<body>\n{body}\n</body>\n</html>\n")
  return page, missing


def write_report_html(folder: str | Path) -> Path:
  """Write `folder/report.html` (atomically) from the folder's markdown reports; its path."""
  page, _ = render(folder)
  return checkpoint.write_text(Path(folder) / "report.html", page)

"""The README's and docs' links: every relative link names a file in the repository, and every
`#anchor` into a Markdown file names one of its headings (as GitHub spells heading anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         ROOT / "benchmarks" / "results" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
  """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to
  hyphens, and `-1`, `-2`, ... after repeats."""
  seen: dict[str, int] = {}
  out = set()
  in_code = False
  for line in markdown.splitlines():
    if line.startswith("```"):
      in_code = not in_code
    if in_code or not line.startswith("#"):
      continue
    text = line.lstrip("#").strip().lower()
    slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    out.add(slug if n == 0 else f"{slug}-{n}")
  return out


def test_anchor_spelling():
  page = ("# A page\n## W in blocks of rows for 1-4 chains (kept)\n"
          "## Tried: `x`, y\n## Tried: `x`, y\n")
  assert anchors(page) == {"a-page", "w-in-blocks-of-rows-for-1-4-chains-kept", "tried-x-y",
                           "tried-x-y-1"}


def relative_links(page: Path) -> list[str]:
  text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
  return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
  bad = []
  for target in relative_links(page):
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.exists():
      bad.append(f"{target}: no such file")
    elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
      bad.append(f"{target}: no heading with that anchor")
  assert not bad, f"{page.relative_to(ROOT)}: " + "; ".join(bad)

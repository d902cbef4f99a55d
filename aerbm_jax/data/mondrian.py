"""Procedural compositions in the style of Piet Mondrian: the offline dataset for `mondrian`.

A canvas is split recursively into rectangles by black lines of varying width; a few cells
are filled with red, yellow, blue (or, rarely, black), the rest stay off-white. The layout
is drawn in the unit square and rasterised at any size, so one seed gives one composition
at every resolution.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mondrian", "mondrian_batch", "PALETTE"]

PALETTE = {
  "white": (0.96, 0.95, 0.92),
  "red": (0.80, 0.12, 0.10),
  "yellow": (0.98, 0.82, 0.15),
  "blue": (0.10, 0.20, 0.58),
  "black": (0.05, 0.05, 0.05),
}
_COLOURED = ["red", "yellow", "blue", "red", "yellow", "blue", "black"]


def _split(rng, rect, depth, cells, lines, min_side):
  x0, y0, x1, y1 = rect
  w, h = x1 - x0, y1 - y0
  # The canvas itself is always split: a composition has at least one line.
  p_split = 1.0 if depth == 0 else 0.95 if depth < 2 else 0.75 ** (depth - 1)
  can_v, can_h = w > 2.5 * min_side, h > 2.5 * min_side
  if not (can_v or can_h) or rng.random() > p_split:
    cells.append(rect)
    return
  vertical = can_v and (not can_h or rng.random() < w / (w + h))
  width = rng.uniform(0.010, 0.032)
  if vertical:
    at = rng.uniform(x0 + min_side, x1 - min_side)
    lines.append((at - width / 2, y0, at + width / 2, y1))
    parts = [(x0, y0, at, y1), (at, y0, x1, y1)]
  else:
    at = rng.uniform(y0 + min_side, y1 - min_side)
    lines.append((x0, at - width / 2, x1, at + width / 2))
    parts = [(x0, y0, x1, at), (x0, at, x1, y1)]
  for part in parts:
    _split(rng, part, depth + 1, cells, lines, min_side)


def _fill(img, rect, colour):
  size = img.shape[0]
  x0, y0, x1, y1 = (int(round(t * size)) for t in rect)
  img[max(y0, 0):max(y1, y0 + 1), max(x0, 0):max(x1, x0 + 1)] = colour


def mondrian(seed: int | np.random.SeedSequence, size: int = 128) -> np.ndarray:
  """One composition, `(size, size, 3)` float32 in [0, 1]."""
  if size < 4:
    raise ValueError(f"size must be >= 4, got {size}")
  rng = np.random.default_rng(seed)
  cells, lines = [], []
  _split(rng, (0.0, 0.0, 1.0, 1.0), 0, cells, lines, min_side=0.08)
  img = np.empty((size, size, 3), np.float32)
  img[:] = PALETTE["white"]
  n_coloured = min(len(cells), rng.integers(1, 5))
  for i in rng.choice(len(cells), size=n_coloured, replace=False):
    _fill(img, cells[i], PALETTE[_COLOURED[rng.integers(len(_COLOURED))]])
  for rect in lines:
    x0, y0, x1, y1 = rect
    # Keep every line at least one pixel wide at small sizes.
    pad = max(0.0, (1.0 / size - (x1 - x0)) / 2), max(0.0, (1.0 / size - (y1 - y0)) / 2)
    _fill(img, (x0 - pad[0], y0 - pad[1], x1 + pad[0], y1 + pad[1]), PALETTE["black"])
  return img


def mondrian_batch(n: int, size: int = 128, seed: int = 0) -> np.ndarray:
  """`n` compositions, `(n, size, size, 3)`; image i depends only on `(seed, i)`."""
  if n < 1:
    raise ValueError(f"n must be >= 1, got {n}")
  children = np.random.SeedSequence(seed).spawn(n)
  return np.stack([mondrian(s, size) for s in children])

"""Pictures for run directories: image grids (pillow) and training curves (matplotlib)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["image_grid", "save_grid", "save_curves"]


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 2, scale: int = 1
               ) -> np.ndarray:
  """Tile `(N, H, W, C)` images in [0, 1] into one `(rows*H', cols*W', C)` uint8 picture."""
  images = np.clip(np.asarray(images, np.float32), 0, 1)
  n, h, w, c = images.shape
  cols = cols or math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 1.0, np.float32)
  for i, img in enumerate(images):
    r, k = divmod(i, cols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = img
  out = (grid * 255 + 0.5).astype(np.uint8)
  if scale > 1:
    out = out.repeat(scale, 0).repeat(scale, 1)
  return out


def save_grid(path: str | Path, images: np.ndarray, cols: int | None = None) -> Path:
  """Write a grid PNG; small images are enlarged so that a tile is at least 64 pixels."""
  scale = max(1, 64 // images.shape[1])
  arr = image_grid(images, cols, scale=scale)
  Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)
  return Path(path)


def save_curves(path: str | Path, panels: dict[str, dict[str, np.ndarray]]) -> Path:
  """One subplot per panel, one line per named series (NaNs skipped), x = epoch."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
  for ax, (title, series) in zip(axes[0], panels.items()):
    for label, y in series.items():
      y = np.asarray(y, np.float64)
      x = np.arange(1, len(y) + 1)
      ok = np.isfinite(y)
      ax.plot(x[ok], y[ok], marker="o" if ok.sum() < 30 else None, ms=3, label=label)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return Path(path)

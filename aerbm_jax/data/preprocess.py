"""Shared preprocessing: centre-crop and resize with pillow, deterministic splits."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

__all__ = ["fit_image", "resize_images", "split_indices", "to_mode"]


def to_mode(img: Image.Image, channels: int) -> Image.Image:
  """Convert any pillow mode (RGBA, palette, CMYK, 16-bit, ...) to RGB or L.

  Transparency is composited onto white, so a transparent background reads as paper.
  """
  if img.mode in ("I;16", "I;16B", "I;16L", "I"):
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if arr.max() > 255 else 255.0
    img = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8), "L")
  elif img.mode == "F":
    arr = np.asarray(img, dtype=np.float64)
    span = max(float(arr.max() - arr.min()), 1e-12)
    img = Image.fromarray(((arr - arr.min()) / span * 255.0).astype(np.uint8), "L")
  if img.mode == "P" or img.mode in ("LA", "PA") or "transparency" in img.info:
    img = img.convert("RGBA")
  if img.mode == "RGBA":
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(white, img)
  return img.convert("RGB" if channels == 3 else "L")


def fit_image(img: Image.Image, size: int, channels: int) -> np.ndarray:
  """Centre-crop to a square, resize to `size x size`, return `(size, size, channels)` in [0,1]."""
  img = to_mode(img, channels)
  w, h = img.size
  s = min(w, h)
  left, top = (w - s) // 2, (h - s) // 2
  img = img.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.LANCZOS)
  arr = np.asarray(img, dtype=np.float32) / 255.0
  return arr.reshape(size, size, channels)


def resize_images(images: np.ndarray, size: int, channels: int | None = None) -> np.ndarray:
  """Resize `(N, H, W, C)` float images in [0, 1] to `(N, size, size, C')` with pillow."""
  images = np.asarray(images, np.float32)
  c_in = images.shape[-1]
  channels = channels or c_in
  out = np.empty((len(images), size, size, channels), np.float32)
  for i, x in enumerate(images):
    u8 = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(u8[..., 0] if c_in == 1 else u8, "L" if c_in == 1 else "RGB")
    out[i] = fit_image(img, size, channels)
  return out


def split_indices(names: list[str], held_out_fraction: float) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic train / held-out split by a hash of each item's name.

  An item's side depends on its name alone, so adding files to a folder never moves the
  others between train and held-out. At least one item stays on each side when possible.
  """
  if not 0.0 <= held_out_fraction < 1.0:
    raise ValueError(f"held_out_fraction must lie in [0, 1), got {held_out_fraction}")
  score = np.array([
    int.from_bytes(hashlib.sha256(n.encode()).digest()[:8], "big") / 2**64 for n in names
  ])
  held = score < held_out_fraction
  if held_out_fraction > 0 and not held.any() and len(names) > 1:
    held[np.argmin(score)] = True
  if held.all():
    held[np.argmax(score)] = False
  return np.flatnonzero(~held), np.flatnonzero(held)

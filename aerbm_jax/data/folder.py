"""Load a user's folder of photos or artworks with pillow, skipping what cannot be read."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aerbm_jax.data.preprocess import fit_image

__all__ = ["IMAGE_EXTENSIONS", "load_image", "load_folder", "MAX_PIXELS"]

IMAGE_EXTENSIONS = (
  ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
  ".pnm", ".tga", ".ico", ".jp2", ".jfif",
)
MAX_PIXELS = 200_000_000  # larger images are refused as likely decompression bombs


def load_image(path: str | Path, size: int, channels: int) -> np.ndarray:
  """One image as `(size, size, channels)` float32 in [0, 1]; raises on unreadable files.

  EXIF orientation is applied; RGB, grayscale, RGBA, palette, CMYK and 16-bit images are
  converted; animated images contribute their first frame.
  """
  path = Path(path)
  if path.stat().st_size == 0:
    raise ValueError("the file is empty (0 bytes)")
  with Image.open(path) as img:
    if img.width * img.height > MAX_PIXELS:
      raise ValueError(f"the image is {img.width}x{img.height}, over {MAX_PIXELS} pixels")
    img.seek(0)
    img.load()
    img = ImageOps.exif_transpose(img)
    if min(img.size) < 1:
      raise ValueError(f"the image has no pixels ({img.width}x{img.height})")
    return fit_image(img, size, channels)


def _reason(err: Exception) -> str:
  """Why a file was skipped, in words a user can act on."""
  if isinstance(err, UnidentifiedImageError):
    return "not an image pillow can read"
  if isinstance(err, Image.DecompressionBombError):
    return f"too many pixels ({err})"
  if isinstance(err, (OSError, SyntaxError)) and not isinstance(err, FileNotFoundError):
    return f"corrupt or truncated image ({err})"
  return str(err)


def load_folder(
  folder: str | Path, size: int, channels: int = 3, *, recursive: bool = True
) -> tuple[np.ndarray, list[str]]:
  """Every readable image under `folder`, `(N, size, size, channels)`, and their relative names.

  Files are read in sorted order. A corrupt, empty or non-image file is skipped with a
  warning naming it; a folder without a single usable image is an error.
  """
  folder = Path(folder)
  if not folder.exists():
    raise FileNotFoundError(f"data folder {folder} does not exist")
  if not folder.is_dir():
    raise NotADirectoryError(f"--data must be a folder of images, but {folder} is a file")
  files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file())
  images, names = [], []
  for path in files:
    if path.name.startswith("."):
      continue
    try:
      images.append(load_image(path, size, channels))
      names.append(str(path.relative_to(folder)))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
      warnings.warn(f"skipping {path}: {_reason(err)}", stacklevel=2)
  if not images:
    raise ValueError(
      f"no usable image in {folder}: looked for files pillow can read "
      f"(such as {', '.join(IMAGE_EXTENSIONS[:6])}) in {len(files)} file(s)"
      + (" including subfolders" if recursive else "")
    )
  return np.stack(images), names

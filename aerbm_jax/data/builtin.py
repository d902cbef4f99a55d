"""Datasets that ship with installed packages and need no download."""

from __future__ import annotations

import numpy as np

from aerbm_jax.data.preprocess import resize_images

__all__ = ["lfw_faces", "digits"]


def lfw_faces(size: int = 32, channels: int = 1) -> np.ndarray:
  """The 100 face crops of scikit-image's `lfw_subset`, `(100, size, size, channels)`.

  They are 25x25 grayscale crops from Labeled Faces in the Wild (Huang et al. 2007), shipped
  inside scikit-image (BSD-3-Clause package; LFW images are published for research use).
  The last 100 images of that set are non-faces and are left out. Upsampled with Lanczos.
  """
  from skimage.data import lfw_subset

  faces = lfw_subset()[:100].astype(np.float32)[..., None]
  return resize_images(faces, size, channels)


def digits(size: int = 8, channels: int = 1) -> np.ndarray:
  """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), `(1797, size, size, C)`."""
  from sklearn.datasets import load_digits

  x = (load_digits().images / 16.0).astype(np.float32)[..., None]
  return x if size == 8 and channels == 1 else resize_images(x, size, channels)

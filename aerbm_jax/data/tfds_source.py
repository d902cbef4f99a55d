"""Optional tensorflow-datasets source for users who can download (`lfw`, `celeb_a`, `mnist`).

Uses `tfds.data_source`, which reads the prepared files by random access without TensorFlow.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from aerbm_jax.data.preprocess import fit_image

__all__ = ["load_tfds"]


def load_tfds(
  name: str,
  size: int,
  channels: int,
  *,
  split: str = "train",
  n: int | None = None,
  data_dir: str | None = None,
  download: bool = True,
  image_key: str = "image",
) -> np.ndarray:
  """The first `n` images of a tfds dataset, `(n, size, size, channels)` float32 in [0, 1]."""
  import tensorflow_datasets as tfds

  source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
  count = len(source) if n is None else min(n, len(source))
  if count == 0:
    raise ValueError(f"tfds dataset {name!r} split {split!r} holds no examples")
  out = np.empty((count, size, size, channels), np.float32)
  for i in range(count):
    arr = np.asarray(source[i][image_key])
    if arr.dtype != np.uint8:
      arr = np.clip(arr, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
    out[i] = fit_image(img, size, channels)
  return out

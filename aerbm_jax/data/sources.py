"""The one choice of image source for every pipeline: a user's folder, tfds, or a built-in set."""

from __future__ import annotations

import numpy as np

from aerbm_jax.data.builtin import digits, lfw_faces
from aerbm_jax.data.folder import load_folder
from aerbm_jax.data.mondrian import mondrian_batch
from aerbm_jax.data.tfds_source import load_tfds

__all__ = ["BUILTIN", "load_source"]

BUILTIN = ("mondrian", "faces", "digits")  # the data sets that need no download


def load_source(
  name: str,
  size: int,
  channels: int,
  *,
  folder: str | None = None,
  tfds: str | None = None,
  n: int | None = None,
  seed: int = 0,
) -> tuple[np.ndarray, list[str], str]:
  """Images `(N, size, size, channels)` in [0, 1], a stable name for each, and a description.

  Args:
    name: the built-in data set used when neither `folder` nor `tfds` is given: "mondrian"
      (generated), "faces" (scikit-image's LFW crops) or "digits" (scikit-learn's).
    size, channels: the images' side and channels (1 or 3).
    folder: a folder of the user's images (takes precedence).
    tfds: a tensorflow-datasets name (downloads; optional).
    n: at most this many images (Mondrian: exactly this many are generated); None for all.
    seed: the Mondrian generator's seed.

  Returns:
    `(images, names, description)`; names key the train/held-out split (`split_indices`).
  """
  if folder:
    images, names = load_folder(folder, size, channels)
    source = f"folder {folder}"
  elif tfds:
    images = load_tfds(tfds, size, channels, n=n)
    names, source = [f"{tfds}-{i}" for i in range(len(images))], f"tfds {tfds}"
  elif name == "mondrian":
    if n is None:
      raise ValueError("the Mondrian generator needs a number of images")
    images = mondrian_batch(n, size, seed=seed)
    source = f"procedural Mondrian compositions (seed {seed})"
    names = [f"mondrian-{seed}-{i}" for i in range(len(images))]
  elif name == "faces":
    images = lfw_faces(size, channels)
    source = "scikit-image lfw_subset: 100 LFW face crops, 25x25 grey"
    names = [f"lfw-{i}" for i in range(len(images))]
  elif name == "digits":
    images = digits(size, channels)
    source = "scikit-learn digits, 8x8"
    names = [f"digit-{i}" for i in range(len(images))]
  else:
    raise ValueError(f"{name!r} has no built-in data ({', '.join(BUILTIN)}); pass --data DIR")
  if n and len(images) > n:
    images, names = images[:n], names[:n]
  return images, names, source

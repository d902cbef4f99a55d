"""MNIST for likelihood benchmarks: the standard files, an .npz, tfds, or the shipped sample.

Returns `(x_train, x_test)` as `(N, 784)` float32 in {0, 1}, binarised in one of the two ways
the literature uses: thresholded at 0.5 (PyDeep, Melchior et al. 2016), or stochastically once
with a fixed seed (Salakhutdinov & Murray 2008).

The package ships the first 1,000 training and 500 test digits (`mnist_sample.npz`, from
LeCun, Cortes & Burges' MNIST, CC BY-SA 3.0), so that the MNIST experiment runs offline; the
published likelihoods need the full 60,000 / 10,000 from `--data` or tfds.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = ["SAMPLE", "BINARISATIONS", "read_mnist", "binarise", "load_mnist"]

SAMPLE = Path(__file__).with_name("mnist_sample.npz")
BINARISATIONS = ("threshold", "stochastic")
_IDX = {"x_train": "train-images-idx3-ubyte", "x_test": "t10k-images-idx3-ubyte"}


def _read_idx(path: Path) -> np.ndarray:
  """One idx file (gzipped or not) as a uint8 array."""
  raw = path.read_bytes()
  if raw[:2] == b"\x1f\x8b":
    raw = gzip.decompress(raw)
  if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
    raise ValueError(f"{path} is not an idx file of unsigned bytes (bad magic number)")
  ndim = raw[3]
  if len(raw) < 4 + 4 * ndim:
    raise ValueError(f"{path} is truncated inside its header")
  dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  if data.size != int(np.prod(dims)):
    raise ValueError(f"{path} is truncated: {data.size} bytes for shape {tuple(dims)}")
  return data.reshape(dims)


def read_mnist(source: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, str]:
  """Raw MNIST images `(x_train, x_test)` as uint8 `(N, 28, 28)`, and a description.

  Args:
    source: a folder with `train-images-idx3-ubyte[.gz]` and `t10k-images-idx3-ubyte[.gz]`,
      an `.npz` with `x_train` and `x_test`, the word "tfds" (tensorflow-datasets' `mnist`;
      downloads), or None for the shipped sample of 1,000 / 500 digits.
  """
  if source is None:
    with np.load(SAMPLE) as f:
      return f["x_train"], f["x_test"], "MNIST sample shipped with aerbm_jax (1,000 / 500)"
  if str(source) == "tfds":
    import tensorflow_datasets as tfds

    parts = [tfds.data_source("mnist", split=s, download=True) for s in ("train", "test")]
    x = [np.stack([np.asarray(p[i]["image"])[..., 0] for i in range(len(p))]) for p in parts]
    return x[0], x[1], "tfds mnist"
  path = Path(source)
  if path.is_dir():
    found = {}
    for key, stem in _IDX.items():
      files = [path / stem, path / f"{stem}.gz"]
      hit = next((f for f in files if f.is_file()), None)
      if hit is None:
        raise FileNotFoundError(f"{path} has no {stem} (or {stem}.gz): pass the folder of the "
                                "four standard MNIST files, or an .npz with x_train and x_test")
      found[key] = _read_idx(hit)
    return found["x_train"], found["x_test"], f"MNIST idx files in {path}"
  if path.is_file():
    try:
      arrays = np.load(path)
    except (OSError, EOFError, ValueError) as err:
      raise ValueError(f"{path} is not a readable .npz file ({err})") from None
    if not hasattr(arrays, "files"):  # a single .npy array
      raise ValueError(f"{path} holds one array; pass an .npz with x_train and x_test")
    with arrays as f:
      if not {"x_train", "x_test"} <= set(f.files):
        raise ValueError(f"{path} has arrays {sorted(f.files)}; it needs x_train and x_test")
      return np.asarray(f["x_train"]), np.asarray(f["x_test"]), f"MNIST from {path}"
  raise FileNotFoundError(f"MNIST source {path} does not exist")


def binarise(x: np.ndarray, how: str, seed: int = 0) -> np.ndarray:
  """uint8 images to `(N, 784)` float32 bits: `x / 255 > 0.5`, or Bernoulli(x / 255) once.

  Args:
    x: `(N, 28, 28)` (or `(N, 784)`) uint8 images.
    how: "threshold" or "stochastic".
    seed: the stochastic binarisation's seed (numpy PCG64).
  """
  p = np.asarray(x, np.float32).reshape(len(x), -1) / 255.0
  if how == "threshold":
    return (p > 0.5).astype(np.float32)
  if how == "stochastic":
    return (np.random.default_rng(seed).random(p.shape, dtype=np.float32) < p).astype(np.float32)
  raise ValueError(f"binarisation must be one of {BINARISATIONS}, got {how!r}")


def load_mnist(source: str | Path | None = None, how: str = "threshold", seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray, str]:
  """Binarised MNIST `(x_train, x_test)`, each `(N, 784)` float32, and a description."""
  x_train, x_test, description = read_mnist(source)
  if x_train.ndim < 2 or x_train[0].size != 784 or x_test[0].size != 784:
    raise ValueError(f"{description}: images of {x_train.shape[1:]} are not 28x28 MNIST digits")
  # The test set draws its own bits: seed + 1, so that a change of training set leaves it.
  return (binarise(x_train, how, seed), binarise(x_test, how, seed + 1),
          f"{description}, binarised by {how}" + (f" (seed {seed})" if how == "stochastic" else ""))

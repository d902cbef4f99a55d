"""Sample-quality and estimation metrics on `(N, d)` feature arrays.

- `mmd`: unbiased squared MMD with a Gaussian kernel (median-distance bandwidth) and a
  permutation-test p-value.
- `precision_recall`: k-NN precision and recall (Kynkaenniemi et al. 2019).
- `nearest_sq_dists`, `memorization`: how close samples come to the training set compared
  with new images.
- `seed_spread`: 95% interval widths of a quantity estimated once per seed.

Test log-likelihoods of RBMs are `partition.log_likelihood_estimate`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from aerbm_jax import rbm

__all__ = [
  "MMDResult", "mmd", "precision_recall", "MemorizationResult", "memorization",
  "SpreadResult", "seed_spread", "pairwise_sq_dists", "nearest_sq_dists", "downsample_features",
]

_mm = rbm.exact_matmul


def _features(x: ArrayLike, name: str) -> Array:
  a = jnp.asarray(x, jnp.float32)
  if a.ndim != 2:
    raise ValueError(f"{name} must be an (N, d) array of features, got shape {a.shape}")
  if a.shape[0] < 2:
    raise ValueError(f"{name} needs at least 2 rows, got {a.shape[0]}")
  if not bool(jnp.all(jnp.isfinite(a))):
    raise ValueError(f"{name} holds NaN or inf")
  return a


def pairwise_sq_dists(x: ArrayLike, y: ArrayLike) -> Array:
  """Squared Euclidean distances `(len(x), len(y))`, clipped at 0."""
  x, y = jnp.asarray(x), jnp.asarray(y)
  d = jnp.sum(x**2, 1)[:, None] - 2 * _mm(x, y.T) + jnp.sum(y**2, 1)[None, :]
  return jnp.maximum(d, 0.0)


def nearest_sq_dists(x: ArrayLike, reference: ArrayLike) -> np.ndarray:
  """Squared distance from each row of `x: (n, d)` to its nearest row of `reference: (m, d)`,
  `(n,)` float32 numpy."""
  return np.asarray(jnp.min(pairwise_sq_dists(x, reference), axis=1))


def downsample_features(images: ArrayLike, size: int = 8) -> np.ndarray:
  """Images `(N, H, W, C)` average-pooled to `(N, size*size*C)`: a fixed pixel feature space."""
  x = np.asarray(images, np.float32)
  n, h, w, c = x.shape
  if h % size or w % size:
    x = np.asarray(jax.image.resize(x, (n, size, size, c), "linear"))
  else:
    x = x.reshape(n, size, h // size, size, w // size, c).mean((2, 4))
  return x.reshape(n, -1)


# ---------------------------------------------------------------------------- MMD


class MMDResult(NamedTuple):
  mmd2: float  # unbiased estimate of the squared MMD (can be slightly negative)
  p_value: float  # permutation test of "same distribution"
  bandwidth: float  # Gaussian kernel length scale used


@partial(jax.jit, static_argnames=("n",))
def _mmd2_for_labels(K: Array, labels: Array, n: int) -> Array:
  """Unbiased MMD^2 with the first group given by `labels == 1` (`n` members)."""
  m = labels.shape[0] - n
  a = labels.astype(K.dtype)
  b = 1.0 - a
  Kd = K - jnp.diag(jnp.diag(K))
  sxx = a @ Kd @ a / (n * (n - 1))
  syy = b @ Kd @ b / (m * (m - 1))
  sxy = a @ K @ b / (n * m)
  return sxx + syy - 2 * sxy


def mmd(x: ArrayLike, y: ArrayLike, *, bandwidth: float | None = None,
        n_permutations: int = 200, seed: int = 0) -> MMDResult:
  """Unbiased squared MMD between samples `x: (n, d)` and `y: (m, d)`.

  The Gaussian kernel `exp(-|a - b|^2 / (2 bandwidth^2))` takes the median pairwise distance of
  the pooled samples as its bandwidth unless one is given. The p-value is the fraction of
  `n_permutations` random relabellings of the pooled samples whose MMD^2 is at least the
  observed one (with the usual +1 correction).
  """
  x, y = _features(x, "x"), _features(y, "y")
  if x.shape[1] != y.shape[1]:
    raise ValueError(f"x and y have different feature sizes: {x.shape[1]} and {y.shape[1]}")
  z = jnp.concatenate([x, y])
  d2 = pairwise_sq_dists(z, z)
  if bandwidth is None:
    off = np.asarray(d2)[np.triu_indices(len(z), 1)]
    bandwidth = float(np.sqrt(np.median(off))) or 1.0
  K = jnp.exp(-d2 / (2 * bandwidth**2))
  n = x.shape[0]
  labels = jnp.arange(len(z)) < n
  observed = float(_mmd2_for_labels(K, labels, n))
  keys = jax.random.split(jax.random.key(seed), n_permutations)
  perms = jax.vmap(lambda k: jax.random.permutation(k, labels))(keys)
  null = np.asarray(jax.vmap(lambda l: _mmd2_for_labels(K, l, n))(perms))
  p = (1 + np.sum(null >= observed)) / (1 + n_permutations)
  return MMDResult(observed, float(p), float(bandwidth))


# ---------------------------------------------------------------------------- precision/recall


def _knn_radii(x: Array, k: int) -> Array:
  """Distance from each row to its k-th nearest other row."""
  d = jnp.sqrt(pairwise_sq_dists(x, x))
  return jnp.sort(d, axis=1)[:, k]  # column 0 is the point itself


def _coverage(points: Array, centres: Array, radii: Array) -> float:
  """Fraction of `points` inside at least one ball (centre, radius)."""
  d = jnp.sqrt(pairwise_sq_dists(points, centres))
  return float(jnp.mean(jnp.any(d <= radii[None, :], axis=1)))


def precision_recall(real: ArrayLike, fake: ArrayLike, *, k: int = 3) -> tuple[float, float]:
  """k-NN precision and recall (Kynkaenniemi et al. 2019).

  Precision: the fraction of fake points inside the real manifold (the union of balls around
  real points reaching their k-th nearest real neighbour). Recall: the fraction of real points
  inside the fake manifold, built the same way.
  """
  real, fake = _features(real, "real"), _features(fake, "fake")
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"real and fake have different feature sizes: {real.shape[1]}, {fake.shape[1]}")
  if not 1 <= k < min(len(real), len(fake)):
    raise ValueError(f"k must lie in [1, {min(len(real), len(fake)) - 1}], got {k}")
  precision = _coverage(fake, real, _knn_radii(real, k))
  recall = _coverage(real, fake, _knn_radii(fake, k))
  return precision, recall


# ---------------------------------------------------------------------------- memorisation


class MemorizationResult(NamedTuple):
  sample_distances: np.ndarray  # (n_samples,) distance of each sample to its nearest training item
  held_out_distances: np.ndarray  # (n_held_out,) the same for held-out items
  threshold: float  # the held-out distances' `quantile`
  near_copy_fraction: float  # fraction of samples closer than `threshold`
  median_ratio: float  # median sample distance / median held-out distance


def memorization(samples: ArrayLike, train: ArrayLike, held_out: ArrayLike, *,
                 quantile: float = 0.05) -> MemorizationResult:
  """Do samples sit closer to the training set than genuinely new data does?

  A sample is a near-copy when its nearest training item is closer than the `quantile` of the
  held-out items' nearest-training distances. A model that samples the data distribution has a
  near-copy fraction near `quantile`; one that replays training items, near 1.
  """
  s, t, h = _features(samples, "samples"), _features(train, "train"), _features(held_out, "held_out")
  ds, dh = np.sqrt(nearest_sq_dists(s, t)), np.sqrt(nearest_sq_dists(h, t))
  threshold = float(np.quantile(dh, quantile))
  ratio = float(np.median(ds) / max(np.median(dh), 1e-12))
  return MemorizationResult(ds, dh, threshold, float(np.mean(ds < threshold)), ratio)


# ---------------------------------------------------------------------------- spread over seeds


class SpreadResult(NamedTuple):
  mean_width: float  # mean over elements of the 95% interval width 2 * 1.96 * s / sqrt(S)
  relative_width: float  # mean_width / RMS of the seed-mean quantity: comparable across sizes
  mean_std: float  # mean over elements of the standard deviation across seeds


def seed_spread(estimates: ArrayLike) -> SpreadResult:
  """Spread of S estimates of a quantity, `(S, ...)`: 95% intervals for the mean over seeds."""
  e = np.asarray(estimates, np.float64)
  if e.ndim < 2 or e.shape[0] < 2:
    raise ValueError(f"estimates must be (S >= 2, ...), got shape {e.shape}")
  S = e.shape[0]
  flat = e.reshape(S, -1)
  std = flat.std(axis=0, ddof=1)
  width = 2 * 1.96 * std / np.sqrt(S)
  rms = float(np.sqrt(np.mean(flat.mean(0) ** 2)))
  return SpreadResult(float(width.mean()), float(width.mean() / max(rms, 1e-12)), float(std.mean()))

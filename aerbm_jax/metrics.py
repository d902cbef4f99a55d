"""Sample-quality and estimation metrics on `(N, d)` feature arrays.

- `image_features`: a fixed feature space for images (pooled colour and pooled edge energy),
  standardised on a reference set; no model under test is involved.
- `mmd`: unbiased squared MMD with a Gaussian kernel (median-distance bandwidth) and a
  permutation-test p-value.
- `kid`: kernel inception-style distance, the unbiased MMD^2 with a cubic polynomial kernel,
  with a jackknife standard error.
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
  "KIDResult", "kid", "FeatureSpace", "image_features",
]

_mm = rbm.exact_matmul


def _features(x: ArrayLike, name: str) -> Array:
  a = jnp.asarray(x, jnp.float32)
  if a.ndim != 2:
    raise ValueError(f"{name} must be an (N, d) array of features, got shape {a.shape}")
  if a.shape[0] < 2:
    raise ValueError(f"{name} needs at least 2 rows, got {a.shape[0]}")
  if not np.isfinite(np.asarray(a)).all():
    raise ValueError(f"{name} holds NaN or inf")
  return a


# The metrics' array work is compiled whole (`jax.jit`): run op by op, each of its small
# operations would compile on its own for every new shape, seconds in all on a CPU. The
# barriers keep XLA from fusing the sums and the product with their neighbours, which changed
# the experiments' figures in their last digits.
_barrier = jax.lax.optimization_barrier


@jax.jit
def pairwise_sq_dists(x: ArrayLike, y: ArrayLike) -> Array:
  """Squared Euclidean distances `(len(x), len(y))`, clipped at 0."""
  x, y = jnp.asarray(x), jnp.asarray(y)
  sq = lambda a: _barrier(jnp.sum(_barrier(a**2), 1))  # noqa: E731
  d = sq(x)[:, None] - 2 * _barrier(_mm(x, _barrier(y.T))) + sq(y)[None, :]
  return jnp.maximum(d, 0.0)


@jax.jit
def _nearest_sq_dists(x: Array, reference: Array) -> Array:
  return jnp.min(_barrier(pairwise_sq_dists(x, reference)), axis=1)


def nearest_sq_dists(x: ArrayLike, reference: ArrayLike) -> np.ndarray:
  """Squared distance from each row of `x: (n, d)` to its nearest row of `reference: (m, d)`,
  `(n,)` float32 numpy."""
  return np.asarray(_nearest_sq_dists(x, reference))


def downsample_features(images: ArrayLike, size: int = 8) -> np.ndarray:
  """Images `(N, H, W, C)` average-pooled to `(N, size*size*C)`: a fixed pixel feature space."""
  x = np.asarray(images, np.float32)
  n, h, w, c = x.shape
  if h % size or w % size:
    x = np.asarray(jax.image.resize(x, (n, size, size, c), "linear"))
  else:
    x = x.reshape(n, size, h // size, size, w // size, c).mean((2, 4))
  return x.reshape(n, -1)


def _edge_energy(x: np.ndarray, size: int) -> np.ndarray:
  """Root-mean-square horizontal and vertical differences of `(N, H, W, C)` images, pooled to
  `(N, size, size, 2C)`: high at sharp lines, low where an image is blurred or flat."""
  dx = np.zeros_like(x)
  dy = np.zeros_like(x)
  dx[:, :, :-1] = np.diff(x, axis=2)
  dy[:, :-1] = np.diff(x, axis=1)
  e = np.concatenate([dx**2, dy**2], axis=-1)
  pooled = downsample_features(e, size).reshape(len(x), size, size, -1)
  return np.sqrt(pooled)


class FeatureSpace(NamedTuple):
  """Standardisation of `image_features`, fitted on a reference set (`FeatureSpace.fit`)."""

  size: int  # side of the pooled grids
  mean: np.ndarray  # (d,) reference mean of the raw features
  scale: np.ndarray  # (d,) per-block scale: each block's RMS deviation on the reference set

  @staticmethod
  def fit(reference: ArrayLike, size: int = 8) -> "FeatureSpace":
    """The space whose origin is the mean of `reference: (N, H, W, C)` images and whose two
    blocks (colour, edge energy) each have unit mean squared deviation there."""
    raw, blocks = _raw_features(reference, size)
    mean = raw.mean(0)
    scale = np.empty_like(mean)
    for sl in blocks:
      scale[sl] = max(float(np.sqrt(np.mean((raw[:, sl] - mean[sl]) ** 2))), 1e-6)
    return FeatureSpace(size, mean, scale)

  def __call__(self, images: ArrayLike) -> np.ndarray:
    """Features `(N, d)` float32 of images `(N, H, W, C)`."""
    raw, _ = _raw_features(images, self.size)
    return ((raw - self.mean) / self.scale).astype(np.float32)


def _raw_features(images: ArrayLike, size: int) -> tuple[np.ndarray, list[slice]]:
  x = np.asarray(images, np.float32)
  if x.ndim != 4:
    raise ValueError(f"images must be (N, H, W, C), got shape {x.shape}")
  colour = downsample_features(x, size)
  edges = _edge_energy(x, size).reshape(len(x), -1)
  d = colour.shape[1]
  return np.concatenate([colour, edges], 1), [slice(0, d), slice(d, d + edges.shape[1])]


def image_features(images: ArrayLike, reference: ArrayLike, size: int = 8) -> np.ndarray:
  """`FeatureSpace.fit(reference, size)(images)`: `(N, size*size*3C)` float32.

  Per image: the `size x size` average-pooled colours (what is where) and the pooled RMS
  of neighbouring-pixel differences (how sharp it is there; blur lowers it, noise raises
  it), each block standardised on `reference`.
  """
  return FeatureSpace.fit(reference, size)(images)


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


@jax.jit
def _gaussian_kernel(d2: Array, two_var: float) -> Array:
  return jnp.exp(-d2 / two_var)


@partial(jax.jit, static_argnames=("n", "n_permutations"))
def _null_mmd2(key: Array, K: Array, labels: Array, n: int, n_permutations: int) -> Array:
  """`(n_permutations,)` MMD^2 of random relabellings of `labels` (`n` ones)."""
  keys = jax.random.split(key, n_permutations)
  perms = jax.vmap(lambda k: jax.random.permutation(k, labels))(keys)
  return jax.vmap(lambda l: _mmd2_for_labels(K, l, n))(perms)


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
  K = _gaussian_kernel(d2, 2 * bandwidth**2)
  n = x.shape[0]
  labels = np.arange(len(z)) < n
  observed = float(_mmd2_for_labels(K, labels, n))
  null = np.asarray(_null_mmd2(jax.random.key(seed), K, labels, n, n_permutations))
  p = (1 + np.sum(null >= observed)) / (1 + n_permutations)
  return MMDResult(observed, float(p), float(bandwidth))


# ---------------------------------------------------------------------------- KID


class KIDResult(NamedTuple):
  kid: float  # unbiased MMD^2 with the kernel (x.y / d + 1)^3 (can be slightly negative)
  stderr: float  # jackknife standard error of `kid`


def kid(x: ArrayLike, y: ArrayLike) -> KIDResult:
  """Kernel distance of Binkowski et al. (2018) between `x: (n, d)` and `y: (m, d)`.

  The unbiased estimate of MMD^2 with the cubic polynomial kernel `(a.b / d + 1)^3`, over all
  pairs (no subsets: meant for tens to hundreds of samples), and its jackknife standard error
  (delete one row of `x` or `y` at a time; the two one-sample jackknife variances add). The
  error is accurate when the distributions differ and conservative when they are equal.
  Lower is better; two samples of one distribution give 0 within a couple of `stderr`.
  """
  x, y = _features(x, "x"), _features(y, "y")
  if x.shape[1] != y.shape[1]:
    raise ValueError(f"x and y have different feature sizes: {x.shape[1]} and {y.shape[1]}")
  d = x.shape[1]
  k = lambda a, b: np.asarray((_mm(a, b.T) / d + 1.0) ** 3, np.float64)
  kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
  n, m = len(x), len(y)
  np.fill_diagonal(kxx, 0.0)
  np.fill_diagonal(kyy, 0.0)
  sxx, syy, sxy = kxx.sum(), kyy.sum(), kxy.sum()
  value = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)
  # Leave-one-out estimates, from each row's sums.
  loo_x = ((sxx - 2 * kxx.sum(1)) / ((n - 1) * (n - 2)) + syy / (m * (m - 1))
           - 2 * (sxy - kxy.sum(1)) / ((n - 1) * m)) if n > 2 else np.full(n, value)
  loo_y = (sxx / (n * (n - 1)) + (syy - 2 * kyy.sum(1)) / ((m - 1) * (m - 2))
           - 2 * (sxy - kxy.sum(0)) / (n * (m - 1))) if m > 2 else np.full(m, value)
  var = ((n - 1) / n * np.sum((loo_x - loo_x.mean()) ** 2)
         + (m - 1) / m * np.sum((loo_y - loo_y.mean()) ** 2))
  return KIDResult(float(value), float(np.sqrt(var)))


# ---------------------------------------------------------------------------- precision/recall


@partial(jax.jit, static_argnames="k")
def _knn_radii(x: Array, k: int) -> Array:
  """Distance from each row to its k-th nearest other row."""
  d = jnp.sqrt(pairwise_sq_dists(x, x))
  return jnp.sort(d, axis=1)[:, k]  # column 0 is the point itself


@jax.jit
def _coverage(points: Array, centres: Array, radii: Array) -> Array:
  """Fraction of `points` inside at least one ball (centre, radius), float32 ()."""
  d = jnp.sqrt(pairwise_sq_dists(points, centres))
  return jnp.mean(jnp.any(d <= radii[None, :], axis=1))


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
  precision = float(_coverage(fake, real, _knn_radii(real, k)))
  recall = float(_coverage(real, fake, _knn_radii(fake, k)))
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

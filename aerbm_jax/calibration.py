"""Known cases a sample metric must rank correctly before a report shows it.

From a data set's training and held-out images this builds five sets whose order of quality
is known: the held-out images themselves, the autoencoder's reconstructions of them, the
held-out images blurred, a pixel-RBM-like collapse (every sample an average of many
training images) and uniform noise. Each metric (`score`) is computed for every case
against the training images; `check_order` says which metrics rank the cases in that
order. Reports print only the metrics that pass, beside the cases themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from aerbm_jax import metrics

__all__ = ["CASES", "METRICS", "blur", "known_cases", "score", "check_order", "Reference",
           "evaluate"]

CASES = ("held_out", "reconstructions", "blurred", "collapse", "noise")  # best to worst
# Each metric and whether higher is better.
METRICS = {"kid": False, "mmd2": False, "precision": True, "recall": True}


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian blur of `(N, H, W, C)` images by `sigma` pixels in each spatial direction."""
  return ndimage.gaussian_filter(np.asarray(images, np.float32), (0, sigma, sigma, 0),
                                 mode="nearest")


def known_cases(train: np.ndarray, held_out: np.ndarray, reconstructions: np.ndarray | None,
                *, seed: int = 0) -> dict[str, np.ndarray]:
  """The five reference sets, each `(len(held_out), H, W, C)` in [0, 1].

  Args:
    train: `(N, H, W, C)` training images (the collapse averages them).
    held_out: `(n, H, W, C)` images the models never saw.
    reconstructions: the autoencoder's reconstructions of `held_out`; None leaves the case out.
    seed: seed of the collapse's averages and of the noise.

  Returns:
    Case name -> images, in `CASES` order. "blurred": sigma of 1/32 of the side (4 pixels
    at 128). "collapse": each image the mean of a random half of the training images.
  """
  rng = np.random.default_rng(seed)
  n, side = len(held_out), held_out.shape[1]
  half = max(1, len(train) // 2)
  collapse = np.stack([train[rng.choice(len(train), half, replace=False)].mean(0)
                       for _ in range(n)])
  cases = {
    "held_out": held_out,
    "reconstructions": reconstructions,
    "blurred": blur(held_out, max(side / 32, 0.75)),
    "collapse": collapse,
    "noise": rng.random(held_out.shape, dtype=np.float32),
  }
  return {k: np.asarray(v, np.float32) for k, v in cases.items() if v is not None}


def score(samples: np.ndarray, train_features: np.ndarray, space: metrics.FeatureSpace, *,
          n_fake: int, k: int, seed: int = 0) -> dict[str, float]:
  """Every metric of `samples: (S, H, W, C)` against the training set's features.

  KID (with its standard error) and MMD^2 use all samples; precision and recall, whose
  k-NN balls depend on how many points there are, are averaged over 8 random subsets of
  `n_fake` samples (one subset when there are exactly `n_fake`), so sets of different sizes
  are scored alike.
  """
  f = space(samples)
  k_val = metrics.kid(f, train_features)
  out = {"kid": k_val.kid, "kid_stderr": k_val.stderr,
         # Only the statistic is used: one permutation (its p-value is not kept).
         "mmd2": metrics.mmd(f, train_features, n_permutations=1, seed=seed).mmd2}
  rng = np.random.default_rng(seed)
  subsets = [np.arange(len(f))] if len(f) <= n_fake else [
    rng.choice(len(f), n_fake, replace=False) for _ in range(8)]
  pr = np.array([metrics.precision_recall(train_features, f[s], k=k) for s in subsets])
  out["precision"], out["recall"] = (float(v) for v in pr.mean(0))
  return out


def check_order(case_scores: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
  """Which metrics rank the known cases from best to worst.

  Args:
    case_scores: case name -> `score` output, for (a subset of) `CASES`.

  Returns:
    Metric -> {"ordered": bool, "values": [...], "cases": [...]}, in `CASES` order. KID and
    MMD^2 must increase strictly from case to case; precision and recall must not increase
    and must fall from the first case to the last.
  """
  names = [c for c in CASES if c in case_scores]
  out = {}
  for m, higher_better in METRICS.items():
    v = np.array([case_scores[c][m] for c in names])
    if higher_better:
      ok = bool(np.all(np.diff(v) <= 0) and v[0] > v[-1])
    else:
      ok = bool(np.all(np.diff(v) > 0))
    out[m] = {"ordered": ok, "values": [float(x) for x in v], "cases": names}
  return out


class Reference:
  """The training images' feature space and the known cases scored in it: score any set of
  samples with `score_samples`, read which metrics may be believed from `validated`."""

  def __init__(self, train: np.ndarray, held_out: np.ndarray,
               reconstructions: np.ndarray | None, *, k: int = 3, seed: int = 0):
    if len(held_out) < k + 2:
      raise ValueError(f"{len(held_out)} held-out images; the sample metrics need >= {k + 2}")
    self.k, self.seed, self.n_fake = k, seed, int(len(held_out))
    self.space = metrics.FeatureSpace.fit(train)
    self.f_train = self.space(train)
    self.flat_train = train.reshape(len(train), -1)
    self.held_nn = float(np.median(np.sqrt(metrics.nearest_sq_dists(
      held_out.reshape(len(held_out), -1), self.flat_train))))
    self.cases = {c: self.score_samples(v) for c, v in
                  known_cases(train, held_out, reconstructions, seed=seed).items()}
    self.order = check_order(self.cases)
    self.validated = [m for m, r in self.order.items() if r["ordered"]]

  def score_samples(self, images: np.ndarray) -> dict[str, float]:
    """`score` of `images: (S, H, W, C)`, plus "nn_distance_ratio": the median pixel distance
    from a sample to its nearest training image over the held-out images' median (about 1
    for new images, near 0 for copies)."""
    images = np.asarray(images, np.float32)
    s = score(images, self.f_train, self.space, n_fake=self.n_fake, k=self.k, seed=self.seed)
    nn = np.sqrt(metrics.nearest_sq_dists(images.reshape(len(images), -1), self.flat_train))
    s["nn_distance_ratio"] = float(np.median(nn) / max(self.held_nn, 1e-12))
    return s

  def summary(self) -> dict[str, Any]:
    """The known cases' scores, their order check, the validated metrics, n_fake and k."""
    return {"cases": self.cases, "order": self.order, "validated": self.validated,
            "n_fake": self.n_fake, "k": self.k}


def evaluate(models: dict[str, np.ndarray], train: np.ndarray, held_out: np.ndarray,
             reconstructions: np.ndarray | None, *, k: int = 3, seed: int = 0
             ) -> dict[str, Any]:
  """Score model samples beside the known cases, and say which metrics may be believed.

  Args:
    models: model name -> its samples `(S, H, W, C)` in [0, 1].
    train: `(N, H, W, C)` training images: the reference every set is compared with.
    held_out: `(n, H, W, C)` held-out images (n >= k + 2).
    reconstructions: the autoencoder's reconstructions of `held_out`, or None.
    k: the k-NN parameter of precision and recall.
    seed: seed of the known cases and of the metrics' random subsets and permutations.

  Returns:
    `Reference.summary()` with "models": {name: `Reference.score_samples`}.
  """
  ref = Reference(train, held_out, reconstructions, k=k, seed=seed)
  return {**ref.summary(), "models": {n: ref.score_samples(v) for n, v in models.items()}}

"""The simplest prior over latent codes, the control every RBM prior must beat: one Gaussian.

`fit_gaussian(codes)` fits the mean and full covariance of `(N, d)` codes; `sample_gaussian`
draws from it. Codes of a sigmoid autoencoder live in (0, 1); the Gaussian's samples are not
clipped to that range, so the decoder sees what the control really proposes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax import Array

__all__ = ["Gaussian", "fit_gaussian", "sample_gaussian", "gaussian_log_likelihood"]


class Gaussian(NamedTuple):
  mean: np.ndarray  # (d,) float64
  cov: np.ndarray  # (d, d) float64, symmetric positive semi-definite


def fit_gaussian(codes: np.ndarray, *, shrinkage: float = 1e-4) -> Gaussian:
  """Maximum-likelihood mean and covariance of `codes: (N, d)`, plus `shrinkage` times the
  mean variance on the diagonal (N may be below d: the raw covariance is then singular)."""
  z = np.asarray(codes, np.float64)
  if z.ndim != 2 or len(z) < 2:
    raise ValueError(f"codes must be (N >= 2, d), got shape {z.shape}")
  if not np.all(np.isfinite(z)):
    raise ValueError("codes hold NaN or inf")
  mean = z.mean(0)
  cov = np.cov(z, rowvar=False, bias=True).reshape(z.shape[1], z.shape[1])
  cov += shrinkage * max(float(np.trace(cov)) / z.shape[1], 1e-12) * np.eye(z.shape[1])
  return Gaussian(mean, cov)


def sample_gaussian(key: Array, g: Gaussian, n: int) -> np.ndarray:
  """`n` draws `(n, d)` float32 from `g` (via its eigendecomposition)."""
  vals, vecs = np.linalg.eigh(g.cov)
  root = vecs * np.sqrt(np.maximum(vals, 0.0))
  eps = np.asarray(jax.random.normal(key, (n, len(g.mean))), np.float64)
  return (g.mean + eps @ root.T).astype(np.float32)


def gaussian_log_likelihood(g: Gaussian, codes: np.ndarray) -> float:
  """Mean log-density (nats per code) of `codes: (N, d)` under `g`."""
  z = np.asarray(codes, np.float64) - g.mean
  sign, logdet = np.linalg.slogdet(g.cov)
  maha = np.einsum("ni,ni->n", z @ np.linalg.inv(g.cov), z)
  return float(np.mean(-0.5 * (maha + logdet + z.shape[1] * np.log(2 * np.pi))))

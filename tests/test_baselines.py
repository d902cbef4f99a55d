"""The Gaussian control over latent codes, checked against known moments and scipy."""

import jax
import numpy as np
import pytest
from scipy import stats

from aerbm_jax import baselines


def test_fit_and_sample_recover_the_mean_and_covariance():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(4, 4))
  cov = a @ a.T + 0.1 * np.eye(4)
  mean = np.array([0.2, -1.0, 3.0, 0.5])
  z = rng.multivariate_normal(mean, cov, size=20000)
  g = baselines.fit_gaussian(z, shrinkage=0.0)
  np.testing.assert_allclose(g.mean, mean, atol=0.05)
  np.testing.assert_allclose(g.cov, cov, atol=0.1)
  draws = baselines.sample_gaussian(jax.random.key(0), g, 20000)
  assert draws.shape == (20000, 4) and draws.dtype == np.float32
  np.testing.assert_allclose(draws.mean(0), mean, atol=0.06)
  np.testing.assert_allclose(np.cov(draws, rowvar=False), g.cov, atol=0.05 * np.abs(cov).max())


def test_log_likelihood_matches_scipy_and_fewer_codes_than_dims_is_fine():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(50, 3))
  g = baselines.fit_gaussian(z)
  want = stats.multivariate_normal(g.mean, g.cov).logpdf(z).mean()
  np.testing.assert_allclose(baselines.gaussian_log_likelihood(g, z), want, rtol=1e-10)
  few = baselines.fit_gaussian(rng.random((10, 32)))  # rank 9 without the shrinkage
  assert np.all(np.linalg.eigvalsh(few.cov) > 0)
  assert np.all(np.isfinite(baselines.sample_gaussian(jax.random.key(1), few, 5)))
  with pytest.raises(ValueError, match="N >= 2"):
    baselines.fit_gaussian(np.ones((1, 3)))

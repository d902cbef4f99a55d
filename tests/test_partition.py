"""Partition functions: enumeration against brute force, numerical integration, AIS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import all_states, bernoulli_joint_energy, random_bernoulli

from aerbm_jax import partition, rbm


@pytest.mark.parametrize("n,m", [(6, 4), (4, 7), (9, 9)])
def test_exact_log_partition_matches_brute_force(n, m):
  p = random_bernoulli(n * 10 + m, n, m, 1.0)
  E = bernoulli_joint_energy(p.W, p.b, p.c, all_states(n), all_states(m))
  expected = np.logaddexp.reduce(-E.ravel())
  # chunk_bits=2 forces many chunks through the running logsumexp.
  for chunk_bits in (2, 14):
    got = partition.exact_log_partition(p, chunk_bits=chunk_bits)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_log_likelihood_normalises():
  p = random_bernoulli(0, 7, 3, 1.5)
  v = all_states(7)
  log_z = partition.exact_log_partition(p)
  log_p = -np.asarray(rbm.free_energy(p, v), np.float64) - float(log_z)
  np.testing.assert_allclose(np.exp(log_p).sum(), 1.0, rtol=1e-5)
  np.testing.assert_allclose(partition.log_likelihood(p, v, log_z), log_p.mean(), rtol=1e-5)


def test_exact_log_partition_handles_24_units_and_refuses_too_many():
  p = random_bernoulli(1, 30, 24, 0.05)
  got = float(partition.exact_log_partition(p))
  # Weak weights: log Z is close to the independent-units value.
  approx = float(jnp.sum(jax.nn.softplus(p.b)) + jnp.sum(jax.nn.softplus(p.c)))
  assert abs(got - approx) < 0.5
  with pytest.raises(ValueError, match="ais_log_partition"):
    partition.exact_log_partition(random_bernoulli(2, 30, 29, 0.1))


@pytest.mark.parametrize("n", [1, 2])
def test_gaussian_density_integrates_to_one(n):
  r = np.random.default_rng(n)
  p = rbm.GaussianRBM(
    W=jnp.asarray(r.normal(0, 1.0, (n, 3)), jnp.float32),
    b=jnp.asarray(r.normal(0, 0.5, n), jnp.float32),
    c=jnp.asarray(r.normal(0, 0.5, 3), jnp.float32),
    log_sigma=jnp.asarray(r.normal(-0.2, 0.2, n), jnp.float32),
  )
  log_z = float(partition.exact_log_partition(p))
  grid = np.linspace(-12, 12, 1201 if n == 1 else 601)
  pts = np.stack(np.meshgrid(*([grid] * n), indexing="ij"), -1).reshape(-1, n)
  dens = np.exp(-np.asarray(rbm.free_energy(p, pts), np.float64) - log_z)
  mass = dens.sum() * (grid[1] - grid[0]) ** n
  np.testing.assert_allclose(mass, 1.0, rtol=2e-3)


def test_log_likelihood_estimate_is_exact_up_to_the_limit_and_ais_beyond():
  r = np.random.default_rng(0)
  p = random_bernoulli(r, 30, 22, scale=0.3)
  data = (r.random((50, 30)) < 0.5).astype(np.float32)
  ais = partition.log_likelihood_estimate(jax.random.key(0), p, data, n_chains=64, n_betas=5000)
  exact = float(partition.log_likelihood(p, data, partition.exact_log_partition(p)))
  assert ais.method == "ais" and ais.lower <= exact <= ais.upper
  assert abs(ais.log_likelihood - exact) < 0.2 and abs(ais.reverse_log_likelihood - exact) < 0.2
  assert ais.gap == ais.log_likelihood - ais.reverse_log_likelihood and ais.warnings == ()
  assert 0 < ais.ess <= 64 and 0 < ais.reverse_ess <= 64
  k = partition.EXACT_UNITS
  at_limit = p._replace(W=p.W[:, :k], c=p.c[:k])
  assert partition.is_enumerable(at_limit) and not partition.is_enumerable(p)
  res = partition.log_likelihood_estimate(jax.random.key(0), at_limit, data)
  # log p*(v) by brute force over all 2^20 hidden states, in chunks.
  h_all = all_states(k)
  log_p_star = np.logaddexp.reduce(np.concatenate([
    -bernoulli_joint_energy(at_limit.W, at_limit.b, at_limit.c, data.astype(np.float64),
                            h_all[i:i + 2**16]) for i in range(0, 2**k, 2**16)], axis=1), axis=1)
  assert res.method == "exact" and res.warnings == () and np.isnan(res.reverse_log_likelihood)
  np.testing.assert_allclose(res.log_likelihood, np.mean(log_p_star) - res.log_z, rtol=1e-5)

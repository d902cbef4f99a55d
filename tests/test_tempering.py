"""Parallel tempering against the exact distribution of a bimodal RBM where Gibbs sticks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import exact_visible_probs, random_bernoulli, total_variation, tv_tolerance

from aerbm_jax import rbm, sampling, tempering


def _bimodal():
  """Two equally likely modes, v = 0 (h = 0) and v = 1 (h = 1), with a barrier of 32 between."""
  n = 8
  return rbm.BernoulliRBM(
    W=jnp.full((n, 1), 8.0), b=jnp.full((n,), -4.0), c=jnp.asarray([-32.0])
  )


def test_parallel_tempering_mixes_where_gibbs_does_not():
  p = _bimodal()
  probs = exact_visible_probs(p)
  v0 = np.zeros((20_000, 8), np.float32)
  tol = tv_tolerance(probs, len(v0))
  gibbs = sampling.sample(jax.random.key(0), p, v0=v0, n_steps=200)
  assert total_variation(np.asarray(gibbs), probs) > 0.3  # stuck in the v = 0 mode
  betas = tempering.pt_betas(12, 0.0, spacing="linear")
  v, state, acc = tempering.sample_pt(jax.random.key(0), p, betas=betas, v0=v0, n_steps=200)
  assert v.shape == (20_000, 8) and state.v.shape == (12, 20_000, 8)
  assert total_variation(np.asarray(v), probs) < tol
  assert acc.shape == (11,) and np.all((acc > 0) & (acc <= 1))


def test_betas_and_errors():
  np.testing.assert_allclose(tempering.pt_betas(3, 0.25), [1.0, 0.5, 0.25], rtol=1e-6)
  np.testing.assert_allclose(tempering.pt_betas(3, 0.0, spacing="linear"), [1.0, 0.5, 0.0])
  p = random_bernoulli(0, 8, 4)
  with pytest.raises(ValueError, match="decrease"):
    tempering.sample_pt(jax.random.key(0), p, betas=[1.0, 0.5, 0.7], n_chains=2, n_steps=2)
  with pytest.raises(ValueError, match="n_replicas >= 2"):
    tempering.pt_betas(1)
  with pytest.raises(ValueError, match="beta_min > 0"):
    tempering.pt_betas(3, 0.0)


def test_one_step_swaps_only_the_pairs_of_its_parity():
  p = random_bernoulli(1, 6, 3)
  state = tempering.pt_init(p, np.zeros((64, 6), np.float32), tempering.pt_betas(4, 0.2))
  state, info = tempering.pt_step(jax.random.key(0), state, p)
  tried = ~np.isnan(np.asarray(info.swap_accept))
  np.testing.assert_array_equal(tried, [True, False, True])  # step 0: pairs (0,1) and (2,3)
  state, info = tempering.pt_step(jax.random.key(1), state, p)
  np.testing.assert_array_equal(~np.isnan(np.asarray(info.swap_accept)), [False, True, False])
  assert int(state.n_steps) == 2

"""Longer statistical checks, run by `make test-all` (marked slow)."""

import jax
import numpy as np
import pytest
from conftest import exact_visible_probs, random_bernoulli, total_variation, tv_tolerance

from aerbm_jax import partition, rbm, sampling, train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("impl", ["threefry2x32", "unsafe_rbg"])
@pytest.mark.parametrize("uniform_bits", [16, 32])
def test_gibbs_tv_with_400k_chains(impl, uniform_bits):
  p = random_bernoulli(11, 10, 5, scale=1.2)
  probs = exact_visible_probs(p)
  n = 400_000
  v = sampling.sample(jax.random.key(3, impl=impl), p, n_chains=n, n_steps=80,
                      uniform_bits=uniform_bits)
  assert total_variation(np.asarray(v), probs) < tv_tolerance(probs, n, slack=0.004)


def test_ais_on_trained_rbm_with_20_hidden_units():
  r = np.random.default_rng(0)
  protos = r.random((5, 100)) < 0.3
  x = np.where(r.random((1000, 100)) < 0.95, protos[r.integers(0, 5, 1000)],
               r.random((1000, 100)) < 0.5).astype(np.float32)
  p = rbm.init(jax.random.key(0), 100, 20, data=x)
  p, hist = train.fit(jax.random.key(1), p, x, train.TrainConfig(epochs=30, batch_size=50,
                                                                  exact_ll=True, progress=False))
  assert hist.log_likelihood[-1] > hist.log_likelihood[0]
  exact = float(partition.exact_log_partition(p))
  res = partition.ais_log_partition(jax.random.key(2), p, n_chains=200,
                                    base=partition.base_rate_bias(x))
  assert abs(float(res.log_z) - exact) < 0.5, (float(res.log_z), exact)

"""The model math against brute-force enumeration of E(v, h)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import all_states, bernoulli_joint_energy, compiled_programs, random_bernoulli

from aerbm_jax import rbm


def _bernoulli(rng, n=5, m=3, scale=1.0):
  return random_bernoulli(rng, n, m, scale)


def _gaussian(rng, n=3, m=3):
  return rbm.GaussianRBM(
    W=jnp.asarray(rng.normal(0, 0.7, (n, m)), jnp.float32),
    b=jnp.asarray(rng.normal(0, 0.5, n), jnp.float32),
    c=jnp.asarray(rng.normal(0, 0.5, m), jnp.float32),
    log_sigma=jnp.asarray(rng.normal(0, 0.3, n), jnp.float32),
  )


def _gaussian_energy_np(p, v, h):
  W, b, c, ls = (np.asarray(x, np.float64) for x in p)
  inv_var = np.exp(-2 * ls)
  quad = 0.5 * (((v - b) ** 2) * inv_var).sum(1)[:, None]
  return quad - (v * inv_var) @ W @ h.T - (h @ c)[None, :]


def test_bernoulli_energy_free_energy_and_conditionals_match_enumeration(rng):
  p = _bernoulli(rng)
  v, h = all_states(5), all_states(3)
  E = bernoulli_joint_energy(p.W, p.b, p.c, v, h)  # (32, 8)
  vv, hh = np.repeat(v, len(h), 0), np.tile(h, (len(v), 1))
  np.testing.assert_allclose(rbm.energy(p, vv, hh), E.reshape(-1), rtol=1e-5, atol=1e-5)
  F = -np.logaddexp.reduce(-E, axis=1)
  np.testing.assert_allclose(rbm.free_energy(p, v), F, rtol=1e-5, atol=1e-5)
  # p(h_j = 1 | v) and p(v_i = 1 | h) from the joint table.
  joint = np.exp(-E - np.logaddexp.reduce(-E.ravel()))
  ph = (joint @ h) / joint.sum(1, keepdims=True)
  np.testing.assert_allclose(rbm.hidden_prob(p, v), ph, atol=1e-5)
  pv = (joint.T @ v) / joint.sum(0)[:, None]
  np.testing.assert_allclose(rbm.visible_mean(p, h), pv, atol=1e-5)


def test_gaussian_energy_free_energy_and_conditionals(rng):
  p = _gaussian(rng)
  v = rng.normal(0, 1.5, (7, 3))
  h = all_states(3)
  E = _gaussian_energy_np(p, v, h)  # (7, 8)
  vv, hh = np.repeat(v, len(h), 0), np.tile(h, (len(v), 1))
  np.testing.assert_allclose(rbm.energy(p, vv, hh), E.reshape(-1), rtol=1e-4, atol=1e-4)
  F = -np.logaddexp.reduce(-E, axis=1)  # exact: the sum over h is finite
  np.testing.assert_allclose(rbm.free_energy(p, v), F, rtol=1e-4, atol=1e-4)
  post = np.exp(-E - np.logaddexp.reduce(-E, axis=1, keepdims=True))
  np.testing.assert_allclose(rbm.hidden_prob(p, v), post @ h, atol=1e-5)
  # p(v | h) is N(b + W h, sigma^2): -E(v, h) differs from that log-density by a v-free constant.
  mean = np.asarray(rbm.visible_mean(p, h))
  sigma = np.exp(np.asarray(p.log_sigma, np.float64))
  for j in range(len(h)):
    log_n = -0.5 * (((v - mean[j]) / sigma) ** 2).sum(1)
    diff = -E[:, j] - log_n
    np.testing.assert_allclose(diff, diff[0], atol=1e-4)


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_temper_scales_the_energy(rng, kind):
  p = _bernoulli(rng) if kind == "bernoulli" else _gaussian(rng, 5, 3)
  v = (rng.random((6, 5)) < 0.5).astype(np.float32)
  h = (rng.random((6, 3)) < 0.5).astype(np.float32)
  np.testing.assert_allclose(
    rbm.energy(rbm.temper(p, 0.3), v, h), 0.3 * np.asarray(rbm.energy(p, v, h)), rtol=1e-5,
    atol=1e-6)


def test_init_from_data_sets_biases():
  key = jax.random.key(0)
  data = np.tile([[1, 0, 1, 1]], (10, 1)).astype(np.float32)
  data[:5, 3] = 0
  p = rbm.init(key, 4, 2, data=data)
  np.testing.assert_allclose(jax.nn.sigmoid(p.b), [0.999, 0.001, 0.999, 0.5], atol=1e-6)
  g = rbm.init(key, 4, 2, visible="gaussian", data=data * 3 + 1)
  np.testing.assert_allclose(g.b, data.mean(0) * 3 + 1, atol=1e-6)
  assert isinstance(g, rbm.GaussianRBM) and g.W.shape == (4, 2)


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_conditionals_of_chains_held_as_columns_are_the_rows_transposed(rng, kind):
  """`hidden_prob_columns` and `visible_mean_columns` of `x.T` are `hidden_prob` and
  `visible_mean` of `x`, transposed, to float32 rounding (the products sum in another order),
  with `W.T` made by the caller or not."""
  p = _bernoulli(rng, 40, 24) if kind == "bernoulli" else _gaussian(rng, 40, 24)
  v = (rng.random((6, 40)) < 0.5).astype(np.float32) if kind == "bernoulli" else (
    rng.normal(0, 1.5, (6, 40)).astype(np.float32))
  h = (rng.random((6, 24)) < 0.5).astype(np.float32)
  for w_t in (None, p.W.T):
    np.testing.assert_allclose(rbm.hidden_prob_columns(p, jnp.asarray(v.T), w_t=w_t),
                               np.asarray(rbm.hidden_prob(p, v)).T, rtol=1e-5, atol=1e-6)
  assert rbm.hidden_prob_columns(p, jnp.asarray(v.T)).shape == (24, 6)
  np.testing.assert_allclose(rbm.visible_mean_columns(p, jnp.asarray(h.T)),
                             np.asarray(rbm.visible_mean(p, h)).T, rtol=1e-5, atol=1e-6)


def test_functions_jit_and_batch(rng):
  p = _bernoulli(rng)
  v = (rng.random((4, 5)) < 0.5).astype(np.float32)
  np.testing.assert_allclose(jax.jit(rbm.free_energy)(p, v), rbm.free_energy(p, v), rtol=1e-6)
  h = rbm.sample_hidden(jax.random.key(1), p, v)
  assert h.shape == (4, 3) and set(np.unique(h)) <= {0.0, 1.0}


@pytest.mark.parametrize("precision", [None, "highest", "bfloat16"])
def test_long_thin_products_split_over_k_match_float64(rng, precision):
  """The pixel RBM's `v @ W` (K = 49,152) runs as a batch of slices of K on CPU."""
  n, m = 3 * rbm.K_CHUNK * 8, 5
  v = (rng.random((6, n)) < 0.3).astype(np.float32)
  w = rng.normal(0, 0.05, (n, m)).astype(np.float32)
  chunks = rbm.k_chunks(jnp.asarray(v), jnp.asarray(w))
  assert chunks == (24 if jax.default_backend() == "cpu" else 1)
  assert rbm.k_chunks(jnp.asarray(v[:, :-1]), jnp.asarray(w[:-1])) == (
    23 if jax.default_backend() == "cpu" else 1)  # 49,151 = 23 * 2137
  want = v.astype(np.float64) @ w.astype(np.float64)
  if precision == "bfloat16":  # the operands rounded, the sums in float32
    w_bf = np.asarray(jnp.asarray(w).astype(jnp.bfloat16).astype(jnp.float32), np.float64)
    want = v.astype(np.float64) @ w_bf
  got = np.asarray(rbm.matmul(jnp.asarray(v), jnp.asarray(w), precision), np.float64)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  p = rbm.BernoulliRBM(W=jnp.asarray(w), b=jnp.zeros(n), c=jnp.zeros(m))
  np.testing.assert_allclose(rbm.hidden_prob(p, v), 1 / (1 + np.exp(-v.astype(np.float64) @ w)),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_init_from_data_compiles_a_few_whole_programs(visible):
  """Run op by op, `init` with data compiled 16 programs (Bernoulli) or 10 (Gaussian) at each
  new shape; now 7 and 6."""
  x = (np.random.default_rng(0).random((19, 13 if visible == "bernoulli" else 14)) < 0.5)
  with compiled_programs() as names:
    rbm.init(jax.random.key(0), x.shape[1], 7, visible=visible, data=x.astype(np.float32))
  assert 0 < len(names) <= 8, names

"""Property-based tests (hypothesis) of the RBM maths on random shapes and extreme weights."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aerbm_jax import partition, rbm
from conftest import all_states, bernoulli_joint_energy

WEIGHT = st.floats(-50.0, 50.0, width=32)  # extreme but finite

# Each compiled once per shape: run op by op, every small operation in them would compile on
# its own for each new shape drawn.
free_energy, energy, hidden_prob, visible_mean = map(
  jax.jit, (rbm.free_energy, rbm.energy, rbm.hidden_prob, rbm.visible_mean))
log_partition = jax.jit(partition.exact_log_partition)
sample_hidden, sample_visible = (jax.jit(f, static_argnames="uniform_bits")
                                 for f in (rbm.sample_hidden, rbm.sample_visible))


@st.composite
def bernoulli_rbms(draw):
  n, m = draw(st.integers(1, 6)), draw(st.integers(1, 4))
  W = draw(hnp.arrays(np.float32, (n, m), elements=WEIGHT))
  b = draw(hnp.arrays(np.float32, (n,), elements=WEIGHT))
  c = draw(hnp.arrays(np.float32, (m,), elements=WEIGHT))
  return rbm.BernoulliRBM(jnp.asarray(W), jnp.asarray(b), jnp.asarray(c))


@st.composite
def gaussian_rbms(draw):
  n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
  W = draw(hnp.arrays(np.float32, (n, m), elements=st.floats(-5.0, 5.0, width=32)))
  b = draw(hnp.arrays(np.float32, (n,), elements=st.floats(-5.0, 5.0, width=32)))
  c = draw(hnp.arrays(np.float32, (m,), elements=WEIGHT))
  log_sigma = draw(hnp.arrays(np.float32, (n,), elements=st.floats(-2.0, 2.0, width=32)))
  return rbm.GaussianRBM(*(jnp.asarray(x) for x in (W, b, c, log_sigma)))


def _scale(p):
  return 1.0 + sum(float(np.abs(np.asarray(x, np.float64)).sum()) for x in p)


SETTINGS = settings(max_examples=15, deadline=None)


@SETTINGS
@given(bernoulli_rbms())
def test_free_energy_and_log_z_match_brute_force(p):
  n, m = p.W.shape
  v, h = all_states(n), all_states(m)
  neg_e = -bernoulli_joint_energy(p.W, p.b, p.c, v, h)
  want_f = -np.logaddexp.reduce(neg_e, axis=1)
  got_f = np.asarray(free_energy(p, v.astype(np.float32)), np.float64)
  tol = 2e-6 * _scale(p)  # float32 rounding of sums of |W|, |b|, |c|
  np.testing.assert_allclose(got_f, want_f, atol=tol)
  np.testing.assert_allclose(float(log_partition(p)),
                             np.logaddexp.reduce(neg_e, axis=None), atol=tol)
  e = np.asarray(energy(p, v[:, None].repeat(len(h), 1).reshape(-1, n).astype(np.float32),
                            np.tile(h, (len(v), 1)).astype(np.float32)))
  np.testing.assert_allclose(-e.reshape(len(v), len(h)), neg_e, atol=tol)


@SETTINGS
@given(bernoulli_rbms(), st.integers(0, 2**31 - 1), st.sampled_from([16, 32]))
def test_conditionals_are_probabilities_and_samples_are_bits(p, seed, bits):
  n, m = p.W.shape
  key_v, key_h, key_s = jax.random.split(jax.random.key(seed), 3)
  v = jax.random.bernoulli(key_v, 0.5, (8, n)).astype(jnp.float32)
  ph = np.asarray(hidden_prob(p, v))
  assert ph.shape == (8, m) and np.all((ph >= 0) & (ph <= 1))
  h = sample_hidden(key_h, p, v, uniform_bits=bits)
  pv = np.asarray(visible_mean(p, h))
  assert np.all((pv >= 0) & (pv <= 1))
  for x in (h, sample_visible(key_s, p, h, uniform_bits=bits)):
    assert np.all((np.asarray(x) == 0) | (np.asarray(x) == 1))
  # Saturated probabilities are sampled exactly: p = 0 never fires, p = 1 always does.
  hs = np.asarray(h)
  assert np.all(hs[ph == 0.0] == 0) and np.all(hs[ph == 1.0] == 1)


@SETTINGS
@given(gaussian_rbms(), st.integers(0, 2**31 - 1))
def test_gaussian_free_energy_is_finite_and_consistent_with_the_energy(p, seed):
  n, m = p.W.shape
  v = np.asarray(jax.random.normal(jax.random.key(seed), (5, n)) * 3, np.float64)
  h = all_states(m)
  e = np.stack([np.asarray(energy(p, np.repeat(vi[None], len(h), 0).astype(np.float32),
                                      h.astype(np.float32)), np.float64) for vi in v])
  want = -np.logaddexp.reduce(-e, axis=1)
  got = np.asarray(free_energy(p, v.astype(np.float32)), np.float64)
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(got, want, atol=1e-5 * (_scale(p) + np.abs(v).sum() ** 2))
  x = np.asarray(sample_visible(jax.random.key(seed), p, h.astype(np.float32)))
  assert np.all(np.isfinite(x))

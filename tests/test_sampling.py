"""Samplers against exact distributions: total variation over all 2^n visible states."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (all_states, dot_count, exact_sum_model, exact_visible_probs,
                      random_bernoulli, total_variation, traced_run, tv_tolerance)

from aerbm_jax import rbm, sampling

N_CHAINS = 50_000


def _tiny(seed=0, n=8, m=4, scale=1.0):
  return random_bernoulli(seed, n, m, scale)


@pytest.mark.parametrize("uniform_bits", [16, 32])
def test_gibbs_matches_exact_distribution(uniform_bits):
  p = _tiny()
  probs = exact_visible_probs(p)
  v = sampling.sample(jax.random.key(42), p, n_chains=N_CHAINS, n_steps=60,
                      uniform_bits=uniform_bits)
  tol = tv_tolerance(probs, N_CHAINS)
  tv = total_variation(np.asarray(v), probs)
  assert tv < tol, (tv, tol)
  # The same test rejects a slightly different model: it can fail.
  wrong = exact_visible_probs(p._replace(W=p.W * 1.1))
  assert total_variation(np.asarray(v), wrong) > tol


def test_one_chain_samples_the_exact_distribution():
  """A single chain takes its own matrix-vector path (`W @ h`): 50,000 independent one-chain
  samplers, vmapped, must match p(v) like the batched sampler."""
  p = _tiny(seed=2)
  probs = exact_visible_probs(p)
  one = lambda k: sampling.run(k, sampling.init(p, jnp.zeros((1, 8))), p, 60)[0].v[0]
  v = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(11), N_CHAINS))
  assert total_variation(np.asarray(v), probs) < tv_tolerance(probs, N_CHAINS)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_one_row_conditionals_match_the_batched_ones(visible):
  p = rbm.init(jax.random.key(3), 300, 40, visible=visible, weight_scale=0.3)
  h = (jax.random.uniform(jax.random.key(4), (5, 40)) < 0.5).astype(jnp.float32)
  batched = rbm.visible_mean(p, h, rbm.SAMPLER_PRECISION)
  for i in range(5):
    np.testing.assert_allclose(rbm.visible_mean(p, h[i:i + 1], rbm.SAMPLER_PRECISION),
                               batched[i:i + 1], rtol=1e-5, atol=1e-6)


def test_threefry_and_rbg_keys_both_sample_correctly():
  p = _tiny(seed=3)
  probs = exact_visible_probs(p)
  for impl in ("threefry2x32", "rbg"):
    v = sampling.sample(jax.random.key(7, impl=impl), p, n_chains=N_CHAINS, n_steps=60)
    assert total_variation(np.asarray(v), probs) < tv_tolerance(probs, N_CHAINS), impl


def test_trajectory_hidden_and_persistent_chains():
  p = _tiny(seed=1)
  key = jax.random.key(0)
  traj, hs = sampling.sample(key, p, n_chains=3, n_steps=5, trajectory=True, return_hidden=True)
  assert traj.shape == (5, 3, 8) and hs.shape == (5, 3, 4)
  last = sampling.sample(key, p, n_chains=3, n_steps=5)
  np.testing.assert_array_equal(traj[-1], last)
  # Persistent chains: a GibbsState carried across calls keeps sampling p(v).
  probs = exact_visible_probs(p)
  state = sampling.init(p, np.zeros((N_CHAINS, 8), np.float32))
  run = jax.jit(sampling.run, static_argnames="n_steps")
  for key_call in jax.random.split(jax.random.key(5), 3):
    state, _ = run(key_call, state, p, n_steps=20)
  assert total_variation(np.asarray(state.v), probs) < tv_tolerance(probs, N_CHAINS)


def test_gaussian_sampler_matches_exact_moments():
  r = np.random.default_rng(0)
  p = rbm.GaussianRBM(
    W=jnp.asarray(r.normal(0, 1.0, (2, 3)), jnp.float32),
    b=jnp.asarray([0.5, -1.0], jnp.float32),
    c=jnp.asarray(r.normal(0, 0.5, 3), jnp.float32),
    log_sigma=jnp.asarray([0.0, -0.5], jnp.float32),
  )
  h = all_states(3)
  W, b, c, ls = (np.asarray(x, np.float64) for x in p)
  sig2 = np.exp(2 * ls)
  mu = h @ W.T + b  # (8, 2) means of p(v | h)
  score = h @ c + 0.5 * ((mu**2 - b**2) / sig2).sum(1)
  ph = np.exp(score - np.logaddexp.reduce(score))
  mean = ph @ mu
  second = np.diag(sig2) + (mu * ph[:, None]).T @ mu
  cov = second - np.outer(mean, mean)
  v = np.asarray(sampling.sample(jax.random.key(1), p, n_chains=N_CHAINS, n_steps=50))
  se = np.sqrt(np.diag(cov) / N_CHAINS)
  assert np.all(np.abs(v.mean(0) - mean) < 5 * se), (v.mean(0), mean)
  np.testing.assert_allclose(np.cov(v.T), cov, atol=0.05 * np.abs(cov).max())


def test_sampler_errors():
  p = _tiny()
  with pytest.raises(ValueError, match="n_chains"):
    sampling.sample(jax.random.key(0), p, n_steps=3)
  with pytest.raises(ValueError, match="v0 must have shape"):
    sampling.sample(jax.random.key(0), p, v0=np.zeros((2, 5)), n_steps=3)



def test_sample_visibles_returns_the_last_means_or_the_last_samples():
  p = _tiny(scale=2.0)
  state = sampling.sample_chains(jax.random.key(3), p, n_chains=64, n_steps=5, progress=False)
  means = sampling.sample_visibles(jax.random.key(3), p, 64, 5, kind="mean")
  drawn = sampling.sample_visibles(jax.random.key(3), p, 64, 5, kind="sample")
  np.testing.assert_allclose(means, sampling.chain_means(p, state), rtol=1e-6)
  np.testing.assert_array_equal(drawn, state.v)
  assert set(np.unique(drawn)) == {0.0, 1.0}
  big = rbm.init(jax.random.key(1), 40, 24, weight_scale=0.5)  # bfloat16 moves its chains
  np.testing.assert_array_equal(  # the precision is passed on to the chains
    sampling.sample_visibles(jax.random.key(3), big, 16, 7, kind="sample", precision="bfloat16"),
    sampling.sample_chains(jax.random.key(3), big, n_chains=16, n_steps=7, progress=False,
                           precision="bfloat16").v)
  assert 0 < np.mean((means > 0.01) & (means < 0.99))  # means are not 0/1
  with pytest.raises(ValueError, match="kind must be one of"):
    sampling.sample_visibles(jax.random.key(3), p, 4, 5, kind="binary")

def test_bfloat16_sampler_samples_the_rounded_model():
  """bfloat16 matmuls sample the model whose W is rounded to bfloat16, exactly (TV bound);
  how far that model is from the float32 one is measured, not assumed."""
  p = _tiny(seed=5)
  rounded = p._replace(W=p.W.astype(jnp.bfloat16).astype(jnp.float32))
  probs, probs_rounded = exact_visible_probs(p), exact_visible_probs(rounded)
  v = np.asarray(sampling.sample(jax.random.key(9), p, n_chains=N_CHAINS, n_steps=60,
                                 precision="bfloat16"))
  tol = tv_tolerance(probs_rounded, N_CHAINS)
  assert total_variation(v, probs_rounded) < tol
  bias = 0.5 * np.abs(probs - probs_rounded).sum()
  assert bias < 0.01  # rounding W to 8 significant bits moves p(v) by < 1% in TV here
  assert total_variation(v, probs) < tol + bias
  with pytest.raises(ValueError, match="precision must be one of"):
    sampling.sample(jax.random.key(9), p, n_chains=2, n_steps=1, precision="float16")


@pytest.mark.parametrize("precision", [None, "int8", "bfloat16"])
def test_sample_chains_in_chunks_end_where_one_sample_call_does(precision):
  """`sample_chains` runs compiled chunks of the one run's sweeps: for any chunk size its final
  state is `sample`'s, bit for bit, at every precision (bfloat16's chains differ from the
  float32 ones, so a precision that is not passed on fails here)."""
  p = rbm.init(jax.random.key(1), 40, 24, weight_scale=0.5)
  want = sampling.sample(jax.random.key(2), p, n_chains=16, n_steps=7, return_hidden=True,
                         precision=precision)
  for chunk in (3, 7):
    got = sampling.sample_chains(jax.random.key(2), p, n_chains=16, n_steps=7, chunk=chunk,
                                 progress=False, precision=precision)
    np.testing.assert_array_equal(got.v, want[0])
    np.testing.assert_array_equal(got.h, want[1])
  assert 0 < float(jnp.mean(want[0])) < 1


def test_int8_sampler_samples_the_exact_distribution():
  """int8-digit products (`digits`) sample the model itself, many chains and one alike; they
  take binary states of a Bernoulli model only, and say so."""
  p = _tiny(seed=5)
  probs = exact_visible_probs(p)
  v = np.asarray(sampling.sample(jax.random.key(9), p, n_chains=N_CHAINS, n_steps=60,
                                 precision="int8"))
  tol = tv_tolerance(probs, N_CHAINS)
  assert total_variation(v, probs) < tol
  assert total_variation(v, exact_visible_probs(p._replace(W=p.W * 1.1))) > tol
  one = lambda k: sampling.run(k, sampling.init(p, jnp.zeros((1, 8))), p, 60,  # noqa: E731
                               precision="int8")[0].v[0]
  v_one = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(4), N_CHAINS)))
  assert total_variation(v_one, probs) < tol
  with pytest.raises(ValueError, match="binary starting visibles"):
    sampling.sample(jax.random.key(1), p, v0=np.full((2, 8), 0.5), n_steps=2, precision="int8")
  gaussian = rbm.init(jax.random.key(0), 8, 4, visible="gaussian")
  with pytest.raises(ValueError, match="needs a BernoulliRBM"):
    sampling.sample(jax.random.key(1), gaussian, n_chains=2, n_steps=2, precision="int8")


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_bfloat16_run_reads_a_copy_of_w_transposed_and_draws_what_step_draws(visible):
  """`run` at bfloat16 copies W^T once before its loop: XLA's CPU bfloat16 product reads a
  transposed right operand (`h @ W.T`) as float32, a float32 copy of W in the compiled loop.
  Its sweeps draw what `step` at bfloat16 draws: the same Bernoulli chains bit for bit, and
  Gaussian visibles to the float32 rounding of the sums."""
  n, m = 24, 40
  p = rbm.init(jax.random.key(5), n, m, visible=visible, weight_scale=0.5)
  state = sampling.init(p, jax.random.bernoulli(jax.random.key(6), 0.5, (8, n)) * 1.0)
  keys = jax.random.split(jax.random.key(7), 3)
  got, _ = jax.jit(lambda s: sampling.run(keys[0], s, p, 3, precision="bfloat16",
                                          keys=keys))(state)
  want = state
  for k in keys:
    want, _ = jax.jit(lambda k, s: sampling.step(k, s, p, precision="bfloat16"))(k, want)
  np.testing.assert_array_equal(got.h, want.h)
  np.testing.assert_allclose(got.v, want.v, rtol=0, atol=1e-6 if visible == "gaussian" else 0)
  assert 0 < float(jnp.mean(got.h)) < 1
  if visible == "bernoulli" and jax.default_backend() == "cpu":
    text = sampling._sample.lower(jax.random.key(1), p, None, 8, 5, False, False, False, 16,
                                  None, "bfloat16").compile().as_text()
    f32_w = [line for line in text.splitlines()
             if re.search(rf"= f32\[({n},{m}|{m},{n})\]", line) and "parameter(" not in line]
    assert not f32_w, f32_w


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_half_step_from_hidden_probabilities_draws_what_step_draws(visible):
  """`half_step` from `p(h|v)` is `step` from `v` with its first matmul already done: the
  same key gives the same chains, bit for bit."""
  p = rbm.init(jax.random.key(5), 12, 7, visible=visible, weight_scale=0.5)
  v = jax.random.bernoulli(jax.random.key(6), 0.5, (9, 12)).astype(jnp.float32)
  want, _ = sampling.step(jax.random.key(7), sampling.GibbsState(v=v, h=jnp.zeros((9, 7))), p)
  got = sampling.half_step(jax.random.key(7), rbm.hidden_prob(p, v), p)
  np.testing.assert_array_equal(got.v, want.v)
  np.testing.assert_array_equal(got.h, want.h)


def test_chains_swept_in_halves_end_where_whole_sweeps_take_them(monkeypatch):
  """`run` on a multi-core CPU sweeps 8-64 chains of a mid-sized model as two independent
  halves (`sampling.in_halves`), each carried as columns: with every product's sum exact (W
  and b on a grid of 1/64), the chains, and a trace of states and hidden probabilities, are
  the same bit for bit as the whole batch swept at once, for an odd batch too."""
  p = exact_sum_model()

  def chains(halves, batch, bits):
    monkeypatch.setattr(sampling, "in_halves", lambda params, n_chains, precision: halves)
    return traced_run(p, batch, bits)

  for batch, bits in ((33, 16), (32, 32)):
    got, want = chains(True, batch, bits), chains(False, batch, bits)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b)
  assert float(jnp.mean(got[0].v)) > 0.05  # the chains moved: not all zeros either way
  # `sample` keeps the final hidden samples as an output of its compiled call when it sweeps in
  # halves, with a trajectory of visibles too, then drops them.
  compiled_out = []
  real = sampling._sample
  monkeypatch.setattr(sampling, "_sample",
                      lambda *a, **k: compiled_out.append(real(*a, **k)) or compiled_out[-1])
  for trajectory in (False, True):
    samples = []
    for halves in (True, False):
      monkeypatch.setattr(sampling, "in_halves",
                          lambda params, n_chains, precision, halves=halves: halves)
      samples.append(sampling.sample(jax.random.key(5), p, n_chains=24, n_steps=3,
                                     trajectory=trajectory))
    assert samples[0].shape == (3,) * trajectory + (24, 256)
    np.testing.assert_array_equal(samples[0], samples[1])
    (*_, kept_h), whole = compiled_out[-2:]
    assert kept_h.shape == (24, 160) and len(whole) == 1


def test_run_sweeps_whole_when_told_and_in_halves_otherwise(monkeypatch):
  """`run(..., halves=False)` sweeps the batch whole (two products a sweep) even where
  `in_halves` would split it (four); by default, it splits."""
  p = rbm.init(jax.random.key(1), 64, 32)
  state = sampling.init(p, jnp.zeros((16, 64)))
  run = lambda halves: lambda k: sampling.run(k, state, p, 3, halves=halves)  # noqa: E731
  monkeypatch.setattr(sampling, "in_halves", lambda params, n_chains, precision: False)
  whole = dot_count(run(True), jax.random.key(0))
  monkeypatch.setattr(sampling, "in_halves", lambda params, n_chains, precision: True)
  assert dot_count(run(True), jax.random.key(0)) == whole + 2
  assert dot_count(run(False), jax.random.key(0)) == whole


def test_in_halves_chooses_mid_sized_bernoulli_batches():
  bernoulli = rbm.init(jax.random.key(0), 784, 500)
  assert not sampling.in_halves(bernoulli, 4)  # too few chains
  assert not sampling.in_halves(bernoulli, 128)  # enough rows for the matmul itself
  shape = lambda n, m: rbm.BernoulliRBM(  # noqa: E731
    W=jax.ShapeDtypeStruct((n, m), jnp.float32), b=None, c=None)
  assert not sampling.in_halves(shape(4096, 4096), 8)  # W out of cache
  assert not sampling.in_halves(shape(49152, 64), 32)  # a long contraction, split over K
  assert not sampling.in_halves(rbm.init(jax.random.key(0), 784, 500, visible="gaussian"), 32)
  assert not sampling.in_halves(bernoulli, 32, "bfloat16")  # its products are fast whole
  cores = len(os.sched_getaffinity(0))
  multicore_cpu = jax.default_backend() == "cpu" and cores >= 2 and jax.device_count() == 1
  assert sampling.in_halves(bernoulli, 32) == multicore_cpu
  for n, m, chains in ((16, 8, 8), (128, 64, 64), (4096, 1024, 8), (12288, 256, 64)):
    assert sampling.in_halves(shape(n, m), chains) == multicore_cpu, (n, m, chains)

"""CD-k and PCD-k gradient estimators against the exact gradient from enumeration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import dot_count, exact_nll_grad, flat, tiny_problem

from aerbm_jax import gradients, partition, rbm, sampling


def test_long_chain_cd_matches_exact_gradient_and_cd1_bias_is_measured():
  p, data = tiny_problem()
  exact = flat(exact_nll_grad(p, data))
  reps = 500  # every data row starts 500 chains
  v = jnp.asarray(np.repeat(data, reps, axis=0))
  g_long, model = gradients.cd_grad(jax.random.key(0), p, v, k=100)
  g_long = flat(g_long)
  # The chains' end comes with its own p(h | v), the rows the gradient's model term read.
  assert model.v.shape == v.shape and float(jnp.mean(jnp.abs(model.v - v))) > 0.05
  np.testing.assert_array_equal(model.h, rbm.hidden_prob(p, model.v, rbm.SAMPLER_PRECISION))
  rel = np.linalg.norm(g_long - exact) / np.linalg.norm(exact)
  assert rel < 0.05, rel
  # CD-1 is biased: measure it. It must still point uphill in likelihood.
  g1 = flat(gradients.cd_grad(jax.random.key(1), p, v, k=1)[0])
  cos = g1 @ exact / (np.linalg.norm(g1) * np.linalg.norm(exact))
  big = np.abs(exact) > 0.2 * np.abs(exact).max()
  assert cos > 0.5, cos
  assert np.all(np.sign(g1[big]) == np.sign(exact[big]))


@pytest.mark.parametrize("m, rows", [(64, 128), (65, 128), (64, 127), (16, 256)])
def test_weight_statistics_equal_v_transpose_h_in_both_forms(m, rows):
  # (64, 128) and (16, 256) take the transposed form on CPU, the others the plain dot.
  r = np.random.default_rng(m + rows)
  v, h = r.random((3, rows, 200)).astype(np.float32), r.random((3, rows, m)).astype(np.float32)
  want = np.einsum("sbn,sbm->snm", v.astype(np.float64), h)
  one = jax.jit(gradients.weight_statistics)(v[0], h[0])
  many = jax.jit(jax.vmap(gradients.weight_statistics))(v, h)
  np.testing.assert_allclose(one, want[0], rtol=2e-5, atol=1e-4)
  np.testing.assert_allclose(many, want, rtol=2e-5, atol=1e-4)
  jaxpr = str(jax.make_jaxpr(gradients.weight_statistics)(v[0], h[0]))
  transposed = jax.default_backend() == "cpu" and m <= 64 and rows >= 128
  assert ("optimization_barrier" in jaxpr) == transposed


def test_pcd_gradient_averaged_over_chains_matches_exact():
  p, data = tiny_problem(1)
  exact = flat(exact_nll_grad(p, data))
  chains = sampling.init(p, np.zeros((20_000, 6), np.float32))
  chains, _ = sampling.run(jax.random.key(0), chains, p, 100)
  g, _ = gradients.pcd_grad(jax.random.key(1), p, jnp.asarray(data), chains, k=1)
  assert np.linalg.norm(flat(g) - exact) / np.linalg.norm(exact) < 0.05


def _centred_to_plain(phi, offsets):
  """The plain RBM of centred parameters phi = (W, b_c, c_c)."""
  mu, lam = offsets
  return rbm.BernoulliRBM(W=phi.W, b=phi.b - phi.W @ lam, c=phi.c - phi.W.T @ mu)


def test_centred_gradient_is_the_exact_gradient_of_the_centred_parametrisation():
  p, data = tiny_problem(2)
  offsets = gradients.Offsets(visible=jnp.asarray(data.mean(0)),
                               hidden=jnp.asarray([0.3, 0.5, 0.8], jnp.float32))
  # The centred parameters whose plain RBM is p.
  phi = rbm.BernoulliRBM(W=p.W, b=p.b + p.W @ offsets.hidden, c=p.c + p.W.T @ offsets.visible)
  np.testing.assert_allclose(flat(_centred_to_plain(phi, offsets)), flat(p), atol=1e-6)

  def nll(q):
    plain = _centred_to_plain(q, offsets)
    return -partition.log_likelihood(plain, data, partition.exact_log_partition(plain))

  exact = jax.grad(nll)(phi)
  # The identity behind the estimator: centred statistics are the plain ones shifted,
  # D_W - mu D_c^T - D_b lambda^T, and with the exact plain gradient they are exact.
  plain = exact_nll_grad(p, data)
  shifted = plain._replace(W=plain.W - jnp.outer(offsets.visible, plain.c)
                           - jnp.outer(plain.b, offsets.hidden))
  np.testing.assert_allclose(flat(shifted), flat(exact), rtol=1e-4, atol=1e-5)
  # From long PCD chains, the estimator's step agrees with the exact centred gradient's within
  # Monte Carlo error, and with the shifted plain estimate, mapped, to float rounding.
  chains = sampling.init(p, np.zeros((20_000, 6), np.float32))
  chains, _ = sampling.run(jax.random.key(0), chains, p, 100)
  g, _ = gradients.pcd_grad(jax.random.key(1), p, jnp.asarray(data), chains, k=1,
                            offsets=offsets)
  want = flat(gradients.centred_update(exact, offsets))
  assert np.linalg.norm(flat(g) - want) / np.linalg.norm(want) < 0.05
  g_plain, _ = gradients.pcd_grad(jax.random.key(1), p, jnp.asarray(data), chains, k=1)
  shifted_estimate = g_plain._replace(W=g_plain.W - jnp.outer(offsets.visible, g_plain.c)
                                      - jnp.outer(g_plain.b, offsets.hidden))
  np.testing.assert_allclose(flat(g), flat(gradients.centred_update(shifted_estimate, offsets)),
                             atol=5e-4)  # float32 sums over 20,040 rows in another order
  # A centred step, mapped to the plain parameters, is the plain RBM of the stepped centred ones.
  eta = 0.1
  stepped = _centred_to_plain(jax.tree.map(lambda a, b: a - eta * b, phi, exact), offsets)
  mapped = jax.tree.map(lambda a, b: a - eta * b, p, gradients.centred_update(exact, offsets))
  np.testing.assert_allclose(flat(mapped), flat(stepped), rtol=1e-5, atol=1e-6)


def test_pcd_chains_keep_their_hidden_probabilities_and_sample_the_model():
  """PCD's chains carry `p(h|v)` into the next update's first half-sweep; with the
  parameters held fixed, updates are block Gibbs sweeps and the chains reach p(v)."""
  from conftest import exact_visible_probs, total_variation, tv_tolerance

  p, data = tiny_problem(3)
  chains = sampling.init(p, np.zeros((20_000, 6), np.float32))
  step = jax.jit(lambda k, c: gradients.pcd_grad(k, p, jnp.asarray(data), c, k=1)[1])
  for i in range(40):
    chains = step(jax.random.key(i), chains)
  np.testing.assert_allclose(chains.h, rbm.hidden_prob(p, chains.v), rtol=1e-5, atol=1e-6)
  probs = exact_visible_probs(p)
  tol = tv_tolerance(probs, 20_000)
  assert total_variation(np.asarray(chains.v), probs) < tol
  # The same test rejects a slightly different model: it can fail.
  assert total_variation(np.asarray(chains.v), exact_visible_probs(p._replace(W=p.W * 1.3))) > tol


@pytest.mark.parametrize("centred", [False, True])
def test_weight_grad_bound_holds_and_is_reached(centred):
  """The bound is at least every |W| entry of the gradient it bounds; rows whose products are
  all of the largest size, with opposite signs in data and model, reach it; a NaN row makes
  it NaN."""
  r = np.random.default_rng(7)
  p = rbm.init(jax.random.key(0), 12, 5)
  v_d, v_m = (r.random((2, 9, 12)) < 0.4).astype(np.float32)
  h_d = rbm.hidden_prob(p, jnp.asarray(v_d))
  h_m = rbm.hidden_prob(p, jnp.asarray(v_m))
  off = gradients.Offsets(jnp.asarray(v_d.mean(0)), jnp.full(5, 0.5)) if centred else None
  g = gradients.contrastive_grad(p, v_d, v_m, h_data=h_d, h_model=h_m, offsets=off)
  bound = gradients.weight_grad_bound(v_d, h_d, v_m, h_m, off)
  assert bound.dtype == jnp.float32 and float(bound) >= float(jnp.max(jnp.abs(g.W)))
  # Reached: centred, data products (1 - 0)(1 - 1/2) and model ones (1 - 0)(0 - 1/2); plain,
  # data products 1 x 1 and model ones -1 x 1.
  ones = np.ones((4, 12), np.float32)
  h1, h0 = jnp.ones((4, 5)), jnp.zeros((4, 5))
  if centred:
    off0 = gradients.Offsets(jnp.zeros(12), jnp.full(5, 0.5))
    args = (ones, h1, ones, h0, off0)
  else:
    args = (ones, h1, -ones, h1, None)
  g = gradients.contrastive_grad(p, args[0], args[2], h_data=args[1], h_model=args[3],
                                 offsets=args[4])
  want = 1.0 if centred else 2.0
  assert float(gradients.weight_grad_bound(*args)) == float(jnp.max(jnp.abs(g.W))) == want
  assert np.isnan(gradients.weight_grad_bound(v_d, h_d.at[2, 1].set(jnp.nan), v_m, h_m, off))


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_cd_k_and_pcd_k_sweep_their_chains_whole(monkeypatch, method):
  """The training chains keep only their visibles, where chains swept in halves run slower
  (`sampling.run`): CD-k and PCD-k trace the same products whether or not `in_halves` would
  split their batch."""
  p = rbm.init(jax.random.key(1), 64, 32)
  v = jnp.zeros((16, 64))
  chains = sampling.init(p, v)

  def dots(halves: bool) -> int:
    monkeypatch.setattr(sampling, "in_halves", lambda params, n_chains, precision=None: halves)

    def grad(key):  # a new function each time: traces are cached by function
      if method == "cd":
        return gradients.cd_grad(key, p, v, k=3)
      return gradients.pcd_grad(key, p, v, chains, k=3)

    return dot_count(grad, jax.random.key(0))

  assert dots(True) == dots(False)

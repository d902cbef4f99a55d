"""W in blocks of rows for a few chains (`row_blocks`): the same conditionals, the same chains."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import exact_sum_model, traced_run

from aerbm_jax import rbm, row_blocks, sampling


def test_block_conditionals_equal_the_whole_products():
  p = rbm.init(jax.random.key(0), 96, 40, weight_scale=0.5)
  p = p._replace(c=jax.random.normal(jax.random.key(3), (40,)),
                 b=jax.random.normal(jax.random.key(4), (96,)))
  v = (jax.random.uniform(jax.random.key(5), (3, 96)) < 0.5).astype(jnp.float32)
  h = (jax.random.uniform(jax.random.key(6), (3, 40)) < 0.5).astype(jnp.float32)
  for blocks in (2, 4, 8):
    np.testing.assert_allclose(row_blocks.hidden_prob(p, v, None, blocks),
                               rbm.hidden_prob(p, v), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(row_blocks.visible_mean(p, h, None, blocks),
                               rbm.visible_mean(p, h), rtol=1e-5, atol=1e-6)


def test_chains_in_row_blocks_end_where_whole_sweeps_take_them(monkeypatch):
  """With every sum exact, `run` over W in blocks gives the chains, and a trace of states and
  hidden probabilities, bit for bit as W whole does, at 1-4 chains and both uniform widths."""
  p = exact_sum_model()

  def chains(blocks, batch, bits):
    monkeypatch.setattr(row_blocks, "n_blocks", lambda params, n_chains, precision: blocks)
    return traced_run(p, batch, bits)

  for batch, bits in ((1, 16), (2, 32), (3, 16), (4, 16)):
    got, want = chains(4, batch, bits), chains(0, batch, bits)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b)
    assert 0.05 < float(jnp.mean(got[0].v)) < 0.95  # the chains moved


def _batched_products(fn, *args) -> int:
  """How many of the matrix products `fn(*args)` traces carry a batch dimension."""
  return len([line for line in str(jax.make_jaxpr(fn)(*args)).splitlines()
              if "dot_general" in line and "([0], [0])" in line])


def test_run_takes_blocks_where_n_blocks_says_so():
  p = rbm.init(jax.random.key(0), 784, 500)
  for chains in (2, 8):
    state = sampling.init(p, jnp.zeros((chains, 784)))
    batched = _batched_products(lambda k: sampling.run(k, state, p, 3), jax.random.key(0))
    assert batched == (2 if row_blocks.n_blocks(p, chains) else 0), chains


def test_n_blocks_chooses_a_few_chains_of_mid_sized_bernoulli_models():
  on_cpu = jax.default_backend() == "cpu" and jax.device_count() == 1
  blocks = row_blocks.BLOCKS if on_cpu else 0
  shape = lambda n, m: rbm.BernoulliRBM(  # noqa: E731
    W=jax.ShapeDtypeStruct((n, m), jnp.float32), b=None, c=None)
  for n, m, chains in ((784, 500, 1), (784, 500, 4), (256, 128, 2), (4096, 1024, 2)):
    assert row_blocks.n_blocks(shape(n, m), chains) == blocks, (n, m, chains)
  bernoulli = rbm.init(jax.random.key(0), 784, 500)
  assert row_blocks.n_blocks(bernoulli, 5) == 0  # enough chains for the whole products
  assert row_blocks.n_blocks(bernoulli, 2, "bfloat16") == 0
  assert row_blocks.n_blocks(bernoulli, 2, "highest") == 0
  assert row_blocks.n_blocks(rbm.init(jax.random.key(0), 784, 500, visible="gaussian"), 2) == 0
  assert row_blocks.n_blocks(shape(128, 64), 2) == 0  # too small to gain
  assert row_blocks.n_blocks(shape(784, 2000), 2) == 0  # too many hidden units
  assert row_blocks.n_blocks(shape(786, 500), 2) == 0  # rows do not divide into the blocks
  assert row_blocks.n_blocks(shape(49152, 64), 2) == 0  # a long contraction, split over K

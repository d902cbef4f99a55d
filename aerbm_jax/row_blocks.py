"""When and how `sampling.run` multiplies a few chains by W in blocks of its rows, on a CPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from aerbm_jax import rbm
from aerbm_jax.rbm import RBM, BernoulliRBM

__all__ = ["n_blocks", "hidden_prob", "visible_mean", "BLOCKS", "BLOCKS_CHAINS",
           "BLOCKS_WEIGHTS", "BLOCKS_MAX_HIDDEN"]

# `n_blocks`: the blocks, the chains, the fewest and most weights, the most hidden units.
BLOCKS = 4
BLOCKS_CHAINS = (1, 4)
BLOCKS_WEIGHTS = (2**15, 2**22)
BLOCKS_MAX_HIDDEN = 1024


def n_blocks(params: RBM, n_chains: int, precision: str | None = None) -> int:
  """How many blocks of W's rows `run` multiplies `n_chains` chains by; 0 for W whole.

  A sweep of a few chains reads all of W twice, `v W` and `h W^T`, and XLA's CPU matmul
  divides the two products over the cores differently, so each core reads most of W in each.
  As a batch of products over `BLOCKS` blocks of rows (`hidden_prob`, `visible_mean`), both
  products divide W the same way and each core keeps its blocks in its own cache: 1.1-2.1x
  faster sweeps at 1-4 chains of models from 256 x 128 to 4096 x 1024 on 2 cores (timings:
  benchmarks/results/small-batch-alternatives-cpu-2core-xeon.md). Only on a CPU with one
  device, for 1-4 chains of a Bernoulli model at the default precision (None) whose visible
  units divide into the blocks, with `BLOCKS_WEIGHTS` weights and at most `BLOCKS_MAX_HIDDEN`
  hidden units (784 x 2000 ran 0.92x), and a contraction short enough not to be split over K
  already (`rbm.k_chunks`). The hidden products sum the blocks' parts, in another order than
  `v W`: chains agree with `step`'s to float32 rounding, and bit for bit where sums are exact.

  Args:
    params: the model.
    n_chains: the batch of chains `run` is given.
    precision: the sampler's, as in `run`.
  """
  if (not isinstance(params, BernoulliRBM) or jax.default_backend() != "cpu"
      or precision is not None or jax.device_count() != 1):
    return 0
  n, m = rbm.n_visible(params), rbm.n_hidden(params)
  fits = (BLOCKS_CHAINS[0] <= n_chains <= BLOCKS_CHAINS[1] and n % BLOCKS == 0
          and BLOCKS_WEIGHTS[0] <= n * m <= BLOCKS_WEIGHTS[1] and m <= BLOCKS_MAX_HIDDEN
          and n < 8 * rbm.K_CHUNK)
  return BLOCKS if fits else 0


def _blocks(params: RBM, blocks: int) -> Array:
  """W as `(blocks, n_visible / blocks, n_hidden)`: its rows in blocks, without a copy."""
  return params.W.reshape(blocks, rbm.n_visible(params) // blocks, rbm.n_hidden(params))


def hidden_prob(params: BernoulliRBM, v: Array, precision: str | None, blocks: int) -> Array:
  """`rbm.hidden_prob` as a sum over blocks of W's rows: `(chains, n_hidden)` float32.

  Args:
    params: the model.
    v: `(chains, n_visible)` visibles.
    precision: of the products, as in `rbm.matmul` (None or a `jax.lax.Precision`).
    blocks: a divisor of `n_visible` (`n_blocks`).
  """
  chains, n = v.shape
  v3 = v.reshape(chains, blocks, n // blocks).transpose(1, 0, 2)  # (blocks, chains, n / blocks)
  parts = jax.lax.dot_general(v3, _blocks(params, blocks), (((2,), (1,)), ((0,), (0,))),
                              precision=precision)
  return jax.nn.sigmoid(parts.sum(0) + params.c)


def visible_mean(params: BernoulliRBM, h: Array, precision: str | None, blocks: int) -> Array:
  """`rbm.visible_mean` block by block of W's rows: `(chains, n_visible)` float32.

  Args:
    params: the model.
    h: `(chains, n_hidden)` hidden samples.
    precision, blocks: as in `hidden_prob`.
  """
  chains, m = h.shape
  h3 = jnp.broadcast_to(h.T, (blocks, m, chains))
  x = jax.lax.dot_general(_blocks(params, blocks), h3, (((2,), (1,)), ((0,), (0,))),
                          precision=precision)  # (blocks, n_visible / blocks, chains)
  return jax.nn.sigmoid(x.reshape(-1, chains).T + params.b)

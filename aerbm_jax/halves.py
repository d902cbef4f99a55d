"""When `sampling.run` sweeps a batch of chains as two halves at once, one per CPU core."""

from __future__ import annotations

import os

import jax

from aerbm_jax import rbm
from aerbm_jax.rbm import RBM, BernoulliRBM

__all__ = ["in_halves", "HALVES_CHAINS", "HALVES_MIN_PRODUCT", "HALVES_MAX_WEIGHTS"]

# `in_halves`: the chains, the smallest product (chains x n_visible x n_hidden), the most weights.
HALVES_CHAINS = (8, 64)
HALVES_MIN_PRODUCT = 2**21
HALVES_MAX_WEIGHTS = 2**20


def in_halves(params: RBM, n_chains: int, precision: str | None = None) -> bool:
  """Whether `run` sweeps `n_chains` chains of `params` as two independent halves.

  XLA's CPU matmul spreads a product of few rows (8 to 64 chains at 784 x 500) poorly over the
  cores; the two halves' products, independent of each other, run at once, one per core
  (benchmarks/results/small-bound-cpu-2core.md). Only on a CPU with two or more cores and one
  device, for a Bernoulli model whose products are not tiny (dispatch-bound, where two of
  everything costs more) and whose W is at most `HALVES_MAX_WEIGHTS` (read from memory twice
  a product, a large W costs more than it gains), and not at precision "bfloat16" or "int8",
  whose products of a few rows are faster whole. Either way the chains draw the same
  uniforms; the halves' products, chains as columns, may round differently in the last bit.

  Args:
    params: the model.
    n_chains: the batch of chains `run` is given.
    precision: the sampler's, as in `run`.
  """
  if (not isinstance(params, BernoulliRBM) or jax.default_backend() != "cpu"
      or precision in ("bfloat16", "int8")):
    return False
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  n, m = rbm.n_visible(params), rbm.n_hidden(params)
  return ((cores or 1) >= 2 and jax.device_count() == 1
          and HALVES_CHAINS[0] <= n_chains <= HALVES_CHAINS[1]
          and n_chains * n * m >= HALVES_MIN_PRODUCT and n * m <= HALVES_MAX_WEIGHTS)

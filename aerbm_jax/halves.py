"""When `sampling.run` sweeps a batch of chains as two halves at once, one per CPU core."""

from __future__ import annotations

import os

import jax

from aerbm_jax import rbm
from aerbm_jax.rbm import RBM, BernoulliRBM

__all__ = ["in_halves", "HALVES_CHAINS", "HALVES_MAX_WEIGHTS"]

# `in_halves`: the chains, and the most weights (16 MiB of float32).
HALVES_CHAINS = (8, 64)
HALVES_MAX_WEIGHTS = 2**22


def in_halves(params: RBM, n_chains: int, precision: str | None = None) -> bool:
  """Whether `run` sweeps `n_chains` chains of `params` as two independent halves.

  XLA's CPU matmul spreads a product of few chains poorly over the cores; the two halves'
  products, independent of each other, run at once, one per core, each half's chains held as
  columns (`rbm.hidden_prob_columns`). Only on a CPU with two or more cores and one device,
  for 8-64 chains of a Bernoulli model whose W is at most `HALVES_MAX_WEIGHTS` (each half
  reads all of W: a W that outgrows the caches costs more than it gains) and whose layers
  have fewer than `8 * rbm.K_CHUNK` units (longer contractions are split over K instead,
  `rbm.k_chunks`), and not at precision "bfloat16" or "int8", whose products of a few rows
  are faster whole (timings:
  benchmarks/results/small-batch-alternatives-cpu-2core-xeon.md). Either way the chains draw
  the same uniforms; the halves' products may round differently in the last bit.

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
          and n * m <= HALVES_MAX_WEIGHTS and max(n, m) < 8 * rbm.K_CHUNK)

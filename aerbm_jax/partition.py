"""Partition functions and log-likelihoods: exact log Z by enumeration, and the estimate.

`log_likelihood_estimate` is the one place that decides between enumeration (when the
enumerated layer has at most `EXACT_UNITS` units) and AIS (`ais`, forward and reverse, whose
entry points are re-exported here).
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from aerbm_jax import ais, rbm
from aerbm_jax.ais import (AISResult, ais_betas, ais_log_partition, base_mean, base_rate_bias,
                           reverse_ais_log_partition)
from aerbm_jax.rbm import RBM, BernoulliRBM, GaussianRBM

__all__ = [
  "EXACT_UNITS",
  "MAX_EXACT_UNITS",
  "enumerated_units",
  "is_enumerable",
  "exact_log_partition",
  "AISResult",
  "ais_betas",
  "ais_log_partition",
  "reverse_ais_log_partition",
  "base_rate_bias",
  "base_mean",
  "log_likelihood",
  "LikelihoodResult",
  "log_likelihood_estimate",
]

# Where a choice is automatic (training curves, `log_likelihood_estimate`), log Z is exact when
# the enumerated layer has at most EXACT_UNITS units: 2^20 states take about a second on a CPU.
EXACT_UNITS = 20
# What `exact_log_partition` accepts when asked directly: 2^28 states, minutes on a CPU.
MAX_EXACT_UNITS = 28

# Every product here runs in full float32 (or float64) precision, never TF32 or bfloat16:
# log Z is a sum of terms in the hundreds or thousands whose error must stay far below a nat.
_mm = rbm.exact_matmul


def _float_dtype() -> jnp.dtype:
  return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _states(index: Array, n_bits: int, dtype) -> Array:
  """Binary states of the integers `index: (k,)`, `(k, n_bits)`."""
  return ((index[:, None] >> jnp.arange(n_bits, dtype=index.dtype)) & 1).astype(dtype)


@partial(jax.jit, static_argnames=("score_fn", "n_bits", "chunk_bits"))
def _logsumexp_over_states(score_fn, args, n_bits: int, chunk_bits: int) -> Array:
  """`logsumexp_s score_fn(args, s)` over all `2^n_bits` binary states, in chunks."""
  chunk_bits = min(chunk_bits, n_bits)
  n_chunks = 2 ** (n_bits - chunk_bits)
  offsets = jnp.arange(2**chunk_bits, dtype=jnp.int32)
  dtype = _float_dtype()

  def body(carry, i):
    states = _states(i * 2**chunk_bits + offsets, n_bits, dtype)
    scores = score_fn(args, states)
    m_chunk = jnp.max(scores)
    m_new = jnp.maximum(carry[0], m_chunk)
    total = carry[1] * jnp.exp(carry[0] - m_new) + jnp.sum(jnp.exp(scores - m_new))
    return (m_new, total), None

  init = (jnp.asarray(-jnp.inf, dtype), jnp.asarray(0.0, dtype))
  (m, total), _ = jax.lax.scan(body, init, jnp.arange(n_chunks, dtype=jnp.int32))
  return m + jnp.log(total)


def _bernoulli_score_hidden(p: BernoulliRBM, h: Array) -> Array:
  return _mm(h, p.c) + jnp.sum(jax.nn.softplus(_mm(h, p.W.T) + p.b), axis=-1)


def _bernoulli_score_visible(p: BernoulliRBM, v: Array) -> Array:
  return -rbm.free_energy(p, v)


def _gaussian_score_hidden(p: GaussianRBM, h: Array) -> Array:
  mean = _mm(h, p.W.T) + p.b
  inv_var = jnp.exp(-2.0 * p.log_sigma)
  return _mm(h, p.c) + 0.5 * jnp.sum((mean**2 - p.b**2) * inv_var, axis=-1)


def enumerated_units(params: RBM) -> int:
  """The size of the layer `exact_log_partition` sums over: the smaller one (Bernoulli), or
  the hidden one (Gaussian)."""
  if isinstance(params, GaussianRBM):
    return rbm.n_hidden(params)
  return min(rbm.n_visible(params), rbm.n_hidden(params))


def is_enumerable(params: RBM, limit: int = EXACT_UNITS) -> bool:
  """Whether log Z is computed exactly where the choice is automatic (`<= limit` units)."""
  return enumerated_units(params) <= limit


def exact_log_partition(params: RBM, *, chunk_bits: int = 14) -> Array:
  """Exact `log Z` by enumerating the smaller layer (the hidden layer for Gaussian models).

  Works for up to `MAX_EXACT_UNITS = 28` enumerated units; the sum runs in chunks of
  `2^chunk_bits` states with a running logsumexp. Computed in float64 when
  `jax.config.jax_enable_x64` is on, else float32.
  """
  rbm.check_kind(params)
  n, m = rbm.n_visible(params), rbm.n_hidden(params)
  dtype = _float_dtype()
  p = jax.tree.map(lambda x: jnp.asarray(x, dtype), params)
  if enumerated_units(params) > MAX_EXACT_UNITS:
    layer = "n_hidden" if isinstance(params, GaussianRBM) else "min(n_visible, n_hidden)"
    raise ValueError(f"exact log Z enumerates 2^{layer} states, {enumerated_units(params)} > "
                     f"{MAX_EXACT_UNITS} units: use ais_log_partition")
  if isinstance(params, GaussianRBM):
    rest = 0.5 * n * math.log(2 * math.pi) + jnp.sum(p.log_sigma)
    return rest + _logsumexp_over_states(_gaussian_score_hidden, p, m, chunk_bits)
  if m <= n:
    return _logsumexp_over_states(_bernoulli_score_hidden, p, m, chunk_bits)
  return _logsumexp_over_states(_bernoulli_score_visible, p, n, chunk_bits)


def log_likelihood(params: RBM, v: ArrayLike, log_z: ArrayLike) -> Array:
  """Mean `log p(v)` in nats over the batch `v: (batch, n_visible)`.

  For Gaussian models this is a log-density (nats per data vector), not a probability.
  """
  return jnp.mean(-rbm.free_energy(params, v)) - log_z


# ---------------------------------------------------------------------------- estimate


class LikelihoodResult(NamedTuple):
  """Mean log p(v) over a data set, with its method, interval and AIS diagnostics."""

  log_likelihood: float  # mean log p(v) in nats (AIS: from the forward estimate of log Z)
  lower: float  # from the upper end of the log Z interval (equal to the estimate when exact)
  upper: float  # from the lower end of the log Z interval (+inf when that end is open)
  log_z: float
  method: str  # "exact" or "ais"
  reverse_log_likelihood: float  # from reverse AIS's log Z (pessimistic); NaN if not run
  gap: float  # log_likelihood - reverse_log_likelihood, nats; 0 when exact
  ess: float  # forward AIS's effective sample size; NaN when exact
  reverse_ess: float  # reverse AIS's; NaN if not run
  warnings: tuple[str, ...]  # why not to trust the AIS figures, with the fix; () when fine


def log_likelihood_estimate(
  key: Array,
  params: RBM,
  data: ArrayLike,
  *,
  n_chains: int = 100,
  n_betas: int = 14_500,
  base_data: ArrayLike | None = None,
  reverse: bool = True,
) -> LikelihoodResult:
  """Mean log p(v) over `data`: exact when `is_enumerable(params)`, else by AIS.

  With AIS, reverse AIS runs beside it (chains from `base_data`, else `data`), and the result
  carries both figures, their gap, the weights' effective sample sizes, and `ais.diagnose`.

  Args:
    key: PRNG key for AIS (unused when exact).
    params: the model. For Gaussian models this is a log-density (nats per data vector).
    data: `(N, n_visible)` vectors to score.
    n_chains, n_betas: the AIS runs and schedule length (`ais_log_partition`).
    base_data: data that set the AIS base model (`base_rate_bias` or `base_mean` of it; the
      uniform base or the model's mean when None) and start the reverse chains.
    reverse: also run reverse AIS.

  Returns:
    A `LikelihoodResult`.
  """
  rbm.check_kind(params)
  x = jnp.asarray(data, params.W.dtype)
  mean_neg_f = float(jnp.mean(-rbm.free_energy(params, x)))
  nan = float("nan")
  if is_enumerable(params):
    log_z = float(exact_log_partition(params))
    ll = mean_neg_f - log_z
    return LikelihoodResult(ll, ll, ll, log_z, "exact", nan, 0.0, nan, nan, ())
  gaussian = isinstance(params, GaussianRBM)
  base = None
  if base_data is not None:
    base = base_mean(base_data) if gaussian else base_rate_bias(base_data)
  key_forward, key_reverse = jax.random.split(key)
  fwd = ais_log_partition(key_forward, params, n_chains=n_chains, n_betas=n_betas, base=base)
  rev = None
  if reverse:
    rev = reverse_ais_log_partition(key_reverse, params, x if base_data is None else base_data,
                                    n_chains=n_chains, n_betas=n_betas, base=base)
  ll = mean_neg_f - float(fwd.log_z)
  rev_ll = nan if rev is None else mean_neg_f - float(rev.log_z)
  return LikelihoodResult(
    ll, mean_neg_f - float(fwd.log_z_upper), mean_neg_f - float(fwd.log_z_lower),
    float(fwd.log_z), "ais", rev_ll, ll - rev_ll, float(fwd.ess),
    nan if rev is None else float(rev.ess), tuple(ais.diagnose(fwd, rev)))

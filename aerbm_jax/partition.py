"""Partition functions and log-likelihoods: exact log Z by enumeration, AIS, and the estimate.

`log_likelihood_estimate` is the one place that decides between the two: enumeration when the
enumerated layer has at most `EXACT_UNITS` units, AIS otherwise.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.sharding import Mesh
from jax.typing import ArrayLike

from aerbm_jax import parallel, rbm, sampling
from aerbm_jax.rng import bernoulli
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
  "base_rate_bias",
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


# ---------------------------------------------------------------------------- AIS


class AISResult(NamedTuple):
  """An AIS estimate of log Z with the interval `log(Z_hat +- 3 standard errors)`."""

  log_z: Array  # shape=()
  log_z_lower: Array  # shape=(), -inf when 3 standard errors exceed the estimate
  log_z_upper: Array  # shape=()
  log_weights: Array  # shape=(n_chains,)
  log_z_base: Array  # shape=()


def ais_betas(n_betas: int = 14_500) -> np.ndarray:
  """The schedule of Salakhutdinov & Murray (2008), scaled to `n_betas` points in [0, 1].

  The paper's 14,500 points: 500 in [0, 0.5), 4,000 in [0.5, 0.9), 10,000 in [0.9, 1].
  """
  if n_betas < 3:
    raise ValueError(f"n_betas must be >= 3, got {n_betas}")
  n1 = max(1, round(n_betas * 500 / 14_500))
  n2 = max(1, round(n_betas * 4_000 / 14_500))
  n3 = n_betas - n1 - n2
  return np.concatenate([
    np.linspace(0.0, 0.5, n1, endpoint=False),
    np.linspace(0.5, 0.9, n2, endpoint=False),
    np.linspace(0.9, 1.0, n3),
  ])


def base_rate_bias(data: ArrayLike, smoothing: float = 0.05) -> Array:
  """Visible biases of the AIS base model: the logit of the smoothed data mean, `(n_visible,)`.

  The mean is smoothed towards 1/2 as `(mean + smoothing) / (1 + 2 smoothing)` so that no
  bias is infinite.
  """
  x = jnp.asarray(data)
  mean = (jnp.sum(x, axis=0) + smoothing * x.shape[0]) / (x.shape[0] * (1 + 2 * smoothing))
  return jnp.log(mean) - jnp.log1p(-mean)


def _ais_log_ratio(p: BernoulliRBM, b_a: Array, beta: Array, beta_prev: Array, v: Array
                   ) -> Array:
  """`log p*_beta(v) - log p*_beta_prev(v)`, computed without cancelling large terms.

  `log p*_beta(v) = ((1-beta) b_A + beta b).v + sum_j softplus(beta (c + vW)_j)`; each term
  of the difference is small, so float32 keeps its precision over thousands of steps.
  """
  x = _mm(v, p.W) + p.c
  d_beta = beta - beta_prev
  field = d_beta * _mm(v, p.b - b_a)
  # softplus(beta x) - softplus(beta' x) = log1p(exp(beta x)) - log1p(exp(beta' x)), via
  # softplus(y) = max(y, 0) + log1p(exp(-|y|)) so that no term grows with |x|.
  hi, lo = beta * x, beta_prev * x
  soft = (jnp.maximum(hi, 0) - jnp.maximum(lo, 0)) + (
    jnp.log1p(jnp.exp(-jnp.abs(hi))) - jnp.log1p(jnp.exp(-jnp.abs(lo))))
  return field + jnp.sum(soft, axis=-1)


def _intermediate(p: BernoulliRBM, b_a: Array, beta: Array) -> BernoulliRBM:
  """The RBM whose distribution is `p_beta`: `beta W`, `(1 - beta) b_A + beta b`, `beta c`."""
  return BernoulliRBM(W=beta * p.W, b=(1.0 - beta) * b_a + beta * p.b, c=beta * p.c)


@partial(jax.jit, static_argnames=("n_chains", "sharding"))
def _ais(key, params: BernoulliRBM, b_a, betas, n_chains: int, sharding=None):
  dtype = params.W.dtype
  key_init, key_run = jax.random.split(key)
  v = bernoulli(key_init, jnp.broadcast_to(jax.nn.sigmoid(b_a), (n_chains, b_a.shape[0])), 32)
  state = sampling.GibbsState(v=parallel.constrain(v, sharding),
                              h=jnp.zeros((n_chains, rbm.n_hidden(params)), dtype))

  def body(carry, xs):
    state, log_w = carry
    beta_prev, beta, key_step = xs
    log_w = log_w + _ais_log_ratio(params, b_a, beta, beta_prev, state.v)
    # One block Gibbs sweep of the sampler's kernel on p_beta, which leaves p_beta invariant;
    # full float32 matmuls and 32-bit uniforms, since its errors accumulate over the schedule.
    state, _ = sampling.step(key_step, state, _intermediate(params, b_a, beta), 32, "highest")
    return (state, log_w), None

  keys = jax.random.split(key_run, betas.shape[0] - 1)
  (_, log_w), _ = jax.lax.scan(
    body, (state, jnp.zeros((n_chains,), dtype)), (betas[:-1], betas[1:], keys)
  )
  return log_w


def ais_log_partition(
  key: Array,
  params: BernoulliRBM,
  *,
  n_chains: int = 100,
  n_betas: int = 14_500,
  base: ArrayLike | None = None,
  mesh: Mesh | None = None,
) -> AISResult:
  """Annealed importance sampling estimate of `log Z` (Salakhutdinov & Murray 2008).

  The base model has `W = 0`, `c = 0` and visible biases `base` (see `base_rate_bias`;
  zeros, the uniform distribution, when omitted), so
  `log Z_A = n_hidden log 2 + sum_i softplus(base_i)`. All chains run in parallel inside one
  `lax.scan` over the schedule `ais_betas(n_betas)`.

  Args:
    key: PRNG key.
    params: a BernoulliRBM.
    n_chains: independent AIS runs.
    n_betas: points in the annealing schedule, the paper's 14,500 by default.
    base: visible biases of the base model, `(n_visible,)`.
    mesh: split the chains over a `parallel.make_mesh()` mesh (a multiple of its devices).
  """
  if not isinstance(params, BernoulliRBM):
    raise TypeError(f"AIS is implemented for BernoulliRBM, got {type(params).__name__}")
  if n_chains < 2:
    raise ValueError(f"n_chains must be >= 2 to give an interval, got {n_chains}")
  dtype = _float_dtype()
  p = jax.tree.map(lambda x: jnp.asarray(x, dtype), params)
  n, m = rbm.n_visible(p), rbm.n_hidden(p)
  b_a = jnp.zeros((n,), dtype) if base is None else jnp.asarray(base, dtype)
  if b_a.shape != (n,):
    raise ValueError(f"base must have shape ({n},), got {tuple(b_a.shape)}")
  betas = jnp.asarray(ais_betas(n_betas), dtype)
  (p, b_a), _, sharding = parallel.place_chains((p, b_a), None, n_chains, mesh)
  log_w = _ais(key, p, b_a, betas, n_chains, sharding)
  log_z_base = m * jnp.log(2.0) + jnp.sum(jax.nn.softplus(b_a))
  # log of the mean weight, and of its standard error, relative to the base.
  log_mean = jax.scipy.special.logsumexp(log_w) - jnp.log(n_chains)
  shift = jnp.max(log_w)
  w = jnp.exp(log_w - shift)
  log_se = jnp.log(jnp.std(w, ddof=1)) + shift - 0.5 * jnp.log(n_chains)
  log_3se = jnp.log(3.0) + log_se
  upper = jnp.logaddexp(log_mean, log_3se)
  diff = jnp.exp(log_3se - log_mean)
  lower = jnp.where(diff < 1.0, log_mean + jnp.log1p(-jnp.minimum(diff, 1.0 - 1e-7)), -jnp.inf)
  return AISResult(
    log_z=log_z_base + log_mean,
    log_z_lower=log_z_base + lower,
    log_z_upper=log_z_base + upper,
    log_weights=log_w,
    log_z_base=log_z_base,
  )


# ---------------------------------------------------------------------------- estimate


class LikelihoodResult(NamedTuple):
  """Mean log p(v) over a data set, with its method and interval."""

  log_likelihood: float  # mean log p(v) in nats
  lower: float  # from the upper end of the log Z interval (equal to the estimate when exact)
  upper: float  # from the lower end of the log Z interval (-inf lower end: +inf here)
  log_z: float
  method: str  # "exact" or "ais"


def log_likelihood_estimate(
  key: Array,
  params: RBM,
  data: ArrayLike,
  *,
  n_chains: int = 100,
  n_betas: int = 14_500,
  base_data: ArrayLike | None = None,
) -> LikelihoodResult:
  """Mean log p(v) over `data`: exact when `is_enumerable(params)`, else by AIS.

  Args:
    key: PRNG key for AIS (unused when exact).
    params: the model. Gaussian models are exact only (AIS covers Bernoulli models), and give
      a log-density (nats per data vector), not a log-probability.
    data: `(N, n_visible)` vectors to score.
    n_chains, n_betas: the AIS runs and schedule length (`ais_log_partition`).
    base_data: data whose smoothed mean sets the AIS base model's biases (`base_rate_bias`);
      the uniform base when None.

  Returns:
    A `LikelihoodResult`.
  """
  rbm.check_kind(params)
  x = jnp.asarray(data, params.W.dtype)
  mean_neg_f = float(jnp.mean(-rbm.free_energy(params, x)))
  if is_enumerable(params) or isinstance(params, GaussianRBM):
    log_z = float(exact_log_partition(params))
    ll = mean_neg_f - log_z
    return LikelihoodResult(ll, ll, ll, log_z, "exact")
  base = None if base_data is None else base_rate_bias(base_data)
  res = ais_log_partition(key, params, n_chains=n_chains, n_betas=n_betas, base=base)
  return LikelihoodResult(mean_neg_f - float(res.log_z), mean_neg_f - float(res.log_z_upper),
                          mean_neg_f - float(res.log_z_lower), float(res.log_z), "ais")

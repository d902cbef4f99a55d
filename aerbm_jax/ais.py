"""Annealed importance sampling of log Z, forward and reverse, with diagnostics that speak up.

The path from a base model A to the RBM B: `p*_beta(v) = p*_A(v)^(1 - beta) p*_B(v)^beta`
on the visible marginals, which is itself an RBM's (`beta W`, `(1 - beta) b_A + beta b`,
`beta c`), so one block Gibbs sweep of it leaves each `p_beta` invariant. Its products are
B's own scaled by beta, so each step computes B's hidden input `v W + c` once, for both the
weight's log-ratio and the sweep's hidden probabilities: two products a step, not three.

- Bernoulli base (Salakhutdinov & Murray 2008): `W = 0`, `c = 0`, visible biases `b_A` (the
  logit of the smoothed data mean, `base_rate_bias`); `log Z_A = m log 2 + sum softplus(b_A)`.
- Gaussian base: `W = 0`, `c = 0`, `N(mu_A, sigma^2)` with the model's own `sigma` (so every
  `p_beta` is a Gaussian RBM with that `sigma`); `log Z_A = m log 2 + sum log sigma +
  (n/2) log 2 pi`.

Forward AIS starts chains at the base and anneals to B: `Z_B / Z_A = E[w]`, and by Jensen
`E[log Z_hat] <= log Z`, so log-likelihoods come out optimistic. Reverse AIS (PyDeep's
`reverse_annealed_importance_sampling`; Burda, Grosse & Salakhutdinov 2015) starts at data
rows, standing in for samples of B, and anneals to A: `Z_A / Z_B = E[w]`, so its log Z is
biased upwards and its log-likelihood pessimistic. Both converged, they sandwich the truth.
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

from aerbm_jax import loop, parallel, rbm, sampling
from aerbm_jax.rbm import RBM, BernoulliRBM, GaussianRBM
from aerbm_jax.rng import bernoulli

__all__ = [
  "AISResult", "ais_betas", "base_rate_bias", "base_mean", "ais_log_partition",
  "reverse_ais_log_partition", "MIN_ESS_FRACTION", "MAX_GAP_NATS", "diagnose",
]

_mm = rbm.exact_matmul
MIN_ESS_FRACTION = 0.1  # fewer effective chains than this fraction: a warning
MAX_GAP_NATS = 1.0  # forward and reverse log Z further apart than this: a warning


class AISResult(NamedTuple):
  """An AIS estimate of log Z with the interval `log(Z_hat +- 3 standard errors)`."""

  log_z: Array  # shape=()
  log_z_lower: Array  # shape=(), -inf when 3 standard errors exceed the forward estimate
  log_z_upper: Array  # shape=(), +inf when they exceed the reverse estimate's 1 / Z
  log_weights: Array  # shape=(n_chains,)
  log_z_base: Array  # shape=()
  ess: Array  # shape=(): effective sample size (sum w)^2 / sum w^2 of the weights
  reverse: bool  # True for reverse AIS


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
  """Visible biases of the Bernoulli base model: the logit of the smoothed data mean, `(n,)`.

  The mean is smoothed towards 1/2 as `(mean + smoothing) / (1 + 2 smoothing)` so that no
  bias is infinite.
  """
  x = jnp.asarray(data)
  mean = (jnp.sum(x, axis=0) + smoothing * x.shape[0]) / (x.shape[0] * (1 + 2 * smoothing))
  return jnp.log(mean) - jnp.log1p(-mean)


def base_mean(data: ArrayLike) -> Array:
  """The Gaussian base model's mean: the data mean, `(n,)`."""
  return jnp.mean(jnp.asarray(data), axis=0)


def _softplus_diff_and_sigmoid(hi: Array, lo: Array) -> tuple[Array, Array]:
  """`softplus(hi) - softplus(lo)` without cancelling large terms, and `sigmoid(hi)`, from one
  `exp(-|.|)` of each: via `softplus(y) = max(y, 0) + log1p(exp(-|y|))`, no term grows with
  |y|, so float32 keeps its precision over thousands of steps."""
  e_hi, e_lo = jnp.exp(-jnp.abs(hi)), jnp.exp(-jnp.abs(lo))
  diff = (jnp.maximum(hi, 0) - jnp.maximum(lo, 0)) + (jnp.log1p(e_hi) - jnp.log1p(e_lo))
  return diff, jnp.where(hi >= 0, 1.0, e_hi) / (1.0 + e_hi)


def _hidden_input(p: RBM, base: Array, v: Array) -> tuple[Array, Array]:
  """B's hidden input at `v` and the visible term's slope in beta: `(chains, n_hidden)` and
  `(chains,)`, such that `log p*_beta(v) = beta field + sum softplus(beta x)` up to a constant,
  and `p_beta(h = 1 | v) = sigmoid(beta x)`."""
  if isinstance(p, GaussianRBM):
    inv_var = jnp.exp(-2.0 * p.log_sigma)
    x = _mm(v * inv_var, p.W) + p.c
    return x, -0.5 * jnp.sum(((v - p.b) ** 2 - (v - base) ** 2) * inv_var, axis=-1)
  return _mm(v, p.W) + p.c, _mm(v, p.b - base)


def _visible_mean(p: RBM, base: Array, beta: Array, h: Array) -> Array:
  """`E[v | h]` under `p_beta`'s RBM, `(chains, n_visible)`: `h (beta W)^T` as `beta (h W^T)`."""
  x = beta * _mm(h, p.W.T) + ((1.0 - beta) * base + beta * p.b)
  return x if isinstance(p, GaussianRBM) else jax.nn.sigmoid(x)


def _log_z_base(p: RBM, base: Array) -> Array:
  m = rbm.n_hidden(p)
  if isinstance(p, GaussianRBM):
    return (m * jnp.log(2.0) + jnp.sum(p.log_sigma)
            + 0.5 * rbm.n_visible(p) * math.log(2 * math.pi))
  return m * jnp.log(2.0) + jnp.sum(jax.nn.softplus(base))


def _base_sample(key: Array, p: RBM, base: Array, n_chains: int) -> Array:
  shape = (n_chains, base.shape[0])
  if isinstance(p, GaussianRBM):
    return base + jnp.exp(p.log_sigma) * jax.random.normal(key, shape, p.W.dtype)
  return bernoulli(key, jnp.broadcast_to(jax.nn.sigmoid(base), shape), 32)


@jax.jit
def _anneal_chunk(carry, params: RBM, base: Array, betas_prev: Array, betas: Array,
                  keys: Array):
  """One chunk of the schedule: `(state, log_w)` carried from `betas_prev[0]` to `betas[-1]`."""

  def body(carry, xs):
    state, log_w = carry
    beta_prev, beta, key_step = xs
    x, field = _hidden_input(params, base, state.v)
    # log p*_beta(v) - log p*_beta_prev(v), each term small, and p_beta(h = 1 | v).
    diff, p_h = _softplus_diff_and_sigmoid(beta * x, beta_prev * x)
    log_w = log_w + (beta - beta_prev) * field + jnp.sum(diff, axis=-1)
    # One block Gibbs sweep on p_beta from the same x; full float32 matmuls and 32-bit
    # uniforms, since the transitions' errors accumulate over the schedule.
    state = sampling.half_step(key_step, p_h, params, 32, "highest",
                               partial(_visible_mean, params, base, beta))
    return (state, log_w), None

  return jax.lax.scan(body, carry, (betas_prev, betas, keys))[0]


_CHUNK = 1000  # the most betas per compiled call, between progress-bar updates


def chunk_sizes(steps: int, most: int) -> tuple[int, int]:
  """`(size, padding)`: the fewest chunks of at most `most` steps that cover `steps`, all of
  one size (one compiled program), and the steps the last one has beyond the schedule."""
  n_chunks = -(-steps // most)
  size = -(-steps // n_chunks)
  return size, n_chunks * size - steps


def _anneal(key: Array, params: RBM, base: Array, v0: Array, betas: Array, sharding=None,
            desc: str = "AIS") -> Array:
  """Log-weights `(chains,)` of chains from `v0` along `betas[0] -> betas[-1]`, run in
  compiled chunks of the one schedule's per-step keys (the result does not depend on them).

  The chunks are of one size (`chunk_sizes`), so they share one compiled program; the last
  is filled out with steps from `betas[-1]` to itself, whose weight increments are exactly
  zero (the chains move, but their final state is not returned), so the log-weights are
  those of the schedule alone, bit for bit.
  """
  dtype = params.W.dtype
  v0 = jax.device_put(v0, sharding) if sharding is not None else v0
  state = sampling.GibbsState(v=v0, h=jnp.zeros((v0.shape[0], rbm.n_hidden(params)), dtype))
  carry = (state, jnp.zeros((v0.shape[0],), dtype))
  steps = betas.shape[0] - 1
  keys = jax.random.split(key, steps)
  size, padding = chunk_sizes(steps, _CHUNK)
  if padding:
    betas = jnp.concatenate([betas, jnp.broadcast_to(betas[-1:], (padding,))])
    keys = jnp.concatenate([keys, jnp.broadcast_to(keys[-1:], (padding,))])
  with loop.progress_bar(steps, desc, "beta") as bar:
    for start in range(0, steps, size):
      stop = start + size
      carry = _anneal_chunk(carry, params, base, betas[start:stop], betas[start + 1:stop + 1],
                            keys[start:stop])
      bar.update(min(stop, steps) - start)
  return carry[1]


def _prepare(params: RBM, base: ArrayLike | None, n_chains: int, mesh):
  """Parameters in the float dtype, the base, checked, and their placement."""
  rbm.check_kind(params)
  if n_chains < 2:
    raise ValueError(f"n_chains must be >= 2 to give an interval, got {n_chains}")
  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  p = jax.tree.map(lambda x: jnp.asarray(x, dtype), params)
  n = rbm.n_visible(p)
  default = p.b if isinstance(p, GaussianRBM) else jnp.zeros((n,), dtype)
  b_a = default if base is None else jnp.asarray(base, dtype)
  if b_a.shape != (n,):
    raise ValueError(f"base must have shape ({n},), got {tuple(b_a.shape)}")
  (p, b_a), _, sharding = parallel.place_chains((p, b_a), None, n_chains, mesh)
  return p, b_a, sharding


def _result(log_w: Array, log_z_base: Array, reverse: bool) -> AISResult:
  """The estimate, its 3-standard-error interval and the weights' ESS."""
  n = log_w.shape[0]
  log_mean = jax.scipy.special.logsumexp(log_w) - jnp.log(n)
  shift = jnp.max(log_w)
  w = jnp.exp(log_w - shift)
  log_3se = jnp.log(3.0) + jnp.log(jnp.std(w, ddof=1)) + shift - 0.5 * jnp.log(n)
  hi = jnp.logaddexp(log_mean, log_3se)
  diff = jnp.exp(log_3se - log_mean)
  lo = jnp.where(diff < 1.0, log_mean + jnp.log1p(-jnp.minimum(diff, 1.0 - 1e-7)), -jnp.inf)
  ess = jnp.sum(w) ** 2 / jnp.sum(w**2)
  if reverse:  # the weights estimate Z_A / Z: log Z = log Z_A - log mean w
    return AISResult(log_z_base - log_mean, log_z_base - hi, log_z_base - lo, log_w,
                     log_z_base, ess, True)
  return AISResult(log_z_base + log_mean, log_z_base + lo, log_z_base + hi, log_w, log_z_base,
                   ess, False)


def ais_log_partition(
  key: Array,
  params: RBM,
  *,
  n_chains: int = 100,
  n_betas: int = 14_500,
  base: ArrayLike | None = None,
  mesh: Mesh | None = None,
) -> AISResult:
  """Forward AIS estimate of `log Z` (Salakhutdinov & Murray 2008).

  Args:
    key: PRNG key.
    params: a BernoulliRBM or GaussianRBM.
    n_chains: independent AIS runs, all in one `lax.scan` over the schedule.
    n_betas: points in the schedule `ais_betas(n_betas)`, the paper's 14,500 by default.
    base: the base model: visible biases (Bernoulli; `base_rate_bias(data)`, zeros when
      omitted: the uniform distribution) or mean (Gaussian; `base_mean(data)`, the model's `b`
      when omitted), `(n_visible,)`.
    mesh: split the chains over a `parallel.make_mesh()` mesh (a multiple of its devices).

  Returns:
    An `AISResult`; `diagnose(result)` says whether to trust it.
  """
  p, b_a, sharding = _prepare(params, base, n_chains, mesh)
  betas = jnp.asarray(ais_betas(n_betas), p.W.dtype)
  key_init, key_run = jax.random.split(key)
  v0 = _base_sample(key_init, p, b_a, n_chains)
  log_w = _anneal(key_run, p, b_a, v0, betas, sharding, "AIS")
  return _result(log_w, _log_z_base(p, b_a), reverse=False)


def reverse_ais_log_partition(
  key: Array,
  params: RBM,
  data: ArrayLike,
  *,
  n_chains: int | None = 100,
  n_betas: int = 14_500,
  base: ArrayLike | None = None,
  burn_in: int = 1000,
  mesh: Mesh | None = None,
) -> AISResult:
  """Reverse AIS estimate of `log Z`: chains from rows of `data` anneal to the base.

  Started from exact samples of the model its weights are unbiased for `Z_A / Z`, so the
  estimate of log Z errs high and the log-likelihood low: the pessimistic partner of
  `ais_log_partition`. Data rows are not samples of the model (a PCD-trained RBM puts mass on
  modes the data lack), so the chains first run `burn_in` block Gibbs sweeps at beta = 1
  towards the model's own samples; `burn_in=0` starts from the data rows themselves, as
  PyDeep's reverse AIS does.

  Args:
    key: PRNG key.
    params: a BernoulliRBM or GaussianRBM.
    data: `(N, n_visible)` rows (the training data) to start chains from.
    n_chains: chains, on rows drawn without replacement (None or >= N: every row once).
    n_betas, base, mesh: as in `ais_log_partition`.
    burn_in: Gibbs sweeps on the model before annealing.

  Returns:
    An `AISResult` with `reverse=True`.
  """
  x = rbm.validate_data(data, rbm.n_visible(params),
                        bernoulli=isinstance(params, BernoulliRBM), name="data")
  key_rows, key_burn, key_run = jax.random.split(key, 3)
  if n_chains is not None and n_chains < x.shape[0]:
    x = x[jax.random.choice(key_rows, x.shape[0], (n_chains,), replace=False)]
  p, b_a, sharding = _prepare(params, base, x.shape[0], mesh)
  v0 = x.astype(p.W.dtype)
  if burn_in:
    v0 = sampling.sample(key_burn, p, v0=v0, n_steps=burn_in, precision="highest",
                         uniform_bits=32, mesh=mesh)
  betas = jnp.asarray(ais_betas(n_betas)[::-1], p.W.dtype)
  log_w = _anneal(key_run, p, b_a, v0, betas, sharding, "reverse AIS")
  return _result(log_w, _log_z_base(p, b_a), reverse=True)


def diagnose(forward: AISResult | None, reverse: AISResult | None = None) -> list[str]:
  """Why an AIS estimate should not be trusted, each with its fix; empty when none applies.

  Checks: an effective sample size below `MIN_ESS_FRACTION` of the chains, an interval open
  at infinity, and forward and reverse log Z more than `MAX_GAP_NATS` apart.
  """
  out = []
  for name, res in (("AIS", forward), ("reverse AIS", reverse)):
    if res is None:
      continue
    n, ess = res.log_weights.shape[0], float(res.ess)
    if ess < MIN_ESS_FRACTION * n:
      out.append(f"{name}: effective sample size {ess:.1f} of {n} chains, the weights are "
                 "degenerate; raise n_betas (or n_chains)")
    if not (np.isfinite(float(res.log_z_lower)) and np.isfinite(float(res.log_z_upper))):
      out.append(f"{name}: the log Z interval is open (3 standard errors exceed the estimate); "
                 "raise n_betas or n_chains")
  if forward is not None and reverse is not None:
    gap = float(reverse.log_z) - float(forward.log_z)
    if abs(gap) > MAX_GAP_NATS:
      out.append(f"AIS and reverse AIS log Z differ by {gap:.2f} nats: at least one has not "
                 "converged; raise n_betas")
  return out

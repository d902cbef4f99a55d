"""Gradient estimators for RBM training: CD-k and PCD-k on the closed-form statistics.

The gradient of the mean log-likelihood is `-<dF/dtheta>_data + <dF/dtheta>_model`; writing it
as the gradient of `mean F(v_data) - mean F(v_model)` (model samples held fixed) gives the
usual `<v p(h|v)^T>_data - <v p(h|v)^T>_model` statistics, with `p(h|v)` in place of sampled
hidden states, and covers Gaussian models' `log_sigma` without separate formulas.

Centring (Melchior, Fischer & Wiskott 2016) takes the same statistics of centred units: with
offsets `mu` (visible) and `lambda` (hidden), the centred gradient is that of the centred
parameters, and `centred_update` maps it to the direction it moves the plain ones, so a
centred model stays an ordinary `BernoulliRBM` throughout; `contrastive_grad(..., offsets=...)`
returns that direction directly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from aerbm_jax import rbm, sampling
from aerbm_jax.rbm import RBM, BernoulliRBM, GaussianRBM
from aerbm_jax.rng import DEFAULT_UNIFORM_BITS
from aerbm_jax.sampling import GibbsState

__all__ = ["weight_statistics", "contrastive_grad", "weight_grad_bound", "cd_grad", "pcd_grad",
           "Offsets", "centred_update"]


class Offsets(NamedTuple):
  """Centring offsets: the energy is `-(v - mu) W (h - lambda) - b (v - mu) - c (h - lambda)`."""

  visible: Array  # shape=(n_visible,): mu, the data mean
  hidden: Array  # shape=(n_hidden,): lambda, a running mean of p(h | v_data)


def weight_statistics(v: Array, h: Array, precision=rbm.SAMPLER_PRECISION) -> Array:
  """`v.T @ h`: (n_visible, n_hidden) float32 from v (rows, n_visible), h (rows, n_hidden).

  On CPU, with few hidden units and many rows (the course page's pixel RBM, 49,152 x 64), XLA's
  dot for this product is slow, and `(h.T @ v).T` is faster; elsewhere the plain form is, so
  the transposed one is taken only for n_hidden <= 64 and rows >= 128 on CPU (the measurements
  are in docs/performance.md). The barrier stops XLA from rewriting it back.
  """
  rows, m = h.shape
  if m <= 64 and rows >= 128 and jax.default_backend() == "cpu":
    return jax.lax.optimization_barrier(rbm.matmul(h.T, v, precision)).T
  return rbm.matmul(v.T, h, precision)


def contrastive_grad(params: RBM, v_data: Array, v_model: Array,
                     precision=rbm.SAMPLER_PRECISION, h_data: Array | None = None,
                     offsets: Offsets | None = None, h_model: Array | None = None) -> RBM:
  """Gradient of the negative mean log-likelihood, estimated with model samples `v_model`.

  Bernoulli models use the closed form `-(<v h^T>_data - <v h^T>_model)` with data and model
  rows stacked into one matmul; Gaussian models differentiate `mean F(v_data) - mean
  F(v_model)`. Monte Carlo noise dominates the estimate, so matmuls run at the sampler's
  precision (TF32 on recent NVIDIA GPUs), not the exact one.

  Args:
    params: the model.
    v_data: `(batch, n_visible)` data rows.
    v_model: `(chains, n_visible)` model samples (held fixed: no gradient flows into them).
    precision: of the matmuls (see `rbm.matmul`).
    h_data: `p(h | v_data)`, `(batch, n_hidden)`, if already computed (CD chains start from it).
    offsets: centring offsets (Bernoulli only): the weight statistics are then those of the
      centred units, `<(v - mu)(h - lambda)^T>_d - <...>_m`, in the same one matmul (the data
      and model weights sum to zero, so the offsets' own product cancels), and the result is
      the direction in which a step on the centred parameters moves the plain ones
      (`centred_update` of the centred gradient).
    h_model: `p(h | v_model)`, `(chains, n_hidden)`, if already computed (Bernoulli only).

  Returns:
    The gradient, a pytree like `params`: the plain direction of the centred gradient with
    `offsets`.
  """
  v_model = jax.lax.stop_gradient(v_model).astype(v_data.dtype)
  n_data, n_model = v_data.shape[0], v_model.shape[0]
  v_all = jnp.concatenate([v_data, v_model])
  weights = jnp.concatenate([jnp.full(n_data, 1.0 / n_data, v_data.dtype),
                             jnp.full(n_model, -1.0 / n_model, v_data.dtype)])
  if isinstance(params, GaussianRBM):
    return jax.grad(lambda p: jnp.sum(weights * rbm.free_energy(p, v_all, precision)))(params)
  if h_data is None:
    h_data = rbm.hidden_prob(params, v_data, precision)
  if h_model is None:
    h_model = rbm.hidden_prob(params, v_model, precision)
  h_all = jnp.concatenate([h_data, h_model])
  # A weighted sum as a matvec: XLA's CPU column reduction of a wide (B, n) array is far
  # slower than a matrix-vector product at the pixel size.
  b = -rbm.matmul(weights, v_all, precision)
  c = -jnp.sum(h_all * weights[:, None], 0)
  if offsets is None:
    return BernoulliRBM(W=-weight_statistics(v_all, h_all * weights[:, None], precision), b=b, c=c)
  # Centred units; the centred step's plain direction (`centred_update`) from the rows, so that
  # the W-sized gradient is read by the optimizer alone: G_W lambda = -V_c^T (w * H_c lambda).
  v_c, h_c = v_all - offsets.visible, h_all - offsets.hidden
  return BernoulliRBM(
    W=-weight_statistics(v_c, h_c * weights[:, None], precision),
    b=b + rbm.matmul(weights * (h_c @ offsets.hidden), v_c, precision),
    c=c + jnp.sum(h_c * (weights * (v_c @ offsets.visible))[:, None], 0),
  )


def weight_grad_bound(v_data: Array, h_data: Array, v_model: Array, h_model: Array,
                      offsets: Offsets | None = None) -> Array:
  """An upper bound on the largest magnitude in the `W` of a Bernoulli model's
  `contrastive_grad` from the same rows (and `offsets`): float32 (), NaN if a row holds NaN.

  Each entry is `mean_d(v_i h_j) - mean_m(v_i h_j)` over the (centred) data and model rows,
  so at most `2 max|v| max|h|` over all of them; the maxima are taken over the stacked rows
  the gradient's product reads, which XLA computes once for both. `optim.guarded_sgd` checks
  a step with it on scalars, where checking the new `W` itself is a pass over `W`.

  Args:
    v_data: `(batch, n_visible)` data rows; `h_data`: their `p(h | v)`, `(batch, n_hidden)`.
    v_model: `(chains, n_visible)` model samples; `h_model`: their `p(h | v)`.
    offsets: the centring offsets the gradient was computed with, or None.
  """
  v, h = jnp.concatenate([v_data, v_model]), jnp.concatenate([h_data, h_model])
  if offsets is not None:
    v, h = v - offsets.visible, h - offsets.hidden
  return (2 * jnp.max(jnp.abs(v)) * jnp.max(jnp.abs(h))).astype(jnp.float32)


def _chain(key: Array, params: RBM, p_h: Array, k: int, uniform_bits: int | None,
           precision: str | None) -> Array:
  """The visibles after k sweeps of chains whose current `p(h | v)` is `p_h`: the first
  sweep's hidden probabilities are not computed again (`sampling.half_step`). The batch is
  swept whole: with only the visibles kept, chains in halves run slower (`sampling.run`)."""
  key_first, key_rest = jax.random.split(key)
  state = sampling.half_step(key_first, p_h, params, uniform_bits, precision)
  if k > 1:
    state, _ = sampling.run(key_rest, state, params, k - 1, uniform_bits=uniform_bits,
                            precision=precision, halves=False)
  return state.v


def cd_grad(
  key: Array, params: RBM, v_data: Array, k: int = 1,
  uniform_bits: int | None = DEFAULT_UNIFORM_BITS, precision: str | None = None,
  h_data: Array | None = None, offsets: Offsets | None = None,
) -> tuple[RBM, Array]:
  """CD-k: chains start at the data and run k sweeps, the first from `p(h | v_data)`, the
  positive statistics' own hidden probabilities.

  Args:
    key: PRNG key for the sweeps.
    params: the model.
    v_data: `(batch, n_visible)` data rows, each the start of one chain.
    k: Gibbs sweeps.
    uniform_bits, precision: as in `sampling.step`.
    h_data: `p(h | v_data)` if the caller has it already.
    offsets: centring offsets: the plain direction of the centred gradient (`contrastive_grad`).

  Returns:
    `(grads, model)`: the gradient and the chains' end, a `GibbsState` of their visibles and
    `h` = `p(h | v)` under `params` (as `pcd_grad` returns its chains), `(batch, ...)`.
  """
  if h_data is None:
    h_data = rbm.hidden_prob(params, v_data, precision)
  v_model = _chain(key, params, h_data, k, uniform_bits, precision)
  h_model = rbm.hidden_prob(params, v_model, precision)
  grads = contrastive_grad(params, v_data, v_model, precision, h_data=h_data, offsets=offsets,
                           h_model=h_model)
  return grads, GibbsState(v=v_model, h=h_model)


def pcd_grad(
  key: Array,
  params: RBM,
  v_data: Array,
  chains: GibbsState,
  k: int = 1,
  uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
  precision: str | None = None,
  h_data: Array | None = None,
  offsets: Offsets | None = None,
) -> tuple[RBM, GibbsState]:
  """PCD-k (Tieleman 2008): persistent chains advance k sweeps.

  The chains keep `h = p(h | v)` of their visibles, computed for the previous update's
  negative statistics, and each update's first sweep samples its hidden units from it
  (`sampling.half_step`): that half-sweep uses the previous update's parameters, as the
  persistent chain of the Theano RBM tutorial (which keeps the hidden sample) does, and saves
  one of the update's matmuls. Gaussian models compute `p(h | v)` again under the current
  parameters: with the previous update's, a scikit-learn-style `GaussianRBM` (256 hidden
  units, unstandardised features) diverged where it trains with the current ones.

  Args:
    key: PRNG key for the sweeps.
    params: the model.
    v_data: `(batch, n_visible)` data rows.
    chains: the persistent chains, `GibbsState` of `(chains, ...)` arrays, `h` holding
      `p(h | v)` (as `sampling.init` and this function leave it).
    k: Gibbs sweeps.
    uniform_bits, precision: as in `sampling.step`.
    h_data: `p(h | v_data)` if the caller has it already.
    offsets: centring offsets: the plain direction of the centred gradient (`contrastive_grad`).

  Returns:
    `(grads, chains)`: the gradient and the advanced chains, `h` = `p(h | v)` under `params`.
  """
  p_h = rbm.hidden_prob(params, chains.v, precision) if isinstance(params, GaussianRBM) \
    else chains.h
  v_model = _chain(key, params, p_h, k, uniform_bits, precision)
  h_model = rbm.hidden_prob(params, v_model, precision)
  grads = contrastive_grad(params, v_data, v_model, precision, h_data=h_data, offsets=offsets,
                           h_model=h_model)
  return grads, GibbsState(v=v_model, h=h_model)


def centred_update(centred: BernoulliRBM, offsets: Offsets) -> BernoulliRBM:
  """The direction a centred step takes the plain parameters in.

  The plain RBM of a centred one is `W' = W`, `b' = b - W lambda`, `c' = c - W^T mu`, so a step
  `-eta g` on the centred parameters moves the plain ones by `-eta` times
  `(g_W, g_b - g_W lambda, g_c - g_W^T mu)`. An optimizer fed this direction trains the
  centred model while holding an ordinary BernoulliRBM; moving the offsets then changes
  nothing in the plain parameters.

  Args:
    centred: a gradient of the centred parameters.
    offsets: the centring offsets.

  Returns:
    The plain parameters' direction, a BernoulliRBM pytree.
  """
  mu, lam = offsets
  return BernoulliRBM(W=centred.W, b=centred.b - centred.W @ lam, c=centred.c - centred.W.T @ mu)

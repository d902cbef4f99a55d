"""RBM models as pytrees: parameters, energy, free energy, conditionals and layer samplers.

Two model kinds share one set of function names; the pytree type selects the math.

Bernoulli-Bernoulli, `v in {0,1}^n`, `h in {0,1}^m`:
  E(v, h) = -v.W.h - b.v - c.h

Gaussian-Bernoulli (Cho, Ilin & Raiko 2011), `v in R^n`, `sigma_i = exp(log_sigma_i)`:
  E(v, h) = sum_i (v_i - b_i)^2 / 2 sigma_i^2 - sum_ij v_i W_ij h_j / sigma_i^2 - c.h
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.lax import Precision
from jax.typing import ArrayLike

from aerbm_jax import digits
from aerbm_jax.rng import DEFAULT_UNIFORM_BITS, bernoulli

__all__ = [
  "BernoulliRBM",
  "GaussianRBM",
  "RBM",
  "init",
  "energy",
  "free_energy",
  "hidden_logits",
  "hidden_prob",
  "visible_mean",
  "hidden_prob_columns",
  "visible_mean_columns",
  "sample_hidden",
  "sample_visible",
  "temper",
  "n_visible",
  "n_hidden",
  "validate_data",
  "reconstruction_error",
  "check_kind",
  "check_precision",
  "PRECISIONS",
  "matmul",
  "exact_matmul",
]


class BernoulliRBM(NamedTuple):
  """Binary visible and hidden units."""

  W: Array  # shape=(n_visible, n_hidden)
  b: Array  # shape=(n_visible,), visible biases
  c: Array  # shape=(n_hidden,), hidden biases


class GaussianRBM(NamedTuple):
  """Real visible units with learned per-unit standard deviations, binary hidden units."""

  W: Array  # shape=(n_visible, n_hidden)
  b: Array  # shape=(n_visible,), visible means
  c: Array  # shape=(n_hidden,)
  log_sigma: Array  # shape=(n_visible,)


RBM = Union[BernoulliRBM, GaussianRBM]

# Energies, free energies and conditionals are computed with full float32 matmuls: on recent
# NVIDIA GPUs the default precision is TF32 (about 1e-3 relative error), too coarse for
# log-likelihoods. The samplers take the backend's fast default instead (SAMPLER_PRECISION);
# their statistical tests pass either way.
# Samplers may also take "bfloat16": bfloat16 operands (binary states are exact; W is rounded
# to 8 significant bits) with float32 accumulation, or "int8" (`PRECISIONS`; W's int8 digits
# times binary states). Never used for energies or log Z.
EXACT = Precision.HIGHEST
SAMPLER_PRECISION = None
SAMPLER_PRECISIONS = (None, "highest", "bfloat16")
PRECISIONS = SAMPLER_PRECISIONS + ("int8",)  # the sampler's (`sampling.run`)
exact_matmul = partial(jnp.matmul, precision=EXACT)


def matmul(x: Array, w: Array, precision) -> Array:
  """`x @ w` for 2-D `x: (rows, K)` and `w: (K, cols)`, `(rows, cols)`.

  Args:
    x, w: the operands.
    precision: a `jax.lax.Precision`, None (the backend's default), "highest", "bfloat16"
      (bfloat16 operands with float32 results), or "int8" for binary `x` only (W's int8
      digits, `digits.binary_matmul`; the sampler's `precision="int8"`).
  """
  if precision == "int8":
    return digits.binary_matmul(x, w)
  if precision == "bfloat16":
    x, w, kw = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), {}
    out_type = jnp.float32
  else:
    kw, out_type = {"precision": EXACT if precision == "highest" else precision}, None
  chunks = k_chunks(x, w)
  if chunks == 1:
    return jnp.matmul(x, w, preferred_element_type=out_type, **kw)
  # (batch, K) @ (K, m) as `chunks` products over slices of K, then summed.
  k = w.shape[0]
  xc = x.reshape(x.shape[0], chunks, k // chunks)
  wc = w.reshape(chunks, k // chunks, w.shape[1])
  dims = (((2,), (1,)), ((1,), (0,)))
  return jax.lax.dot_general(xc, wc, dims, preferred_element_type=out_type, **kw).sum(0)


K_CHUNK = 2048  # contraction slice for long, thin products on CPU


def k_chunks(x: Array, w: Array) -> int:
  """Slices of the contraction for `x @ w` on CPU: > 1 only for a long K and a small result.

  XLA's CPU matmul divides its work over the result's rows and columns, and a small result
  (the pixel RBM's `v @ W`, 64 x 64 out of K = 49,152) leaves too few of them to keep every
  core busy; a batch of products over slices of K, summed, splits the work over K instead
  (timings in benchmarks/results/).
  """
  if jax.default_backend() != "cpu" or x.ndim != 2 or w.ndim != 2:
    return 1
  k = w.shape[0]
  if k < 8 * K_CHUNK or x.shape[0] * w.shape[1] > 256 * 256:
    return 1
  chunks = k // K_CHUNK
  while k % chunks:
    chunks -= 1
  return chunks


def n_visible(params: RBM) -> int:
  """Visible units of a model (or of a seed-stacked model)."""
  return params.W.shape[-2]


def n_hidden(params: RBM) -> int:
  """Hidden units of a model (or of a seed-stacked model)."""
  return params.W.shape[-1]


def check_precision(precision: str | None, params: RBM | None = None) -> None:
  """ValueError unless `precision` is one of `PRECISIONS` (and "int8" comes with a Bernoulli
  `params`: its products need binary states)."""
  if precision not in PRECISIONS:
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
  if precision == "int8" and params is not None and not isinstance(params, BernoulliRBM):
    raise ValueError(f'precision="int8" multiplies binary states only: it needs a '
                     f'BernoulliRBM, got {type(params).__name__}; use None or "highest"')


def check_kind(params: RBM) -> None:
  """TypeError unless `params` is a BernoulliRBM or GaussianRBM."""
  if not isinstance(params, (BernoulliRBM, GaussianRBM)):
    raise TypeError(f"params must be a BernoulliRBM or GaussianRBM, got {type(params).__name__}")


def init(
  key: Array,
  n_visible: int,
  n_hidden: int,
  *,
  visible: str = "bernoulli",
  weight_scale: float = 0.01,
  data: ArrayLike | None = None,
  dtype: jnp.dtype = jnp.float32,
) -> RBM:
  """New RBM with `W ~ N(0, weight_scale^2)` and zero hidden biases.

  Args:
    key: PRNG key.
    n_visible, n_hidden: layer sizes, both >= 1.
    visible: "bernoulli" or "gaussian".
    weight_scale: standard deviation of the initial weights.
    data: optional `(N, n_visible)` training data. Bernoulli: visible biases are the logits of
      the (clipped) data means (Hinton 2010). Gaussian: `b` is the data mean and `sigma` the data
      standard deviation. Without data: `b = 0`, `sigma = 1`.
    dtype: parameter dtype.
  """
  for name, size in (("n_visible", n_visible), ("n_hidden", n_hidden)):
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
      raise ValueError(f"{name} must be a positive int, got {size!r}")
  if visible not in ("bernoulli", "gaussian"):
    raise ValueError(f"visible must be 'bernoulli' or 'gaussian', got {visible!r}")
  W = _scaled_normal(key, (n_visible, n_hidden), weight_scale, dtype)
  c, b, log_sigma = (jnp.zeros((size,), dtype) for size in (n_hidden, n_visible, n_visible))
  if data is not None:
    x = validate_data(data, n_visible, bernoulli=visible == "bernoulli", name="data")
    std = None if visible == "bernoulli" else jnp.std(x, axis=0)  # eager, for its rounding
    b, log_sigma = _visible_from_data(x, std, dtype)
  if visible == "bernoulli":
    return BernoulliRBM(W=W, b=b, c=c)
  return GaussianRBM(W=W, b=b, c=c, log_sigma=log_sigma)


# Compiled whole: op by op, each small operation would compile on its own for every shape.
# The barriers keep the values: XLA would fold `scale` into the normal's own constants.
@partial(jax.jit, static_argnames=("shape", "scale", "dtype"))
def _scaled_normal(key: Array, shape: tuple[int, int], scale: float, dtype) -> Array:
  return scale * jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype))


@partial(jax.jit, static_argnames="dtype")
def _visible_from_data(x: Array, std: Array | None, dtype) -> tuple[Array, Array]:
  """`init`'s `(b, log_sigma)` from data `(N, n)` (and for a Gaussian model its std `(n,)`)."""
  mean = jax.lax.optimization_barrier(jnp.mean(x, axis=0))
  if std is None:
    p = jnp.clip(mean, 1e-3, 1 - 1e-3)
    b, log_sigma = jnp.log(p) - jnp.log1p(-p), jnp.zeros_like(mean)
  else:
    b, log_sigma = mean, jnp.log(jnp.maximum(std, 1e-3))
  return b.astype(dtype), log_sigma.astype(dtype)


# `validate_data`'s checks in one pass: whether every entry is finite, the smallest, the largest.
_finite_range = jax.jit(lambda x: (jnp.all(jnp.isfinite(x)), jnp.min(x), jnp.max(x)))


def validate_data(
  data: ArrayLike, n_visible: int, *, bernoulli: bool, name: str = "data"
) -> Array:
  """Check user data once, at the boundary: `(N, n_visible)`, finite, in [0, 1] if binary.

  Returns the data as a float32 (or float64) JAX array; raises ValueError naming the problem.
  """
  if not isinstance(data, jax.Array):
    try:
      data = np.asarray(data)
    except ValueError as err:  # ragged nested lists
      raise ValueError(f"{name} is not a rectangular array: {err}") from None
  if not (jnp.issubdtype(data.dtype, jnp.number) or data.dtype == bool) or jnp.issubdtype(
      data.dtype, jnp.complexfloating):
    raise ValueError(f"{name} has dtype {data.dtype}; pass real numbers (float32 is best)")
  x = jnp.asarray(data)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  if x.ndim != 2:
    raise ValueError(
      f"{name} must be a 2-D array (n_samples, n_visible); got shape {tuple(x.shape)}. "
      "Flatten images with x.reshape(len(x), -1)."
    )
  if x.shape[0] == 0:
    raise ValueError(f"{name} is empty: it has no rows")
  if x.shape[1] != n_visible:
    raise ValueError(
      f"{name} has {x.shape[1]} columns but the model has n_visible={n_visible}"
    )
  finite, lo, hi = _finite_range(x)
  if not bool(finite):
    bad = int(jnp.sum(~jnp.isfinite(x)))
    raise ValueError(f"{name} holds {bad} non-finite values (NaN or inf); clean or drop them")
  if bernoulli:
    lo, hi = float(lo), float(hi)
    if lo < 0.0 or hi > 1.0:
      raise ValueError(
        f"{name} lies in [{lo:g}, {hi:g}], but a Bernoulli RBM needs values in [0, 1]; "
        "rescale it, or use visible='gaussian'"
      )
  return x


# ---------------------------------------------------------------------------- conditionals


def hidden_logits(params: RBM, v: ArrayLike, precision=EXACT) -> Array:
  """Pre-activations of the hidden units, `(batch, n_hidden)`, for `v: (batch, n_visible)`."""
  check_kind(params)
  v = jnp.asarray(v)
  if isinstance(params, GaussianRBM):
    v = v * jnp.exp(-2.0 * params.log_sigma)
  return matmul(v, params.W, precision) + params.c


def hidden_prob(params: RBM, v: ArrayLike, precision=EXACT) -> Array:
  """`p(h_j = 1 | v)`, `(batch, n_hidden)`."""
  return jax.nn.sigmoid(hidden_logits(params, v, precision))


def visible_mean(params: RBM, h: ArrayLike, precision=EXACT) -> Array:
  """`E[v | h]`, `(batch, n_visible)`: `p(v_i = 1 | h)` (Bernoulli) or `b + W h` (Gaussian)."""
  check_kind(params)
  h = jnp.asarray(h)
  if h.ndim == 2 and h.shape[0] == 1 and precision != "int8":
    # One chain: `W @ h` reads W in its own layout, where `h @ W.T` makes XLA's CPU
    # matrix-vector code transpose W inside every sweep of a scan ("int8" needs h on the left).
    x = matmul(params.W, h.T, precision).T + params.b
  else:
    x = matmul(h, params.W.T, precision) + params.b
  if isinstance(params, GaussianRBM):
    return x
  return jax.nn.sigmoid(x)


def hidden_prob_columns(params: RBM, v_t: Array, precision=EXACT, w_t: Array | None = None
                        ) -> Array:
  """`hidden_prob` of chains held as columns: `(n_hidden, chains)` for `v_t: (n_visible, chains)`.

  With few chains, XLA's CPU matrix kernel runs `W^T v^T` faster than `v W`: it packs its right
  operand for every product, here the chains rather than W (`sampling.run`'s halves).

  Args:
    params: the model.
    v_t: the chains' visibles, one chain a column.
    precision: as in `hidden_prob` (not "int8", which needs binary rows on the left).
    w_t: `W.T`, made once by a caller that multiplies by it in a loop; None makes it here.
  """
  check_kind(params)
  if isinstance(params, GaussianRBM):
    v_t = v_t * jnp.exp(-2.0 * params.log_sigma)[:, None]
  w_t = params.W.T if w_t is None else w_t
  return jax.nn.sigmoid(matmul(w_t, v_t, precision) + params.c[:, None])


def visible_mean_columns(params: RBM, h_t: Array, precision=EXACT) -> Array:
  """`visible_mean` of chains held as columns: `(n_visible, chains)` for `h_t: (n_hidden,
  chains)`, as `W h^T` (see `hidden_prob_columns`)."""
  check_kind(params)
  x = matmul(params.W, h_t, precision) + params.b[:, None]
  return x if isinstance(params, GaussianRBM) else jax.nn.sigmoid(x)


def sample_hidden(
  key: Array, params: RBM, v: ArrayLike, uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
  precision=SAMPLER_PRECISION,
) -> Array:
  """Draw `h ~ p(h | v)`, `(batch, n_hidden)` of 0.0/1.0."""
  return bernoulli(key, hidden_prob(params, v, precision), uniform_bits)


def sample_visible(
  key: Array, params: RBM, h: ArrayLike, uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
  precision=SAMPLER_PRECISION, mean: Array | None = None,
) -> Array:
  """Draw `v ~ p(v | h)`, `(batch, n_visible)`, from `mean` = `E[v | h]` if given (else made)."""
  mean = visible_mean(params, h, precision) if mean is None else mean
  if isinstance(params, GaussianRBM):
    noise = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(params.log_sigma) * noise
  return bernoulli(key, mean, uniform_bits)


def reconstruction_error(params: RBM, v: ArrayLike) -> Array:
  """Mean squared error of the mean-field reconstruction `E[v | p(h|v)]`, a scalar.

  Args:
    params: the model.
    v: `(batch, n_visible)` data.
  """
  v = jnp.asarray(v)
  return jnp.mean((v - visible_mean(params, hidden_prob(params, v))) ** 2)


# ---------------------------------------------------------------------------- energies


def energy(params: RBM, v: ArrayLike, h: ArrayLike) -> Array:
  """Joint energy `E(v, h)`, `(batch,)`."""
  check_kind(params)
  v, h = jnp.asarray(v), jnp.asarray(h)
  hid = exact_matmul(h, params.c)
  if isinstance(params, GaussianRBM):
    inv_var = jnp.exp(-2.0 * params.log_sigma)
    quad = 0.5 * jnp.sum((v - params.b) ** 2 * inv_var, axis=-1)
    inter = jnp.sum(exact_matmul(v * inv_var, params.W) * h, axis=-1)
    return quad - inter - hid
  inter = jnp.sum(exact_matmul(v, params.W) * h, axis=-1)
  return -inter - exact_matmul(v, params.b) - hid


def free_energy(params: RBM, v: ArrayLike, precision=EXACT) -> Array:
  """`F(v) = -log sum_h exp(-E(v, h))`, `(batch,)`; `log p(v) = -F(v) - log Z`.

  `precision` of the `v W` matmul: exact by default; gradient estimators pass the sampler's.
  """
  check_kind(params)
  v = jnp.asarray(v)
  soft = jnp.sum(jax.nn.softplus(hidden_logits(params, v, precision)), axis=-1)
  if isinstance(params, GaussianRBM):
    quad = 0.5 * jnp.sum((v - params.b) ** 2 * jnp.exp(-2.0 * params.log_sigma), axis=-1)
    return quad - soft
  return -exact_matmul(v, params.b) - soft


def temper(params: RBM, beta: ArrayLike) -> RBM:
  """The model at inverse temperature `beta > 0`, whose energy is `beta * E(v, h)`.

  Bernoulli: every parameter is scaled by beta (beta = 0 is the uniform distribution).
  Gaussian: `sigma^2 -> sigma^2 / beta`, `c -> beta c`; W and b are unchanged.
  """
  check_kind(params)
  beta = jnp.asarray(beta, params.W.dtype)
  if isinstance(params, GaussianRBM):
    return GaussianRBM(
      W=params.W, b=params.b, c=beta * params.c, log_sigma=params.log_sigma - 0.5 * jnp.log(beta)
    )
  return BernoulliRBM(W=beta * params.W, b=beta * params.b, c=beta * params.c)

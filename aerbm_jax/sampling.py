"""Block Gibbs sampling: an init/step kernel, a `lax.scan` driver, and chains run to a result.

A sweep draws `h ~ p(h | v)`, then `v ~ p(v | h)`, for every chain at once; the state `(v, h)`
after it is a sample of the joint `p(v, h)` at stationarity, and persistent chains are a
`GibbsState` handed back to `run`. As in BlackJAX: `init(params, v0) -> GibbsState`,
`step(key, state, params) -> (GibbsState, GibbsInfo)`, and `run` scans it with a
`transform(state, info)` hook that picks the trace. Parallel tempering is in `tempering`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.sharding import Mesh
from jax.typing import ArrayLike
from aerbm_jax import loop, parallel, rbm, row_blocks
from aerbm_jax.halves import in_halves
from aerbm_jax.rng import DEFAULT_UNIFORM_BITS, bernoulli, uniform_halves, uniforms
from aerbm_jax.rbm import PRECISIONS, RBM, BernoulliRBM, GaussianRBM, check_precision

__all__ = ["GibbsState", "GibbsInfo", "init", "step", "half_step", "run", "random_visible",
           "sample", "sample_chains", "sample_visibles", "VISIBLE_KINDS", "chain_means",
           "check_precision", "in_halves", "PRECISIONS"]


class GibbsState(NamedTuple):
  """State of a batch of block Gibbs chains."""

  v: Array  # shape=(chains, n_visible)
  h: Array  # shape=(chains, n_hidden), the hidden sample that produced v, or p(h|v) (at init,
  # and in PCD's training chains, `gradients.pcd_grad`)


class GibbsInfo(NamedTuple):
  """What a sweep computed on the way, for a `transform` that wants it (free to drop)."""

  hidden_prob: Array  # shape=(chains, n_hidden): p(h | v) at the sweep's starting v


def init(params: RBM, v0: ArrayLike) -> GibbsState:
  """Chains started at `v0: (chains, n_visible)`; `h` holds `p(h | v0)`."""
  v0 = jnp.asarray(v0, params.W.dtype)
  if v0.ndim != 2 or v0.shape[1] != rbm.n_visible(params):
    raise ValueError(
      f"v0 must have shape (chains, {rbm.n_visible(params)}), got {tuple(v0.shape)}"
    )
  return GibbsState(v=v0, h=rbm.hidden_prob(params, v0, rbm.SAMPLER_PRECISION))


def step(
  key: Array, state: GibbsState, params: RBM, uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
  precision: str | None = rbm.SAMPLER_PRECISION,
) -> tuple[GibbsState, GibbsInfo]:
  """One block Gibbs sweep, `h ~ p(h|v)` then `v ~ p(v|h)`, for every chain.

  Args:
    key: PRNG key, used once.
    state: the chains.
    params: the model.
    uniform_bits: resolution of the uniforms behind Bernoulli draws (16, 32, or None for the
      backend's default).
    precision: of the two matmuls: one of `PRECISIONS` (see `sample`).

  Returns:
    The new state and the sweep's `GibbsInfo`.
  """
  return _step(key, state, params, params, uniform_bits, precision)


def _step(key: Array, state: GibbsState, params: RBM, params_v: RBM, uniform_bits: int | None,
          precision: str | None, blocks: int = 0) -> tuple[GibbsState, GibbsInfo]:
  """`step` with `params_v`, the same model, for the visible half (see `run`'s bfloat16), and
  with W in `blocks` blocks of rows where that is > 0 (`row_blocks.n_blocks`)."""
  if blocks:  # a Bernoulli model's
    p_h = row_blocks.hidden_prob(params, state.v, precision, blocks)
    mean = partial(row_blocks.visible_mean, params, precision=precision, blocks=blocks)
  else:
    p_h, mean = rbm.hidden_prob(params, state.v, precision), None
  new = half_step(key, p_h, params_v, uniform_bits, precision, mean)
  return GibbsState(*(x.astype(state.v.dtype) for x in new)), GibbsInfo(hidden_prob=p_h)


def half_step(
  key: Array, p_h: Array, params: RBM, uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
  precision: str | None = rbm.SAMPLER_PRECISION,
  visible_mean: Callable[[Array], Array] | None = None,
) -> GibbsState:
  """The second half of a sweep, from hidden probabilities already computed: `h ~ p_h`, then
  `v ~ p(v|h)`. `step` from a state whose `v` gave `p_h` draws the same, one matmul sooner.

  Args:
    key: PRNG key, used once.
    p_h: `(chains, n_hidden)` hidden probabilities, `p(h | v)` of the chains' visibles.
    params: the model.
    uniform_bits, precision: as in `step`.
    visible_mean: `h -> E[v | h]` in place of `rbm.visible_mean(params, h, precision)`, which
      `params` then only names the kind (and sigma) of: W in blocks, `ais`'s annealed models.

  Returns:
    The state after the sweep: `v` and the hidden sample `h` that produced it.
  """
  visible_mean = visible_mean or partial(rbm.visible_mean, params, precision=precision)
  if isinstance(params, BernoulliRBM):
    # Bernoulli models draw the sweep's hidden and visible uniforms from one call, which costs
    # one hash launch instead of two and matters most at small batches.
    return _sweep_draws(key, p_h, rbm.n_visible(params), uniform_bits, visible_mean)
  key_h, key_v = jax.random.split(key)
  h = bernoulli(key_h, p_h, uniform_bits)
  return GibbsState(v=rbm.sample_visible(key_v, params, h, uniform_bits, precision,
                                         mean=visible_mean(h)), h=h)


def _sweep_draws(key: Array, p_h: Array, n: int, uniform_bits: int | None,
                 visible_mean: Callable[[Array], Array]) -> GibbsState:
  """`_draw` for chains as rows, from one call's uniforms for the `n` visibles and `p_h`."""
  (u_h, u_v), scale = uniforms(key, (p_h.shape[0], p_h.shape[1] + n), uniform_bits,
                               split=p_h.shape[1])
  return _draw(p_h, u_h, u_v, scale, visible_mean)


def _draw(p_h: Array, u_h: Array, u_v: Array, scale: float,
          visible_mean: Callable[[Array], Array]) -> GibbsState:
  """A Bernoulli model's `h ~ p_h`, then `v ~ p(v | h) = visible_mean(h)`, from the uniforms
  `u_h` and `u_v` of `rng.uniforms` and their scale, each shaped as what it draws (chains as
  rows, or as columns in `_run_halves`)."""
  h = (u_h < p_h * scale).astype(p_h.dtype)
  return GibbsState(v=(u_v < visible_mean(h) * scale).astype(p_h.dtype), h=h)


def run(
  key: Array, state: GibbsState, params: RBM, n_steps: int, *,
  uniform_bits: int | None = DEFAULT_UNIFORM_BITS, precision: str | None = rbm.SAMPLER_PRECISION,
  transform: Callable[[GibbsState, GibbsInfo], Any] | None = None, keys: Array | None = None,
  halves: bool = True,
) -> tuple[GibbsState, Any]:
  """`n_steps` sweeps with `lax.scan`. Not jitted here: jit the caller, or use `sample`.

  On a CPU, 8-64 chains of a Bernoulli model are carried as two halves swept at once, each as
  columns (`in_halves` says which), and 1-4 chains multiply W in blocks of its rows
  (`row_blocks.n_blocks`): from `step`'s uniforms, with products summed in another order, so
  their chains agree with `step`'s to float32 rounding.

  Args:
    key: PRNG key, split into one key per sweep.
    state: the chains to continue.
    params: the model.
    n_steps: sweeps.
    uniform_bits, precision: as in `step`.
    transform: `transform(state, info)` after each sweep gives what the trace stores (the
      state itself for a trajectory); None stores nothing.
    keys: the `(n_steps,)` per-sweep keys in place of `split(key, n_steps)`, so that a run cut
      into chunks draws what one whole run draws (`key` is then ignored).
    halves: sweep in halves where `in_halves` says so; False: whole, for callers that drop the
      final hidden samples, where the halves' products wait on each other (see `sample`).

  Returns:
    `(final_state, trace)`: the trace stacks `transform`'s outputs on a leading `n_steps`
    axis, or is None without a `transform`.
  """
  check_precision(precision, params)
  w_t = None
  if precision == "bfloat16":
    # W rounded once, and W^T copied once, whose `w_t.T` in the loop makes `h @ W.T` read the
    # copy: XLA's CPU bfloat16 product reads a transposed W in float32 (results:
    # small-batch-alternatives-cpu-2core-xeon.md). One chain's product reads W itself.
    params = params._replace(W=params.W.astype(jnp.bfloat16))
    w_t = params.W.T if state.v.shape[0] > 1 else None

  keys = jax.random.split(key, n_steps) if keys is None else keys
  if halves and in_halves(params, state.v.shape[0], precision):
    return _run_halves(keys, state, params, uniform_bits, precision, transform)

  blocks = row_blocks.n_blocks(params, state.v.shape[0], precision)
  def one_step(s: GibbsState, key_step: Array):
    params_v = params if w_t is None else params._replace(W=w_t.T)
    s, info = _step(key_step, s, params, params_v, uniform_bits, precision, blocks)
    return s, (None if transform is None else transform(s, info))

  return jax.lax.scan(one_step, state, keys)


def _run_halves(keys: Array, state: GibbsState, params: BernoulliRBM, uniform_bits: int | None,
                precision: str | None, transform: Callable | None) -> tuple[GibbsState, Any]:
  """`run` with the chains as two halves, rows `[0, ceil(chains / 2))` and the rest, each swept
  on its own from its rows of the batch's uniforms (`rng.uniform_halves`), as `step` draws.

  Each half is carried as columns, `GibbsState(v=v^T, h=h^T)`, and multiplied by W from the
  left (`rbm.hidden_prob_columns`, `rbm.visible_mean_columns`), which at 8-64 chains of a
  784 x 500 model runs 1.2-1.5x faster than rows times W (benchmarks/results/
  small-batch-alternatives-cpu-2core-xeon.md). The products sum in another order, so the
  chains agree with `step`'s to float32 rounding, and bit for bit where the sums are exact.
  """
  batch, n, m = state.v.shape[0], rbm.n_visible(params), rbm.n_hidden(params)
  w_t = params.W.T  # made once, before the loop
  mean = partial(rbm.visible_mean_columns, params, precision=precision)
  rows = lambda halves: GibbsState(*(jnp.concatenate([x.T for x in xs])  # noqa: E731
                                     for xs in zip(*halves)))

  def one_step(halves: tuple[GibbsState, GibbsState], key_step: Array):
    draws, scale = uniform_halves(key_step, (batch, m + n), m, uniform_bits)
    p_hs = [rbm.hidden_prob_columns(params, s.v, precision, w_t) for s in halves]
    new = tuple(GibbsState(*(x.astype(s.v.dtype) for x in _draw(p_h, u_h.T, u_v.T, scale, mean)))
                for s, p_h, (u_h, u_v) in zip(halves, p_hs, draws))
    return new, (None if transform is None else transform(
      rows(new), GibbsInfo(hidden_prob=jnp.concatenate([p.T for p in p_hs]))))

  top = (batch + 1) // 2
  halves = tuple(GibbsState(v=state.v[r].T, h=state.h[r].T)
                 for r in (slice(None, top), slice(top, None)))
  halves, trace = jax.lax.scan(one_step, halves, keys)
  return rows(halves), trace


def random_visible(key: Array, params: RBM, n_chains: int) -> Array:
  """Starting points for chains: uniform bits (Bernoulli) or `N(b, sigma^2)` (Gaussian)."""
  shape = (n_chains, rbm.n_visible(params))
  if isinstance(params, GaussianRBM):
    return params.b + jnp.exp(params.log_sigma) * jax.random.normal(key, shape, params.W.dtype)
  return bernoulli(key, jnp.full(shape, 0.5, params.W.dtype))


def _start(key: Array, params: RBM, v0: Array | None, n_chains: int, sharding=None
           ) -> tuple[GibbsState, Array]:
  """The chains' initial state and the key for their sweeps (one split shared by all drivers)."""
  key_init, key_run = jax.random.split(key)
  if v0 is None:
    v0 = random_visible(key_init, params, n_chains)
  return init(params, parallel.constrain(v0, sharding)), key_run


@partial(jax.jit, static_argnames=("n_chains", "n_steps", "trajectory", "return_hidden",
                                   "final_hidden", "uniform_bits", "sharding", "precision"))
def _sample(key, params, v0, n_chains, n_steps, trajectory, return_hidden, final_hidden,
            uniform_bits, sharding=None, precision=None):
  state, key_run = _start(key, params, v0, n_chains, sharding)
  final, traj = run(key_run, state, params, n_steps, uniform_bits=uniform_bits,
                    precision=precision, transform=(lambda s, _: s) if trajectory else None)
  states = traj if trajectory else final
  out = (states.v, states.h) if return_hidden else (states.v,)
  return out + (final.h,) if final_hidden else out


def _checked_chains(params: RBM, n_chains: int | None, v0: ArrayLike | None, n_steps: int,
                    precision: str | None = None) -> tuple[int, Array | None]:
  """The number of chains and the starting visibles, validated with `n_steps` and the
  sampler's `precision` ("int8" needs binary `v0`, checked where it is not traced)."""
  rbm.check_kind(params)
  check_precision(precision, params)
  if n_steps < 1:
    raise ValueError(f"n_steps must be >= 1, got {n_steps}")
  if v0 is not None:
    v0 = jnp.asarray(v0, params.W.dtype)
    if (precision == "int8" and not isinstance(v0, jax.core.Tracer)
        and not bool(jnp.all((v0 == 0) | (v0 == 1)))):
      raise ValueError('precision="int8" needs binary starting visibles v0 (0 or 1); '
                       "binarise them, or use precision None")
    if n_chains is not None and v0.shape[0] != n_chains:
      raise ValueError(f"v0 has {v0.shape[0]} chains but n_chains={n_chains}")
    n_chains = v0.shape[0]
  if n_chains is None or n_chains < 1:
    raise ValueError(f"n_chains must be a positive int (or give v0), got {n_chains!r}")
  return n_chains, v0


def sample(
  key: Array,
  params: RBM,
  *,
  n_chains: int | None = None,
  n_steps: int,
  v0: ArrayLike | None = None,
  trajectory: bool = False,
  return_hidden: bool = False,
  uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
  mesh: Mesh | None = None,
  precision: str | None = rbm.SAMPLER_PRECISION,
) -> Array | tuple[Array, Array]:
  """Run `n_chains` independent block Gibbs chains for `n_steps` sweeps (jit-compiled).

  Args:
    key: PRNG key.
    params: a BernoulliRBM or GaussianRBM.
    n_chains: number of chains; may be left out when `v0` is given.
    n_steps: sweeps per chain (>= 1).
    v0: optional starting visibles `(n_chains, n_visible)`; random when omitted.
    trajectory: return every sweep's samples with a leading `n_steps` axis.
    return_hidden: also return the hidden samples.
    uniform_bits: resolution of the uniforms behind Bernoulli draws: 16, 32, or None for the
      backend's default (16 on CPU, 32 on GPU). Matmuls run at the backend's default
      precision (TF32 on recent NVIDIA GPUs).
    mesh: a `parallel.make_mesh()` mesh: chains are split over its devices (n_chains must be
      a multiple of the device count); the samples equal the unsharded call's.
    precision: of the sampler's matmuls: None (backend default), "highest", "bfloat16"
      (bfloat16 weights, float32 accumulation: about 1.3x faster at 32-64 chains and 2.1-2.3x
      at 128-1024 with AMX, docs/performance.md); the chains sample the model with W rounded to
      8 significant bits), or "int8" (a BernoulliRBM with binary `v0`: W as four int8
      digits, `digits`, products about as accurate as float32's; faster from about 128
      chains on a CPU with AMX, slower below, much slower for one chain).

  Returns:
    `v: (n_chains, n_visible)` (or `(n_steps, n_chains, n_visible)` with `trajectory`),
    and `h` likewise when `return_hidden`.
  """
  n_chains, v0 = _checked_chains(params, n_chains, v0, n_steps, precision)
  params, v0, sharding = parallel.place_chains(params, v0, n_chains, mesh)
  # Chains in halves return their final hidden samples from the compiled call: dropped inside,
  # XLA's buffer assignment puts one half's product output on the other's hidden sample, and
  # the products run one after the other (results: small-batch-alternatives-cpu-2core-xeon.md).
  final_hidden = not return_hidden and in_halves(params, n_chains, precision)
  out = _sample(key, params, v0, n_chains, n_steps, trajectory, return_hidden, final_hidden,
                uniform_bits, sharding, precision)
  return out[:2] if return_hidden else out[0]


_run_chunk = jax.jit(run, static_argnames=("n_steps", "uniform_bits", "precision"))
_start_chains = jax.jit(_start, static_argnames=("n_chains", "sharding"))


def sample_chains(
  key: Array,
  params: RBM,
  *,
  n_chains: int,
  n_steps: int,
  chunk: int = 100,
  desc: str = "gibbs chains",
  progress: bool = True,
  mesh: Mesh | None = None,
  precision: str | None = rbm.SAMPLER_PRECISION,
) -> GibbsState:
  """`sample`'s chains from random starts, run as compiled chunks of sweeps with a progress bar.

  Every chunk scans its slice of the one run's per-sweep keys, so for any `chunk` the final
  state equals `sample(key, params, n_chains=n_chains, n_steps=n_steps, return_hidden=True,
  precision=precision)`.

  Args:
    key: PRNG key.
    params: the model.
    n_chains: chains (a multiple of the device count with a `mesh`).
    n_steps: sweeps per chain (>= 1).
    chunk: sweeps per compiled call, between progress-bar updates.
    desc: the progress bar's label.
    progress: show the progress bar.
    mesh: split the chains over a `parallel.make_mesh()` mesh.
    precision: of the sampler's matmuls, as in `sample`.

  Returns:
    The final `GibbsState`; `rbm.visible_mean(params, state.h)` is the noise-free picture
    (image or latent code) the last hidden sample describes.
  """
  _checked_chains(params, n_chains, None, n_steps, precision)
  params, _, sharding = parallel.place_chains(params, None, n_chains, mesh, "n_chains")
  state, key_run = _start_chains(key, params, None, n_chains, sharding)
  keys = jax.random.split(key_run, n_steps)
  chunk = max(1, min(chunk, n_steps))
  with loop.progress_bar(n_steps, desc, "sweep", progress) as bar:
    for done in range(0, n_steps, chunk):
      part = keys[done:done + chunk]
      state, _ = _run_chunk(key_run, state, params, int(part.shape[0]), keys=part,
                            precision=precision)
      bar.update(int(part.shape[0]))
  return state


# What `sample_visibles` returns of each chain, by `kind`, in words for reports.
VISIBLE_KINDS = {"mean": "E[v | h] of the last sweep", "sample": "v of the last sweep"}


def sample_visibles(key: Array, params: RBM, n_chains: int, n_steps: int,
                    desc: str = "gibbs chains", mesh: Mesh | None = None, kind: str = "mean",
                    precision: str | None = rbm.SAMPLER_PRECISION) -> np.ndarray:
  """What `n_chains` chains show after `n_steps` sweeps from random starts (`sample_chains`):
  `(n_chains, n_visible)` numpy.

  Args:
    key, params, n_chains, n_steps, desc, mesh, precision: as in `sample_chains`.
    kind: "mean": `chain_means`, `E[v | h]` of the last hidden samples, the noise-free pictures
      (images or latent codes); "sample": the last sweep's visible samples themselves (0/1 for
      Bernoulli units: the codes an autoencoder trained with `code_noise` produces).
  """
  if kind not in VISIBLE_KINDS:
    raise ValueError(f"kind must be one of {tuple(VISIBLE_KINDS)}, got {kind!r}")
  state = sample_chains(key, params, n_chains=n_chains, n_steps=n_steps, desc=desc, mesh=mesh,
                        precision=precision)
  return np.asarray(chain_means(params, state) if kind == "mean" else state.v)


def chain_means(params: RBM, state: GibbsState) -> Array:
  """`E[v | h]` of the chains' last hidden samples, `(chains, n_visible)`: the noise-free
  picture (image or latent code) each chain's hidden state describes. Traceable."""
  return rbm.visible_mean(params, state.h)

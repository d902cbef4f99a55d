"""Parallel tempering: block Gibbs replicas at several temperatures with Metropolis swaps.

Each replica sweeps with the `sampling` kernel on the model at its inverse temperature
(`rbm.temper`); neighbouring replicas then propose to exchange states. The kernel follows the
same form as `sampling`: `pt_init -> PTState`, `pt_step(key, state, params) -> (PTState,
PTInfo)`, `pt_run` scans it, and `sample_pt` is the jit-compiled entry point.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.sharding import Mesh
from jax.typing import ArrayLike

from aerbm_jax import parallel, rbm, sampling
from aerbm_jax.rbm import RBM, GaussianRBM
from aerbm_jax.rng import DEFAULT_UNIFORM_BITS
from aerbm_jax.sampling import GibbsState

__all__ = ["PTState", "PTInfo", "pt_betas", "pt_init", "pt_step", "pt_run", "sample_pt"]



class PTState(NamedTuple):
  """Replicas at inverse temperatures `betas[0] = 1 > ... > betas[R-1]`."""

  v: Array  # shape=(R, chains, n_visible)
  h: Array  # shape=(R, chains, n_hidden)
  betas: Array  # shape=(R,)
  n_steps: Array  # shape=(), int32: sweeps done; its parity picks the swap pairs


class PTInfo(NamedTuple):
  """What one PT step did, for diagnostics."""

  swap_accept: Array  # shape=(R-1,): mean acceptance probability of pair (r, r+1), NaN if not tried


def pt_betas(n_replicas: int, beta_min: float = 0.1, spacing: str = "geometric") -> Array:
  """Inverse temperatures from 1 down to `beta_min`, `(n_replicas,)`."""
  if n_replicas < 2:
    raise ValueError(f"parallel tempering needs n_replicas >= 2, got {n_replicas}")
  if not 0.0 <= beta_min < 1.0:
    raise ValueError(f"beta_min must lie in [0, 1), got {beta_min}")
  if spacing == "geometric":
    if beta_min <= 0.0:
      raise ValueError("geometric spacing needs beta_min > 0; use spacing='linear' for 0")
    return jnp.geomspace(1.0, beta_min, n_replicas)
  if spacing == "linear":
    return jnp.linspace(1.0, beta_min, n_replicas)
  raise ValueError(f"spacing must be 'geometric' or 'linear', got {spacing!r}")


def pt_init(params: RBM, v0: ArrayLike, betas: ArrayLike) -> PTState:
  """Every replica starts at `v0: (chains, n_visible)`."""
  betas = jnp.asarray(betas, params.W.dtype)
  s = sampling.init(params, v0)
  R = betas.shape[0]
  return PTState(
    v=jnp.broadcast_to(s.v, (R,) + s.v.shape),
    h=jnp.broadcast_to(s.h, (R,) + s.h.shape),
    betas=betas,
    n_steps=jnp.zeros((), jnp.int32),
  )


def pt_step(
  key: Array, state: PTState, params: RBM, uniform_bits: int | None = DEFAULT_UNIFORM_BITS
) -> tuple[PTState, PTInfo]:
  """A Gibbs sweep in every replica, then Metropolis swaps between neighbouring temperatures.

  Swaps alternate between even pairs (0,1), (2,3), ... and odd pairs (1,2), (3,4), ...; a
  swap of joint states between `beta_r` and `beta_{r+1}` is accepted with probability
  `min(1, exp((beta_r - beta_{r+1}) (E_r - E_{r+1})))`, independently per chain.
  """
  key_gibbs, key_swap = jax.random.split(key)
  R = state.betas.shape[0]

  def sweep(key_replica, v, h, beta):
    new, _ = sampling.step(key_replica, GibbsState(v=v, h=h), rbm.temper(params, beta),
                           uniform_bits)
    return new

  v, h = jax.vmap(sweep)(jax.random.split(key_gibbs, R), state.v, state.h, state.betas)
  e = jax.vmap(lambda vr, hr: rbm.energy(params, vr, hr))(v, h)  # (R, chains)

  lower = jnp.arange(R - 1)
  tried = (lower % 2) == (state.n_steps % 2)  # (R-1,)
  log_ratio = (state.betas[:-1] - state.betas[1:])[:, None] * (e[:-1] - e[1:])
  accept_prob = jnp.exp(jnp.minimum(log_ratio, 0.0))  # (R-1, chains)
  u = jax.random.uniform(key_swap, accept_prob.shape)
  swap = tried[:, None] & (u < accept_prob)  # (R-1, chains)
  # Replica r takes from r+1 if pair (r, r+1) swaps, from r-1 if pair (r-1, r) swaps.
  none = jnp.zeros_like(swap[:1])
  up = jnp.concatenate([swap, none])  # r swaps with r+1
  down = jnp.concatenate([none, swap])  # r swaps with r-1
  src = jnp.arange(R)[:, None] + up.astype(jnp.int32) - down.astype(jnp.int32)  # (R, chains)
  take = lambda x: jnp.take_along_axis(x, src[..., None], axis=0)
  new = PTState(v=take(v), h=take(h), betas=state.betas, n_steps=state.n_steps + 1)
  info = PTInfo(swap_accept=jnp.where(tried, jnp.mean(accept_prob, axis=1), jnp.nan))
  return new, info


def pt_run(
  key: Array,
  state: PTState,
  params: RBM,
  n_steps: int,
  *,
  uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
) -> tuple[PTState, Array]:
  """`n_steps` PT steps with `lax.scan`; returns the state and per-pair acceptance rates `(R-1,)`."""

  def one_step(s, key_step):
    return pt_step(key_step, s, params, uniform_bits)

  final, info = jax.lax.scan(one_step, state, jax.random.split(key, n_steps))
  return final, jnp.nanmean(info.swap_accept, axis=0)


@partial(jax.jit, static_argnames=("n_chains", "n_steps", "uniform_bits", "sharding"))
def _sample_pt(key, params, betas, v0, n_chains, n_steps, uniform_bits, sharding=None):
  key_init, key_run = jax.random.split(key)
  if v0 is None:
    v0 = sampling.random_visible(key_init, params, n_chains)
  v0 = parallel.constrain(v0, sharding)
  return pt_run(key_run, pt_init(params, v0, betas), params, n_steps, uniform_bits=uniform_bits)


def sample_pt(
  key: Array,
  params: RBM,
  *,
  betas: ArrayLike,
  n_steps: int,
  n_chains: int | None = None,
  v0: ArrayLike | None = None,
  uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
  mesh: Mesh | None = None,
) -> tuple[Array, PTState, Array]:
  """Parallel tempering (jit-compiled): samples of the `beta = 1` replica and diagnostics.

  Args:
    betas: `(R,)` inverse temperatures, `betas[0] == 1`, decreasing (see `pt_betas`).
    n_steps: PT steps (a sweep of every replica plus one round of swaps).
    mesh: split the chains (not the temperatures: swaps stay on one device) over the mesh.

  Returns:
    `(v, state, swap_accept)`: `v: (n_chains, n_visible)` from the `beta = 1` replica, the
    final `PTState` (pass it to `pt_run` to continue), and the mean swap acceptance
    probability of each neighbouring pair, `(R-1,)`.
  """
  rbm.check_kind(params)
  betas = jnp.asarray(betas, params.W.dtype)
  if betas.ndim != 1 or betas.shape[0] < 2:
    raise ValueError(f"betas must be a 1-D array of >= 2 inverse temperatures, got {betas.shape}")
  if abs(float(betas[0]) - 1.0) > 1e-6 or bool(jnp.any(jnp.diff(betas) > 0)):
    raise ValueError("betas must start at 1 and decrease")
  if isinstance(params, GaussianRBM) and float(betas[-1]) <= 0.0:
    raise ValueError("a Gaussian RBM needs every beta > 0")
  if v0 is not None:
    v0 = jnp.asarray(v0, params.W.dtype)
    n_chains = v0.shape[0]
  if n_chains is None or n_chains < 1:
    raise ValueError(f"n_chains must be a positive int (or give v0), got {n_chains!r}")
  params, v0, sharding = parallel.place_chains(params, v0, n_chains, mesh)
  state, acc = _sample_pt(key, params, betas, v0, n_chains, n_steps, uniform_bits, sharding)
  return state.v[0], state, acc

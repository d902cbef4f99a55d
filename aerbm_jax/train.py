"""RBM training on the host: `fit` and `fit_many` run compiled chunks of epochs through `loop`.

The compiled side (config, state, epochs) is `epochs`; `TrainConfig` is re-exported here, so
`train.TrainConfig`, `train.fit` and `train.fit_many` are the whole everyday API. Progress
bars, periodic checkpoints, resuming and Ctrl-C are `loop.run`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.sharding import Mesh
from jax.typing import ArrayLike

from aerbm_jax import checkpoint, loop, optim, parallel, partition, rbm
from aerbm_jax.epochs import EpochsResult, TrainConfig, TrainState, epochs, epochs_many, setup
from aerbm_jax.epochs import epochs_per_call
from aerbm_jax.rbm import RBM, GaussianRBM
from aerbm_jax.rng import typed_keys

__all__ = ["TrainConfig", "History", "TrainingDivergedError", "fit", "fit_many"]


# The layout of the training state a checkpoint holds, in its meta. 2: the optimizer carries
# `optim.GuardedSGDState.bounds`; 1 (unnamed in the meta): without them, read by `_format_1`.
# A checkpoint of any other layout is refused by name rather than restored into this one.
STATE_FORMAT = 2


class _OptStateFormat1(NamedTuple):
  """`optim.GuardedSGDState` as checkpoints of state format 1 hold it."""

  count: Array
  trace: Any
  finite: Array


def _format_1(tree: dict, meta: dict) -> checkpoint.Upgrade | None:
  """How to read a checkpoint of state format 1 (no `state_format` in its meta) into `tree`,
  the current layout: its optimizer state without bounds, which are rebuilt as the exact
  `max |p|` and `max |momentum|` of each bounded leaf. Those are upper bounds, as the optimizer
  needs, and no looser than the ones an uninterrupted run carries, so the resumed run refuses
  no step sooner: its parameters are the same unless a bound nears `optim.LIMIT`."""
  if "state_format" in meta:
    return None
  opt = tree["opt_state"]
  old = {**tree, "opt_state": _OptStateFormat1(opt.count, opt.trace, opt.finite)}

  def upgrade(restored: dict) -> dict:
    o = restored["opt_state"]
    ps, treedef = jax.tree.flatten(restored["params"])
    traces = treedef.flatten_up_to(o.trace) if o.trace is not None else [None] * len(ps)
    bounds = [None if b is None else jnp.stack(
      [_max_per_seed(p, b.shape[:-1]), jnp.zeros(b.shape[:-1], jnp.float32) if t is None
       else _max_per_seed(t, b.shape[:-1])], axis=-1)
      for p, t, b in zip(ps, traces, treedef.flatten_up_to(opt.bounds))]
    state = optim.GuardedSGDState(o.count, o.trace, o.finite, treedef.unflatten(bounds))
    return {**restored, "opt_state": state}

  return checkpoint.Upgrade(old, {**meta, "state_format": STATE_FORMAT}, upgrade)


def _max_per_seed(x: Array, seeds: tuple[int, ...]) -> Array:
  """`max |x|` over each seed's entries, float32 of shape `seeds` (() for one run)."""
  return jnp.max(jnp.abs(jnp.asarray(x)).reshape(seeds + (-1,)), axis=-1).astype(jnp.float32)


class History(NamedTuple):
  """Per-epoch training curves (a leading seed axis from `fit_many`)."""

  recon_error: np.ndarray  # shape=(..., epochs): see EpochsResult
  log_likelihood: np.ndarray  # shape=(..., epochs): exact mean log p(data), NaN if not tracked


class TrainingDivergedError(RuntimeError):
  """An update would have made the parameters NaN or inf; it was refused, and
  `last_good_params` holds the parameters before it."""

  def __init__(self, epoch: int, last_good_params: RBM, config: TrainConfig, where: str = ""):
    self.epoch = epoch
    self.last_good_params = last_good_params
    super().__init__(
      f"training diverged in epoch {epoch}: an update would have made the parameters NaN or inf "
      f"(learning_rate={config.learning_rate}); lower learning_rate"
      + (" or sigma_lr_scale" if isinstance(last_good_params, GaussianRBM) else "")
      + ". The parameters before that update are in the exception's last_good_params" + where
      + "."
    )


_setup_one = jax.jit(setup, static_argnames=("config", "bootstrap"))
_setup_many = jax.jit(
  jax.vmap(setup, in_axes=(0, 0, None, None, None)), static_argnames=("config", "bootstrap")
)


def _track_exact(params: RBM, config: TrainConfig) -> bool:
  return partition.is_enumerable(params) if config.exact_ll is None else config.exact_ll


def _check_inputs(params: RBM, data: ArrayLike, config: TrainConfig) -> Array:
  rbm.check_kind(params)
  config.validate()
  x = rbm.validate_data(
    data, params.W.shape[-2], bernoulli=not isinstance(params, GaussianRBM), name="data"
  )
  if config.centered is True and isinstance(params, GaussianRBM):
    raise ValueError("centered=True is for Bernoulli RBMs; a Gaussian RBM's visible units are "
                     "standardised instead (set centered=False)")
  if config.batch_size > x.shape[0]:
    raise ValueError(
      f"batch_size={config.batch_size} exceeds the {x.shape[0]} training samples; lower it"
    )
  return x.astype(params.W.dtype)


class _Run(NamedTuple):
  """The host loop's state: the device state and the curves so far."""

  train: TrainState
  recon: np.ndarray  # shape=(..., epochs)
  ll: np.ndarray  # shape=(..., epochs)


def _train(state: TrainState, train_data: Array, ll_data: Array, key_loop: Array,
           config: TrainConfig, epoch_fn: Callable, track_ll: bool, desc: str,
           checkpoint_dir: str | Path | None, every_s: float, meta: dict, shard=None
           ) -> tuple[TrainState, History]:
  """`fit` and `fit_many`'s host side: compiled chunks of epochs through `loop.run`."""
  shape = key_loop.shape  # a typed key array: () for one seed, (S,) for many
  curves = np.full(shape + (config.epochs,), np.nan, np.float32)
  progress = None if checkpoint_dir is None else checkpoint.Progress(checkpoint_dir, every_s)
  meta = {"model": type(state.params).__name__, "W_shape": list(np.shape(state.params.W)),
          "config": checkpoint.config_meta(config), "state_format": STATE_FORMAT, **meta}
  key_data = np.asarray(jax.random.key_data(key_loop))

  def to_tree(run: _Run) -> dict:
    # orbax cannot store CD's empty chain placeholder, so only PCD's chains are saved
    tree = {"params": run.train.params, "opt_state": run.train.opt_state, "key": key_data,
            "recon_error": run.recon, "log_likelihood": run.ll, "offsets": run.train.offsets}
    if config.method == "pcd":
      tree["chains"] = run.train.chains
    return tree

  def from_tree(run: _Run, tree: dict) -> _Run:
    if not np.array_equal(tree["key"], key_data):
      raise ValueError(f"checkpoint {progress.directory} was written with another PRNG key; "
                       "resume with the original seed")
    chains = tree.get("chains", run.train.chains)
    return _Run(TrainState(tree["params"], tree["opt_state"], chains, tree["offsets"]),
                np.array(tree["recon_error"]), np.array(tree["log_likelihood"]))

  def advance(run: _Run, start: int, n: int) -> EpochsResult:
    return epoch_fn(key_loop, start, run.train, train_data, ll_data, config, n, track_ll, shard)

  def accept(run: _Run, out: EpochsResult, start: int, n: int) -> _Run:
    run.recon[..., start:start + n] = np.asarray(out.recon_error)
    run.ll[..., start:start + n] = np.asarray(out.log_likelihood)
    bad = np.nonzero(~np.all(np.asarray(out.ok).reshape(-1, n), axis=0))[0]
    if len(bad):  # the state stopped mid-epoch, so it is not saved: resuming could not use it
      raise TrainingDivergedError(start + int(bad[0]), out.state.params, config,
                                  loop.where_saved(progress, "epoch"))
    return _Run(out.state, run.recon, run.ll)

  def postfix(run: _Run, done: int) -> dict:
    figures = {"recon": f"{float(np.mean(run.recon[..., done - 1])):.4f}"}
    if track_ll:
      figures["ll"] = f"{float(np.mean(run.ll[..., done - 1])):.3f}"
    return figures

  chunk = epochs_per_call(config, train_data.shape[-2])
  now = to_tree(_Run(state, curves, curves))
  chunks = loop.Chunks(total=config.epochs, size=lambda done: chunk, advance=advance,
                       accept=accept, to_tree=to_tree, from_tree=from_tree, postfix=postfix,
                       older=lambda saved: _format_1(now, saved))
  run = loop.run(_Run(state, curves, curves.copy()), chunks, progress, meta, desc=desc,
                 unit="epoch", show=config.progress)
  return run.train, History(recon_error=run.recon, log_likelihood=run.ll)


def fit(
  key: Array,
  params: RBM,
  data: ArrayLike,
  config: TrainConfig = TrainConfig(),
  *,
  checkpoint_dir: str | Path | None = None,
  checkpoint_every_s: float = 30.0,
  mesh: Mesh | None = None,
) -> tuple[RBM, History]:
  """Train one RBM on `data: (N, n_visible)`.

  Epochs run in compiled chunks (`lax.scan` over epochs and minibatches, data on the device,
  state buffers donated); the host checks for NaN/inf after each chunk and raises
  `TrainingDivergedError` naming the first bad epoch. Same key, same result, bit for bit.

  Args:
    key: PRNG key.
    params: the initial model.
    data: `(N, n_visible)` training data (in [0, 1] for a Bernoulli model).
    config: the training settings.
    checkpoint_dir: a folder for periodic checkpoints (parameters, optimiser state, chains,
      PRNG key, curves). If it already holds one, training resumes from it and ends with the
      parameters an uninterrupted run would have.
    checkpoint_every_s: the least time between two periodic checkpoints.
    mesh: data-parallel training on a `parallel.make_mesh()` mesh: every minibatch (and the
      persistent chains) is split over its devices, so batch_size must be a multiple of the
      device count. Equal to single-device training up to float rounding.

  Returns:
    The trained parameters and the per-epoch `History`.
  """
  x = _check_inputs(params, data, config)
  key = typed_keys(key)
  shard = None
  if mesh is not None:
    shard = parallel.minibatch_shardings(mesh, config.batch_size, _pcd_chains(config),
                                         parallel.ALL)
    params, x = jax.device_put((params, x), parallel.replicated(mesh))
  _, state, key_loop = _setup_one(key, params, x, config, False)
  if shard is not None and config.method == "pcd":
    state = state._replace(chains=jax.device_put(state.chains, shard[1]))
  state, history = _train(state, x, x, key_loop, config, epochs, _track_exact(params, config),
                          "rbm fit", checkpoint_dir, checkpoint_every_s,
                          {"n_samples": x.shape[0], "seeds": 1}, shard)
  return state.params, history


def _pcd_chains(config: TrainConfig) -> int | None:
  """The persistent chains of a PCD config, None for CD."""
  return (config.n_persistent or config.batch_size) if config.method == "pcd" else None


def fit_many(
  keys: Array,
  params: RBM,
  data: ArrayLike,
  config: TrainConfig = TrainConfig(),
  *,
  bootstrap: bool = False,
  checkpoint_dir: str | Path | None = None,
  checkpoint_every_s: float = 30.0,
  mesh: Mesh | None = None,
) -> tuple[RBM, History]:
  """`fit` vmapped over S seeds, in one compiled call per chunk of epochs.

  Args:
    keys: `(S,)` PRNG keys, one per seed.
    params: initial parameters stacked on a leading seed axis (e.g.
      `jax.vmap(lambda k: rbm.init(k, n, m))(keys)`), or one model shared by every seed.
    data: `(N, n_visible)` training data shared by the seeds.
    config: the training settings, shared by the seeds.
    bootstrap: train seed s on its own resample (with replacement) of the data.
    checkpoint_dir, checkpoint_every_s: as in `fit`.
    mesh: a `parallel.make_mesh(seeds=...)` mesh: seeds are split over its "seeds" axis (S a
      multiple of its size) and each seed's minibatches over its "chains" axis.

  Returns:
    Parameters stacked `(S, ...)` and a `History` with arrays `(S, epochs)`. Seed s equals
    `fit(keys[s], params[s], data, config)` up to float rounding when `bootstrap` is False.
  """
  raw = jnp.asarray(keys)
  if not jax.dtypes.issubdtype(raw.dtype, jax.dtypes.prng_key) and (
      raw.ndim != 2 or raw.shape[-1] != 2):
    raise ValueError(f"keys must be a 1-D array of S keys, got shape {raw.shape}")
  keys = typed_keys(raw)
  if keys.ndim != 1:
    raise ValueError(f"keys must be a 1-D array of S keys, got shape {keys.shape}")
  n_seeds = keys.shape[0]
  if params.W.ndim == 2:
    params = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_seeds,) + x.shape), params)
  elif params.W.shape[0] != n_seeds:
    raise ValueError(f"params are stacked for {params.W.shape[0]} seeds but {n_seeds} keys given")
  first = jax.tree.map(lambda x: x[0], params)
  x = _check_inputs(first, data, config)
  shard = None
  if mesh is not None:
    parallel.check_divisible(n_seeds, mesh, "the number of seeds", parallel.SEEDS)
    shard = parallel.minibatch_shardings(mesh, config.batch_size, _pcd_chains(config),
                                         parallel.CHAINS)
    keys, params = parallel.shard_batch((keys, params), mesh, axes=parallel.SEEDS)
    x = jax.device_put(x, parallel.replicated(mesh))
  xs, state, key_loop = _setup_many(keys, params, x, config, bootstrap)
  train_data = xs if bootstrap else x
  state, history = _train(state, train_data, x, key_loop, config,
                          epochs_many(not bootstrap, mesh is not None),
                          _track_exact(first, config), f"rbm fit x{n_seeds}", checkpoint_dir,
                          checkpoint_every_s,
                          {"n_samples": x.shape[0], "seeds": n_seeds, "bootstrap": bootstrap},
                          shard)
  return state.params, history

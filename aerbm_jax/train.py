"""Training: CD-k and PCD-k gradient estimators, a guarded SGD update, and compiled epochs.

The gradient of the mean log-likelihood is `-<dF/dtheta>_data + <dF/dtheta>_model`; writing it
as the gradient of `mean F(v_data) - mean F(v_model)` (model samples held fixed) gives the
usual `<v p(h|v)^T>_data - <v p(h|v)^T>_model` statistics, with `p(h|v)` in place of sampled
hidden states, and covers Gaussian models' `log_sigma` without separate formulas.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.sharding import Mesh
from jax.typing import ArrayLike
from tqdm.auto import tqdm

from aerbm_jax import checkpoint, optim, parallel, partition, rbm, sampling
from aerbm_jax._rng import DEFAULT_UNIFORM_BITS, permutation, resolve_uniform_bits
from aerbm_jax.rbm import RBM, BernoulliRBM, GaussianRBM
from aerbm_jax.sampling import GibbsState

__all__ = [
  "TrainConfig",
  "TrainState",
  "History",
  "TrainingDivergedError",
  "contrastive_grad",
  "cd_grad",
  "pcd_grad",
  "make_optimizer",
  "reconstruction_error",
  "fit",
  "fit_many",
  "epochs_per_call",
]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How to train an RBM. Frozen and hashable: it is a static argument of the compiled epoch."""

  method: str = "cd"  # "cd" (chains restart at the data) or "pcd" (persistent chains)
  k: int = 1  # Gibbs sweeps per update
  epochs: int = 20
  batch_size: int = 32
  learning_rate: float = 0.05
  momentum: float = 0.9  # SGD momentum; 0 for plain SGD
  weight_decay: float = 1e-4  # L2 penalty on W
  schedule: str = "constant"  # "constant", "linear" (to 0) or "cosine" (to 0)
  sigma_lr_scale: float = 0.1  # Gaussian models: learning-rate factor for log_sigma
  learn_sigma: bool = True  # Gaussian models: learn log_sigma at all
  n_persistent: int = 0  # PCD chains; 0 means batch_size
  uniform_bits: int | None = DEFAULT_UNIFORM_BITS  # sampler uniforms: 16, 32, None (per backend)
  exact_ll: bool | None = None  # track exact log-likelihood; None: when <= 16 units to enumerate
  epochs_per_call: int = 0  # epochs per compiled call; 0: enough for ~256 minibatch updates
  sampler_precision: str | None = None  # negative-phase matmuls: None, "highest", "bfloat16"
  progress: bool = True  # tqdm bar over epochs

  def validate(self) -> None:
    """Raise ValueError naming the first bad field."""
    if self.method not in ("cd", "pcd"):
      raise ValueError(f"method must be 'cd' or 'pcd', got {self.method!r}")
    if not isinstance(self.epochs_per_call, int) or self.epochs_per_call < 0:
      raise ValueError(f"epochs_per_call must be an int >= 0, got {self.epochs_per_call!r}")
    for name in ("k", "epochs", "batch_size"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(self.n_persistent, int) or self.n_persistent < 0:
      raise ValueError(f"n_persistent must be an int >= 0, got {self.n_persistent!r}")
    for name in ("learning_rate", "momentum", "weight_decay", "sigma_lr_scale"):
      value = getattr(self, name)
      if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if self.learning_rate == 0:
      raise ValueError("learning_rate must be > 0")
    if self.schedule not in ("constant", "linear", "cosine"):
      raise ValueError(f"schedule must be 'constant', 'linear' or 'cosine', got {self.schedule!r}")
    if self.uniform_bits is not None:
      resolve_uniform_bits(self.uniform_bits)
    if self.sampler_precision not in rbm.SAMPLER_PRECISIONS:
      raise ValueError(f"sampler_precision must be one of {rbm.SAMPLER_PRECISIONS}, got "
                       f"{self.sampler_precision!r}")


class TrainState(NamedTuple):
  """Everything an update needs; a pytree, so it can be vmapped and checkpointed."""

  params: RBM
  opt_state: optax.OptState
  chains: GibbsState  # persistent chains (PCD); for CD a (0, n_visible) placeholder


class History(NamedTuple):
  """Per-epoch training curves (a leading seed axis from `fit_many`)."""

  recon_error: np.ndarray  # shape=(..., epochs): mean-field reconstruction MSE, end of epoch,
  # on the epoch's last minibatch
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


# ---------------------------------------------------------------------------- estimators


def _weight_statistics(v: Array, h: Array, precision=rbm.SAMPLER_PRECISION) -> Array:
  """`v.T @ h`: (n_visible, n_hidden) float32 from v (rows, n_visible), h (rows, n_hidden).

  On CPU, XLA's dot for this product ran at about half numpy's rate with few hidden units and
  many rows (the course page's pixel RBM, 49,152 x 64), while `(h.T @ v).T` ran 1.3-1.8x faster
  there (n_hidden <= 64, rows >= 128, at n_visible 784 to 49,152). Elsewhere the transposed form
  measured 0.15-0.9x, so it is taken only there. The barrier stops XLA from rewriting it back.
  """
  rows, m = h.shape
  if m <= 64 and rows >= 128 and jax.default_backend() == "cpu":
    return jax.lax.optimization_barrier(rbm._matmul(h.T, v, precision)).T
  return rbm._matmul(v.T, h, precision)


def contrastive_grad(params: RBM, v_data: Array, v_model: Array,
                     precision=rbm.SAMPLER_PRECISION, h_data: Array | None = None) -> RBM:
  """Gradient of the negative mean log-likelihood, estimated with model samples `v_model`.

  `h_data`: `p(h | v_data)` if already computed (CD chains start from it). Bernoulli models use
  the closed form `-(<v h^T>_data - <v h^T>_model)` with data and model rows stacked into one
  matmul; Gaussian models differentiate `mean F(v_data) - mean F(v_model)`. Monte Carlo noise
  dominates the estimate, so matmuls run at the sampler's precision (TF32 on recent NVIDIA
  GPUs), not the exact one.
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
  h_model = rbm.hidden_prob(params, v_model, precision)
  h_all = jnp.concatenate([h_data, h_model]) * weights[:, None]
  return BernoulliRBM(
    W=-_weight_statistics(v_all, h_all, precision),
    # A weighted sum as a matvec: XLA's CPU column reduction of a wide (B, n) array measured
    # ~8x slower at n = 49,152.
    b=-rbm._matmul(weights, v_all, precision),
    c=-jnp.sum(h_all, 0),
  )


def cd_grad(
  key: Array, params: RBM, v_data: Array, k: int = 1, uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
  precision: str | None = None,
) -> tuple[RBM, Array]:
  """CD-k: chains start at the data and run k sweeps. Returns `(grads, v_model)`."""
  start = sampling.init(params, v_data)  # start.h = p(h | v_data), the positive statistics
  final = sampling.run(key, start, params, k, uniform_bits=uniform_bits, precision=precision)
  return contrastive_grad(params, v_data, final.v, precision, h_data=start.h), final.v


def pcd_grad(
  key: Array,
  params: RBM,
  v_data: Array,
  chains: GibbsState,
  k: int = 1,
  uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
  precision: str | None = None,
) -> tuple[RBM, GibbsState]:
  """PCD-k (Tieleman 2008): persistent chains advance k sweeps. Returns `(grads, chains)`."""
  chains = sampling.run(key, chains, params, k, uniform_bits=uniform_bits, precision=precision)
  return contrastive_grad(params, v_data, chains.v, precision), chains


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD with momentum, L2 decay on W and the configured learning-rate schedule, refusing any
  step that would leave NaN or inf in the parameters (`optim.guarded_sgd`)."""
  total = config.epochs * steps_per_epoch
  if config.schedule == "constant":
    lr: optax.ScalarOrSchedule = config.learning_rate
  elif config.schedule == "linear":
    lr = optax.linear_schedule(config.learning_rate, 0.0, total)
  else:
    lr = optax.cosine_decay_schedule(config.learning_rate, total)
  only_w = lambda p: type(p)(*[name == "W" for name in p._fields])
  return optim.guarded_sgd(lr, config.momentum, config.weight_decay, only_w)


def reconstruction_error(params: RBM, v: Array) -> Array:
  """Mean squared error of the mean-field reconstruction `E[v | p(h|v)]`, a scalar."""
  return jnp.mean((v - rbm.visible_mean(params, rbm.hidden_prob(params, v))) ** 2)


# ---------------------------------------------------------------------------- compiled epoch


def _scale_sigma_grad(grads: RBM, config: TrainConfig) -> RBM:
  if isinstance(grads, GaussianRBM):
    scale = config.sigma_lr_scale if config.learn_sigma else 0.0
    return grads._replace(log_sigma=grads.log_sigma * scale)
  return grads


def _init_state(key: Array, params: RBM, data: Array, config: TrainConfig) -> TrainState:
  n_batches = data.shape[0] // config.batch_size
  opt_state = make_optimizer(config, n_batches).init(params)
  if config.method == "pcd":
    n_chains = config.n_persistent or config.batch_size
    rows = jax.random.randint(key, (n_chains,), 0, data.shape[0])
    chains = sampling.init(params, data[rows])
  else:
    chains = sampling.init(params, data[:0])
  return TrainState(params=params, opt_state=opt_state, chains=chains)


def _epoch(key: Array, state: TrainState, data: Array, config: TrainConfig, shard=None):
  """One pass over shuffled minibatches (the remainder dropped), as one `lax.scan`.

  `shard`: None, or the shardings `(batches, chains)` that split every minibatch and the
  persistent chains over devices (data-parallel training).
  """
  n, d = data.shape
  n_batches = n // config.batch_size
  tx = make_optimizer(config, n_batches)
  key_perm, key_steps = jax.random.split(key)
  perm = permutation(key_perm, n)[: n_batches * config.batch_size]
  batches = parallel.constrain(data[perm].reshape(n_batches, config.batch_size, d),
                               shard and shard[0])

  def update(s: TrainState, xs):
    batch, k = xs
    if config.method == "pcd":
      grads, chains = pcd_grad(k, s.params, batch, s.chains, config.k, config.uniform_bits,
                               config.sampler_precision)
      chains = GibbsState(*(parallel.constrain(x, shard and shard[1]) for x in chains))
    else:
      grads, _ = cd_grad(k, s.params, batch, config.k, config.uniform_bits,
                         config.sampler_precision)
      chains = s.chains
    updates, opt_state = tx.update(_scale_sigma_grad(grads, config), s.opt_state, s.params)
    params = optax.apply_updates(s.params, updates)
    # A refused step leaves the chains too as they were (they are batch-sized, so `where` is cheap).
    chains = jax.tree.map(lambda a, b: jnp.where(opt_state.finite, a, b), chains, s.chains)
    return TrainState(params, opt_state, chains), None

  state, _ = jax.lax.scan(update, state, (batches, jax.random.split(key_steps, n_batches)))
  # The curve's point: the epoch's final parameters on its last minibatch (a per-step
  # reconstruction would cost two more matmuls in every update).
  return state, reconstruction_error(state.params, batches[-1])


def _epochs(key_loop: Array, start: Array, state: TrainState, data: Array, ll_data: Array,
            config: TrainConfig, n_epochs: int, track_ll: bool, shard=None):
  """Epochs `start .. start + n_epochs - 1` as one `lax.scan`; epoch e uses `fold_in(key, e)`.

  From the first update that would leave NaN or inf in the parameters on, the optimizer refuses
  every step, so the returned state is the last good one. Returns
  `(state, recon (n_epochs,), ll (n_epochs,), ok (n_epochs,))` where `ok[i]` says every update
  of epoch `start + i` and of those before it was applied.
  """

  def body(state, epoch):
    state, recon = _epoch(jax.random.fold_in(key_loop, epoch), state, data, config, shard)
    ll = _exact_ll(state.params, ll_data) if track_ll else jnp.full((), jnp.nan, recon.dtype)
    return state, (recon, ll, state.opt_state.finite)

  state, (recon, ll, ok) = jax.lax.scan(body, state, start + jnp.arange(n_epochs))
  return state, recon, ll, ok


def _setup(key: Array, params: RBM, data: Array, config: TrainConfig, bootstrap: bool):
  """Per-seed set-up: the (optionally resampled) data, the initial state and the loop key."""
  key_boot, key_chains, key_loop = jax.random.split(key, 3)
  if bootstrap:
    data = data[jax.random.randint(key_boot, (data.shape[0],), 0, data.shape[0])]
  return (data if bootstrap else None), _init_state(key_chains, params, data, config), key_loop


_STATIC = (5, 6, 7, 8)  # config, n_epochs, track_ll, shard
# The state's buffers are donated: an epoch updates parameters and chains in place.
_epochs_one = jax.jit(_epochs, static_argnums=_STATIC, donate_argnums=2)


@functools.cache
def _epochs_many(shared: bool, sharded: bool) -> Callable:
  """`_epochs` vmapped over seeds; seeds share the data unless each has its own resample.

  Sharded: the seed axis lies on the mesh's "seeds" axis (`spmd_axis_name`).
  """
  in_axes = (0, None, 0, None if shared else 0, None, None, None, None, None)
  fn = jax.vmap(_epochs, in_axes=in_axes, spmd_axis_name=parallel.SEEDS if sharded else None)
  return jax.jit(fn, static_argnums=_STATIC, donate_argnums=2)


_setup_one = jax.jit(_setup, static_argnames=("config", "bootstrap"))
_setup_many = jax.jit(
  jax.vmap(_setup, in_axes=(0, 0, None, None, None)), static_argnames=("config", "bootstrap")
)


def epochs_per_call(config: TrainConfig, n_samples: int) -> int:
  """Epochs per compiled call: `config.epochs_per_call`, or (0) enough for ~256 updates."""
  if config.epochs_per_call:
    return min(config.epochs_per_call, config.epochs)
  n_batches = n_samples // config.batch_size
  return max(1, min(config.epochs, 256 // n_batches))


def _track_exact(params: RBM, config: TrainConfig) -> bool:
  if config.exact_ll is not None:
    return config.exact_ll
  n, m = rbm.n_visible(params), rbm.n_hidden(params)
  units = m if isinstance(params, GaussianRBM) else min(n, m)
  return units <= 16


def _exact_ll(params: RBM, data: Array) -> Array:
  return partition.log_likelihood(params, data, partition.exact_log_partition(params))


def _check_inputs(params: RBM, data: ArrayLike, config: TrainConfig) -> Array:
  rbm._check_kind(params)
  config.validate()
  x = rbm.validate_data(
    data, params.W.shape[-2], bernoulli=not isinstance(params, GaussianRBM), name="data"
  )
  if config.batch_size > x.shape[0]:
    raise ValueError(
      f"batch_size={config.batch_size} exceeds the {x.shape[0]} training samples; lower it"
    )
  return x.astype(params.W.dtype)


def _checkpoint_tree(state: TrainState, key_loop: Array, recon: np.ndarray, ll: np.ndarray,
                     config: TrainConfig) -> dict:
  """What a training checkpoint holds (orbax cannot store CD's empty chain placeholder)."""
  tree = {"params": state.params, "opt_state": state.opt_state,
          "key": jax.random.key_data(key_loop), "recon_error": recon, "log_likelihood": ll}
  if config.method == "pcd":
    tree["chains"] = state.chains
  return tree


def _checkpoint_meta(params: RBM, config: TrainConfig, n_samples: int, extra: dict) -> dict:
  return {"model": type(params).__name__, "W_shape": list(np.shape(params.W)),
          "n_samples": n_samples, "config": dataclasses.asdict(config), **extra}


def _loop(
  state: TrainState,
  train_data: Array,
  ll_data: Array,
  key_loop: Array,
  config: TrainConfig,
  epoch_fn: Callable,
  track_ll: bool,
  desc: str,
  progress: checkpoint.Progress | None,
  meta: dict,
  shard=None,
) -> tuple[TrainState, History]:
  """The host loop shared by `fit` and `fit_many`: one compiled call per chunk of epochs.

  With a `progress` checkpointer it resumes from the latest checkpoint, saves at chunk
  boundaries (at most every `progress.min_interval_s`), at the end and on KeyboardInterrupt.
  Chunk boundaries depend only on the config, so a resumed run makes exactly the compiled calls
  of an uninterrupted one: same bits.
  """
  shape = key_loop.shape  # a typed key array: () for one seed, (S,) for many
  recon = np.full(shape + (config.epochs,), np.nan, np.float32)
  ll = np.full(shape + (config.epochs,), np.nan, np.float32)
  done = 0
  if progress is not None and progress.latest_step() is not None:
    tree, saved = progress.restore(_checkpoint_tree(state, key_loop, recon, ll, config), meta)
    if not np.array_equal(tree["key"], np.asarray(jax.random.key_data(key_loop))):
      raise ValueError(f"checkpoint {progress.directory} was written with another PRNG key; "
                       "resume with the original seed")
    state = TrainState(tree["params"], tree["opt_state"], tree.get("chains", state.chains))
    recon, ll, done = np.array(tree["recon_error"]), np.array(tree["log_likelihood"]), saved["step"]

  chunk = epochs_per_call(config, train_data.shape[-2])

  def save(force: bool) -> None:
    if progress is not None:
      progress.save(done, _checkpoint_tree(state, key_loop, recon, ll, config),
                    {**meta, "step": done}, force=force)

  def finish(pending, start: int, n: int) -> None:
    nonlocal state, done
    new_state, r, l, ok = pending
    ok = np.asarray(ok)
    recon[..., start:start + n], ll[..., start:start + n] = np.asarray(r), np.asarray(l)
    bad = np.nonzero(~np.all(ok.reshape(-1, n), axis=0))[0]
    state, done = new_state, start + (int(bad[0]) if len(bad) else n)
    if len(bad):  # the state stopped mid-epoch, so it is not saved: resuming could not use it
      where = ""
      if progress is not None:
        saved = progress.latest_step()
        where = (f"; it diverged before the first checkpoint in {progress.directory}"
                 if saved is None else
                 f"; the latest checkpoint (epoch {saved}) is in {progress.directory}")
      raise TrainingDivergedError(done, state.params, config, where)

  bar = tqdm(total=config.epochs, initial=done, desc=desc, disable=not config.progress,
             leave=False, unit="epoch")
  pending = None
  try:
    while done < config.epochs:
      n = min(chunk, config.epochs - done)
      pending = epoch_fn(key_loop, done, state, train_data, ll_data, config, n, track_ll, shard)
      finish(pending, done, n)
      pending = None
      save(done == config.epochs)
      bar.update(n)
      postfix = {"recon": f"{float(np.mean(recon[..., done - 1])):.4f}"}
      if track_ll:
        postfix["ll"] = f"{float(np.mean(ll[..., done - 1])):.3f}"
      bar.set_postfix(postfix)
  except KeyboardInterrupt:
    if pending is not None:  # the interrupted chunk's results are valid: keep them
      finish(pending, done, pending[1].shape[-1])
    if not any(x.is_deleted() for x in jax.tree.leaves(state)):
      save(True)
    raise
  finally:
    bar.close()
  return state, History(recon_error=recon, log_likelihood=ll)


def _typed_keys(keys: ArrayLike) -> Array:
  """Typed PRNG keys; raw uint32 key data (`jax.random.PRNGKey`) is wrapped."""
  keys = jnp.asarray(keys)
  if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
    return keys
  return jax.random.wrap_key_data(keys)


def _minibatch_sharding(config: TrainConfig, mesh: Mesh, axes) -> tuple:
  """Shardings `(batches, chains)` splitting minibatches and PCD chains over mesh `axes`;
  a ValueError if either does not divide evenly."""
  parallel.check_divisible(config.batch_size, mesh, "batch_size", axes)
  if config.method == "pcd":
    parallel.check_divisible(config.n_persistent or config.batch_size, mesh, "n_persistent", axes)
  return (parallel.batch_sharding(mesh, 3, dim=1, axes=axes),
          parallel.batch_sharding(mesh, 2, axes=axes))


def _progress(checkpoint_dir: str | Path | None, every_s: float) -> checkpoint.Progress | None:
  return None if checkpoint_dir is None else checkpoint.Progress(checkpoint_dir, every_s)


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
  key = _typed_keys(key)
  shard = None
  if mesh is not None:
    shard = _minibatch_sharding(config, mesh, parallel.ALL)
    params, x = jax.device_put((params, x), parallel.replicated(mesh))
  _, state, key_loop = _setup_one(key, params, x, config, False)
  if shard is not None and config.method == "pcd":
    state = state._replace(chains=jax.device_put(state.chains, shard[1]))
  meta = _checkpoint_meta(params, config, x.shape[0], {"seeds": 1})
  state, history = _loop(state, x, x, key_loop, config, _epochs_one,
                         _track_exact(params, config), "rbm fit",
                         _progress(checkpoint_dir, checkpoint_every_s), meta, shard)
  return state.params, history


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
  keys = _typed_keys(raw)
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
    shard = _minibatch_sharding(config, mesh, parallel.CHAINS)
    keys, params = parallel.shard_batch((keys, params), mesh, axes=parallel.SEEDS)
    x = jax.device_put(x, parallel.replicated(mesh))
  xs, state, key_loop = _setup_many(keys, params, x, config, bootstrap)
  train_data = xs if bootstrap else x
  meta = _checkpoint_meta(first, config, x.shape[0], {"seeds": n_seeds, "bootstrap": bootstrap})
  state, history = _loop(state, train_data, x, key_loop, config,
                         _epochs_many(not bootstrap, mesh is not None),
                         _track_exact(first, config), f"rbm fit x{n_seeds}",
                         _progress(checkpoint_dir, checkpoint_every_s), meta, shard)
  return state.params, history

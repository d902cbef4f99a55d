"""Training: CD-k and PCD-k gradient estimators, an optax update, and compiled epochs.

The gradient of the mean log-likelihood is `-<dF/dtheta>_data + <dF/dtheta>_model`; writing it
as the gradient of `mean F(v_data) - mean F(v_model)` (model samples held fixed) gives the
usual `<v p(h|v)^T>_data - <v p(h|v)^T>_model` statistics, with `p(h|v)` in place of sampled
hidden states, and covers Gaussian models' `log_sigma` without separate formulas.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike
from tqdm.auto import tqdm

from aerbm_jax import partition, rbm, sampling
from aerbm_jax._rng import DEFAULT_UNIFORM_BITS, resolve_uniform_bits
from aerbm_jax.rbm import RBM, GaussianRBM
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
  progress: bool = True  # tqdm bar over epochs

  def validate(self) -> None:
    """Raise ValueError naming the first bad field."""
    if self.method not in ("cd", "pcd"):
      raise ValueError(f"method must be 'cd' or 'pcd', got {self.method!r}")
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


class TrainState(NamedTuple):
  """Everything an update needs; a pytree, so it can be vmapped and checkpointed."""

  params: RBM
  opt_state: optax.OptState
  chains: GibbsState  # persistent chains (PCD); for CD a (0, n_visible) placeholder


class History(NamedTuple):
  """Per-epoch training curves (a leading seed axis from `fit_many`)."""

  recon_error: np.ndarray  # shape=(..., epochs): mean squared mean-field reconstruction error
  log_likelihood: np.ndarray  # shape=(..., epochs): exact mean log p(data), NaN if not tracked


class TrainingDivergedError(RuntimeError):
  """Parameters became NaN or inf; `last_good_params` holds the previous epoch's parameters."""

  def __init__(self, epoch: int, last_good_params: RBM, config: TrainConfig):
    self.epoch = epoch
    self.last_good_params = last_good_params
    super().__init__(
      f"training diverged in epoch {epoch}: parameters became NaN or inf "
      f"(learning_rate={config.learning_rate}); lower learning_rate"
      + (" or sigma_lr_scale" if isinstance(last_good_params, GaussianRBM) else "")
      + ". The previous epoch's parameters are in the exception's last_good_params."
    )


# ---------------------------------------------------------------------------- estimators


def contrastive_grad(params: RBM, v_data: Array, v_model: Array) -> RBM:
  """Gradient of the negative mean log-likelihood, estimated with model samples `v_model`."""
  v_model = jax.lax.stop_gradient(v_model)

  def objective(p):
    return jnp.mean(rbm.free_energy(p, v_data)) - jnp.mean(rbm.free_energy(p, v_model))

  return jax.grad(objective)(params)


def cd_grad(
  key: Array, params: RBM, v_data: Array, k: int = 1, uniform_bits: int | None = DEFAULT_UNIFORM_BITS
) -> tuple[RBM, Array]:
  """CD-k: chains start at the data and run k sweeps. Returns `(grads, v_model)`."""
  final = sampling.run(key, sampling.init(params, v_data), params, k, uniform_bits=uniform_bits)
  return contrastive_grad(params, v_data, final.v), final.v


def pcd_grad(
  key: Array,
  params: RBM,
  v_data: Array,
  chains: GibbsState,
  k: int = 1,
  uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
) -> tuple[RBM, GibbsState]:
  """PCD-k (Tieleman 2008): persistent chains advance k sweeps. Returns `(grads, chains)`."""
  chains = sampling.run(key, chains, params, k, uniform_bits=uniform_bits)
  return contrastive_grad(params, v_data, chains.v), chains


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD with momentum, L2 decay on W, and the configured learning-rate schedule."""
  total = config.epochs * steps_per_epoch
  if config.schedule == "constant":
    lr: optax.ScalarOrSchedule = config.learning_rate
  elif config.schedule == "linear":
    lr = optax.linear_schedule(config.learning_rate, 0.0, total)
  else:
    lr = optax.cosine_decay_schedule(config.learning_rate, total)
  only_w = lambda p: type(p)(*[name == "W" for name in p._fields])
  return optax.chain(
    optax.add_decayed_weights(config.weight_decay, mask=only_w),
    optax.sgd(lr, momentum=config.momentum or None),
  )


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


def _epoch(key: Array, state: TrainState, data: Array, config: TrainConfig):
  """One pass over shuffled minibatches (the remainder dropped), as one `lax.scan`."""
  n, d = data.shape
  n_batches = n // config.batch_size
  tx = make_optimizer(config, n_batches)
  key_perm, key_steps = jax.random.split(key)
  perm = jax.random.permutation(key_perm, n)[: n_batches * config.batch_size]
  batches = data[perm].reshape(n_batches, config.batch_size, d)

  def update(s: TrainState, xs):
    batch, k = xs
    if config.method == "pcd":
      grads, chains = pcd_grad(k, s.params, batch, s.chains, config.k, config.uniform_bits)
    else:
      grads, _ = cd_grad(k, s.params, batch, config.k, config.uniform_bits)
      chains = s.chains
    recon = reconstruction_error(s.params, batch)
    updates, opt_state = tx.update(_scale_sigma_grad(grads, config), s.opt_state, s.params)
    params = optax.apply_updates(s.params, updates)
    return TrainState(params, opt_state, chains), recon

  state, recon = jax.lax.scan(update, state, (batches, jax.random.split(key_steps, n_batches)))
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(state.params)]))
  return state, jnp.mean(recon), finite


def _setup(key: Array, params: RBM, data: Array, config: TrainConfig, bootstrap: bool):
  """Per-seed set-up: the (optionally resampled) data, the initial state and the loop key."""
  key_boot, key_chains, key_loop = jax.random.split(key, 3)
  if bootstrap:
    data = data[jax.random.randint(key_boot, (data.shape[0],), 0, data.shape[0])]
  return (data if bootstrap else None), _init_state(key_chains, params, data, config), key_loop


_epoch_one = jax.jit(_epoch, static_argnames=("config",))
# Seeds share the data unless each has its own bootstrap resample.
_epoch_many = {
  shared: jax.jit(jax.vmap(_epoch, in_axes=(0, 0, None if shared else 0, None)),
                  static_argnames=("config",))
  for shared in (True, False)
}
_setup_one = jax.jit(_setup, static_argnames=("config", "bootstrap"))
_setup_many = jax.jit(
  jax.vmap(_setup, in_axes=(0, 0, None, None, None)), static_argnames=("config", "bootstrap")
)


def _track_exact(params: RBM, config: TrainConfig) -> bool:
  if config.exact_ll is not None:
    return config.exact_ll
  n, m = rbm.n_visible(params), rbm.n_hidden(params)
  units = m if isinstance(params, GaussianRBM) else min(n, m)
  return units <= 16


@jax.jit
def _exact_ll(params: RBM, data: Array) -> Array:
  return partition.log_likelihood(params, data, partition.exact_log_partition(params))


_exact_ll_many = jax.jit(jax.vmap(_exact_ll, in_axes=(0, None)))


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


def _loop(
  state: TrainState,
  train_data: Array,
  ll_data: Array,
  key_loop: Array,
  config: TrainConfig,
  epoch_fn: Callable,
  ll_fn: Callable | None,
  batched: bool,
  desc: str,
) -> tuple[TrainState, History]:
  """The host loop shared by `fit` and `fit_many`: one compiled call per epoch."""
  recon_hist, ll_hist = [], []
  bar = tqdm(range(config.epochs), desc=desc, disable=not config.progress, leave=False)
  for epoch in bar:
    if batched:
      key = jax.vmap(jax.random.fold_in, in_axes=(0, None))(key_loop, epoch)
    else:
      key = jax.random.fold_in(key_loop, epoch)
    new_state, recon, finite = epoch_fn(key, state, train_data, config)
    if not bool(jnp.all(finite)):
      raise TrainingDivergedError(epoch, state.params, config)
    state = new_state
    recon_hist.append(np.asarray(recon))
    postfix = {"recon": f"{float(np.mean(recon)):.4f}"}
    if ll_fn is not None:
      ll = np.asarray(ll_fn(state.params, ll_data))
      postfix["ll"] = f"{float(np.mean(ll)):.3f}"
    else:
      ll = np.full(np.shape(recon), np.nan)
    ll_hist.append(ll)
    bar.set_postfix(postfix)
  history = History(
    recon_error=np.stack(recon_hist, axis=-1), log_likelihood=np.stack(ll_hist, axis=-1)
  )
  return state, history


def fit(
  key: Array, params: RBM, data: ArrayLike, config: TrainConfig = TrainConfig()
) -> tuple[RBM, History]:
  """Train one RBM on `data: (N, n_visible)`.

  Each epoch is one compiled call (`lax.scan` over minibatches); the host checks for NaN/inf
  after every epoch and raises `TrainingDivergedError` naming it. Same key, same result.

  Returns:
    The trained parameters and the per-epoch `History`.
  """
  x = _check_inputs(params, data, config)
  _, state, key_loop = _setup_one(key, params, x, config, False)
  ll_fn = _exact_ll if _track_exact(params, config) else None
  state, history = _loop(state, x, x, key_loop, config, _epoch_one, ll_fn, False, "rbm fit")
  return state.params, history


def fit_many(
  keys: Array,
  params: RBM,
  data: ArrayLike,
  config: TrainConfig = TrainConfig(),
  *,
  bootstrap: bool = False,
) -> tuple[RBM, History]:
  """`fit` vmapped over S seeds, in one compiled call per epoch.

  Args:
    keys: `(S,)` PRNG keys, one per seed.
    params: initial parameters stacked on a leading seed axis (e.g.
      `jax.vmap(lambda k: rbm.init(k, n, m))(keys)`), or one model shared by every seed.
    data: `(N, n_visible)` training data shared by the seeds.
    bootstrap: train seed s on its own resample (with replacement) of the data.

  Returns:
    Parameters stacked `(S, ...)` and a `History` with arrays `(S, epochs)`. Seed s equals
    `fit(keys[s], params[s], data, config)` up to float rounding when `bootstrap` is False.
  """
  keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
  if keys.ndim != 1 and not (keys.ndim == 2 and keys.shape[-1] == 2):
    raise ValueError(f"keys must be a 1-D array of S keys, got shape {keys.shape}")
  n_seeds = keys.shape[0]
  if params.W.ndim == 2:
    params = jax.tree.map(lambda x: jnp.broadcast_to(x, (n_seeds,) + x.shape), params)
  elif params.W.shape[0] != n_seeds:
    raise ValueError(f"params are stacked for {params.W.shape[0]} seeds but {n_seeds} keys given")
  first = jax.tree.map(lambda x: x[0], params)
  x = _check_inputs(first, data, config)
  xs, state, key_loop = _setup_many(keys, params, x, config, bootstrap)
  train_data = xs if bootstrap else x
  ll_fn = _exact_ll_many if _track_exact(first, config) else None
  state, history = _loop(state, train_data, x, key_loop, config, _epoch_many[not bootstrap],
                         ll_fn, True, f"rbm fit x{n_seeds}")
  return state.params, history

"""The compiled training API: the config, the state, and chunks of CD-k / PCD-k epochs.

Pure and jittable: `init_state` builds a `TrainState`; `run_epochs` runs epochs
`start .. start + n - 1` as one `lax.scan` over epochs and minibatches, each update a CD-k or
PCD-k gradient (`gradients`) through a guarded momentum SGD (`optim`); `epochs` is its
compiled form with the state's buffers donated, and `epochs_many(...)` the form vmapped over
seeds. `train.fit` and `train.fit_many` drive these chunks from the host.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

from aerbm_jax import gradients, optim, parallel, partition, rbm, sampling
from aerbm_jax.rbm import RBM, BernoulliRBM, GaussianRBM
from aerbm_jax.rng import DEFAULT_UNIFORM_BITS, permutation, resolve_uniform_bits
from aerbm_jax.gradients import Offsets
from aerbm_jax.sampling import GibbsState

__all__ = [
  "TrainConfig",
  "TrainState",
  "EpochsResult",
  "make_optimizer",
  "bounds_w",
  "init_state",
  "setup",
  "run_epochs",
  "epochs",
  "epochs_many",
  "epochs_per_call",
  "is_centred",
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
  exact_ll: bool | None = None  # track exact log-likelihood; None: when partition.is_enumerable
  epochs_per_call: int = 0  # epochs per compiled call; 0: enough for ~256 minibatch updates
  sampler_precision: str | None = None  # negative-phase matmuls: None, "highest", "bfloat16"
  progress: bool = True  # tqdm bar over epochs
  centered: bool | None = None  # centred gradients (Melchior et al. 2016); None: for Bernoulli
  offset_rate: float = 0.01  # centring: running-average rate of the hidden offsets

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
    if not isinstance(self.offset_rate, (int, float)) or not 0 <= self.offset_rate <= 1:
      raise ValueError(f"offset_rate must lie in [0, 1], got {self.offset_rate!r}")
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

  params: RBM  # W: (n_visible, n_hidden), biases (n_visible,), (n_hidden,)
  opt_state: optax.OptState  # optim.GuardedSGDState: count (), momentum like params, finite ()
  chains: GibbsState  # PCD: v (chains, n_visible), h = p(h|v) (chains, n_hidden); CD: (0, ...)
  offsets: Offsets  # centring: visible (n_visible,) = data mean, hidden (n_hidden,); unused
  # unless is_centred(config, params)


class EpochsResult(NamedTuple):
  """What `run_epochs` returns (each array with a leading seed axis from `epochs_many`)."""

  state: TrainState
  recon_error: Array  # shape=(n_epochs,): mean-field reconstruction MSE at each epoch's end,
  # on its last minibatch
  log_likelihood: Array  # shape=(n_epochs,): exact mean log p(ll_data), NaN if not tracked
  ok: Array  # shape=(n_epochs,) bool: every update up to the end of that epoch was applied


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD with momentum, L2 decay on W and the configured learning-rate schedule, refusing any
  step that would leave NaN or inf in the parameters (`optim.guarded_sgd`); a Bernoulli
  model's W is checked on its gradient's bound (`bounds_w`), which refuses it from 1.3e30
  (`optim.LIMIT`) on."""
  total = config.epochs * steps_per_epoch
  if config.schedule == "constant":
    lr: optax.ScalarOrSchedule = config.learning_rate
  elif config.schedule == "linear":
    lr = optax.linear_schedule(config.learning_rate, 0.0, total)
  else:
    lr = optax.cosine_decay_schedule(config.learning_rate, total)
  only_w = lambda p: type(p)(*[name == "W" for name in p._fields])  # noqa: E731
  w_bounded = lambda p: type(p)(*[n == "W" and bounds_w(p) for n in p._fields])  # noqa: E731
  return optim.guarded_sgd(lr, config.momentum, config.weight_decay, only_w,
                           bounded=w_bounded)


def bounds_w(params: RBM) -> bool:
  """Whether each update bounds its `W` gradient (`gradients.weight_grad_bound`), so that the
  optimizer checks the step on scalars: Bernoulli models, whose gradient has a closed form."""
  return isinstance(params, BernoulliRBM)


def is_centred(config: TrainConfig, params: RBM) -> bool:
  """Whether training centres its gradients: `config.centered`, or (None) for Bernoulli models,
  whose likelihood it improves and makes independent of how the bits are coded (docs/mnist.md);
  a Gaussian RBM's visible units are standardised instead."""
  if config.centered is None:
    return isinstance(params, BernoulliRBM)
  return config.centered


def _scale_sigma_grad(grads: RBM, config: TrainConfig) -> RBM:
  if isinstance(grads, GaussianRBM):
    scale = config.sigma_lr_scale if config.learn_sigma else 0.0
    return grads._replace(log_sigma=grads.log_sigma * scale)
  return grads


def init_state(key: Array, params: RBM, data: Array, config: TrainConfig) -> TrainState:
  """A fresh `TrainState`: optimizer state, PCD chains started at random data rows, and the
  centring offsets (the data mean, and 1/2 for every hidden unit, as in Melchior et al.'s code).

  Args:
    key: PRNG key (picks the PCD chains' starting rows).
    params: the initial model.
    data: `(N, n_visible)` training data.
    config: the training settings.
  """
  n_batches = data.shape[0] // config.batch_size
  opt_state = make_optimizer(config, n_batches).init(params)
  if config.method == "pcd":
    n_chains = config.n_persistent or config.batch_size
    rows = jax.random.randint(key, (n_chains,), 0, data.shape[0])
    chains = sampling.init(params, data[rows])
  else:
    chains = sampling.init(params, data[:0])
  offsets = Offsets(visible=jnp.mean(data, axis=0),
                    hidden=jnp.full((rbm.n_hidden(params),), 0.5, params.W.dtype))
  return TrainState(params=params, opt_state=opt_state, chains=chains, offsets=offsets)


def _epoch(key: Array, state: TrainState, data: Array, config: TrainConfig, shard=None):
  """One pass over shuffled minibatches (the remainder dropped), as one `lax.scan`.

  Each update gathers its own rows of `data`: a shuffled copy of the whole set, made before
  the scan, would be written and read once more per epoch (MNIST's is 188 MB).

  `shard`: None, or the shardings `(minibatch, chains)` that split every minibatch and the
  persistent chains over devices (data-parallel training).
  """
  n = data.shape[0]
  n_batches = n // config.batch_size
  tx = make_optimizer(config, n_batches)
  key_perm, key_steps = jax.random.split(key)
  rows = permutation(key_perm, n)[: n_batches * config.batch_size].reshape(n_batches, -1)
  minibatch = lambda r: parallel.constrain(data[r], shard and shard[0])  # noqa: E731

  centred = is_centred(config, state.params)

  def update(s: TrainState, xs):
    batch_rows, key_update = xs
    batch = minibatch(batch_rows)
    # Centring needs p(h | v_data) for the hidden offsets, and the gradient's bound its
    # magnitude; the estimators reuse it.
    with_bound = bounds_w(s.params)
    h_data = (rbm.hidden_prob(s.params, batch, config.sampler_precision)
              if centred or with_bound else None)
    offsets = s.offsets if centred else None
    if config.method == "pcd":
      grads, chains = gradients.pcd_grad(key_update, s.params, batch, s.chains, config.k,
                                         config.uniform_bits, config.sampler_precision, h_data,
                                         offsets)
      chains = model = GibbsState(*(parallel.constrain(x, shard and shard[1]) for x in chains))
    else:
      grads, model = gradients.cd_grad(key_update, s.params, batch, config.k,
                                       config.uniform_bits, config.sampler_precision, h_data,
                                       offsets)
      chains = s.chains
    offsets = s.offsets
    if centred:
      rate = config.offset_rate
      offsets = offsets._replace(hidden=(1 - rate) * offsets.hidden + rate * h_data.mean(0))
    bounds = None
    if with_bound:  # from the rows the gradient read: its model samples and their p(h | v)
      bound = gradients.weight_grad_bound(batch, h_data, model.v, model.h,
                                          s.offsets if centred else None)
      bounds = grads._replace(W=bound, b=None, c=None)
    updates, opt_state = tx.update(_scale_sigma_grad(grads, config), s.opt_state, s.params,
                                   grad_bounds=bounds)
    params = optax.apply_updates(s.params, updates)
    # A refused step leaves the chains and offsets too as they were (both are small, so
    # `where` is cheap).
    chains, offsets = jax.tree.map(lambda a, b: jnp.where(opt_state.finite, a, b),
                                   (chains, offsets), (s.chains, s.offsets))
    return TrainState(params, opt_state, chains, offsets), None

  state, _ = jax.lax.scan(update, state, (rows, jax.random.split(key_steps, n_batches)))
  # The curve's point: the epoch's final parameters on its last minibatch (a per-step
  # reconstruction would cost two more matmuls in every update).
  return state, rbm.reconstruction_error(state.params, minibatch(rows[-1]))


def run_epochs(key_loop: Array, start: Array, state: TrainState, data: Array,
               ll_data: Array | None, config: TrainConfig, n_epochs: int, track_ll: bool,
               shard=None) -> EpochsResult:
  """Epochs `start .. start + n_epochs - 1` as one `lax.scan`; epoch e uses `fold_in(key, e)`.

  From the first update that would leave NaN or inf in the parameters on, the optimizer refuses
  every step, so the returned state is the last good one.

  Args:
    key_loop: the run's loop key (from `setup`).
    start: the index of the first epoch (a traced int: one compile serves every chunk).
    state: the `TrainState` to continue.
    data: `(N, n_visible)` training data.
    ll_data: data whose exact log-likelihood is tracked after each epoch (with `track_ll`).
    config: the training settings (static).
    n_epochs: epochs in this call (static).
    track_ll: compute the exact log-likelihood of `ll_data` per epoch (static).
    shard: the `(batches, chains)` shardings of data-parallel training (static), or None.

  Returns:
    An `EpochsResult`.
  """

  def body(state, epoch):
    state, recon = _epoch(jax.random.fold_in(key_loop, epoch), state, data, config, shard)
    if track_ll:
      ll = partition.log_likelihood(state.params, ll_data,
                                    partition.exact_log_partition(state.params))
    else:
      ll = jnp.full((), jnp.nan, recon.dtype)
    return state, (recon, ll, state.opt_state.finite)

  state, (recon, ll, ok) = jax.lax.scan(body, state, start + jnp.arange(n_epochs))
  return EpochsResult(state, recon, ll, ok)


def setup(key: Array, params: RBM, data: Array, config: TrainConfig, bootstrap: bool = False):
  """Per-seed set-up: `(resampled data or None, initial TrainState, loop key)`.

  The key is split three ways: the bootstrap resample, the PCD chains' start, and the loop.
  """
  key_boot, key_chains, key_loop = jax.random.split(key, 3)
  if bootstrap:
    data = data[jax.random.randint(key_boot, (data.shape[0],), 0, data.shape[0])]
  return (data if bootstrap else None), init_state(key_chains, params, data, config), key_loop


_STATIC = ("config", "n_epochs", "track_ll", "shard")
# The compiled chunk of epochs. The state's buffers are donated: an epoch updates parameters and
# chains in place, so the caller's `state` must not be used after the call.
epochs = jax.jit(run_epochs, static_argnames=_STATIC, donate_argnames="state")


@functools.cache
def epochs_many(shared: bool, sharded: bool) -> Callable:
  """`epochs` vmapped over seeds; seeds share the data unless each has its own resample.

  Args:
    shared: every seed trains on the same data (else each on its own, stacked).
    sharded: the seed axis lies on the mesh's "seeds" axis (`spmd_axis_name`).
  """
  in_axes = (0, None, 0, None if shared else 0, None, None, None, None, None)
  fn = jax.vmap(run_epochs, in_axes=in_axes, spmd_axis_name=parallel.SEEDS if sharded else None)
  return jax.jit(fn, static_argnums=(5, 6, 7, 8), donate_argnums=2)


def epochs_per_call(config: TrainConfig, n_samples: int) -> int:
  """Epochs per compiled call: `config.epochs_per_call`, or (0) enough for ~256 updates.

  The automatic size is lowered to the largest divisor of `config.epochs` down to half of it,
  where there is one: every call then runs one compiled program, where a shorter last call
  would compile a second (each compile of an epoch call takes most of a second on a CPU).
  """
  if config.epochs_per_call:
    return min(config.epochs_per_call, config.epochs)
  n_batches = n_samples // config.batch_size
  most = max(1, min(config.epochs, 256 // n_batches))
  return next((d for d in range(most, (most - 1) // 2, -1) if config.epochs % d == 0), most)

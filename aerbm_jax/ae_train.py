"""Training the autoencoder (or VAE): augmentations, the compiled Adam step, resumable `fit`."""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike

from aerbm_jax import checkpoint, loop
from aerbm_jax.autoencoder import AEConfig, AutoEncoder, check_images, held_out_mse

__all__ = ["AEHistory", "augment", "loss", "optimizer", "train_step", "fit"]


def augment(key: Array, x: Array, dihedral: bool = False) -> Array:
  """Random transformations of `x: (B, S, S, C)`, per image: a horizontal flip and a circular
  shift of up to 1/16 of the side. With `dihedral`, one of the 8 symmetries of the square
  (horizontal and vertical flips and a transpose, each with probability 1/2) in place of the
  flip, for images with no up or left (Mondrian's)."""
  key_flip, key_shift = jax.random.split(key)
  if dihedral:
    k_h, k_v, k_t = jax.random.split(key_flip, 3)
    pick = lambda k: jax.random.bernoulli(k, 0.5, (x.shape[0], 1, 1, 1))  # noqa: E731
    x = jnp.where(pick(k_h), x[:, :, ::-1], x)
    x = jnp.where(pick(k_v), x[:, ::-1], x)
    x = jnp.where(pick(k_t), jnp.swapaxes(x, 1, 2), x)
  else:
    flip = jax.random.bernoulli(key_flip, 0.5, (x.shape[0],))
    x = jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)
  limit = max(1, x.shape[1] // 16)
  shifts = jax.random.randint(key_shift, (x.shape[0], 2), -limit, limit + 1)
  return jax.vmap(lambda img, s: jnp.roll(img, s, axis=(0, 1)))(x, shifts)


class AEHistory(NamedTuple):
  train_mse: np.ndarray  # shape=(epochs,)
  # shape=(epochs,), NaN without held-out images; the encoder's own codes, not refined
  held_out_mse: np.ndarray


def loss(params: Any, config: AEConfig, batch: Array, key: Array) -> Array:
  """The training objective on `batch: (B, H, W, C)`: the MSE (of the code's reconstruction
  with `code_noise` added to its pre-activations, when set), and for a VAE the MSE of a
  reparameterised draw plus `kl_weight` times KL(posterior || N(0, I)) per pixel."""
  model = AutoEncoder(config)
  if not config.variational:
    noise = (config.code_noise * jax.random.normal(key, (batch.shape[0], config.latent_dim))
             if config.code_noise else None)
    return jnp.mean((model.apply(params, batch, noise) - batch) ** 2)
  mean, log_var = model.apply(params, batch, method="encode_stats")
  z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
  rec = model.apply(params, z, method="decode")
  kl = 0.5 * jnp.sum(mean**2 + jnp.exp(log_var) - log_var - 1.0, axis=1)
  return jnp.mean((rec - batch) ** 2) + config.kl_weight * jnp.mean(kl) / batch[0].size


def optimizer(config: AEConfig) -> optax.GradientTransformation:
  """The autoencoder's optimiser: Adam at `config.learning_rate`, after a linear warm-up over
  `config.warmup_steps` updates when there is one."""
  steps = config.warmup_steps
  if not steps:
    return optax.adam(config.learning_rate)
  return optax.adam(optax.linear_schedule(config.learning_rate / steps, config.learning_rate,
                                          steps))


# Not donated: with `params` and `opt_state` donated (updated in place) the mondrian step ran
# about 1.25x slower on the CPU, and the buffers are small.
@partial(jax.jit, static_argnames=("config",))
def train_step(params, opt_state, batch, key, config: AEConfig):
  """One Adam step on a minibatch (augmented when configured), compiled. Returns
  `(params, opt_state, loss)`."""
  key_aug, key_loss = jax.random.split(key)
  if config.augment:
    batch = augment(key_aug, batch, config.augment_dihedral)
  value, grads = jax.value_and_grad(loss)(params, config, batch, key_loss)
  updates, opt_state = optimizer(config).update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, value


@partial(jax.jit, static_argnames=("config",))
def _init_optimizer(params, config: AEConfig):
  """Adam's initial state for `params` (compiled whole, as `_epoch_order`)."""
  return optimizer(config).init(params)


@partial(jax.jit, static_argnames=("n", "n_batches"))
def _epoch_order(key: Array, epoch: int, n: int, n_batches: int) -> tuple[Array, Array]:
  """An epoch's minibatch order, a permutation of `n` images, and its `n_batches` step keys
  (compiled whole: op by op, each small operation would compile on its own)."""
  key_perm, key_aug = jax.random.split(jax.random.fold_in(key, epoch))
  return jax.random.permutation(key_perm, n), jax.random.split(key_aug, n_batches)


class _Run(NamedTuple):
  """The host loop's state: parameters, Adam state and the curves so far."""

  params: Any
  opt_state: Any
  losses: np.ndarray  # shape=(epochs * n_batches,): each minibatch update's loss
  held_out: np.ndarray  # shape=(epochs,): held-out MSE every 5th epoch and the last, else NaN


def fit(
  key: Array,
  params: Any,
  images: ArrayLike,
  config: AEConfig,
  held_out: ArrayLike | None = None,
  *,
  checkpoint_dir: str | Path | None = None,
  checkpoint_every_s: float = 30.0,
) -> tuple[Any, AEHistory]:
  """Train on `images: (N, H, W, C)` with Adam on MSE.

  One compiled call per minibatch from the host loop (`loop.run`, one unit per update): XLA's
  CPU convolutions run far slower inside a `lax.scan` body than as a top-level computation,
  and a step of this size amortises the dispatch. Each call allocates the step's temporaries
  afresh: on glibc, `aerbm_jax.heap.keep_freed_memory()` called once beforehand (the `aerbm`
  command does) lets malloc reuse them, 1.18x the mondrian network's steps/s. Raises
  FloatingPointError naming the epoch if the loss becomes NaN or inf.

  Args:
    key: PRNG key (minibatch orders and augmentations; epoch e uses `fold_in(key, e)`).
    params: initial parameters from `init` (not modified).
    images: training images in [0, 1].
    config: architecture and training settings.
    held_out: images whose MSE (of the encoder's codes, unrefined) is tracked every 5th epoch
      and at the end.
    checkpoint_dir: parameters, Adam state and losses are checkpointed at epoch ends (at most
      every `checkpoint_every_s` seconds), at the end, and on KeyboardInterrupt; a folder that
      already holds a checkpoint resumes from it, bit for bit.
    checkpoint_every_s: the least time between two periodic checkpoints.

  Returns:
    The trained parameters and the per-epoch `AEHistory`.
  """
  config.validate()
  # Minibatches are gathered on the host: indexing a device array costs a gather (about 3 ms
  # per 128x128x3 batch of 16 on the CPU), copying a numpy slice in about a tenth of that.
  x = np.asarray(check_images(images, config))
  if config.batch_size > x.shape[0]:
    raise ValueError(f"AE batch_size={config.batch_size} exceeds the {x.shape[0]} training "
                     "images; lower it")
  held = None if held_out is None or len(held_out) == 0 else check_images(
    held_out, config, "held-out images")
  n_batches = x.shape[0] // config.batch_size
  start = _Run(params, _init_optimizer(params, config),
               np.full(config.epochs * n_batches, np.nan, np.float32),
               np.full(config.epochs, np.nan, np.float32))
  progress = None
  if checkpoint_dir is not None:
    progress = checkpoint.Progress(checkpoint_dir, checkpoint_every_s)
  # Held-out scores during training use the encoder's codes: refining them every 5th epoch
  # would cost about as much as the epochs.
  unrefined = dataclasses.replace(config, refine_steps=0)
  meta = {"model": "autoencoder", "config": checkpoint.config_meta(config),
          "n_images": int(x.shape[0]), "key": np.asarray(jax.random.key_data(key)).tolist()}
  orders: dict[int, tuple[np.ndarray, Array]] = {}  # epoch -> (minibatch order, step keys)

  def order(epoch: int) -> tuple[np.ndarray, Array]:
    if epoch not in orders:
      orders.clear()
      perm, step_keys = _epoch_order(key, epoch, x.shape[0], n_batches)
      orders[epoch] = (np.asarray(perm), step_keys)
    return orders[epoch]

  def advance(run: _Run, done: int, n: int):
    epoch, i = divmod(done, n_batches)
    perm, step_keys = order(epoch)
    batch = jnp.asarray(x[perm[i * config.batch_size : (i + 1) * config.batch_size]])
    return train_step(run.params, run.opt_state, batch, step_keys[i], config)

  def accept(run: _Run, out, done: int, n: int) -> _Run:
    params, opt_state, loss = out
    run.losses[done] = loss
    epoch, i = divmod(done, n_batches)
    if i == n_batches - 1:  # the epoch's last update: check it, and score the held-out images
      mean = float(np.mean(run.losses[epoch * n_batches : done + 1]))
      if not math.isfinite(mean):
        raise FloatingPointError(f"autoencoder training diverged in epoch {epoch} (loss "
                                 f"{mean}); lower learning_rate"
                                 + loop.where_saved(progress, "step"))
      if held is not None and (epoch % 5 == 0 or epoch == config.epochs - 1):
        run.held_out[epoch] = held_out_mse(params, unrefined, held)
    return _Run(params, opt_state, run.losses, run.held_out)

  def postfix(run: _Run, done: int) -> dict | None:
    if done % n_batches:
      return None
    epoch = done // n_batches - 1
    mse = float(np.mean(run.losses[epoch * n_batches : done]))
    return {"mse": f"{mse:.4f}", "held": f"{run.held_out[epoch]:.4f}"}

  chunks = loop.Chunks(
    total=config.epochs * n_batches, size=lambda done: 1, advance=advance, accept=accept,
    to_tree=lambda run: {"params": run.params, "opt_state": run.opt_state,
                         "losses": run.losses, "held_out": run.held_out},
    from_tree=lambda run, tree: _Run(tree["params"], tree["opt_state"],
                                     np.array(tree["losses"]), np.array(tree["held_out"])),
    may_save=lambda done: done % n_batches == 0,  # periodic saves at checked epoch ends only
    postfix=postfix)
  run = loop.run(start, chunks, progress, meta, desc="autoencoder", unit="step",
                 show=config.progress)
  train_mse = run.losses.reshape(config.epochs, n_batches).mean(1)
  return run.params, AEHistory(train_mse, run.held_out)

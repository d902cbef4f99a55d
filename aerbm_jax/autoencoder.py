"""A convolutional autoencoder in flax.linen, used through pure init/encode/decode functions.

Encoder: stride-2 3x3 convolutions (ReLU) halve the image until it is at most 8 pixels wide
(or odd), then a dense layer gives the latent code; its activation is `sigmoid` (latents in
(0, 1), as on the course page, for a Bernoulli RBM) or `linear` (for a Gaussian RBM).
Decoder: the mirror image with nearest-neighbour upsampling and 3x3 convolutions, ending in a
sigmoid.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike

from aerbm_jax import checkpoint, loop

__all__ = [
  "AEConfig",
  "AutoEncoder",
  "AEHistory",
  "n_stages",
  "init",
  "encode",
  "decode",
  "reconstruct",
  "mse",
  "fit",
  "train_step",
  "held_out_mse",
  "encode_batched",
  "decode_batched",
]

@dataclasses.dataclass(frozen=True)
class AEConfig:
  """Architecture and training of the autoencoder."""

  image_size: int = 128
  channels: int = 3
  latent_dim: int = 128
  latent_activation: str = "sigmoid"  # "sigmoid" or "linear"
  features: tuple[int, ...] = (16, 32, 64, 128)  # channels per downsampling stage
  learning_rate: float = 2e-3
  epochs: int = 60
  batch_size: int = 16
  augment: bool = True  # random horizontal flips and shifts of up to 1/16 of the image
  progress: bool = True

  def validate(self) -> None:
    if self.image_size < 8:
      raise ValueError(f"image_size must be >= 8, got {self.image_size}")
    if self.channels not in (1, 3):
      raise ValueError(f"channels must be 1 or 3, got {self.channels}")
    if self.latent_activation not in ("sigmoid", "linear"):
      raise ValueError(f"latent_activation must be 'sigmoid' or 'linear', got "
                       f"{self.latent_activation!r}")
    for name in ("latent_dim", "epochs", "batch_size"):
      v = getattr(self, name)
      if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not self.features or any(f < 1 for f in self.features):
      raise ValueError(f"features must be positive ints, got {self.features}")
    if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
      raise ValueError(f"learning_rate must be finite and > 0, got {self.learning_rate}")


def n_stages(image_size: int, max_stages: int) -> int:
  """Downsampling stages: halve while the side is even and above 8."""
  stages, side = 0, image_size
  while stages < max_stages and side % 2 == 0 and side > 8:
    side //= 2
    stages += 1
  return stages


def lecun_normal(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """Flax's default kernel initialiser (LeCun truncated normal), drawn on a flat shape.

  The same values bit for bit (the random bits depend only on the flat index), but XLA's CPU
  compiler takes seconds on a (3, 3, 8, 16) draw and well under one on a flat one.
  `shape`: Dense `(in, out)` or Conv `(kh, kw, in, out)`; the fan-in is all but the last axis.
  """
  fan_in = math.prod(shape[:-1])
  std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]
  flat = jax.random.truncated_normal(key, -2.0, 2.0, (math.prod(shape),), dtype)
  return (flat * jnp.asarray(std, dtype)).reshape(shape)


_conv = partial(nn.Conv, kernel_size=(3, 3), padding="SAME", kernel_init=lecun_normal)
_dense = partial(nn.Dense, kernel_init=lecun_normal)


class Encoder(nn.Module):
  features: tuple[int, ...]
  latent_dim: int
  latent_activation: str

  @nn.compact
  def __call__(self, x: Array) -> Array:
    for f in self.features[: n_stages(x.shape[-2], len(self.features))]:
      x = nn.relu(_conv(f, strides=(2, 2))(x))
    z = _dense(self.latent_dim)(x.reshape(x.shape[0], -1))
    return nn.sigmoid(z) if self.latent_activation == "sigmoid" else z


def _upsample(x: Array) -> Array:
  """Nearest-neighbour 2x upsampling of `(batch, H, W, C)`."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class Decoder(nn.Module):
  """Dense to the smallest feature map, then (2x nearest upsampling, 3x3 conv) per stage.

  Upsampling plus convolution replaces transposed convolutions: same receptive field, no
  checkerboard artefacts, and on CPU its gradient is several times faster.
  """

  features: tuple[int, ...]
  image_size: int
  channels: int

  @nn.compact
  def __call__(self, z: Array) -> Array:
    stages = n_stages(self.image_size, len(self.features))
    side = self.image_size // 2**stages
    top = self.features[stages - 1] if stages else self.features[0]
    x = nn.relu(_dense(side * side * top)(z)).reshape(z.shape[0], side, side, top)
    # Stage i upsamples to the resolution of encoder stage i-1; the last one emits the image.
    for f in reversed(self.features[: max(stages - 1, 0)]):
      x = nn.relu(_conv(f)(_upsample(x)))
    if stages:
      x = _upsample(x)
    return nn.sigmoid(_conv(self.channels)(x))


class AutoEncoder(nn.Module):
  """`(batch, H, W, C)` images in [0, 1] <-> `(batch, latent_dim)` codes."""

  config: AEConfig

  def setup(self):
    c = self.config
    self.encoder = Encoder(c.features, c.latent_dim, c.latent_activation)
    self.decoder = Decoder(c.features, c.image_size, c.channels)

  def __call__(self, x: Array) -> Array:
    return self.decoder(self.encoder(x))

  def encode(self, x: Array) -> Array:
    return self.encoder(x)

  def decode(self, z: Array) -> Array:
    return self.decoder(z)


def _check_images(x: ArrayLike, config: AEConfig, name: str = "images") -> Array:
  """Images as float32 `(N, S, S, C)`; a ValueError names any other shape (works under jit)."""
  x = jnp.asarray(x, jnp.float32)
  want = (config.image_size, config.image_size, config.channels)
  if x.ndim != 4 or x.shape[1:] != want:
    raise ValueError(f"{name} must have shape (N, {want[0]}, {want[1]}, {want[2]}), "
                     f"got {tuple(x.shape)}")
  return x


def init(key: Array, config: AEConfig) -> Any:
  """Fresh parameters (a flax variables dict) for `config`."""
  config.validate()
  return _init(key, config)


# Compiled whole: run eagerly, flax's init and apply compile every initialiser and layer as a
# program of its own.
@partial(jax.jit, static_argnames=("config",))
def _init(key: Array, config: AEConfig) -> Any:
  shape = (1, config.image_size, config.image_size, config.channels)
  return AutoEncoder(config).init(key, jnp.zeros(shape, jnp.float32))


@partial(jax.jit, static_argnames=("config", "method"))
def _apply(params: Any, x: Array, config: AEConfig, method: str | None = None) -> Array:
  return AutoEncoder(config).apply(params, x, method=method)


def encode(params: Any, config: AEConfig, x: ArrayLike) -> Array:
  """Latent codes `(batch, latent_dim)` of images `(batch, H, W, C)`."""
  return _apply(params, _check_images(x, config), config, "encode")


def decode(params: Any, config: AEConfig, z: ArrayLike) -> Array:
  """Images `(batch, H, W, C)` in [0, 1] from codes `(batch, latent_dim)`."""
  z = jnp.asarray(z, jnp.float32)
  if z.ndim != 2 or z.shape[1] != config.latent_dim:
    raise ValueError(f"codes must have shape (N, {config.latent_dim}), got {tuple(z.shape)}")
  return _apply(params, z, config, "decode")


def reconstruct(params: Any, config: AEConfig, x: ArrayLike) -> Array:
  """Decoded codes of images `(batch, H, W, C)`, the same shape."""
  return _apply(params, _check_images(x, config), config)


def mse(params: Any, config: AEConfig, x: ArrayLike) -> Array:
  """Mean squared reconstruction error per pixel and channel."""
  return jnp.mean((reconstruct(params, config, x) - x) ** 2)


@partial(jax.jit, static_argnames=("config", "fn"))
def _apply_batch(params, x, config, fn):
  return fn(params, config, x)


def _batched(fn, params, config: AEConfig, x: ArrayLike, batch: int) -> np.ndarray:
  """Apply `fn` over `x` in fixed-size chunks (the last one padded) so one compile serves all."""
  x = np.asarray(x, np.float32)
  out = []
  for i in range(0, len(x), batch):
    chunk = x[i : i + batch]
    pad = batch - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
    out.append(np.asarray(_apply_batch(params, chunk, config, fn))[: batch - pad])
  return np.concatenate(out)


def encode_batched(params: Any, config: AEConfig, x: ArrayLike, batch: int = 64) -> np.ndarray:
  """`encode` over many images, jit-compiled once."""
  return _batched(encode, params, config, x, batch)


def decode_batched(params: Any, config: AEConfig, z: ArrayLike, batch: int = 64) -> np.ndarray:
  """`decode` over many codes, jit-compiled once."""
  return _batched(decode, params, config, z, batch)


def _augment(key: Array, x: Array) -> Array:
  """Random horizontal flips and circular shifts of up to 1/16 of the side, per image."""
  key_flip, key_shift = jax.random.split(key)
  flip = jax.random.bernoulli(key_flip, 0.5, (x.shape[0],))
  x = jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)
  limit = max(1, x.shape[1] // 16)
  shifts = jax.random.randint(key_shift, (x.shape[0], 2), -limit, limit + 1)
  return jax.vmap(lambda img, s: jnp.roll(img, s, axis=(0, 1)))(x, shifts)


class AEHistory(NamedTuple):
  train_mse: np.ndarray  # shape=(epochs,)
  held_out_mse: np.ndarray  # shape=(epochs,), NaN without held-out images


def _optimizer(config: AEConfig) -> optax.GradientTransformation:
  return optax.adam(config.learning_rate)


@partial(jax.jit, static_argnames=("config",), donate_argnums=(0, 1))
def train_step(params, opt_state, batch, key, config: AEConfig):
  """One Adam step on a minibatch (augmented when configured), compiled; the buffers of
  `params` and `opt_state` are donated (updated in place). Returns `(params, opt_state, loss)`."""
  if config.augment:
    batch = _augment(key, batch)
  loss, grads = jax.value_and_grad(mse)(params, config, batch)
  updates, opt_state = _optimizer(config).update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


def held_out_mse(params: Any, config: AEConfig, images: ArrayLike, batch: int = 64) -> float:
  """Reconstruction MSE over many images, in compiled chunks."""
  rec = _batched(reconstruct, params, config, images, batch)
  return float(np.mean((rec - np.asarray(images)) ** 2))


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
  and a step of this size amortises the dispatch. Raises FloatingPointError naming the epoch
  if the loss becomes NaN or inf.

  Args:
    key: PRNG key (minibatch orders and augmentations; epoch e uses `fold_in(key, e)`).
    params: initial parameters from `init` (not modified).
    images: training images in [0, 1].
    config: architecture and training settings.
    held_out: images whose MSE is tracked every 5th epoch and at the end.
    checkpoint_dir: parameters, Adam state and losses are checkpointed at epoch ends (at most
      every `checkpoint_every_s` seconds), at the end, and on KeyboardInterrupt; a folder that
      already holds a checkpoint resumes from it, bit for bit.
    checkpoint_every_s: the least time between two periodic checkpoints.

  Returns:
    The trained parameters and the per-epoch `AEHistory`.
  """
  config.validate()
  x = _check_images(images, config)
  if config.batch_size > x.shape[0]:
    raise ValueError(f"AE batch_size={config.batch_size} exceeds the {x.shape[0]} training "
                     "images; lower it")
  held = None if held_out is None or len(held_out) == 0 else _check_images(
    held_out, config, "held-out images")
  n_batches = x.shape[0] // config.batch_size
  params = jax.tree.map(jnp.copy, params)  # steps donate their buffers; keep the caller's
  start = _Run(params, _optimizer(config).init(params),
               np.full(config.epochs * n_batches, np.nan, np.float32),
               np.full(config.epochs, np.nan, np.float32))
  progress = None
  if checkpoint_dir is not None:
    progress = checkpoint.Progress(checkpoint_dir, checkpoint_every_s)
  meta = {"model": "autoencoder", "config": checkpoint.config_meta(config),
          "n_images": int(x.shape[0]), "key": np.asarray(jax.random.key_data(key)).tolist()}
  orders: dict[int, tuple[np.ndarray, Array]] = {}  # epoch -> (minibatch order, step keys)

  def order(epoch: int) -> tuple[np.ndarray, Array]:
    if epoch not in orders:
      key_perm, key_aug = jax.random.split(jax.random.fold_in(key, epoch))
      orders.clear()
      orders[epoch] = (np.asarray(jax.random.permutation(key_perm, x.shape[0])),
                       jax.random.split(key_aug, n_batches))
    return orders[epoch]

  def advance(run: _Run, done: int, n: int):
    epoch, i = divmod(done, n_batches)
    perm, step_keys = order(epoch)
    batch = x[perm[i * config.batch_size : (i + 1) * config.batch_size]]
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
        run.held_out[epoch] = held_out_mse(params, config, held)
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

"""A convolutional autoencoder (or VAE) in flax.linen, used through pure init/encode/decode.

Encoder: stride-2 3x3 convolutions (ReLU) halve the image until it is at most 8 pixels wide
(or odd), then a dense layer gives the latent code; its activation is `sigmoid` (latents in
(0, 1), as on the course page, for a Bernoulli RBM) or `linear` (for a Gaussian RBM).
Decoder: the mirror image with nearest-neighbour upsampling and 3x3 convolutions, ending in a
sigmoid. With `variational=True` the same encoder emits a mean and a log-variance per latent
(a VAE; `encode` gives the mean). With `refine_steps`, encoding goes on from the encoder's
code with Adam steps on each image's code through the frozen decoder, towards a smaller
reconstruction error (semi-amortised inference). Training is `ae_train`.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike

from aerbm_jax.layers import Conv, UpConv, lecun_normal
from aerbm_jax.loop import progress_bar

__all__ = [
  "AEConfig",
  "AutoEncoder",
  "n_stages",
  "init",
  "encode",
  "decode",
  "reconstruct",
  "mse",
  "held_out_mse",
  "codes_mse",
  "encode_stats",
  "Encoder",
  "Decoder",
  "activation",
  "refine",
  "refine_batch",
  "encode_batched",
  "check_images",
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
  variational: bool = False  # a VAE: Gaussian codes with a standard normal prior
  kl_weight: float = 0.2  # VAE: loss = MSE + kl_weight * KL / pixels (2 sigma^2 of the decoder)
  # Training only: the std of Gaussian noise added to a sigmoid code's pre-activations, which
  # pushes the codes towards 0 and 1 (Salakhutdinov & Hinton 2009, semantic hashing), where a
  # Bernoulli RBM can model them. 0: none (the course page's plain sigmoid code).
  code_noise: float = 0.0
  learning_rate: float = 2e-3
  # Adam's step size rises linearly over the first warmup_steps updates: full first steps on
  # the wide dense layers around the code can kill every ReLU at once (a network whose output
  # never changes again).
  warmup_steps: int = 100
  epochs: int = 60
  batch_size: int = 16
  augment: bool = True  # random horizontal flips and shifts of up to 1/16 of the image
  augment_dihedral: bool = False  # flip vertically and transpose too (images with no up)
  # Encoding only: Adam steps (at refine_learning_rate) on each image's code pre-activations,
  # from the encoder's, through the frozen decoder towards the image's smallest reconstruction
  # error. The encoder alone leaves an amortisation gap: on Mondrian its held-out MSE is 2.4x
  # what the same decoder reaches from codes refined this way. 0: the encoder's code.
  refine_steps: int = 0
  refine_learning_rate: float = 0.2
  progress: bool = True
  # Fields that change how images are encoded, not how the network is trained: a training
  # checkpoint does not record them, so a run may resume with them changed.
  INFERENCE_FIELDS: ClassVar[tuple[str, ...]] = ("refine_steps", "refine_learning_rate")

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
    for name in ("warmup_steps", "refine_steps"):
      v = getattr(self, name)
      if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    if self.refine_steps and self.variational:
      raise ValueError("a VAE's code is its posterior, not a point to refine: set "
                       "refine_steps=0")
    if not math.isfinite(self.refine_learning_rate) or self.refine_learning_rate <= 0:
      raise ValueError(f"refine_learning_rate must be finite and > 0, got "
                       f"{self.refine_learning_rate}")
    if self.variational and self.latent_activation != "linear":
      raise ValueError("a VAE's codes are Gaussian: set latent_activation='linear'")
    if not math.isfinite(self.code_noise) or self.code_noise < 0:
      raise ValueError(f"code_noise must be finite and >= 0, got {self.code_noise}")
    if self.code_noise and (self.latent_activation != "sigmoid" or self.variational):
      raise ValueError("code_noise is for sigmoid codes: set latent_activation='sigmoid' and "
                       "variational=False, or code_noise=0")
    if not math.isfinite(self.kl_weight) or self.kl_weight < 0:
      raise ValueError(f"kl_weight must be finite and >= 0, got {self.kl_weight}")
    if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
      raise ValueError(f"learning_rate must be finite and > 0, got {self.learning_rate}")


def n_stages(image_size: int, max_stages: int) -> int:
  """Downsampling stages: halve while the side is even and above 8."""
  stages, side = 0, image_size
  while stages < max_stages and side % 2 == 0 and side > 8:
    side //= 2
    stages += 1
  return stages


_dense = partial(nn.Dense, kernel_init=lecun_normal)


class Encoder(nn.Module):
  """Images `(batch, H, W, C)` to codes `(batch, latent_dim)`, or for a VAE to
  `(batch, 2 * latent_dim)`: means, then log-variances."""

  features: tuple[int, ...]
  latent_dim: int
  latent_activation: str
  variational: bool = False

  @nn.compact
  def __call__(self, x: Array, noise: Array | None = None, activate: bool = True) -> Array:
    """`noise`: `(batch, latent_dim)`, added to the code's pre-activations (training only);
    `activate=False`: the pre-activations themselves."""
    for f in self.features[: n_stages(x.shape[-2], len(self.features))]:
      x = nn.relu(Conv(f, strides=(2, 2))(x))
    z = _dense(self.latent_dim * (2 if self.variational else 1))(x.reshape(x.shape[0], -1))
    if noise is not None:
      z = z + noise
    return activation(self.latent_activation, z) if activate else z


def activation(kind: str, u: Array) -> Array:
  """Codes from pre-activations `u`: `sigmoid(u)` for `kind="sigmoid"`, else `u`."""
  return nn.sigmoid(u) if kind == "sigmoid" else u


class Decoder(nn.Module):
  """Dense to the smallest feature map, then (2x nearest upsampling, 3x3 conv) per stage.

  Upsampling plus convolution replaces transposed convolutions: same receptive field, no
  checkerboard artefacts; `UpConv` computes the pair at the low resolution.
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
      x = nn.relu(UpConv(f)(x))
    return nn.sigmoid(UpConv(self.channels)(x) if stages else Conv(self.channels)(x))


class AutoEncoder(nn.Module):
  """`(batch, H, W, C)` images in [0, 1] <-> `(batch, latent_dim)` codes."""

  config: AEConfig

  def setup(self):
    c = self.config
    self.encoder = Encoder(c.features, c.latent_dim, c.latent_activation, c.variational)
    self.decoder = Decoder(c.features, c.image_size, c.channels)

  def __call__(self, x: Array, noise: Array | None = None) -> Array:
    """Reconstructions of `x`; `noise` as in `Encoder` (training with `code_noise`)."""
    return self.decoder(self.encode(x, noise))

  def encode(self, x: Array, noise: Array | None = None) -> Array:
    return self.encoder(x, noise)[:, : self.config.latent_dim]

  def encode_preactivations(self, x: Array) -> Array:
    """The code before its activation, `(batch, latent_dim)` (a VAE: the means)."""
    return self.encoder(x, activate=False)[:, : self.config.latent_dim]

  def encode_stats(self, x: Array) -> tuple[Array, Array]:
    """A VAE's posterior means and log-variances, each `(batch, latent_dim)`."""
    out = self.encoder(x)
    return out[:, : self.config.latent_dim], out[:, self.config.latent_dim :]

  def decode(self, z: Array) -> Array:
    return self.decoder(z)


def check_images(x: ArrayLike, config: AEConfig, name: str = "images") -> Array:
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
def _apply(params: Any, x: Array, config: AEConfig, method: str) -> Array:
  return AutoEncoder(config).apply(params, x, method=method)


def encode(params: Any, config: AEConfig, x: ArrayLike) -> Array:
  """Latent codes `(batch, latent_dim)` of images `(batch, H, W, C)`: the encoder's, refined
  by `config.refine_steps` steps through the decoder (`refine`)."""
  x = check_images(x, config)
  u = _apply(params, x, config, "encode_preactivations")
  return activation(config.latent_activation, refine(params, config, x, u))


# Pixels refined together (16 images at 128x128): each image's steps ignore the others, and
# XLA's CPU convolutions ran fastest per image there (1.2 ms per image and step at 128x128x3,
# against 1.5 at 64 images); smaller images go in larger batches (at most 256), so that a
# step's work outweighs its dispatch.
REFINE_PIXELS = 16 * 128 * 128


def refine_batch(config: AEConfig) -> int:
  """Images per compiled refining step: `REFINE_PIXELS` pixels, between 1 and 256 images."""
  return max(1, min(256, REFINE_PIXELS // config.image_size**2))


@partial(jax.jit, static_argnames=("config",))
def _refine_step(params: Any, x: Array, u: Array, state: Any, config: AEConfig):
  def loss(u):  # a sum of per-image errors: each code's gradient is its own image's
    rec = AutoEncoder(config).apply(params, activation(config.latent_activation, u),
                                    method="decode")
    return jnp.sum(jnp.mean((rec - x) ** 2, axis=(1, 2, 3)))
  updates, state = optax.adam(config.refine_learning_rate).update(jax.grad(loss)(u), state)
  return optax.apply_updates(u, updates), state


def refine(params: Any, config: AEConfig, x: Array, u: Array, bar: Any = None) -> Array:
  """`config.refine_steps` Adam steps on code pre-activations `u: (batch, latent_dim)`
  towards the smallest MSE between `decode(activation(u))` and images `x: (batch, H, W, C)`.

  Adam acts elementwise and each image's error depends on its own code alone, so an image's
  result does not depend on the others in the batch. One compiled call per step from the host
  loop (a `lax.scan` of the same step ran 2x slower on the CPU). `bar`: a progress bar to
  advance by one per step.
  """
  state = optax.adam(config.refine_learning_rate).init(u)
  for _ in range(config.refine_steps):
    u, state = _refine_step(params, x, u, state, config)
    if bar is not None:
      bar.update(1)
  return u


def decode(params: Any, config: AEConfig, z: ArrayLike) -> Array:
  """Images `(batch, H, W, C)` in [0, 1] from codes `(batch, latent_dim)`."""
  z = jnp.asarray(z, jnp.float32)
  if z.ndim != 2 or z.shape[1] != config.latent_dim:
    raise ValueError(f"codes must have shape (N, {config.latent_dim}), got {tuple(z.shape)}")
  return _apply(params, z, config, "decode")


def encode_stats(params: Any, config: AEConfig, x: ArrayLike) -> tuple[Array, Array]:
  """A VAE's posterior `(means, log_variances)`, each `(batch, latent_dim)`."""
  if not config.variational:
    raise ValueError("encode_stats needs a VAE (variational=True)")
  return _apply(params, check_images(x, config), config, "encode_stats")


def reconstruct(params: Any, config: AEConfig, x: ArrayLike) -> Array:
  """Decoded codes of images `(batch, H, W, C)`, the same shape (a VAE decodes its means)."""
  return decode(params, config, encode(params, config, x))


def mse(params: Any, config: AEConfig, x: ArrayLike) -> Array:
  """Mean squared reconstruction error per pixel and channel."""
  return jnp.mean((reconstruct(params, config, x) - x) ** 2)


@partial(jax.jit, static_argnames=("config", "fn"))
def _apply_batch(params, x, config, fn):
  return fn(params, config, x)


def _chunks(x: np.ndarray, batch: int):
  """`(chunk, n_real)` over `x` in `batch`-row chunks, the last one padded with zeros."""
  for i in range(0, len(x), batch):
    chunk = x[i : i + batch]
    pad = batch - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
    yield chunk, batch - pad


def _batched(fn, params, config: AEConfig, x: ArrayLike, batch: int) -> np.ndarray:
  """Apply `fn` over `x` in fixed-size chunks (the last one padded) so one compile serves all."""
  return np.concatenate([np.asarray(_apply_batch(params, chunk, config, fn))[:n]
                         for chunk, n in _chunks(np.asarray(x, np.float32), batch)])


def _preactivations(params, config: AEConfig, x) -> Array:
  return AutoEncoder(config).apply(params, x, method="encode_preactivations")


def encode_batched(params: Any, config: AEConfig, x: ArrayLike, batch: int = 64) -> np.ndarray:
  """`encode` over many images: the encoder in compiled `batch`-image chunks, then `refine`
  in chunks of `refine_batch(config)`, with a progress bar."""
  x = np.asarray(check_images(x, config))
  u = _batched(_preactivations, params, config, x, batch)
  if config.refine_steps:
    size = min(refine_batch(config), len(x))
    with progress_bar(-(-len(x) // size) * config.refine_steps, "refining codes", "step",
                      config.progress) as bar:
      u = np.concatenate([
        np.asarray(refine(params, config, jnp.asarray(xc), jnp.asarray(uc), bar))[:n]
        for (xc, n), (uc, _) in zip(_chunks(x, size), _chunks(u, size))])
  return np.asarray(activation(config.latent_activation, u))


def decode_batched(params: Any, config: AEConfig, z: ArrayLike, batch: int = 64) -> np.ndarray:
  """`decode` over many codes, jit-compiled once."""
  return _batched(decode, params, config, z, batch)


def held_out_mse(params: Any, config: AEConfig, images: ArrayLike, batch: int = 64) -> float:
  """Reconstruction MSE over many images (`encode_batched`, then `codes_mse`)."""
  return codes_mse(params, config, encode_batched(params, config, images, batch), images, batch)


def codes_mse(params: Any, config: AEConfig, codes: ArrayLike, images: ArrayLike,
              batch: int = 64) -> float:
  """Per-pixel MSE of `images: (N, H, W, C)` decoded from their `codes: (N, latent_dim)`, for
  codes already encoded once (`decode_batched`)."""
  rec = decode_batched(params, config, codes, batch)
  return float(np.mean((rec - np.asarray(images)) ** 2))

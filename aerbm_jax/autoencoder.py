"""A convolutional autoencoder (or VAE) in flax.linen, used through pure init/encode/decode.

Encoder: stride-2 3x3 convolutions (ReLU) halve the image until it is at most 8 pixels wide
(or odd), then a dense layer gives the latent code; its activation is `sigmoid` (latents in
(0, 1), as on the course page, for a Bernoulli RBM) or `linear` (for a Gaussian RBM).
Decoder: the mirror image with nearest-neighbour upsampling and 3x3 convolutions, ending in a
sigmoid. With `variational=True` the same encoder emits a mean and a log-variance per latent
(a VAE; `encode` gives the mean). Training is `ae_train`.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

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
  "encode_stats",
  "Encoder",
  "Decoder",
  "UpConv",
  "upsample",
  "upsample_conv",
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
    if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
      raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
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
  """Images `(batch, H, W, C)` to codes `(batch, latent_dim)`, or for a VAE to
  `(batch, 2 * latent_dim)`: means, then log-variances."""

  features: tuple[int, ...]
  latent_dim: int
  latent_activation: str
  variational: bool = False

  @nn.compact
  def __call__(self, x: Array, noise: Array | None = None) -> Array:
    """`noise`: `(batch, latent_dim)`, added to the code's pre-activations (training only)."""
    for f in self.features[: n_stages(x.shape[-2], len(self.features))]:
      x = nn.relu(_conv(f, strides=(2, 2))(x))
    z = _dense(self.latent_dim * (2 if self.variational else 1))(x.reshape(x.shape[0], -1))
    if noise is not None:
      z = z + noise
    return nn.sigmoid(z) if self.latent_activation == "sigmoid" else z


def upsample(x: Array) -> Array:
  """Nearest-neighbour 2x upsampling of `(batch, H, W, C)`."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _phase_taps(w: Array, phase: int) -> Array:
  """The 2 taps along one axis of a 3-tap kernel `w` (that axis first) seen by output rows of
  `phase` after nearest 2x upsampling: rows 2i (taps on i-1, i) or 2i+1 (taps on i, i+1)."""
  if phase == 0:
    return jnp.stack([w[0], w[1] + w[2]])
  return jnp.stack([w[0] + w[1], w[2]])


def upsample_conv(x: Array, kernel: Array, bias: Array) -> Array:
  """`conv3x3_same(upsample(x))` computed at the low resolution: `(B, H, W, Cin)` ->
  `(B, 2H, 2W, Cout)` for `kernel: (3, 3, Cin, Cout)`, `bias: (Cout,)`.

  After nearest upsampling a 3x3 window covers only 2x2 distinct input pixels, which differ
  by the output pixel's phase (row and column parity): output pixel `(2i + a, 2j + c)` is a
  2x2 convolution, with summed taps, of the padded input's rows `i + a, i + a + 1` and
  columns `j + c, j + c + 1`. The four phase kernels run as one 2x2 convolution with
  `4 * Cout` outputs over the padded input, and each phase's outputs are read at its offset
  and interleaved: the same function with 4/9 of the multiply-adds and no upsampled copy in
  memory, in the one large convolution that XLA's CPU kernels run fastest (four separate
  phase convolutions ran 2-3x slower forward).
  """
  b, h, w, _ = x.shape
  cout = kernel.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  kernels = []  # phase (a, c): its (2, 2, Cin, Cout) kernel, in the order (0,0) (0,1) (1,0) (1,1)
  for a in (0, 1):
    k_rows = _phase_taps(kernel, a)  # (2, 3, Cin, Cout)
    kernels += [jnp.swapaxes(_phase_taps(jnp.swapaxes(k_rows, 0, 1), c), 0, 1) for c in (0, 1)]
  y = jax.lax.conv_general_dilated(xp, jnp.concatenate(kernels, axis=-1), (1, 1), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  y = y.reshape(b, h + 1, w + 1, 2, 2, cout)  # (B, H + 1, W + 1, a, c, Cout)
  rows = [jnp.stack([y[:, a : a + h, c : c + w, a, c] for c in (0, 1)], axis=3)
          for a in (0, 1)]  # per a: (B, H, W, c, Cout)
  out = jnp.stack(rows, axis=2)  # (B, H, a, W, c, Cout)
  return out.reshape(b, 2 * h, 2 * w, cout) + bias


class UpConv(nn.Module):
  """Nearest 2x upsampling then a 3x3 SAME convolution, as `upsample_conv` computes it; the
  parameters are a 3x3 `nn.Conv`'s (`kernel: (3, 3, Cin, Cout)`, `bias`)."""

  features: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = self.param("kernel", lecun_normal, (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return upsample_conv(x, kernel, bias)


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
    return nn.sigmoid(UpConv(self.channels)(x) if stages else _conv(self.channels)(x))


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
def _apply(params: Any, x: Array, config: AEConfig, method: str | None = None) -> Array:
  return AutoEncoder(config).apply(params, x, method=method)


def encode(params: Any, config: AEConfig, x: ArrayLike) -> Array:
  """Latent codes `(batch, latent_dim)` of images `(batch, H, W, C)`."""
  return _apply(params, check_images(x, config), config, "encode")


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
  return _apply(params, check_images(x, config), config)


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


def held_out_mse(params: Any, config: AEConfig, images: ArrayLike, batch: int = 64) -> float:
  """Reconstruction MSE over many images, in compiled chunks."""
  rec = _batched(reconstruct, params, config, images, batch)
  return float(np.mean((rec - np.asarray(images)) ** 2))



"""The autoencoder's layers: a fast-compiling initialiser, convolutions, upsampling ones.

`conv` is XLA's convolution with, on CPU, its kernel gradient as a matmul per kernel tap
(`Conv` is the flax layer); `UpConv` is nearest 2x upsampling followed by a 3x3
convolution, computed at the low resolution (`upsample_conv`); `lecun_normal` is flax's
default initialiser drawn flat.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["lecun_normal", "conv", "Conv", "upsample", "upsample_conv", "interleave_phases",
           "UpConv"]


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


_DIMS = ("NHWC", "HWIO", "NHWC")
# XLA's CPU kernel gradient is slow for some shapes (the mondrian decoder's middle layer) and
# fast for few output channels, where the taps' copies cost more than their matmuls save: the
# matmuls are taken from this many output channels on (docs/mondrian.md, "Speed").
TAP_GRAD_MIN_FEATURES = 32


def _xla_conv(x: Array, kernel: Array, strides: tuple[int, int],
              padding: tuple[tuple[int, int], tuple[int, int]]) -> Array:
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DIMS)


def tap_kernel_grad(x: Array, g: Array, kernel_shape: tuple[int, ...],
                    strides: tuple[int, int]) -> Array:
  """The kernel gradient of a VALID convolution as one matmul per tap: `(kh, kw, Cin, Cout)`
  from the padded input `x: (B, H, W, Cin)` and the output's cotangent `g: (B, Ho, Wo, Cout)`.

  `dK[dy, dx] = sum over b, i, j of x[b, s i + dy, s j + dx] g[b, i, j]`: tap `(dy, dx)` is
  the strided slice of `x` it sees, `(B Ho Wo, Cin)`, transposed, times `g` as `(B Ho Wo,
  Cout)`; one matmul over the slices stacked into patches is slower on CPU, the stack being
  a strided copy.
  """
  kh, kw, cin, cout = kernel_shape
  b, ho, wo, _ = g.shape
  sy, sx = strides
  rows, gf = b * ho * wo, g.reshape(b * ho * wo, cout)
  taps = [jax.lax.slice(x, (0, dy, dx, 0), (b, dy + sy * (ho - 1) + 1, dx + sx * (wo - 1) + 1, cin),
                        (1, sy, sx, 1)).reshape(rows, cin).T @ gf
          for dy in range(kh) for dx in range(kw)]
  return jnp.stack(taps).reshape(kernel_shape)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x: Array, kernel: Array, strides: tuple[int, int],
         padding: tuple[tuple[int, int], tuple[int, int]]) -> Array:
  """XLA's convolution `(B, H, W, Cin)` -> `(B, Ho, Wo, Cout)` with `kernel: (kh, kw, Cin,
  Cout)`, `padding` as `((top, bottom), (left, right))`; on CPU, with at least
  `TAP_GRAD_MIN_FEATURES` output channels, its kernel gradient is `tap_kernel_grad`."""
  return _xla_conv(x, kernel, strides, padding)


def _conv_fwd(x, kernel, strides, padding):
  return _xla_conv(x, kernel, strides, padding), (x, kernel)


def _conv_bwd(strides, padding, residuals, g):
  x, kernel = residuals
  xla_conv = partial(_xla_conv, strides=strides, padding=padding)
  if kernel.shape[-1] < TAP_GRAD_MIN_FEATURES or jax.default_backend() != "cpu":
    return jax.vjp(xla_conv, x, kernel)[1](g)
  dx = jax.vjp(lambda x: xla_conv(x, kernel), x)[1](g)[0]
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  return dx, tap_kernel_grad(xp, g, kernel.shape, strides)


conv.defvjp(_conv_fwd, _conv_bwd)


class Conv(nn.Module):
  """A 3x3 SAME convolution through `conv`, with an `nn.Conv`'s parameters (`kernel: (3, 3,
  Cin, Cout)`, `bias`) and name, so checkpoints of either load into the other."""

  features: int
  strides: tuple[int, int] = (1, 1)

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = self.param("kernel", lecun_normal, (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    pads = jax.lax.padtype_to_pads(x.shape[1:3], (3, 3), self.strides, "SAME")
    return conv(x, kernel, self.strides, tuple(map(tuple, pads))) + bias


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
  kernels = []  # phase (a, c): its (2, 2, Cin, Cout) kernel, in the order (0,0) (0,1) (1,0) (1,1)
  for a in (0, 1):
    k_rows = _phase_taps(kernel, a)  # (2, 3, Cin, Cout)
    kernels += [jnp.swapaxes(_phase_taps(jnp.swapaxes(k_rows, 0, 1), c), 0, 1) for c in (0, 1)]
  # Padded apart: XLA's CPU gradients of this convolution with the padding inside are far
  # slower (docs/mondrian.md, "Speed").
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  y = conv(xp, jnp.concatenate(kernels, axis=-1), (1, 1), ((0, 0), (0, 0)))
  return interleave_phases(y.reshape(b, h + 1, w + 1, 2, 2, cout)) + bias


@jax.custom_vjp
def interleave_phases(y: Array) -> Array:
  """`(B, H + 1, W + 1, 2, 2, C)` phase outputs to the `(B, 2H, 2W, C)` image whose pixel
  `(2i + a, 2j + c)` is `y[:, i + a, j + c, a, c]`.

  Its gradient pads each phase's quarter of the cotangent into one array; differentiated as
  slices, each phase's would be padded to the whole of `y` and the four summed.
  """
  b, h1, w1, _, _, ch = y.shape
  h, w = h1 - 1, w1 - 1
  rows = [jnp.stack([y[:, a : a + h, c : c + w, a, c] for c in (0, 1)], axis=3)
          for a in (0, 1)]  # per a: (B, H, W, c, C)
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, ch)  # (B, H, a, W, c, C)


def _interleave_fwd(y):
  return interleave_phases(y), None


def _interleave_bwd(_, g):
  b, h2, w2, ch = g.shape
  g = g.reshape(b, h2 // 2, 2, w2 // 2, 2, ch)  # (B, H, a, W, c, C)
  phases = [[jnp.pad(g[:, :, a, :, c], ((0, 0), (a, 1 - a), (c, 1 - c), (0, 0))) for c in (0, 1)]
            for a in (0, 1)]
  return (jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=3),)


interleave_phases.defvjp(_interleave_fwd, _interleave_bwd)


class UpConv(nn.Module):
  """Nearest 2x upsampling then a 3x3 SAME convolution, as `upsample_conv` computes it; the
  parameters are a 3x3 `nn.Conv`'s (`kernel: (3, 3, Cin, Cout)`, `bias`)."""

  features: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel = self.param("kernel", lecun_normal, (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return upsample_conv(x, kernel, bias)

"""Bernoulli draws for the samplers: the one place where uniforms are generated."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.extend.random import threefry2x32_p
from jax.typing import ArrayLike

__all__ = ["bernoulli", "uniforms", "DEFAULT_UNIFORM_BITS", "resolve_uniform_bits"]

# None: chosen per backend by measurement (benchmarks/results/). On CPU, 16-bit uniforms (two
# draws per 32-bit random word; resolution 2^-16, so P(draw = 1) = round(p * 2^16) / 2^16,
# within 2^-17 of p) are faster; on GPU, 32-bit uniforms (resolution 2^-23) are.
DEFAULT_UNIFORM_BITS: int | None = None


def resolve_uniform_bits(uniform_bits: int | None) -> int:
  """16 on CPU and 32 elsewhere when `uniform_bits` is None; else the value, checked."""
  if uniform_bits is None:
    return 16 if jax.default_backend() == "cpu" else 32
  if uniform_bits not in (16, 32):
    raise ValueError(f"uniform_bits must be 16 or 32, got {uniform_bits}")
  return uniform_bits


def _threefry_words(key: Array, shape: tuple[int, ...]) -> Array | None:
  """Random 32-bit words of `shape` (leading dimension even), or None if `key` is not threefry.

  Both output words of each Threefry-2x32 block are used, one for each half of the leading
  dimension: half the hashing of `jax.random.bits`, which XORs the two words into one.
  """
  if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.wrap_key_data(key)
  blocks = math.prod(shape) // 2
  if str(jax.random.key_impl(key)) != "threefry2x32" or blocks >= 2**32:
    return None
  k = jax.random.key_data(key)
  counter = jax.lax.iota(jnp.uint32, blocks).reshape((shape[0] // 2,) + shape[1:])
  first, second = threefry2x32_p.bind(k[0], k[1], jnp.zeros_like(counter), counter)
  return jnp.concatenate([first, second], axis=0)


def _words(key: Array, shape: tuple[int, ...]) -> Array:
  """Uniform random uint32 words of `shape`, from any PRNG implementation."""
  rows = shape[0] + shape[0] % 2
  words = _threefry_words(key, (rows,) + shape[1:])
  if words is None:
    return jax.random.bits(key, shape, dtype=jnp.uint32)
  return words[: shape[0]]


def uniforms(key: Array, shape: tuple[int, ...], uniform_bits: int | None = DEFAULT_UNIFORM_BITS
             ) -> tuple[Array, float]:
  """Uniform variates `u` of `shape` and their scale: `u / scale` is uniform on (0, 1).

  A Bernoulli(p) draw is then `u < p * scale`. 32-bit: `u` in [0, 1) with 23 random
  mantissa bits, scale 1. 16-bit: two draws per random word, `u = k + 1/2` for `k` in
  [0, 2^16), scale 2^16.
  """
  # Rows are filled from the leading dimension, so every piece of a word stays contiguous
  # (measured faster than interleaving or a bitcast); a vector or a single row is flattened.
  flat = len(shape) < 2 or shape[0] < 2
  q_shape = (math.prod(shape),) if flat else shape
  rows = q_shape[0]
  if resolve_uniform_bits(uniform_bits) == 32:
    words = _words(key, q_shape)
    mantissa = jax.lax.bitcast_convert_type((words >> 9) | 0x3F800000, jnp.float32)
    return (mantissa - 1.0).reshape(shape), 1.0
  words = _words(key, ((rows + 1) // 2,) + q_shape[1:])
  halves = jnp.concatenate([words & 0xFFFF, words >> 16], axis=0)[:rows]
  return (halves.astype(jnp.float32) + 0.5).reshape(shape), 65536.0


def bernoulli(key: Array, p: ArrayLike, uniform_bits: int | None = DEFAULT_UNIFORM_BITS) -> Array:
  """Draw `x ~ Bernoulli(p)` elementwise, returned in `p`'s float dtype.

  Args:
    key: a PRNG key (any implementation: threefry, rbg, unsafe_rbg).
    p: probabilities, any shape.
    uniform_bits: 16 (two uniforms per random word), 32, or None for the backend's default.

  Returns:
    An array of 0.0/1.0 with `p`'s shape and dtype.
  """
  p = jnp.asarray(p)
  dtype = p.dtype if jnp.issubdtype(p.dtype, jnp.floating) else jnp.float32
  u, scale = uniforms(key, p.shape, uniform_bits)
  return (u < p * scale).astype(dtype)

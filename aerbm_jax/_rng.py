"""Bernoulli draws for the samplers: the one place where uniforms are generated."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
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


def uniforms(key: Array, shape: tuple[int, ...], uniform_bits: int | None = DEFAULT_UNIFORM_BITS
             ) -> tuple[Array, float]:
  """Uniform variates `u` of `shape` and their scale: `u / scale` is uniform on (0, 1).

  A Bernoulli(p) draw is then `u < p * scale`. 32-bit: `u` in [0, 1), scale 1. 16-bit: two
  draws per random word, `u = k + 1/2` for `k` in [0, 2^16), scale 2^16.
  """
  if resolve_uniform_bits(uniform_bits) == 32:
    return jax.random.uniform(key, shape, dtype=jnp.float32), 1.0
  # Pair rows: the low halves of the words serve the first rows, the high halves the rest,
  # so both halves stay contiguous (measured faster than interleaving or a bitcast).
  flat = len(shape) < 2 or shape[0] < 2
  q_shape = (math.prod(shape),) if flat else shape
  rows = q_shape[0]
  words = jax.random.bits(key, ((rows + 1) // 2,) + q_shape[1:], dtype=jnp.uint32)
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

"""Random draws for samplers and training: Bernoulli uniforms and minibatch permutations."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.extend.random import threefry2x32_p
from jax.typing import ArrayLike

__all__ = ["bernoulli", "uniforms", "uniform_halves", "permutation", "typed_keys",
           "threefry2x32",
           "DEFAULT_UNIFORM_BITS", "resolve_uniform_bits"]

# None: chosen per backend, whichever benchmarks/results/ shows faster there. 16-bit uniforms
# (two draws per 32-bit random word; resolution 2^-16, so P(draw = 1) = round(p * 2^16) / 2^16,
# within 2^-17 of p) on CPU, where hashing dominates; 32-bit ones (resolution 2^-23) on GPU.
DEFAULT_UNIFORM_BITS: int | None = None


def typed_keys(keys: ArrayLike) -> Array:
  """Typed PRNG keys; raw uint32 key data (`jax.random.PRNGKey`) is wrapped."""
  keys = jnp.asarray(keys)
  if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
    return keys
  return jax.random.wrap_key_data(keys)


def resolve_uniform_bits(uniform_bits: int | None) -> int:
  """16 on CPU and 32 elsewhere when `uniform_bits` is None; else the value, checked."""
  if uniform_bits is None:
    return 16 if jax.default_backend() == "cpu" else 32
  if uniform_bits not in (16, 32):
    raise ValueError(f"uniform_bits must be 16 or 32, got {uniform_bits}")
  return uniform_bits


# Threefry-2x32's rotation distances, for rounds 0-3 and 4-7 of every 8 (Random123).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _as_pair(x0: Array, x1: Array) -> Array:
  """Two uint32 words as one complex64 element (their bits, untouched)."""
  return jax.lax.complex(*(jax.lax.bitcast_convert_type(x, jnp.float32) for x in (x0, x1)))


def _from_pair(pair: Array) -> tuple[Array, Array]:
  """The two uint32 words of `_as_pair`."""
  return tuple(jax.lax.bitcast_convert_type(f(pair), jnp.uint32) for f in (jnp.real, jnp.imag))


def _threefry2x32_cpu(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
  """`threefry2x32` as one fused loop over the counters, computing each block's words once.

  JAX's CPU lowering of the hash runs its five groups of four rounds as a loop, and every
  group is then a separate pass that writes both words to memory. Unrolled instead, with
  constant rotation distances, the 20 rounds are one elementwise fusion. Two things keep XLA
  from recomputing that fusion for every use of its output (each uniform of a 16-bit draw,
  each of the two words): the fusion is the body of a loop that runs once, whose trip count
  XLA cannot see through the optimization barrier, and its one output is a complex64 array
  carrying both words, so each block's rounds are computed once for both.
  """
  ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))

  def rounds(pair: Array) -> Array:
    x0, x1 = _from_pair(pair)
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for group in range(5):  # four rounds, then a key injection
      for r in _ROTATIONS[group % 2]:
        x0 = x0 + x1
        x1 = x0 ^ ((x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r)))
      x0 = x0 + ks[(group + 1) % 3]
      x1 = x1 + ks[(group + 2) % 3] + jnp.uint32(group + 1)
    return _as_pair(x0, x1)

  once = jax.lax.optimization_barrier(jnp.int32(1))
  _, pair = jax.lax.while_loop(lambda c: c[0] < once, lambda c: (c[0] + 1, rounds(c[1])),
                               (jnp.int32(0), _as_pair(x0, x1)))
  return _from_pair(pair)


def threefry2x32(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
  """Threefry-2x32 with 20 rounds, the hash behind `jax.random`'s default keys.

  The same function as `jax.extend.random.threefry2x32_p`, compiled on CPU as one pass over
  the counters (`_threefry2x32_cpu`; benchmarks/results/small-bound-cpu-2core.md times the
  two), and as JAX's own elsewhere.

  Args:
    k0, k1: () uint32, the key's two words.
    x0, x1: uint32 counters, one shape.

  Returns:
    The two output words, each `x0`'s shape, uint32.
  """
  return jax.lax.platform_dependent(
    k0, k1, x0, x1, cpu=_threefry2x32_cpu,
    default=lambda *args: tuple(threefry2x32_p.bind(*args)))


# The fewest Threefry blocks from which `uniforms` hashes a sweep's column pieces (its hidden
# and visible draws) apart, each as one contiguous array (the same words): cheaper for large
# draws, while for small ones the second hash's launch costs more than it saves. Chains drawn
# in halves (`uniform_halves`) keep one hash: apart, `tasks.py`'s sampler ran slower at 32 and
# 64 chains (docs/performance.md, "What bounds the MNIST epoch", has the measurements).
SPLIT_HASH_MIN_BLOCKS = 4096


def _threefry_pair(key: Array, shape: tuple[int, ...], columns: tuple[slice, ...] = (slice(None),)
                   ) -> list[tuple[Array, Array]] | None:
  """The two output words of Threefry-2x32 blocks of `shape`, for each slice of its last axis
  in `columns` (each hashed on its own), or None if `key` is not threefry.

  Block i hashes the counter (0, i). Both words are used, where `jax.random.bits` XORs them
  into one: half the hashing per random word.
  """
  if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.wrap_key_data(key)
  if str(jax.random.key_impl(key)) != "threefry2x32" or math.prod(shape) >= 2**32:
    return None
  k = jax.random.key_data(key)
  counter = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
  return [threefry2x32(k[0], k[1], jnp.zeros_like(c), c)
          for c in (counter[..., cols] for cols in columns)]


def _words(key: Array, shape: tuple[int, ...], columns: tuple[slice, ...], apart: bool = False
           ) -> list[list[Array]]:
  """Uniform random uint32 words of `shape`, as blocks of its last axis, each a list of pieces
  to be joined along the first axis.

  From a threefry key, rows `[0, r)` are the first words of the blocks of shape
  `(r,) + shape[1:]`, `r = ceil(shape[0] / 2)`, and the rest their second words. Pieces rather
  than joined arrays let every consumer read the hash's outputs in place; with `apart`, from
  `SPLIT_HASH_MIN_BLOCKS` blocks on, each of several `columns` is hashed on its own (the same
  words). A single row of words (two chains' 16-bit draws) is the 1-D case's row: the rule
  above would hash a block per word and drop every second word.
  """
  if len(shape) == 2 and shape[0] == 1:
    row = jnp.concatenate(_words(key, shape[1:], (slice(None),))[0])[None]
    return [[row[..., c]] for c in columns]
  r = (shape[0] + 1) // 2
  apart = apart and len(columns) > 1 and r * math.prod(shape[1:]) >= SPLIT_HASH_MIN_BLOCKS
  pairs = _threefry_pair(key, (r,) + shape[1:], columns if apart else (slice(None),))
  if pairs is None:
    words = jax.random.bits(key, shape, dtype=jnp.uint32)
    return [[words[..., c]] for c in columns]
  if apart:
    return [[first, second[: shape[0] - r]] for first, second in pairs]
  ((first, second),) = pairs
  return [[first[..., c], second[: shape[0] - r][..., c]] for c in columns]


def _unit_float(words: Array) -> Array:
  """32-bit uniforms in [0, 1) from uint32 words: their top 23 bits as a float's mantissa."""
  return jax.lax.bitcast_convert_type((words >> 9) | 0x3F800000, jnp.float32) - 1.0


def _half_word_float(k: Array) -> Array:
  """16-bit uniforms `k + 1/2` (scale 2^16) from 16-bit values `k` held in uint32."""
  return k.astype(jnp.float32) + 0.5


def uniforms(key: Array, shape: tuple[int, ...], uniform_bits: int | None = DEFAULT_UNIFORM_BITS,
             split: int | None = None) -> tuple[Array | tuple[Array, Array], float]:
  """Uniform variates `u` of `shape` and their scale: `u / scale` is uniform on (0, 1).

  A Bernoulli(p) draw is then `u < p * scale`. 32-bit: `u` in [0, 1) with 23 random
  mantissa bits, scale 1. 16-bit: two draws per random word, `u = k + 1/2` for `k` in
  [0, 2^16), scale 2^16. With `split`, returns `(u[..., :split], u[..., split:])` in place of
  `u`, each computed where it is used (one sweep's hidden and visible draws).
  """
  # Rows are filled from the leading dimension, so every piece of a word stays contiguous
  # (no interleaving or bitcast to undo); a vector or a single row is flattened.
  flat = len(shape) < 2 or shape[0] < 2
  q_shape = (math.prod(shape),) if flat else shape
  columns = (slice(None),) if flat or split is None else (slice(None, split), slice(split, None))
  rows = q_shape[0]
  if resolve_uniform_bits(uniform_bits) == 32:
    # The two words' rows joined first, then split into columns: XLA's CPU loop over a join of
    # column slices, fused with the sigmoid its uniforms are compared with, is not vectorised
    # (docs/performance.md#ais). The 16-bit draws below keep their pieces, which measured faster.
    joined = _unit_float(jnp.concatenate(_words(key, q_shape, (slice(None),))[0]))
    us, scale = [joined[..., c] for c in columns], 1.0
  else:
    words = _words(key, ((rows + 1) // 2,) + q_shape[1:], columns, apart=True)
    us = [_half_word_float(jnp.concatenate([x & 0xFFFF for x in w] + [x >> 16 for x in w])[:rows])
          for w in words]
    scale = 65536.0
  if split is None:
    return us[0].reshape(shape), scale
  if flat:
    u = us[0].reshape(shape)
    return (u[..., :split], u[..., split:]), scale
  return tuple(us), scale


def uniform_halves(key: Array, shape: tuple[int, int], split: int,
                   uniform_bits: int | None = DEFAULT_UNIFORM_BITS
                   ) -> tuple[tuple[tuple[Array, Array], tuple[Array, Array]], float]:
  """`uniforms(key, shape, uniform_bits, split)` as its top and bottom rows, computed apart.

  Each half, rows `[0, ceil(rows / 2))` and the rest, is made from the hash's words directly
  (the top rows from the first words of the blocks, or the low 16 bits of every word, the
  bottom ones from the rest), never sliced out of the joined whole, so that two groups of
  chains can draw their sweeps independently, and at once, while drawing exactly what the
  whole batch draws.

  Args:
    key: PRNG key.
    shape: `(rows, columns)`, rows >= 2.
    split: the column where the first part of each row ends.
    uniform_bits: 16, 32, or None for the backend's default.

  Returns:
    `((top[:, :split], top[:, split:]), (bottom[:, :split], bottom[:, split:])), scale`.
  """
  if len(shape) != 2 or shape[0] < 2:
    raise ValueError(f"uniform_halves needs a (rows >= 2, columns) shape, got {tuple(shape)}")
  rows, top = shape[0], (shape[0] + 1) // 2
  columns = (slice(None, split), slice(split, None))
  if resolve_uniform_bits(uniform_bits) == 32:
    halves = []
    for w in _words(key, shape, columns):
      pieces = w if len(w) == 2 else [w[0][:top], w[0][top:]]  # one piece: not a threefry key
      halves.append([_unit_float(x) for x in pieces])
    scale = 1.0
  else:  # the words' low halves are the top rows' uniforms, their high halves the rest's
    halves = [[_half_word_float(jnp.concatenate([x & 0xFFFF for x in w])),
               _half_word_float(jnp.concatenate([x >> 16 for x in w])[: rows - top])]
              for w in _words(key, (top, shape[1]), columns)]
    scale = 65536.0
  (top_h, bottom_h), (top_v, bottom_v) = halves
  return ((top_h, top_v), (bottom_h, bottom_v)), scale


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


def permutation(key: Array, n: int) -> Array:
  """A uniformly random permutation of `0 .. n - 1`: (n,) int32.

  The law of `jax.random.permutation`: positions are stably sorted by independent random keys,
  over as many rounds as it takes for the keys to hold >= 3 log2(n) random bits together, so
  that a tie (which keeps the previous order) has probability below 1/n. Each round packs its
  random bits above the position's `b = bit_length(n - 1)` bits into one uint32 and sorts that
  alone: XLA's CPU sort of a plain array is much cheaper than the key-value sort inside
  `jax.random.permutation` (README, "Each training epoch shuffles").

  Args:
    key: PRNG key.
    n: the number of items.
  """
  b = max(1, (n - 1).bit_length())
  free = 32 - b
  if free < 8:  # over 2^24 items: too few random bits per round
    return jax.random.permutation(key, n).astype(jnp.int32)
  positions = jax.lax.iota(jnp.uint32, n)
  order = positions
  for key_round in jax.random.split(key, -(-3 * b // free)):
    packed = (jax.random.bits(key_round, (n,), jnp.uint32) >> b << b) | positions
    order = order[jnp.sort(packed) & ((1 << b) - 1)]
  return order.astype(jnp.int32)

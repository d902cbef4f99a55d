"""W as base-128 int8 digits: products of binary states with W on integer matrix units.

A product `x @ W` whose left operand is binary (the Gibbs sampler's states) needs no rounding
of `x`, so writing W as a few int8 digits, `W ~= sum_j D_j 128^j 2^-f`, makes it a sum of
int8 products, each exact in int32, combined in float32. Four digits keep 27 bits below the
power of two above max|W|: each weight is within `2^-(f+1) <= max|W| 2^-27` of its digits'
value, which leaves a product's error at about float32's own (tests). CPUs with int8 matrix
units (Intel AMX) run these products several times faster than float32 ones; how much of that
a sweep keeps is in benchmarks/results/small-batch-alternatives-cpu-2core-xeon.md.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

__all__ = ["N_DIGITS", "BITS", "int8_digits", "binary_matmul"]

N_DIGITS = 4  # base-128 digits per weight
BITS = 7 * N_DIGITS - 1  # bits kept below the power of two above max|W|


def int8_digits(w: Array) -> tuple[Array, Array]:
  """`w: (K, N)` float as int8 digits `(K, N_DIGITS, N)` and the scale exponent `f` (int32).

  `sum_j digits[j] * 128**j * 2**-f` is within `2**-(f + 1)` of `w`, where `f = BITS - e` and
  `2**e` is the least power of two above max|w|. The lower digits lie in [-64, 64), the top
  one in [-65, 65].
  """
  _, e = jnp.frexp(jnp.max(jnp.abs(w)).astype(jnp.float32))  # max|w| < 2**e
  f = jnp.minimum(BITS - e, 100)  # a zero or tiny W: no overflow of 2**f
  q = jnp.round(w.astype(jnp.float32) * jnp.ldexp(jnp.float32(1), f)).astype(jnp.int32)
  digits = []
  for _ in range(N_DIGITS - 1):
    d = ((q + 64) & 127) - 64  # the balanced base-128 digit
    digits.append(d)
    q = (q - d) >> 7  # exact: q - d is a multiple of 128
  digits.append(q)  # |q| < 2**27 leaves the top digit within [-65, 65]
  return jnp.stack(digits, axis=1).astype(jnp.int8), f


def binary_matmul(x: Array, w: Array) -> Array:
  """`x @ w` for binary `x: (rows, K)` (0/1; other values are cast to int8) and float
  `w: (K, N)`, `(rows, N)` float32, from `int8_digits(w)`: every digit's product exact in int32
  (for K < 2**24 / 65), the four summed in float32, smallest first.

  Inside a compiled loop with `w` loop-invariant, XLA computes the digits once, before it.
  """
  digits, f = int8_digits(w)
  k, n = w.shape
  # (K, N_DIGITS * N), column j * N + i holding digit j of w[:, i]: one product for all digits.
  stacked = digits.reshape(k, N_DIGITS * n)
  y = jnp.matmul(x.astype(jnp.int8), stacked, preferred_element_type=jnp.int32)
  y = y.reshape(x.shape[0], N_DIGITS, n)
  out = None
  for j in range(N_DIGITS):
    term = y[:, j].astype(jnp.float32) * jnp.ldexp(jnp.float32(1), 7 * j - f)
    out = term if out is None else out + term
  return out

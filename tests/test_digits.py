"""int8 digits of W: what they represent, and products of binary states against float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aerbm_jax import digits


@pytest.mark.parametrize("scale", [0.05, 1.0, 2.0, 3e4, 1e-6])
def test_digits_represent_w_to_within_half_a_unit_of_their_scale(scale):
  """sum_j D_j 128^j 2^-f is within 2^-(f+1) of W, 2^-f at most max|W| 2^-(BITS-1), with the
  digits in their ranges; scale 2.0 puts max|W| on a power of two."""
  rng = np.random.default_rng(0)
  w = (rng.normal(0, 1, (37, 23)) * scale).astype(np.float32)
  w[3, 4] = scale if scale == 2.0 else w[3, 4]
  d, f = digits.int8_digits(jnp.asarray(w))
  assert d.shape == (37, digits.N_DIGITS, 23) and d.dtype == jnp.int8
  d = np.asarray(d, np.int64)
  value = sum(d[:, j] * 128.0**j for j in range(digits.N_DIGITS)) * 2.0 ** -int(f)
  assert np.abs(value - w).max() <= 2.0 ** -(int(f) + 1)
  assert 2.0 ** -int(f) <= np.abs(w).max() * 2.0 ** -(digits.BITS - 1)
  assert d[:, :-1].min() >= -64 and d[:, :-1].max() < 64 and np.abs(d[:, -1]).max() <= 65
  assert np.abs(d[:, -1]).max() >= 32  # the top digit is used: no bits wasted above max|W|


def test_digits_of_zero_weights_are_zero():
  d, _ = digits.int8_digits(jnp.zeros((4, 3)))
  assert not np.asarray(d).any()
  np.testing.assert_array_equal(digits.binary_matmul(jnp.ones((2, 4)), jnp.zeros((4, 3))), 0)


def test_binary_products_are_as_accurate_as_float32_ones():
  """The sampler's product at 784 x 500, against float64: no worse than float32's own (the
  digits are exact, each digit's product exact in int32, four float32 sums at the end)."""
  rng = np.random.default_rng(1)
  w = rng.normal(0, 0.05, (784, 500)).astype(np.float32)
  w[10, :5] = [1.5, -2.0, 0.9, -0.7, 1.1]  # a few large weights set the digits' scale
  x = (rng.random((64, 784)) < 0.5).astype(np.float32)
  exact = x.astype(np.float64) @ w.astype(np.float64)
  got = np.asarray(digits.binary_matmul(jnp.asarray(x), jnp.asarray(w)), np.float64)
  f32 = np.asarray(jnp.matmul(x, w, precision="highest"), np.float64)
  err, err_f32 = np.abs(got - exact).max(), np.abs(f32 - exact).max()
  _, f = digits.int8_digits(jnp.asarray(w))
  assert err <= 784 * 2.0 ** -(int(f) + 1) + 4 * np.abs(exact).max() * 2.0**-24
  assert err <= err_f32, (err, err_f32)
  # A wrong digit order or scale is far off: the test can fail.
  assert np.abs(np.asarray(jnp.matmul(x, w * (1 + 2.0**-10)), np.float64) - exact).max() > err


def test_binary_products_inside_a_loop_equal_the_products_outside():
  """In a scan with W loop-invariant (where XLA hoists the digits out of the loop), each
  product equals the product outside the loop, bit for bit."""
  rng = np.random.default_rng(2)
  w = jnp.asarray(rng.normal(0, 0.3, (40, 24)), jnp.float32)
  xs = jnp.asarray(rng.random((5, 6, 40)) < 0.5, jnp.float32)
  inside = jax.jit(lambda xs: jax.lax.scan(
    lambda c, x: (c, digits.binary_matmul(x, w)), 0, xs)[1])(xs)
  for x, got in zip(xs, inside):
    np.testing.assert_array_equal(got, digits.binary_matmul(x, w))

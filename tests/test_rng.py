"""Random draws: the samplers' Threefry-2x32 uniforms and their distribution, every key kind,
and the training epochs' permutations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry2x32_p, threefry_2x32
from scipy import stats

from aerbm_jax import rng


def _reference_words(key, rows: int, cols: int) -> np.ndarray:
  """JAX's Threefry-2x32 of the counters (0, i), first words in the first ceil(rows / 2) rows."""
  r = (rows + 1) // 2
  count = jnp.concatenate([jnp.zeros(r * cols, jnp.uint32), jnp.arange(r * cols, dtype=jnp.uint32)])
  out = np.asarray(threefry_2x32(jax.random.key_data(key), count)).reshape(2 * r, cols)
  return np.concatenate([out[:r], out[r:][: rows - r]])


def _bits(u, bits: int) -> np.ndarray:
  """The random word bits a uniform carries: 23 (32-bit) or 16 (16-bit uniforms)."""
  u = np.asarray(u, np.float64)
  return (u * 2**23 if bits == 32 else u - 0.5).astype(np.uint32)


def test_uniforms_carry_the_reference_hash_words():
  # Random123's known answer for Threefry-2x32-20: key (0, 0), counter (0, 0).
  u, _ = rng.uniforms(jax.random.wrap_key_data(jnp.zeros(2, jnp.uint32)), (2, 1), 32)
  assert list(_bits(u, 32).ravel()) == [0x6B200159 >> 9, 0x99BA4EFE >> 9]
  key = jax.random.key(7)
  for rows in (6, 5):  # an even and an odd number of rows
    words = _reference_words(key, rows, 3)
    np.testing.assert_array_equal(_bits(rng.uniforms(key, (rows, 3), 32)[0], 32), words >> 9)
    # 16-bit: the low halves of the words fill the first rows, the high halves the rest.
    halves = np.concatenate([words & 0xFFFF, words >> 16])
    for n in (2 * rows, 2 * rows - 1):
      np.testing.assert_array_equal(_bits(rng.uniforms(key, (n, 3), 16)[0], 16), halves[:n])


def test_two_rows_of_sixteen_bit_uniforms_use_both_words_of_each_block():
  """Two chains' 16-bit draws are one row of words: ceil(cols / 2) blocks, their first words
  then their second ones (as a 1-D draw's), low halves in the first row, high in the second."""
  key = jax.random.key(7)
  for cols in (5, 6):
    r = (cols + 1) // 2
    count = jnp.concatenate([jnp.zeros(r, jnp.uint32), jnp.arange(r, dtype=jnp.uint32)])
    words = np.asarray(threefry_2x32(jax.random.key_data(key), count))[:cols]
    u, _ = rng.uniforms(key, (2, cols), 16)
    np.testing.assert_array_equal(_bits(u, 16), np.stack([words & 0xFFFF, words >> 16]))


def test_unrolled_threefry_is_jaxs_threefry():
  # Random123's known answers for Threefry-2x32-20.
  zero, ones, pi = (jnp.uint32(0),) * 2, (jnp.uint32(0xFFFFFFFF),) * 2, (
    jnp.uint32(0x13198A2E), jnp.uint32(0x03707344))
  assert [int(w) for w in rng.threefry2x32(*zero, *zero)] == [0x6B200159, 0x99BA4EFE]
  assert [int(w) for w in rng.threefry2x32(*ones, *ones)] == [0x1CB996FC, 0xBB002BE7]
  assert [int(w) for w in rng.threefry2x32(*pi, jnp.uint32(0x243F6A88),
                                           jnp.uint32(0x85A308D3))] == [0xC4923A9C, 0x483DF7A0]
  # Random keys and counters, jitted and not: the same words. The CPU version carries the words
  # as the bits of float32s, so the counters include NaN, infinity and subnormal patterns, and
  # 4,096 blocks give dozens of such output words.
  special = np.array([0x7FC00001, 0x7F800001, 0xFF800000, 0x00000001, 0x807FFFFF, 0x80000000],
                     np.uint64)
  r = np.random.default_rng(0)
  for shape in [(6,), (3, 7), (2, 3, 4), (64, 64)]:
    k0, k1 = (jnp.uint32(v) for v in r.integers(0, 2**32, 2, dtype=np.uint64))
    x0, x1 = (jnp.asarray(r.integers(0, 2**32, shape, dtype=np.uint64), jnp.uint32)
              for _ in range(2))
    if shape == (6,):
      x0, x1 = jnp.asarray(special, jnp.uint32), jnp.asarray(special[::-1], jnp.uint32)
    want = threefry2x32_p.bind(k0, k1, x0, x1)
    for got in (rng.threefry2x32(k0, k1, x0, x1), jax.jit(rng.threefry2x32)(k0, k1, x0, x1)):
      for g, w in zip(got, want):
        assert g.shape == shape and g.dtype == jnp.uint32
        np.testing.assert_array_equal(g, w)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU lowering")
def test_cpu_threefry_computes_each_blocks_rounds_once():
  """Compiled for CPU, a function of both words (as the 16-bit draws are) holds the 20 rounds'
  xors once: not JAX's loop of five groups of four, nor a copy per use of the words."""
  def both_words(k, c):
    x0, x1 = rng.threefry2x32(k[0], k[1], jnp.zeros_like(c), c)
    return x0 & 0xFFFF, x0 >> 16, x1 & 0xFFFF, x1 >> 16
  hlo = jax.jit(both_words).lower(jnp.zeros(2, jnp.uint32), jnp.zeros((64, 100), jnp.uint32))
  xors = hlo.compile().as_text().count(" xor(")
  assert 20 <= xors < 40, xors  # 20 rounds, and the key schedule's two


@pytest.mark.parametrize("bits", [16, 32])
@pytest.mark.parametrize("shape", [(7, 9), (8, 9), (2, 9), (1, 9), (9,)])
def test_split_uniforms_are_the_slices_of_the_whole(bits, shape):
  key = jax.random.key(4)
  whole, scale = rng.uniforms(key, shape, bits)
  (left, right), split_scale = rng.uniforms(key, shape, bits, split=4)
  assert split_scale == scale
  np.testing.assert_array_equal(left, whole[..., :4])
  np.testing.assert_array_equal(right, whole[..., 4:])


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU lowering")
def test_column_pieces_hashed_apart_draw_the_same_words(monkeypatch):
  """From `SPLIT_HASH_MIN_BLOCKS` blocks on, a sweep's 16-bit hidden and visible pieces are
  hashed apart (two copies of the rounds in the compiled program), drawing what the whole
  hashed at once draws; chains in halves keep one hash."""
  key, shape, split = jax.random.key(5), (23, 9), 4

  def xors(f):
    return jax.jit(f).lower(key).compile().as_text().count(" xor(")

  def draws():
    whole = lambda k: rng.uniforms(k, shape, 16, split=split)[0]  # noqa: E731
    halves = lambda k: rng.uniform_halves(k, shape, split, 16)[0]  # noqa: E731
    (left, right), (top, bottom) = jax.jit(whole)(key), jax.jit(halves)(key)
    return [left, right, *top, *bottom], xors(whole), xors(halves)

  monkeypatch.setattr(rng, "SPLIT_HASH_MIN_BLOCKS", 10**9)
  one, one_xors, halves_xors = draws()
  monkeypatch.setattr(rng, "SPLIT_HASH_MIN_BLOCKS", 1)
  apart, apart_xors, halves_xors_low = draws()
  for a, b in zip(apart, one):
    np.testing.assert_array_equal(a, b)
  assert apart_xors >= 2 * 20 > one_xors, (apart_xors, one_xors)
  assert halves_xors_low == halves_xors < 40, (halves_xors_low, halves_xors)


def test_32_bit_split_uniforms_join_whole_rows_before_the_split():
  """The 32-bit draws join the hash's two words' rows whole and then split the columns: XLA's
  CPU loop over a join of column slices, fused with the sigmoid compared with them, is not
  vectorised (AIS on a 49,152-pixel model ran 1.7x slower per step)."""
  lowered = jax.jit(lambda k: rng.uniforms(k, (6, 40), 32, split=8)[0]).lower(jax.random.key(0))
  joins = [line for line in lowered.as_text().splitlines() if "stablehlo.concatenate" in line]
  assert joins, lowered.as_text()
  assert all(line.rstrip().endswith("tensor<6x40xui32>") for line in joins), joins


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
@pytest.mark.parametrize("bits", [16, 32])
@pytest.mark.parametrize("rows", [2, 3, 8, 9, 33])
def test_uniform_halves_are_the_rows_of_the_whole(impl, bits, rows):
  """The two halves `run` draws for two groups of chains are, stacked, the whole batch's."""
  key = jax.random.key(8, impl=impl)
  (left, right), scale = rng.uniforms(key, (rows, 30), bits, split=11)
  ((top_l, top_r), (bottom_l, bottom_r)), halves_scale = rng.uniform_halves(key, (rows, 30), 11,
                                                                            bits)
  assert halves_scale == scale and top_l.shape == (-(-rows // 2), 11)
  np.testing.assert_array_equal(np.concatenate([top_l, bottom_l]), left)
  np.testing.assert_array_equal(np.concatenate([top_r, bottom_r]), right)


def test_uniform_halves_reject_a_single_row():
  with pytest.raises(ValueError, match="rows >= 2"):
    rng.uniform_halves(jax.random.key(0), (1, 30), 11)


def test_other_key_kinds_draw_through_jax_random():
  key = jax.random.key(3, impl="rbg")
  np.testing.assert_array_equal(rng.uniforms(key, (4, 3), 32)[0], jax.random.uniform(key, (4, 3)))


@pytest.mark.parametrize("bits", [16, 32])
@pytest.mark.parametrize("shape", [(401, 300), (1, 70_001), (70_001,)])
def test_uniforms_are_uniform_and_pairwise_independent(bits, shape):
  u, scale = rng.uniforms(jax.random.key(11), shape, bits)
  assert u.shape == shape and u.dtype == jnp.float32
  x = np.asarray(u, np.float64).ravel() / scale
  assert 0 < x.min() and x.max() < 1
  # 64 equal bins (each 2^10 of the 16-bit values): chi-square at the 0.1% level.
  counts = np.bincount((x * 64).astype(int), minlength=64)
  assert stats.chisquare(counts).pvalue > 1e-3
  # Uniforms that share a random word (16-bit halves) or a hash block (its two words) sit half
  # the draws apart: their joint distribution over 8 x 8 cells must be uniform too.
  flat = x if len(shape) == 1 or shape[0] == 1 else x.reshape(shape).T.ravel()
  half = len(flat) // 2
  for a, b in ((flat[:half], flat[half:2 * half]),
               (flat[: half // 2], flat[half // 2: 2 * (half // 2)])):
    joint = np.bincount((a * 8).astype(int) * 8 + (b * 8).astype(int), minlength=64)
    assert stats.chisquare(joint).pvalue > 1e-3


def test_sixteen_bit_uniforms_take_every_value_at_their_resolution():
  u, scale = rng.uniforms(jax.random.key(5), (2048, 1024), 16)
  k = np.asarray(u) - 0.5
  assert scale == 2**16 and np.all(k == np.round(k))
  counts = np.bincount(k.astype(int).ravel(), minlength=2**16)
  assert counts.min() > 0 and stats.chisquare(counts).pvalue > 1e-3


def test_bernoulli_matches_p_at_the_uniform_resolution():
  p = jnp.array([0.0, 1e-6, 0.3, 0.5, 1.0], jnp.float32)
  draws = rng.bernoulli(jax.random.key(2), jnp.broadcast_to(p, (200_000, 5)), 16)
  freq = np.asarray(draws.mean(0))
  # P(draw = 1) = round(p 2^16) / 2^16: p = 1e-6 rounds to 0.
  expected = np.round(np.asarray(p, np.float64) * 2**16) / 2**16
  np.testing.assert_allclose(freq, expected, atol=4 * np.sqrt(0.25 / 200_000))
  assert freq[0] == 0 and freq[1] == 0 and freq[4] == 1


@pytest.mark.parametrize("n", [1, 2, 7, 16, 17, 4096, 60000])
@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_permutation_takes_every_index_once(n, impl):
  p = np.asarray(rng.permutation(jax.random.key(n, impl=impl), n))
  assert p.dtype == np.int32 and np.array_equal(np.sort(p), np.arange(n))


@pytest.mark.parametrize("n", [5, 4096])
def test_permutation_is_a_stable_sort_by_the_round_keys(n):
  # The spec written plainly: each round sorts the current order by the round's random bits
  # above the b index bits, ties kept in order. 4096 takes two rounds.
  key, b = jax.random.key(3), (n - 1).bit_length()
  keys = jax.random.split(key, -(-3 * b // (32 - b)))
  order = np.arange(n)
  for k in keys:
    high = np.asarray(jax.random.bits(k, (n,), jnp.uint32)) >> b
    order = order[np.lexsort((np.arange(n), high))]
  np.testing.assert_array_equal(rng.permutation(key, n), order)


def test_permutation_is_uniform_over_all_orders():
  draws = np.asarray(jax.jit(jax.vmap(lambda k: rng.permutation(k, 5)))(
    jax.random.split(jax.random.key(0), 24_000)))
  codes = draws @ 5 ** np.arange(5)
  _, counts = np.unique(codes, return_counts=True)
  assert len(counts) == 120  # every order occurs, 200 times expected
  assert stats.chisquare(counts).pvalue > 1e-3


def test_permutation_over_two_rounds_places_each_item_uniformly():
  # n = 4096 takes two sort rounds: where do the first 8 items land, over 16 bins?
  draws = np.asarray(jax.jit(jax.vmap(lambda k: rng.permutation(k, 4096)))(
    jax.random.split(jax.random.key(1), 2_000)))
  where = np.argsort(draws, axis=1)  # where[:, i]: the position item i lands at
  counts = np.stack([np.bincount(where[:, i] // 256, minlength=16) for i in range(8)])
  assert stats.chisquare(counts.ravel()).pvalue > 1e-3
  assert stats.binomtest(int(np.sum(where[:, 0] < where[:, 1])), 2_000).pvalue > 1e-3

"""The compiled epoch API: chunks, compiles, memory, and `epochs.epochs` driven directly."""

import dataclasses
from unittest.mock import patch

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compiled_programs, tiny_problem

from aerbm_jax import epochs, optim, rbm, train
from aerbm_jax.train import TrainConfig


def test_chunked_epochs_reuse_compiles_and_match_across_chunk_sizes():
  p, data = tiny_problem()
  cfg = TrainConfig(method="pcd", epochs=5, batch_size=8, epochs_per_call=2, progress=False)
  a, ha = train.fit(jax.random.key(3), p, data, cfg)
  compiled = train.epochs._cache_size()
  b, _ = train.fit(jax.random.key(4), p, data, cfg)  # new key and data values, same shapes
  c, _ = train.fit(jax.random.key(3), p, data[::-1].copy(), cfg)
  assert train.epochs._cache_size() == compiled  # nothing recompiled
  whole, hw = train.fit(jax.random.key(3), p, data, TrainConfig(
    method="pcd", epochs=5, batch_size=8, epochs_per_call=5, progress=False))
  for x, y in zip(a, whole):  # chunking changes the compiled program, not the maths
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ha.log_likelihood, hw.log_likelihood, rtol=1e-5)


def test_compiled_epoch_keeps_no_spare_copy_of_the_parameters():
  """The divergence guard costs no W-sized buffer: XLA's plan for a CD-1 epoch holds W and its
  momentum (donated, so aliased to the outputs) and, as temporaries, the gradient and less than
  a third of W more (1.35 W in all). The `where(ok, new, old)` guard it replaced planned 3.35 W."""
  n = m = 1024
  cfg = TrainConfig(epochs=1, batch_size=32, exact_ll=False, progress=False)
  x = jax.ShapeDtypeStruct((4 * cfg.batch_size, n), jnp.float32)
  params = jax.eval_shape(lambda k: rbm.init(k, n, m), jax.random.key(0))
  _, state, key = jax.eval_shape(lambda k, p, d: epochs.setup(k, p, d, cfg),
                                 jax.random.key(0), params, x)
  plan = epochs.epochs.lower(key, 0, state, x, None, cfg, 1, False).compile()
  temp_weights = plan.memory_analysis().temp_size_in_bytes / (4 * n * m)
  assert temp_weights < 1.5, temp_weights


def test_compiled_epoch_keeps_no_shuffled_copy_of_the_data():
  """Each update gathers its own minibatch: XLA's plan for a PCD-1 epoch over 20,000 rows holds
  far less than the data as temporaries (a shuffled copy made before the scan planned 1.05x
  the data's bytes; the per-update gather, 0.13x, mostly the shuffle's own keys)."""
  cfg = TrainConfig(method="pcd", epochs=1, batch_size=10, exact_ll=False, progress=False)
  x = jax.ShapeDtypeStruct((20_000, 64), jnp.float32)
  params = jax.eval_shape(lambda k: rbm.init(k, 64, 16), jax.random.key(0))
  _, state, key = jax.eval_shape(lambda k, p, d: epochs.setup(k, p, d, cfg),
                                 jax.random.key(0), params, x)
  plan = epochs.epochs.lower(key, 0, state, x, None, cfg, 1, False).compile()
  temp_share = plan.memory_analysis().temp_size_in_bytes / (4 * 20_000 * 64)
  assert temp_share < 0.5, temp_share


def test_epochs_driven_directly_equal_fit():
  """`setup` then chunks of `epochs.epochs` is what `train.fit` runs: the same bits."""
  p, data = tiny_problem(6)
  cfg = TrainConfig(method="pcd", epochs=4, batch_size=8, epochs_per_call=2, progress=False)
  ref, hist = train.fit(jax.random.key(9), p, data, cfg)
  x = jnp.asarray(data)
  _, state, key_loop = jax.jit(epochs.setup, static_argnames=("config", "bootstrap"))(
    jax.random.key(9), p, x, cfg)
  recon = []
  for start in (0, 2):
    out = epochs.epochs(key_loop, start, state, x, x, cfg, 2, True)
    state = out.state
    recon.append(np.asarray(out.recon_error))
    assert bool(np.all(out.ok)) and out.log_likelihood.shape == (2,)
  for a, b in zip(state.params, ref):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(np.concatenate(recon), hist.recon_error)
  assert epochs.epochs_per_call(cfg, len(data)) == 2
  # ~256 updates a call (51 epochs of 5), lowered to 50, which divides the 100 epochs
  assert epochs.epochs_per_call(TrainConfig(epochs=100, batch_size=8), 40) == 50
  assert epochs.epochs_per_call(TrainConfig(epochs=97, batch_size=8), 40) == 51  # a prime


def test_automatic_epochs_per_call_compiles_one_epoch_program():
  """60 epochs of 5 updates: calls of ~256 updates would be 51 epochs and then 9, two compiled
  programs; two calls of 30 share one, and give what one call of all 60 gives."""
  p, data = tiny_problem(7)
  cfg = TrainConfig(method="pcd", epochs=60, batch_size=8, progress=False)
  assert epochs.epochs_per_call(cfg, len(data)) == 30
  with compiled_programs() as names:
    got, hist = train.fit(jax.random.key(3), p, data, cfg)
  assert names.count("jit(run_epochs)") == 1, names
  ref, ref_hist = train.fit(jax.random.key(3), p, data,
                            dataclasses.replace(cfg, epochs_per_call=60))
  for a, b in zip(got, ref):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(hist.recon_error, ref_hist.recon_error)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_bernoulli_training_checks_its_steps_on_bounds_and_trains_bit_for_bit_alike(method):
  """A Bernoulli model's W steps are checked on the gradient's bound (no pass over W): the
  same parameters bit for bit as with the pass over the new W, and a learning rate that takes
  the weights towards 1e30 is refused there."""
  p, data = tiny_problem()
  data = np.tile(data, (8, 1))
  cfg = TrainConfig(method=method, epochs=3, batch_size=8, momentum=0.5, weight_decay=1e-3,
                    exact_ll=False, progress=False)
  assert epochs.bounds_w(p)
  state = train.fit(jax.random.key(1), p, data, cfg)[0]
  with patch.object(epochs, "bounds_w", lambda params: False):
    jax.clear_caches()
    exact = train.fit(jax.random.key(1), p, data, cfg)[0]
  jax.clear_caches()
  for a, b in zip(state, exact):
    np.testing.assert_array_equal(a, b)
  huge = TrainConfig(method=method, epochs=3, batch_size=8, learning_rate=1e29, exact_ll=False,
                     progress=False)
  with pytest.raises(train.TrainingDivergedError) as err:
    train.fit(jax.random.key(1), p, data, huge)
  assert all(np.all(np.abs(x) < optim.LIMIT) for x in err.value.last_good_params)

"""The guarded optimizer: optax's arithmetic on good steps, an exact no-op on refused ones."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aerbm_jax import optim, rbm

ONLY_W = lambda p: type(p)(*[name == "W" for name in p._fields])


def _params_and_grads(seed, steps):
  r = np.random.default_rng(seed)
  p = rbm.BernoulliRBM(*(jnp.asarray(r.normal(0, 1, s), jnp.float32) for s in [(5, 3), 5, 3]))
  grads = [rbm.BernoulliRBM(*(jnp.asarray(r.normal(0, 1, s), jnp.float32)
                              for s in [(5, 3), 5, 3])) for _ in range(steps)]
  return p, grads


def _run(tx, params, grads):
  state = tx.init(params)
  for g in grads:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params, state


@pytest.mark.parametrize("check", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("lr", [0.05, optax.cosine_decay_schedule(0.05, 6)])
def test_good_steps_match_optax(momentum, lr, check):
  p, grads = _params_and_grads(0, 6)
  ours, state = _run(optim.guarded_sgd(lr, momentum, 1e-2, ONLY_W, check=check), p, grads)
  ref, _ = _run(optax.chain(optax.add_decayed_weights(1e-2, mask=ONLY_W),
                            optax.sgd(lr, momentum=momentum or None)), p, grads)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert bool(state.finite) and int(state.count) == 6


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_a_refused_step_changes_nothing_and_refuses_every_later_one(momentum):
  p, grads = _params_and_grads(1, 4)
  tx = optim.guarded_sgd(0.1, momentum, 1e-2, ONLY_W)
  before, state = _run(tx, p, grads[:2])
  bad = grads[2]._replace(W=grads[2].W.at[1, 2].set(jnp.nan))
  for g in (bad, grads[3]):  # the NaN step, then a finite one after it
    updates, new = tx.update(g, state, before)
    after = optax.apply_updates(before, updates)
    assert not bool(new.finite) and int(new.count) == 2
    for a, b in zip(after, before):
      np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(new.trace), jax.tree.leaves(state.trace)):
      np.testing.assert_array_equal(a, b)
    state = new


def test_an_overflow_from_finite_gradients_is_refused():
  """Finite gradients can still overflow the parameters: with lr = 1e30 a weight-decay term of
  1e26 moves W by 1e56. A check of the gradients alone would let that through."""
  p = rbm.BernoulliRBM(W=jnp.full((2, 2), -1e30), b=jnp.zeros(2), c=jnp.zeros(2))
  tx = optim.guarded_sgd(1e30, 0.9, 1e-4, ONLY_W)
  g = jax.tree.map(jnp.ones_like, p)
  updates, state = tx.update(g, tx.init(p), p)
  assert np.all(np.isfinite(g.W + 1e-4 * p.W))  # the decayed gradient itself is finite
  assert not bool(state.finite)
  np.testing.assert_array_equal(optax.apply_updates(p, updates).W, p.W)


def test_unchecked_steps_are_all_applied():
  """`check=False`: the NaN step the guard refuses is applied, and `finite` stays True."""
  p, grads = _params_and_grads(1, 1)
  bad = grads[0]._replace(W=grads[0].W.at[1, 2].set(jnp.nan))
  after, state = _run(optim.guarded_sgd(0.1, 0.9, 1e-2, ONLY_W, check=False), p, [bad])
  assert bool(state.finite) and int(state.count) == 1
  assert np.isnan(after.W[1, 2]) and np.isfinite(np.delete(np.asarray(after.W).ravel(), 5)).all()


def test_it_compiles_and_vmaps():
  p, grads = _params_and_grads(2, 1)
  tx = optim.guarded_sgd(0.1, 0.9, 0.0)
  ps = jax.tree.map(lambda x: jnp.stack([x, x * jnp.inf]), p)  # seed 1 starts non-finite
  gs = jax.tree.map(lambda x: jnp.stack([x, x]), grads[0])
  step = jax.jit(jax.vmap(lambda g, p: tx.update(g, tx.init(p), p)[1].finite))
  np.testing.assert_array_equal(step(gs, ps), [True, False])


def _bounds(grads, slack=1.0):
  """`grad_bounds` for W alone: its largest magnitude times `slack` (NaN if it holds NaN)."""
  return grads._replace(W=slack * jnp.max(jnp.abs(grads.W)), b=None, c=None)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_bounded_steps_are_the_checked_steps_bit_for_bit(momentum):
  """A leaf checked on bounds takes exactly the steps the pass over it takes while they hold."""
  p, grads = _params_and_grads(3, 8)
  exact = optim.guarded_sgd(0.05, momentum, 1e-2, ONLY_W)
  bounded = optim.guarded_sgd(0.05, momentum, 1e-2, ONLY_W, bounded=ONLY_W)
  state_e, state_b, pe, pb = exact.init(p), bounded.init(p), p, p
  for g in grads:
    upd, state_e = exact.update(g, state_e, pe)
    pe = optax.apply_updates(pe, upd)
    upd, state_b = bounded.update(g, state_b, pb, grad_bounds=_bounds(g, 3.0))
    pb = optax.apply_updates(pb, upd)
  for a, b in zip(pe, pb):
    np.testing.assert_array_equal(a, b)
  assert bool(state_b.finite) and int(state_b.count) == 8
  # The carried bounds hold: at least the largest magnitudes of W and of its momentum.
  assert float(state_b.bounds.W[0]) >= float(jnp.max(jnp.abs(pb.W)))
  if momentum:
    assert float(state_b.bounds.W[1]) >= float(jnp.max(jnp.abs(state_b.trace.W)))
  assert state_b.bounds.b is None and state_b.bounds.c is None


def test_a_nan_gradient_under_a_bound_is_refused():
  p, grads = _params_and_grads(4, 2)
  tx = optim.guarded_sgd(0.1, 0.9, 1e-2, ONLY_W, bounded=ONLY_W)
  upd, state = tx.update(grads[0], tx.init(p), p, grad_bounds=_bounds(grads[0]))
  good = optax.apply_updates(p, upd)
  bad = grads[1]._replace(W=grads[1].W.at[0, 0].set(jnp.nan))
  upd, new = tx.update(bad, state, good, grad_bounds=_bounds(bad))
  assert not bool(new.finite) and int(new.count) == 1
  for a, b in zip(optax.apply_updates(good, upd), good):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(new.bounds.W, state.bounds.W)


def test_a_bound_reaching_the_limit_refuses_the_step():
  """The bounded check refuses a step whose bounds would reach LIMIT (1.3e30), though the
  values themselves would still be finite; one step below it is applied."""
  p = rbm.BernoulliRBM(W=jnp.zeros((2, 2)), b=jnp.zeros(2), c=jnp.zeros(2))
  tx = optim.guarded_sgd(1.0, 0.0, 0.0, ONLY_W, bounded=ONLY_W)
  g = jax.tree.map(jnp.ones_like, p)
  below = g._replace(W=jnp.float32(optim.LIMIT / 2), b=None, c=None)
  upd, state = tx.update(g, tx.init(p), p, grad_bounds=below)
  assert bool(state.finite)
  upd, state = tx.update(g, state, optax.apply_updates(p, upd), grad_bounds=below)
  assert not bool(state.finite)  # the bound after it, LIMIT, is not below LIMIT


def test_bounded_leaves_without_bounds_are_an_error():
  p, grads = _params_and_grads(5, 1)
  tx = optim.guarded_sgd(0.1, bounded=ONLY_W)
  with pytest.raises(ValueError, match="grad_bounds"):
    tx.update(grads[0], tx.init(p), p)

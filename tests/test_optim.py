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

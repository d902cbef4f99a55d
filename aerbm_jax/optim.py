"""Momentum SGD that refuses a step whose result would not be finite, without a spare copy.

The usual divergence guard, `where(ok, new, old)`, keeps the old parameters and momentum alive
beside the new ones: XLA materialises two more arrays of `W`'s size. Here the check comes first,
as a reduction over the would-be new values that is never stored, and the step is then applied
in place with scalar factors (momentum 1, gradient 0, learning rate 0) under which a refused
step leaves every value as it was (a zero may change sign). Once a step is refused every later
one is too, so the state stays the last good one.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

__all__ = ["GuardedSGDState", "guarded_sgd"]


class GuardedSGDState(NamedTuple):
  """The optimizer's state; a pytree."""

  count: Array  # int32 (): steps applied, the learning-rate schedule's argument
  trace: Any  # the momentum buffer, a pytree like the parameters; None without momentum
  finite: Array  # bool (): False from the first refused step on


def _all_finite(tree: Any) -> Array:
  """Whether every entry is finite, as NaN-propagating max-abs reductions that XLA fuses with
  their producers; `all(isfinite(x))` made XLA on CPU store a bool per entry (1 byte/weight)."""
  return jnp.isfinite(jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree.leaves(tree)])))


def guarded_sgd(
  learning_rate: optax.ScalarOrSchedule,
  momentum: float = 0.0,
  weight_decay: float = 0.0,
  decay_mask: Callable[[Any], Any] | None = None,
  check: bool = True,
) -> optax.GradientTransformation:
  """SGD with heavy-ball momentum and L2 decay, the arithmetic of
  `optax.chain(optax.add_decayed_weights(weight_decay, decay_mask), optax.sgd(learning_rate,
  momentum))`, whose `update` returns zero updates and an unchanged state (bar `finite`) when
  the new parameters or momentum would hold NaN or inf, and from then on.

  `decay_mask(params)`: a pytree of bools like `params`, True where `weight_decay` applies.
  `check=False` applies every step, unchecked (`finite` stays True): the same state and
  arithmetic without the check's pass over the new parameters, whose cost
  `benchmarks/epoch_bound.py` measures.
  """

  def init(params: Any) -> GuardedSGDState:
    trace = jax.tree.map(jnp.zeros_like, params) if momentum else None
    return GuardedSGDState(jnp.zeros([], jnp.int32), trace, jnp.bool_(True))

  def update(grads: Any, state: GuardedSGDState, params: Any) -> tuple[Any, GuardedSGDState]:
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    decays = decay_mask(params) if decay_mask else jax.tree.map(lambda _: True, params)
    grads = jax.tree.map(lambda g, p, d: g + weight_decay * p if d and weight_decay else g,
                         grads, params, decays)
    step = jax.tree.map(lambda g, t: g + momentum * t, grads, state.trace) if momentum else grads
    # A NaN or inf in `step` (the new momentum) makes `p - lr * s` NaN or inf too, for any
    # lr >= 0, so one check covers both.
    ok = state.finite
    if check:
      ok = ok & _all_finite(jax.tree.map(lambda p, s: p - lr * s, params, step))
    lr_ok = jnp.where(ok, lr, 0.0)
    if momentum:
      keep = jnp.where(ok, momentum, 1.0)
      trace = jax.tree.map(lambda g, t: keep * t + jnp.where(ok, g, 0.0), grads, state.trace)
      step = trace
    else:
      trace, step = None, jax.tree.map(lambda g: jnp.where(ok, g, 0.0), grads)
    updates = jax.tree.map(lambda s: (-lr_ok * s).astype(s.dtype), step)
    return updates, GuardedSGDState(state.count + ok.astype(jnp.int32), trace, ok)

  return optax.GradientTransformation(init, update)

"""Momentum SGD that refuses a step whose result would not be finite, without a spare copy.

The usual divergence guard, `where(ok, new, old)`, keeps the old parameters and momentum alive
beside the new ones: XLA materialises two more arrays of `W`'s size. Here the check comes first
and the step is then applied in place with scalar factors (momentum 1, gradient 0, learning
rate 0) under which a refused step leaves every value as it was (a zero may change sign). Once
a step is refused every later one is too, so the state stays the last good one.

The check is, for most leaves, a reduction over the would-be new values that is never stored.
For the leaves named `bounded`, whose caller passes an upper bound on each gradient's largest
magnitude (`update(..., grad_bounds=...)`, e.g. `gradients.weight_grad_bound`), it is
arithmetic on scalars: the state carries upper bounds on those leaves' and their momentum's
largest magnitudes, and a step is applied while the bounds after it stay below `LIMIT`, which
leaves every value finite with room to spare for rounding.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

__all__ = ["GuardedSGDState", "guarded_sgd", "LIMIT"]

# A bounded leaf's step is refused once its bounds reach this (1.3e30; float32 overflows at
# 3.4e38): no trained weight comes near it, and below it rounding cannot reach inf.
LIMIT = 2.0**100


class GuardedSGDState(NamedTuple):
  """The optimizer's state; a pytree."""

  count: Array  # int32 (): steps applied, the learning-rate schedule's argument
  trace: Any  # the momentum buffer, a pytree like the parameters; None without momentum
  finite: Array  # bool (): False from the first refused step on
  bounds: Any  # like the parameters: float32 (2,) for a bounded leaf, upper bounds on its
  # largest magnitude and its momentum's; None for the others


def _max_abs(x: Array) -> Array:
  """`max |x|`, NaN if `x` holds one: a reduction XLA fuses with the producer of `x`;
  `all(isfinite(x))` made XLA on CPU store a bool per entry (1 byte/weight)."""
  return jnp.max(jnp.abs(x))


def guarded_sgd(
  learning_rate: optax.ScalarOrSchedule,
  momentum: float = 0.0,
  weight_decay: float = 0.0,
  decay_mask: Callable[[Any], Any] | None = None,
  check: bool = True,
  bounded: Callable[[Any], Any] | None = None,
) -> optax.GradientTransformationExtraArgs:
  """SGD with heavy-ball momentum and L2 decay, the arithmetic of
  `optax.chain(optax.add_decayed_weights(weight_decay, decay_mask), optax.sgd(learning_rate,
  momentum))`, whose `update` returns zero updates and an unchanged state (bar `finite`) when
  the new parameters or momentum would hold NaN or inf, and from then on.

  Args:
    learning_rate: a float or an optax schedule of the step count (values >= 0).
    momentum: heavy-ball momentum (0: none, and no momentum buffer).
    weight_decay: the L2 penalty's factor, added to the gradients of the leaves `decay_mask`
      selects.
    decay_mask: `decay_mask(params)`, a pytree of bools like `params`, True where
      `weight_decay` applies (None: every leaf).
    check: False applies every step, unchecked (`finite` stays True, the bounds are left as
      they were): the same arithmetic without the check, whose cost
      `benchmarks/epoch_bound.py` measures.
    bounded: `bounded(params)`, a pytree of bools like `params`, True for the leaves whose
      gradients come with bounds: `update(grads, state, params, grad_bounds=...)` then takes,
      for each, a float32 () at least the largest magnitude of that gradient (NaN if the
      gradient may hold one), and checks the step on scalars. Such a step is refused when a
      bound would reach `LIMIT`, not only when a value would be inf or NaN.
  """

  def _flags(mask: Callable[[Any], Any] | None, params: Any, default: bool) -> list[bool]:
    leaves, treedef = jax.tree.flatten(params)
    return treedef.flatten_up_to(mask(params)) if mask else [default] * len(leaves)

  def init(params: Any) -> GuardedSGDState:
    trace = jax.tree.map(jnp.zeros_like, params) if momentum else None
    leaves, treedef = jax.tree.flatten(params)
    bounds = [jnp.stack([_max_abs(p).astype(jnp.float32), jnp.float32(0.0)]) if b else None
              for p, b in zip(leaves, _flags(bounded, params, False))]
    return GuardedSGDState(jnp.zeros([], jnp.int32), trace, jnp.bool_(True),
                           treedef.unflatten(bounds))

  def update(grads: Any, state: GuardedSGDState, params: Any, grad_bounds: Any = None,
             **extra_args: Any) -> tuple[Any, GuardedSGDState]:
    """`grad_bounds`: a pytree like `grads`, a float32 () for every `bounded` leaf (None or
    anything elsewhere); required when there are bounded leaves and `check`."""
    del extra_args  # other transformations' arguments, as optax passes them on
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    leaves, treedef = jax.tree.flatten(grads)
    ps = treedef.flatten_up_to(params)
    decay = [weight_decay if d else 0.0 for d in _flags(decay_mask, params, True)]
    ts = treedef.flatten_up_to(state.trace) if momentum else [None] * len(leaves)
    old_bounds = treedef.flatten_up_to(state.bounds)
    gs = [g + d * p if d else g for g, p, d in zip(leaves, ps, decay)]
    # The new momentum, or without momentum the step; a NaN or inf in it makes `p - lr * s`
    # NaN or inf too, for any lr >= 0, so checking that covers both.
    steps = [g + momentum * t if momentum else g for g, t in zip(gs, ts)]
    ok = state.finite
    new_bounds = list(old_bounds)
    if check:
      if any(b is not None for b in old_bounds) and grad_bounds is None:
        raise ValueError("guarded_sgd: the bounded leaves need grad_bounds in update()")
      gbs = (treedef.flatten_up_to(grad_bounds) if grad_bounds is not None
             else [None] * len(leaves))  # read only for bounded leaves, which require them
      exact = [_max_abs(p - lr * s) for p, s, b in zip(ps, steps, old_bounds) if b is None]
      if exact:
        ok = ok & jnp.isfinite(jnp.max(jnp.stack(exact)))
      for i, b in enumerate(old_bounds):
        if b is not None:  # |s| <= |g| + decay |p| + momentum |t|; |p - lr s| <= |p| + lr |s|
          s_bound = gbs[i] + decay[i] * b[0] + momentum * b[1]
          new_bounds[i] = jnp.stack([b[0] + jnp.abs(lr) * s_bound, s_bound if momentum else 0.0])
          ok = ok & jnp.all(new_bounds[i] < LIMIT)  # False for NaN
    lr_ok = jnp.where(ok, lr, 0.0)
    if momentum:
      keep = jnp.where(ok, momentum, 1.0)
      steps = [keep * t + jnp.where(ok, g, 0.0) for g, t in zip(gs, ts)]
      trace = treedef.unflatten(steps)
    else:
      trace, steps = None, [jnp.where(ok, g, 0.0) for g in gs]
    updates = treedef.unflatten([(-lr_ok * s).astype(s.dtype) for s in steps])
    bounds = treedef.unflatten([None if old is None else jnp.where(ok, new, old)
                                for new, old in zip(new_bounds, old_bounds)])
    return updates, GuardedSGDState(state.count + ok.astype(jnp.int32), trace, ok, bounds)

  return optax.GradientTransformationExtraArgs(init, update)

"""aerbm_jax's side of the benchmark: its compiled sampler and training epochs, and memory plans."""

from __future__ import annotations

import contextlib
import time

import jax
import jax.numpy as jnp

from aerbm_jax import epochs, parallel, rbm, sampling, train
from bench_timing import calls_for, memory_bytes, timed, train_data

GPU_MEMORY = 80e9


@contextlib.contextmanager
def _threefry_kernel_lowering(on: bool):
  """JAX's `jax_threefry_gpu_kernel_lowering` set to True inside the block when `on`."""
  if not on:
    yield
    return
  old = jax.config.jax_threefry_gpu_kernel_lowering
  jax.config.update("jax_threefry_gpu_kernel_lowering", True)
  try:
    yield
  finally:
    jax.config.update("jax_threefry_gpu_kernel_lowering", old)


def jax_sampler(n, m, batch, budget, precision=None, mesh=None, impl=None, bits=None,
                threefry_kernel=False):
  """aerbm_jax's compiled sampler as a call of `steps` sweeps lasting about `budget` seconds.

  `threefry_kernel`: compile with `jax_threefry_gpu_kernel_lowering` (GPU only), which JAX
  documents as faster to compile. Returns (call, steps, compile seconds, XLA memory bytes).
  """
  params = rbm.init(jax.random.key(0), n, m, weight_scale=0.05)
  state = sampling.init(params, jnp.zeros((batch, n), jnp.float32))
  key = jax.random.key(1, impl=impl)
  if mesh is not None:
    params = jax.device_put(params, parallel.replicated(mesh))
    state = parallel.shard_batch(state, mesh)

  def compile_steps(n_steps):
    fn = jax.jit(lambda key_run, s, p: sampling.run(key_run, s, p, n_steps, precision=precision,
                                                    uniform_bits=bits))
    with _threefry_kernel_lowering(threefry_kernel):
      t0 = time.perf_counter()
      compiled = fn.lower(key, state, params).compile()
      return compiled, time.perf_counter() - t0

  probe, compile_s = compile_steps(5)
  steps = calls_for(lambda k: jax.block_until_ready(probe(key, state, params)), budget / 5) * 5
  compiled, _ = compile_steps(steps)
  return (lambda: jax.block_until_ready(compiled(key, state, params)), steps, compile_s,
          memory_bytes(compiled))


def sample_jax(n, m, batch, budget, repeats, **kw) -> dict:
  call, steps, compile_s, memory = jax_sampler(n, m, batch, budget, **kw)
  return {**timed(call, steps, repeats), "compile_s": compile_s, "memory_bytes": memory}


def epoch_config(method: str, batch: int) -> train.TrainConfig:
  """The training configuration whose compiled epoch is timed and memory-planned."""
  return train.TrainConfig(method=method, epochs=1, batch_size=batch, progress=False,
                           exact_ll=False)


def train_jax(n, m, batch, method, budget, repeats, n_batches) -> dict:
  """Minibatch updates/s of the compiled epoch (`lax.scan` over minibatches, donated state)."""
  x = jnp.asarray(train_data(n, batch, n_batches))
  params = rbm.init(jax.random.key(0), n, m, weight_scale=0.05)
  cfg = epoch_config(method, batch)
  _, state, key = epochs.setup(jax.random.key(0), params, x, cfg)
  holder = {"state": state}

  def run(n_epochs):
    holder["state"] = epochs.epochs(key, 0, holder["state"], x, None, cfg, n_epochs, False).state
    jax.block_until_ready(holder["state"])

  t0 = time.perf_counter()
  compiled = epochs.epochs.lower(key, 0, state, x, None, cfg, 1, False).compile()
  compile_s = time.perf_counter() - t0
  run(1)  # warm-up
  t0 = time.perf_counter()
  run(1)
  per_epoch = time.perf_counter() - t0
  # Calls of up to ~256 updates, as `train.fit` makes them (`epochs_per_call`), within budget.
  n_epochs = int(max(1, min(256 // n_batches, budget / per_epoch)))
  out = timed(lambda: run(n_epochs), n_epochs * n_batches, repeats)
  out.update(compile_s=compile_s, memory_bytes=memory_bytes(compiled))
  return out


def memory_plan(n: int, m: int, batch: int, n_batches: int = 4) -> int | None:
  """XLA's memory plan (bytes) for one CD-1 epoch of `n_batches` minibatches at this size on
  this backend: compiled from shapes alone, never allocated or run."""
  x = jax.ShapeDtypeStruct((n_batches * batch, n), jnp.float32)
  cfg = epoch_config("cd", batch)
  params = jax.eval_shape(lambda k: rbm.init(k, n, m), jax.random.key(0))
  _, state, key = jax.eval_shape(lambda k, p, d: epochs.setup(k, p, d, cfg),
                                 jax.random.key(0), params, x)
  try:
    return memory_bytes(epochs.epochs.lower(key, 0, state, x, None, cfg, 1, False).compile())
  except Exception:  # noqa: BLE001 (a backend may refuse to plan beyond its memory)
    return None


def largest_on_gpu(step: int = 256, batch: int = 256, n_batches: int = 4) -> dict:
  """The largest square RBM (n = m) whose compiled CD-1 epoch XLA plans within GPU_MEMORY.

  Bisection over `n` in multiples of `step`, each point compiled from shapes alone (no
  allocation, no run), so it works on any machine; the plan is this backend's.
  """
  lo, hi = step, max(2 * step, 2**19)  # hi: 2^38 weights, far beyond 80 GB
  plans = {}

  def fits(units: int) -> bool:
    plans[units] = memory_plan(units, units, batch, n_batches)
    return plans[units] is not None and plans[units] <= GPU_MEMORY

  if not fits(lo):
    return {"largest_square_units": None, "batch": batch, "n_batches": n_batches,
            "gpu_bytes": GPU_MEMORY}
  while hi - lo > step:
    mid = (lo + hi) // 2 // step * step
    lo, hi = (mid, hi) if fits(mid) else (lo, mid)
  return {"largest_square_units": lo, "plan_bytes": plans[lo],
          "bytes_per_weight": plans[lo] / lo**2, "batch": batch, "n_batches": n_batches,
          "gpu_bytes": GPU_MEMORY, "step": step}

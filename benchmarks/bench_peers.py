"""The peers' side of the benchmark: numpy, PyTorch, scikit-learn and thrml samplers and trainers.

Each peer runs at the same sizes, batch and thread count as aerbm_jax; a peer that is not
installed is skipped by the caller.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_timing import calls_for, timed, train_data


def numpy_sampler(n, m, batch, budget, draws=True):
  """float32 numpy with PCG64 uniforms and in-place sigmoids: (call, sweeps per call).

  With `draws=False`, the same loop with its two Bernoulli draws replaced by a threshold at 0.5:
  the sweep's matmuls, biases and sigmoids alone.
  """
  rng = np.random.default_rng(0)
  W = (0.05 * rng.standard_normal((n, m))).astype(np.float32)
  b, c = np.zeros(n, np.float32), np.zeros(m, np.float32)
  v = np.zeros((batch, n), np.float32)
  h = np.empty((batch, m), np.float32)
  uh, uv = np.empty((batch, m), np.float32), np.empty((batch, n), np.float32)

  def sweeps(k):
    nonlocal v
    for _ in range(k):
      x = v @ W
      x += c
      np.negative(x, out=x); np.exp(x, out=x); x += 1; np.reciprocal(x, out=x)
      if draws:
        rng.random(out=uh, dtype=np.float32)
        np.less(uh, x, out=h)
      else:
        np.greater(x, 0.5, out=h)
      y = h @ W.T
      y += b
      np.negative(y, out=y); np.exp(y, out=y); y += 1; np.reciprocal(y, out=y)
      if draws:
        rng.random(out=uv, dtype=np.float32)
        v = (uv < y).astype(np.float32)
      else:
        v = (y > 0.5).astype(np.float32)

  steps = calls_for(sweeps, budget)
  return (lambda: sweeps(steps)), steps


def sample_numpy(n, m, batch, budget, repeats) -> dict:
  call, steps = numpy_sampler(n, m, batch, budget)
  return timed(call, steps, repeats)


def sample_torch(n, m, batch, budget, repeats) -> dict:
  import torch

  torch.set_num_threads(os.cpu_count())
  g = torch.Generator().manual_seed(0)
  W = 0.05 * torch.randn(n, m, generator=g)
  b, c = torch.zeros(n), torch.zeros(m)
  v = torch.zeros(batch, n)

  @torch.no_grad()
  def sweeps(k):
    nonlocal v
    for _ in range(k):
      h = torch.bernoulli(torch.sigmoid(torch.addmm(c, v, W)), generator=g)
      v = torch.bernoulli(torch.sigmoid(torch.addmm(b, h, W.T)), generator=g)

  steps = calls_for(sweeps, budget)
  return timed(lambda: sweeps(steps), steps, repeats)


def sklearn_rbm(n, m, batch):
  from sklearn.neural_network import BernoulliRBM

  model = BernoulliRBM(n_components=m, batch_size=batch, learning_rate=0.05, random_state=0)
  rng = np.random.RandomState(0)
  model.components_ = 0.05 * rng.standard_normal((m, n))
  model.intercept_hidden_ = np.zeros(m)
  model.intercept_visible_ = np.zeros(n)
  model.h_samples_ = np.zeros((batch, m))
  model.random_state_ = rng
  return model


def sample_sklearn(n, m, batch, budget, repeats) -> dict:
  model = sklearn_rbm(n, m, batch)
  v = np.zeros((batch, n))

  def sweeps(k):
    nonlocal v
    for _ in range(k):
      v = model.gibbs(v)

  steps = calls_for(sweeps, budget)
  return timed(lambda: sweeps(steps), steps, repeats)


def sample_thrml(n, m, batch, budget, repeats) -> dict:
  """thrml's block Gibbs on the RBM as a bipartite Ising model (spins, an edge list)."""
  import thrml
  from thrml.models import IsingEBM, IsingSamplingProgram, hinton_init

  vis = [thrml.SpinNode() for _ in range(n)]
  hid = [thrml.SpinNode() for _ in range(m)]
  edges = [(a, b) for a in vis for b in hid]
  rng = np.random.default_rng(0)
  ebm = IsingEBM(vis + hid, edges, jnp.zeros(n + m),
                 jnp.asarray(0.05 * rng.standard_normal(n * m), jnp.float32), jnp.array(1.0))
  blocks = [thrml.Block(vis), thrml.Block(hid)]
  program = IsingSamplingProgram(ebm, blocks, [])
  init = hinton_init(jax.random.key(0), ebm, blocks, (batch,))
  keys = jax.random.split(jax.random.key(1), batch)

  def compile_steps(k):
    schedule = thrml.SamplingSchedule(n_warmup=k - 1, n_samples=1, steps_per_sample=1)
    one = lambda kk, iv, ih: thrml.sample_states(kk, program, schedule, [iv, ih], [], [blocks[0]])
    fn = jax.jit(jax.vmap(one))
    t0 = time.perf_counter()
    compiled = fn.lower(keys, *init).compile()
    return compiled, time.perf_counter() - t0

  probe, compile_s = compile_steps(5)
  steps = calls_for(lambda k: jax.block_until_ready(probe(keys, *init)), budget / 5) * 5
  compiled, _ = compile_steps(steps)
  out = timed(lambda: jax.block_until_ready(compiled(keys, *init)), steps, repeats)
  out["compile_s"] = compile_s
  return out


def cd_numpy_like(xp, n, m, batch, method, n_batches, seed=0):
  """A CD-1 / PCD-1 trainer with momentum SGD, written once for numpy and torch."""
  x = train_data(n, batch, n_batches, seed)
  if xp.__name__ == "torch":
    import torch

    torch.set_num_threads(os.cpu_count())
    g = torch.Generator().manual_seed(seed)
    asarr = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    sig, rand = torch.sigmoid, lambda shape: torch.rand(shape, generator=g)
    W = 0.05 * torch.randn(n, m, generator=g)
  else:
    rng = np.random.default_rng(seed)
    asarr = lambda a: a
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    rand = lambda shape: rng.random(shape, dtype=np.float32)
    W = (0.05 * rng.standard_normal((n, m))).astype(np.float32)
  data = asarr(x)
  b, c = asarr(np.zeros(n, np.float32)), asarr(np.zeros(m, np.float32))
  mW, mb, mc = W * 0, b * 0, c * 0
  chains = asarr(x[:batch].copy())
  lr, mom = 0.05, 0.9

  def updates(k):
    nonlocal W, b, c, mW, mb, mc, chains
    for i in range(k):
      v0 = data[(i % n_batches) * batch:((i % n_batches) + 1) * batch]
      ph0 = sig(v0 @ W + c)
      start = chains if method == "pcd" else v0
      h = (rand((batch, m)) < sig(start @ W + c)) * 1.0
      v1 = (rand((batch, n)) < sig(h @ W.T + b)) * 1.0
      ph1 = sig(v1 @ W + c)
      if method == "pcd":
        chains = v1
      gW = (v0.T @ ph0 - v1.T @ ph1) / batch
      mW = mom * mW + gW
      mb = mom * mb + (v0 - v1).mean(0)
      mc = mom * mc + (ph0 - ph1).mean(0)
      W, b, c = W + lr * mW, b + lr * mb, c + lr * mc

  return updates


def train_numpy(n, m, batch, method, budget, repeats, n_batches) -> dict:
  updates = cd_numpy_like(np, n, m, batch, method, n_batches)
  k = calls_for(updates, budget, cap=100_000)
  return timed(lambda: updates(k), k, repeats)


def train_torch(n, m, batch, method, budget, repeats, n_batches) -> dict:
  import torch

  updates = cd_numpy_like(torch, n, m, batch, method, n_batches)
  k = calls_for(torch.no_grad()(updates), budget, cap=100_000)
  return timed(torch.no_grad()(lambda: updates(k)), k, repeats)


def train_sklearn(n, m, batch, method, budget, repeats, n_batches) -> dict:
  """scikit-learn's partial_fit: one PCD-1 update (its only method) per call."""
  model = sklearn_rbm(n, m, batch)
  x = train_data(n, batch, n_batches).astype(np.float64)

  def updates(k):
    for i in range(k):
      model.partial_fit(x[(i % n_batches) * batch:((i % n_batches) + 1) * batch])

  k = calls_for(updates, budget, cap=100_000)
  return timed(lambda: updates(k), k, repeats)

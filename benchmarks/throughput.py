"""RBM throughput against every installed peer, in one process run: sampling and training.

Measures, for each size (n_visible, n_hidden, batch):
- block Gibbs sweeps/s and unit updates/s (sweeps * batch * (n + m) / s) for aerbm_jax
  (float32 and bfloat16 sampler matmuls), numpy, PyTorch (CPU), scikit-learn's
  `BernoulliRBM.gibbs` and thrml (if installed);
- CD-1 and PCD-1 minibatch updates/s for aerbm_jax, numpy and PyTorch, and PCD-1 for
  scikit-learn's `partial_fit`;
- compile time (separately), XLA's memory plan for the compiled sampler and training epoch,
  the process's peak resident memory and, on GPU, the device's peak bytes in use;
- the largest square RBM whose CD-1 epoch XLA plans within 80 GB (bisection, each size
  compiled from shapes alone: no allocation, no run);
- the float32 matmul peak, so that every rate is also a fraction of the roofline
  (4 * batch * n * m FLOPs per sweep);
- throughput against batch size at (784, 500), as a plot;
- with `--scaling`, sweeps/s at 1, 2, 4 and 8 devices (fake CPU devices on a CPU machine) for
  a fixed total of chains, each device count in its own process.

Timings are medians of >= 5 repeats after a warm-up, with min and max. Writes
`benchmarks/results/<tag>.json`, `<tag>.md` and `<tag>-batch.png`.

  python benchmarks/throughput.py [--quick] [--scaling] [--prng-sweep] [--peers numpy,torch]
                                  [--out DIR] [--tag NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aerbm_jax import parallel, rbm, sampling, train

# Compile times are measured: never load programs from a persistent compilation cache.
jax.config.update("jax_enable_compilation_cache", False)

SIZES = [(128, 64, 1024), (784, 500, 1000), (4096, 1024, 256), (128, 64, 1), (49152, 64, 64)]
QUICK_SIZES = [(64, 32, 64), (64, 32, 1)]
# On a GPU the sizes above are too small to fill the card (an H200 ran (4096, 1024, 256) at
# ~31% of its matmul rate): two larger ones show what the sampler reaches when the matmuls
# dominate.
GPU_SIZES = [(4096, 1024, 4096), (16384, 4096, 1024)]
BATCHES = [1, 8, 64, 256, 1024, 4096]
QUICK_BATCHES = [1, 8, 64]
THRML_MAX_EDGES = 400_000  # thrml builds a Python edge list: n * m objects
GPU_MEMORY = 80e9
# The performance goals, each timed back to back (`paired`): aerbm_jax's float32 sampler
# against numpy's (ratio of sweeps/s) or against the float32 matmul (fraction of its FLOP/s).
CPU_TARGETS = [((128, 64, 1024), "numpy", 1.5), ((128, 64, 1), "numpy", 1.5),
               ((784, 500, 1000), "numpy", 1.2), ((4096, 1024, 256), "matmul", 0.85)]
GPU_TARGETS = [(size, "matmul", 0.5) for size in [(4096, 1024, 256)] + GPU_SIZES]
QUICK_TARGETS = [((64, 32, 64), "numpy", None), ((64, 32, 64), "matmul", None)]
TARGET_ROUNDS = 7


# ---------------------------------------------------------------------------- machine


def machine_info() -> dict:
  cpu = platform.processor() or platform.machine()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  dev = jax.devices()[0]
  versions = {}
  for lib in ("jax", "jaxlib", "numpy", "torch", "scikit-learn", "thrml"):
    try:
      versions[lib] = importlib.metadata.version(lib)
    except importlib.metadata.PackageNotFoundError:
      versions[lib] = None
  return {"cpu": cpu, "cores": os.cpu_count(), "backend": jax.default_backend(),
          "device": getattr(dev, "device_kind", str(dev)), "devices": jax.device_count(),
          "python": platform.python_version(), "versions": versions}


def matmul_call() -> tuple:
  """A float32 matmul at default precision (TF32 on recent NVIDIA GPUs): (call, FLOPs, size)."""
  size = 2048 if jax.default_backend() == "cpu" else 8192
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
  mm = jax.jit(lambda x, y: x @ y)
  return (lambda: jax.block_until_ready(mm(a, b))), 2 * size**3, size


def matmul_peak_gflops(repeats: int = 5) -> dict:
  """Measured float32 matmul rate at default precision."""
  call, flops, size = matmul_call()
  gflops = timed(call, flops / 1e9, repeats)["rate"]
  return {"size": size, "gflops": gflops, "precision": str(jax.config.jax_default_matmul_precision),
          "tf32": jax.default_backend() == "gpu" and jax.config.jax_default_matmul_precision
          in (None, "default", "bfloat16_3x", "tensorfloat32")}


def timed(fn, units_per_call: float, repeats: int) -> dict:
  """Median, min and max of `units_per_call / seconds` over `repeats` calls (after a warm-up)."""
  fn()
  rates = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    rates.append(units_per_call / (time.perf_counter() - t0))
  return {"rate": statistics.median(rates), "min": min(rates), "max": max(rates),
          "repeats": repeats}


def paired(call_a, units_a: float, call_b, units_b: float, rounds: int) -> dict:
  """Median, min and max over `rounds` of rate(a) / rate(b), the two timed back to back.

  The order alternates (a b, b a, ...) after a warm-up. This machine's speed drifts by up to
  2x within one run; rates timed minutes apart carry that drift into their ratio, while a
  ratio of neighbouring calls mostly cancels it.
  """
  call_a(), call_b()
  ratios = []
  for i in range(rounds):
    rate = {}
    for name, call, units in (("a", call_a, units_a), ("b", call_b, units_b))[::1 - 2 * (i % 2)]:
      t0 = time.perf_counter()
      call()
      rate[name] = units / (time.perf_counter() - t0)
    ratios.append(rate["a"] / rate["b"])
  return {"ratio": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
          "rounds": rounds}


def calls_for(fn, budget_s: float, cap: int = 200_000) -> int:
  """How many units of `fn(k)` fill `budget_s` seconds, from a probe of 5 units."""
  fn(5)
  t0 = time.perf_counter()
  fn(5)
  per = max((time.perf_counter() - t0) / 5, 1e-7)
  return int(min(max(budget_s / per, 5), cap))


def _memory(compiled) -> int | None:
  try:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)
  except Exception:  # noqa: BLE001 (not every backend reports it)
    return None


# ---------------------------------------------------------------------------- samplers


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

  def compile_steps(k):
    fn = jax.jit(lambda kk, s, p: sampling.run(kk, s, p, k, precision=precision,
                                               uniform_bits=bits))
    with _threefry_kernel_lowering(threefry_kernel):
      t0 = time.perf_counter()
      compiled = fn.lower(key, state, params).compile()
      return compiled, time.perf_counter() - t0

  probe, compile_s = compile_steps(5)
  steps = calls_for(lambda k: jax.block_until_ready(probe(key, state, params)), budget / 5) * 5
  compiled, _ = compile_steps(steps)
  return (lambda: jax.block_until_ready(compiled(key, state, params)), steps, compile_s,
          _memory(compiled))


def sample_jax(n, m, batch, budget, repeats, **kw) -> dict:
  call, steps, compile_s, memory = jax_sampler(n, m, batch, budget, **kw)
  return {**timed(call, steps, repeats), "compile_s": compile_s, "memory_bytes": memory}


def numpy_sampler(n, m, batch, budget):
  """float32 numpy with PCG64 uniforms and in-place sigmoids: (call, sweeps per call)."""
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
      rng.random(out=uh, dtype=np.float32)
      np.less(uh, x, out=h)
      y = h @ W.T
      y += b
      np.negative(y, out=y); np.exp(y, out=y); y += 1; np.reciprocal(y, out=y)
      rng.random(out=uv, dtype=np.float32)
      v = (uv < y).astype(np.float32)

  steps = calls_for(sweeps, budget)
  return (lambda: sweeps(steps)), steps


def sample_numpy(n, m, batch, budget, repeats) -> dict:
  call, steps = numpy_sampler(n, m, batch, budget)
  return timed(call, steps, repeats)


def head_to_head(targets: list, budget: float, rounds: int, numpy_ok: bool, rows: list) -> None:
  """Appends each goal's ratio to `rows`: aerbm_jax's sampler timed alternately with numpy's
  sampler or with the float32 matmul."""
  mm, mm_flops, _ = matmul_call()
  for (n, m, batch), against, target in targets:
    if against == "numpy" and not numpy_ok:
      continue
    b = budget * (3 if n * m * batch > 5e8 else 1)
    ours, steps, compile_s, _ = jax_sampler(n, m, batch, b)
    if against == "numpy":
      other, sweeps = numpy_sampler(n, m, batch, b)
      r = paired(ours, steps, other, sweeps, rounds)
    else:
      reps = calls_for(lambda k: [mm() for _ in range(k)], b)
      r = paired(ours, steps * 4 * batch * n * m, lambda: [mm() for _ in range(reps)],
                 reps * mm_flops, rounds)
    rows.append({"n": n, "m": m, "batch": batch, "against": against, "target": target, **r,
                 "met": None if target is None else r["ratio"] >= target, "compile_s": compile_s})
    print(f"target   ({n},{m},{batch}) vs {against:7s} {r['ratio']:.3f} "
          f"[{r['min']:.3f}-{r['max']:.3f}] (goal {target})", flush=True)


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


def _sklearn_rbm(n, m, batch):
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
  model = _sklearn_rbm(n, m, batch)
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


# ---------------------------------------------------------------------------- training


def _train_data(n, batch, n_batches, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((batch * n_batches, n)) < 0.3).astype(np.float32)


def _epoch_config(method: str, batch: int) -> train.TrainConfig:
  """The training configuration whose compiled epoch is timed and memory-planned."""
  return train.TrainConfig(method=method, epochs=1, batch_size=batch, progress=False,
                           exact_ll=False)


def train_jax(n, m, batch, method, budget, repeats, n_batches) -> dict:
  """Minibatch updates/s of the compiled epoch (`lax.scan` over minibatches, donated state)."""
  x = jnp.asarray(_train_data(n, batch, n_batches))
  params = rbm.init(jax.random.key(0), n, m, weight_scale=0.05)
  cfg = _epoch_config(method, batch)
  _, state, key = train._setup_one(jax.random.key(0), params, x, cfg, False)
  holder = {"state": state}

  def epochs(k):
    holder["state"] = train._epochs_one(key, 0, holder["state"], x, x, cfg, k, False, None)[0]
    jax.block_until_ready(holder["state"])

  t0 = time.perf_counter()
  compiled = train._epochs_one.lower(key, 0, state, x, x, cfg, 1, False, None).compile()
  compile_s = time.perf_counter() - t0
  epochs(1)  # warm-up
  t0 = time.perf_counter()
  epochs(1)
  per_epoch = time.perf_counter() - t0
  # Calls of up to ~256 updates, as `train.fit` makes them (`epochs_per_call`), within budget.
  k = int(max(1, min(256 // n_batches, budget / per_epoch)))
  out = timed(lambda: epochs(k), k * n_batches, repeats)
  out.update(compile_s=compile_s, memory_bytes=_memory(compiled))
  return out


def _cd_numpy_like(xp, n, m, batch, method, n_batches, seed=0):
  """A CD-1 / PCD-1 trainer with momentum SGD, written once for numpy and torch."""
  x = _train_data(n, batch, n_batches, seed)
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
  updates = _cd_numpy_like(np, n, m, batch, method, n_batches)
  k = calls_for(updates, budget, cap=100_000)
  return timed(lambda: updates(k), k, repeats)


def train_torch(n, m, batch, method, budget, repeats, n_batches) -> dict:
  import torch

  updates = _cd_numpy_like(torch, n, m, batch, method, n_batches)
  k = calls_for(torch.no_grad()(updates), budget, cap=100_000)
  return timed(torch.no_grad()(lambda: updates(k)), k, repeats)


def train_sklearn(n, m, batch, method, budget, repeats, n_batches) -> dict:
  """scikit-learn's partial_fit: one PCD-1 update (its only method) per call."""
  model = _sklearn_rbm(n, m, batch)
  x = _train_data(n, batch, n_batches).astype(np.float64)

  def updates(k):
    for i in range(k):
      model.partial_fit(x[(i % n_batches) * batch:((i % n_batches) + 1) * batch])

  k = calls_for(updates, budget, cap=100_000)
  return timed(lambda: updates(k), k, repeats)


# ---------------------------------------------------------------------------- runs


def _installed(module: str) -> bool:
  try:
    __import__(module)
    return True
  except ImportError:
    return False


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


def memory_plan(n: int, m: int, batch: int, n_batches: int = 4) -> int | None:
  """XLA's memory plan (bytes) for one CD-1 epoch of `n_batches` minibatches at this size on
  this backend: compiled from shapes alone, never allocated or run."""
  x = jax.ShapeDtypeStruct((n_batches * batch, n), jnp.float32)
  cfg = _epoch_config("cd", batch)
  params = jax.eval_shape(lambda k: rbm.init(k, n, m), jax.random.key(0))
  _, state, key = jax.eval_shape(lambda k, p, d: train._setup(k, p, d, cfg, False),
                                 jax.random.key(0), params, x)
  try:
    return _memory(train._epochs_one.lower(key, 0, state, x, x, cfg, 1, False, None).compile())
  except Exception:  # noqa: BLE001 (a backend may refuse to plan beyond its memory)
    return None


def run_all(args, res: dict) -> dict:
  """Every measurement, filled into `res` as it comes (an interrupted run keeps its rows)."""
  quick = args.quick
  budget = args.budget or (0.01 if quick else 0.3)
  repeats = 5
  info = machine_info()
  sizes = QUICK_SIZES if quick else SIZES + (GPU_SIZES if info["backend"] == "gpu" else [])
  peak_start = matmul_peak_gflops()
  print(f"float32 matmul peak: {peak_start['gflops']:.1f} GFLOP/s", flush=True)
  cpu = info["backend"] == "cpu"
  peers = {"numpy": cpu, "torch": cpu and _installed("torch"),
           "sklearn": cpu and _installed("sklearn"), "thrml": _installed("thrml")}
  if args.peers is not None:
    wanted = {p for p in args.peers.split(",") if p}
    peers = {k: ok and k in wanted for k, ok in peers.items()}
  info["matmul_peak"] = peak_start
  sample_rows, train_rows, batch_rows, target_rows = [], [], [], []
  res.update(machine=info, peers=peers, targets=target_rows, sampling=sample_rows,
             training=train_rows, batch_sweep=batch_rows, memory={})
  # The goals first: on a lent GPU the run may be cut short.
  targets = QUICK_TARGETS if quick else CPU_TARGETS if cpu else GPU_TARGETS
  head_to_head(targets, budget, 5 if quick else TARGET_ROUNDS, peers["numpy"], target_rows)

  def record(rows, kind, lib, variant, n, m, batch, fn):
    try:
      r = fn()
    except Exception as err:  # noqa: BLE001 (a peer failing is a result, not a crash)
      r = {"error": f"{type(err).__name__}: {err}"[:300]}
    row = {"kind": kind, "lib": lib, "variant": variant, "n": n, "m": m, "batch": batch, **r}
    rows.append(row)
    rate = f"{r['rate']:.1f}" if "rate" in r else r["error"]
    extra = f" compile {r['compile_s']:.2f} s" if r.get("compile_s") is not None else ""
    print(f"{kind:8s} ({n},{m},{batch}) {lib:9s} {variant:10s} {rate}{extra}", flush=True)

  def sample_core(rows, n, m, batch, b):
    """aerbm_jax's float32 sampler and the numpy and PyTorch ones at one size."""
    record(rows, "sample", "aerbm_jax", "float32", n, m, batch,
           lambda: sample_jax(n, m, batch, b, repeats))
    if peers["numpy"]:
      record(rows, "sample", "numpy", "pcg64", n, m, batch,
             lambda: sample_numpy(n, m, batch, b, repeats))
    if peers["torch"]:
      record(rows, "sample", "torch", "cpu", n, m, batch,
             lambda: sample_torch(n, m, batch, b, repeats))

  for n, m, batch in sizes:
    big = n * m * batch > 5e8
    b = budget * (3 if big else 1)
    sample_core(sample_rows, n, m, batch, b)
    record(sample_rows, "sample", "aerbm_jax", "bfloat16", n, m, batch,
           lambda: sample_jax(n, m, batch, b, repeats, precision="bfloat16"))
    if args.prng_sweep:  # the PRNG and uniform resolution behind the per-backend default
      for impl in ("threefry2x32", "rbg", "unsafe_rbg"):
        for bits in (16, 32):
          record(sample_rows, "sample", "aerbm_jax", f"{impl[:9]}/{bits}b", n, m, batch,
                 lambda: sample_jax(n, m, batch, b, repeats, impl=impl, bits=bits))
      if not cpu:  # JAX's CUDA kernel for threefry instead of the fused hash
        record(sample_rows, "sample", "aerbm_jax", "threefry/kernel", n, m, batch,
               lambda: sample_jax(n, m, batch, b, repeats, threefry_kernel=True))
    if peers["sklearn"] and not (big and n > 10_000):
      record(sample_rows, "sample", "sklearn", "gibbs", n, m, batch,
             lambda: sample_sklearn(n, m, batch, b, repeats))
    if peers["thrml"] and n * m <= THRML_MAX_EDGES:
      record(sample_rows, "sample", "thrml", "ising", n, m, batch,
             lambda: sample_thrml(n, m, batch, b, repeats))
    n_batches = 16  # an epoch also computes its curve point: amortised as in real epochs
    for method in ("cd", "pcd"):
      record(train_rows, method, "aerbm_jax", "float32", n, m, batch,
             lambda: train_jax(n, m, batch, method, b, repeats, n_batches))
      if peers["numpy"]:
        record(train_rows, method, "numpy", "-", n, m, batch,
               lambda: train_numpy(n, m, batch, method, b, repeats, n_batches))
      if peers["torch"]:
        record(train_rows, method, "torch", "cpu", n, m, batch,
               lambda: train_torch(n, m, batch, method, b, repeats, n_batches))
    if peers["sklearn"] and n < 10_000:
      record(train_rows, "pcd", "sklearn", "partial_fit", n, m, batch,
             lambda: train_sklearn(n, m, batch, "pcd", b, repeats, n_batches))

  # Throughput against batch size.
  bn, bm = (64, 32) if quick else (784, 500)
  for batch in QUICK_BATCHES if quick else BATCHES:
    sample_core(batch_rows, bn, bm, batch, budget)

  # The roofline is the best rate the machine showed: measured again at the end, because a
  # busy moment at the start once gave 80 GFLOP/s on a machine that reaches 150.
  peak_end = matmul_peak_gflops()
  print(f"float32 matmul peak at the end: {peak_end['gflops']:.1f} GFLOP/s", flush=True)
  info["matmul_peak"] = {**max(peak_start, peak_end, key=lambda r: r["gflops"]),
                         "gflops_start": peak_start["gflops"], "gflops_end": peak_end["gflops"]}
  memory = res["memory"]
  memory.update(_process_memory())
  memory["largest_rbm_on_80gb"] = largest_on_gpu(step=16384 if quick else 256)
  if args.scaling:
    res["scaling"] = scaling(quick)
  return res


def _process_memory() -> dict:
  """Peak resident memory of this process and, on GPU, the device's peak bytes in use."""
  memory = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
  stats = jax.devices()[0].memory_stats()
  if stats:
    memory["device_peak_bytes"] = stats.get("peak_bytes_in_use")
  return memory


# ---------------------------------------------------------------------------- scaling


SCALING_SIZE = (784, 500, 4096)
QUICK_SCALING_SIZE = (64, 32, 64)


def scaling_worker(quick: bool) -> None:
  n, m, chains = QUICK_SCALING_SIZE if quick else SCALING_SIZE
  mesh = parallel.make_mesh()
  r = sample_jax(n, m, chains, 0.01 if quick else 0.5, 5, mesh=mesh)
  print(json.dumps({"devices": jax.device_count(), "n": n, "m": m, "chains": chains, **r}))


def scaling(quick: bool) -> list[dict]:
  """Sweeps/s at 1, 2, 4, 8 devices for a fixed total of chains, one process per count."""
  rows = []
  counts = [1, 2, 4, 8] if jax.default_backend() == "cpu" else [jax.device_count()]
  for k in counts:
    env = dict(os.environ)
    if jax.default_backend() == "cpu":
      env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} " \
                         f"--xla_force_host_platform_device_count={k}".strip()
    cmd = [sys.executable, __file__, "--scaling-worker"] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
      rows.append({"devices": k, "error": proc.stderr[-300:]})
    else:
      rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"scaling {k} devices: {rows[-1].get('rate', rows[-1].get('error'))}", flush=True)
  return rows


# ---------------------------------------------------------------------------- reports


def _fmt_rate(r: dict) -> str:
  return f"{r['rate']:,.1f}" if "rate" in r else f"error: {r['error'][:60]}"


def markdown(res: dict, plot: str | None) -> str:
  info = res["machine"]
  peak = info["matmul_peak"]["gflops"]
  v = info["versions"]
  lines = [
    f"# RBM throughput: {info['device']} ({info['backend']}, {info['cores']} cores, "
    f"{info['cpu']})",
    "",
    "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".",
    f"Measured float32 matmul peak ({info['matmul_peak']['size']}^3, default precision"
    f"{', TF32' if info['matmul_peak']['tf32'] else ''}): {peak:,.1f} GFLOP/s"
    + (", the higher of two measurements, at the start "
       f"({info['matmul_peak']['gflops_start']:,.1f}) and the end "
       f"({info['matmul_peak']['gflops_end']:,.1f}) of the run"
       if "gflops_end" in info["matmul_peak"] else "") + ". "
    "Rates are medians of 5 timed calls after a warm-up [min-max]; compile time excluded "
    "and shown apart. FLOPs per sweep = 4 batch n m.",
  ]
  if res.get("interrupted"):
    lines += ["", "**This run was interrupted: the tables hold the rows measured before it "
                  "stopped.**"]
  if res.get("targets"):
    lines += [
      "", "## Goals, timed back to back",
      "",
      "aerbm_jax's float32 sampler and the reference, alternately, over "
      f"{res['targets'][0]['rounds']} rounds: the ratio's median [min-max]. Against numpy, the "
      "ratio of sweeps/s; against the matmul, the sampler's FLOP/s as a fraction of the float32 "
      "matmul's"
      f"{' (TF32)' if info['matmul_peak']['tf32'] else ''}.",
      "",
      "| n, m, batch | against | goal | measured | [min-max] | met | sampler compile s |",
      "|---|---|---|---|---|---|---|",
    ]
    for t in res["targets"]:
      pct = t["against"] == "matmul"
      fmt = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.2f}x")
      goal = "-" if t["target"] is None else (">= " + fmt(t["target"]))
      met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
      against = "matmul" if pct else "numpy sampler"
      lines.append(f"| {t['n']}, {t['m']}, {t['batch']} | {against} | {goal} | {fmt(t['ratio'])} | "
                   f"{fmt(t['min'])}-{fmt(t['max'])} | {met} | {t['compile_s']:.2f} |")
  lines += [
    "",
    "## Block Gibbs sampling",
    "",
    "| n, m, batch | library | variant | sweeps/s | [min-max] | unit updates/s | "
    "% of matmul peak | vs fastest peer | compile s | XLA memory MB |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for group in _groups(res["sampling"]):
    best = _best_peer(group)
    for r in group:
      head = f"| {r['n']}, {r['m']}, {r['batch']} | {r['lib']} | {r['variant']} |"
      if "rate" not in r:
        lines.append(f"{head} {_fmt_rate(r)} | | | | | | |")
        continue
      units = r["rate"] * r["batch"] * (r["n"] + r["m"])
      gf = r["rate"] * 4 * r["batch"] * r["n"] * r["m"] / 1e9
      lines.append(f"{head} {r['rate']:,.1f} | {r['min']:,.0f}-{r['max']:,.0f} | {units:.3g} | "
                   f"{100 * gf / peak:.1f} | {_tail(r, best)}")
  lines += ["", "## Training: minibatch updates/s (one CD-1 or PCD-1 step with momentum SGD)", "",
            "Epochs of 16 minibatches. aerbm_jax's compiled calls hold up to 256 updates (fewer "
            "where that would exceed the time budget), as `train.fit` makes them, and each epoch "
            "also computes its reconstruction-error curve point; the peers update in a Python "
            "loop.", "",
            "| n, m, batch | method | library | updates/s | [min-max] | vs fastest peer | "
            "compile s | XLA memory MB |", "|---|---|---|---|---|---|---|---|"]
  for group in _groups(res["training"], by_kind=True):
    best = _best_peer(group)
    for r in group:
      head = f"| {r['n']}, {r['m']}, {r['batch']} | {r['kind']} | {r['lib']} |"
      if "rate" not in r:
        lines.append(f"{head} {_fmt_rate(r)} | | | | |")
        continue
      lines.append(f"{head} {r['rate']:,.1f} | {r['min']:,.0f}-{r['max']:,.0f} | "
                   f"{_tail(r, best)}")
  mem = res["memory"]
  lines += ["", "## Memory", "",
            f"Peak resident memory of the whole benchmark process: "
            f"{mem['peak_rss_bytes'] / 1e9:.2f} GB."]
  if mem.get("device_peak_bytes"):
    lines.append(f"Device peak bytes in use: {mem['device_peak_bytes'] / 1e9:.2f} GB.")
  big = mem.get("largest_rbm_on_80gb")
  if big and big.get("largest_square_units"):
    lines.append(
      f"The largest square RBM whose compiled CD-1 epoch ({big.get('n_batches', 1)} minibatches "
      f"of {big['batch']}, momentum SGD) "
      f"XLA plans within 80 GB has {big['largest_square_units']:,} visible and "
      f"{big['largest_square_units']:,} hidden units (to the nearest {big['step']}): "
      f"{big['plan_bytes'] / 1e9:.1f} GB, {big['bytes_per_weight']:.1f} bytes per weight "
      f"(parameters, momentum, gradient and XLA's temporaries). The programs were compiled "
      f"from shapes alone on this backend ({res['machine']['backend']}), not run.")
  if res.get("scaling"):
    lines += ["", "## Scaling over devices (fixed total of chains)", "",
              "| devices | n, m, chains | sweeps/s | [min-max] | speed-up |",
              "|---|---|---|---|---|"]
    base = next((r["rate"] for r in res["scaling"] if "rate" in r), None)
    for r in res["scaling"]:
      if "rate" in r:
        lines.append(f"| {r['devices']} | {r['n']}, {r['m']}, {r['chains']} | {r['rate']:,.1f} | "
                     f"{r['min']:,.0f}-{r['max']:,.0f} | {r['rate'] / base:.2f}x |")
      else:
        lines.append(f"| {r['devices']} | error: {r['error'][:80]} | | | |")
  if plot:
    lines += ["", "## Throughput against batch size", "", f"![samples/s against batch]({plot})"]
  return "\n".join(lines) + "\n"


def _best_peer(group: list[dict]) -> float | None:
  peers = [r["rate"] for r in group if r["lib"] != "aerbm_jax" and "rate" in r]
  return max(peers) if peers else None


def _tail(r: dict, best: float | None) -> str:
  """The last cells of a row: ratio to the fastest peer, compile seconds, XLA memory."""
  ratio = f"{r['rate'] / best:.2f}x" if best else "-"
  comp = f"{r['compile_s']:.2f}" if "compile_s" in r else "-"
  mem = f"{r['memory_bytes'] / 1e6:.1f}" if r.get("memory_bytes") else "-"
  return f"{ratio} | {comp} | {mem} |"


def _groups(rows: list[dict], by_kind: bool = False) -> list[list[dict]]:
  keys: dict = {}
  for r in rows:
    keys.setdefault((r["n"], r["m"], r["batch"]) + ((r["kind"],) if by_kind else ()), []).append(r)
  return list(keys.values())


def batch_plot(rows: list[dict], path: Path) -> str | None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  ok = [r for r in rows if "rate" in r]
  if not ok:
    return None
  fig, ax = plt.subplots(figsize=(6, 4))
  for lib in dict.fromkeys(r["lib"] for r in ok):
    pts = sorted((r["batch"], r["rate"] * r["batch"]) for r in ok if r["lib"] == lib)
    ax.plot(*zip(*pts), marker="o", label=lib)
  ax.set(xscale="log", yscale="log", xlabel="batch (chains)", ylabel="samples/s (sweeps x batch)",
         title=f"Block Gibbs at n={ok[0]['n']}, m={ok[0]['m']}")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path.name


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--quick", action="store_true", help="tiny sizes: under a minute")
  ap.add_argument("--scaling", action="store_true", help="also 1/2/4/8-device scaling")
  ap.add_argument("--peers", default=None,
                  help="comma-separated peers to run (numpy,torch,sklearn,thrml); default: all "
                       "installed; '' for aerbm_jax alone")
  ap.add_argument("--prng-sweep", action="store_true",
                  help="also time every PRNG (threefry, rbg, unsafe_rbg) x 16/32-bit uniforms")
  ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
  ap.add_argument("--tag", default=None, help="file name (default: backend and cores)")
  ap.add_argument("--budget", type=float, default=None, help="seconds per timed call")
  ap.add_argument("--scaling-worker", action="store_true", help=argparse.SUPPRESS)
  args = ap.parse_args()
  if args.scaling_worker:
    scaling_worker(args.quick)
    return
  res: dict = {}
  # A timeout's SIGTERM ends the run like Ctrl-C: the rows measured so far are still written.
  signal.signal(signal.SIGTERM, signal.default_int_handler)
  try:
    run_all(args, res)
  except KeyboardInterrupt:
    if "machine" not in res:
      raise
    print("interrupted: writing the rows measured so far", flush=True)
    res["interrupted"] = True
    res["memory"].update(_process_memory())
  info = res["machine"]
  tag = args.tag or f"throughput-{info['backend']}-{info['cores']}core"
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  plot = batch_plot(res["batch_sweep"], out / f"{tag}-batch.png")
  (out / f"{tag}.json").write_text(json.dumps(res, indent=1))
  (out / f"{tag}.md").write_text(markdown(res, plot))
  print(f"wrote {out / tag}.json and .md")


if __name__ == "__main__":
  main()

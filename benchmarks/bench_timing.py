"""Benchmark plumbing: machine facts, the matmul roofline, timing helpers, XLA memory plans."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

# Seconds of idle before each timed call of `paired`: numpy's OpenBLAS threads spin after a
# product, and 0.2 s of idle removed most of their effect on the next call here.
PAUSE_S = 0.25


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
  for lib in ("jax", "jaxlib", "numpy", "torch", "scikit-learn", "thrml", "rbms", "learnergy"):
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


def paired(call_a, units_a: float, call_b, units_b: float, rounds: int,
           pause_s: float = PAUSE_S) -> dict:
  """Median, min and max over `rounds` of rate(a) / rate(b), the two timed back to back.

  The order alternates (a b, b a, ...) after a warm-up. This machine's speed drifts by up to
  2x within one run; rates timed minutes apart carry that drift into their ratio, while a
  ratio of neighbouring calls mostly cancels it. Every timed call starts `pause_s` after the
  one before (or as long as that call took, if shorter: quick runs stay quick): a BLAS keeps
  its threads spinning for a while after a call (numpy's OpenBLAS does), and on two cores they
  take a core from whatever runs next, which a user who does not alternate the two never sees
  (results/small-batch-alternatives-cpu-2core-xeon.md).
  """
  t0 = time.perf_counter()
  call_a(), call_b()
  last = (time.perf_counter() - t0) / 2
  ratios = []
  for i in range(rounds):
    rate = {}
    for name, call, units in (("a", call_a, units_a), ("b", call_b, units_b))[::1 - 2 * (i % 2)]:
      time.sleep(min(pause_s, last))
      t0 = time.perf_counter()
      call()
      last = time.perf_counter() - t0
      rate[name] = units / last
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


def memory_bytes(compiled) -> int | None:
  try:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)
  except Exception:  # noqa: BLE001 (not every backend reports it)
    return None


def train_data(n, batch, n_batches, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((batch * n_batches, n)) < 0.3).astype(np.float32)


def write_results(out_dir: str, tag: str, out: dict, md: str) -> None:
  """Write `<out_dir>/<tag>.json` and `<tag>.md`, and print the markdown."""
  Path(out_dir).mkdir(parents=True, exist_ok=True)
  (Path(out_dir) / f"{tag}.json").write_text(json.dumps(out, indent=1, default=float))
  (Path(out_dir) / f"{tag}.md").write_text(md)
  print(md)

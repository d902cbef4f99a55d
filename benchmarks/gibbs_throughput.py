"""Block Gibbs sampling throughput: sweeps per second, compile time reported separately.

Measures aerbm_jax's sampler for each PRNG implementation (threefry, rbg, unsafe_rbg) and
uniform resolution (16- or 32-bit uniforms), and a plain numpy sampler as a reference, in one
process run. Writes `benchmarks/results/<machine>.json` and `.md`.

  python benchmarks/gibbs_throughput.py [--quick] [--out benchmarks/results] [--tag NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aerbm_jax import rbm, sampling

SIZES = [(128, 64, 1024), (784, 500, 1000), (4096, 1024, 256), (128, 64, 1)]
QUICK_SIZES = [(128, 64, 64), (128, 64, 1)]
VARIANTS = [(impl, bits) for impl in ("threefry2x32", "rbg", "unsafe_rbg") for bits in (16, 32)]


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
  return {
    "cpu": cpu,
    "cores": os.cpu_count(),
    "backend": jax.default_backend(),
    "device": getattr(dev, "device_kind", str(dev)),
    "jax": jax.__version__,
    "numpy": np.__version__,
    "python": platform.python_version(),
  }


def matmul_peak_gflops(repeats: int = 5) -> dict:
  """Measured float32 matmul rate at default precision (TF32 on recent NVIDIA GPUs)."""
  size = 2048 if jax.default_backend() == "cpu" else 8192
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
  mm = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(mm(a, b))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(mm(a, b))
    times.append(time.perf_counter() - t0)
  return {"size": size, "gflops": 2 * size**3 / statistics.median(times) / 1e9,
          "precision": str(jax.config.jax_default_matmul_precision)}


def _median_rate(fn, n_steps: int, repeats: int) -> dict:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  rates = [n_steps / t for t in times]
  return {"sweeps_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
          "repeats": repeats, "steps_per_call": n_steps}


def bench_jax(n, m, batch, impl, bits, budget_s, repeats) -> dict:
  params = rbm.init(jax.random.key(0), n, m, weight_scale=0.05)
  state = sampling.init(params, jnp.zeros((batch, n), jnp.float32))
  key = jax.random.key(1, impl=impl)

  def make(n_steps):
    fn = jax.jit(lambda k, s, p: sampling.run(k, s, p, n_steps, uniform_bits=bits))
    t0 = time.perf_counter()
    compiled = fn.lower(key, state, params).compile()
    return compiled, time.perf_counter() - t0

  probe, compile_s = make(10)
  jax.block_until_ready(probe(key, state, params))
  t0 = time.perf_counter()
  jax.block_until_ready(probe(key, state, params))
  per_step = max((time.perf_counter() - t0) / 10, 1e-7)
  n_steps = int(min(max(budget_s / per_step, 10), 200_000))
  compiled, _ = make(n_steps)
  run = lambda: jax.block_until_ready(compiled(key, state, params))
  run()  # warm-up
  out = _median_rate(run, n_steps, repeats)
  out["compile_s"] = compile_s
  return out


def bench_numpy(n, m, batch, budget_s, repeats) -> dict:
  """Reference: float32 numpy with PCG64 uniforms and in-place sigmoids."""
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

  t0 = time.perf_counter()
  sweeps(5)
  per_step = max((time.perf_counter() - t0) / 5, 1e-7)
  n_steps = int(min(max(budget_s / per_step, 5), 200_000))
  return _median_rate(lambda: sweeps(n_steps), n_steps, repeats)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--quick", action="store_true", help="tiny sizes, seconds in all")
  ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
  ap.add_argument("--tag", default=None, help="file name (default: backend and cores)")
  ap.add_argument("--budget", type=float, default=None, help="seconds per timed call")
  args = ap.parse_args()
  sizes = QUICK_SIZES if args.quick else SIZES
  budget = args.budget or (0.05 if args.quick else 0.4)
  repeats = 3 if args.quick else 5
  info = machine_info()
  info["matmul_peak"] = matmul_peak_gflops()
  print(f"float32 matmul peak: {info['matmul_peak']['gflops']:.1f} GFLOP/s", flush=True)
  rows = []
  for n, m, batch in sizes:
    for impl, bits in VARIANTS:
      r = bench_jax(n, m, batch, impl, bits, budget, repeats)
      rows.append({"lib": "aerbm_jax", "prng": impl, "uniform_bits": bits,
                   "n": n, "m": m, "batch": batch, **r})
      print(f"({n},{m},{batch}) jax {impl:13s} {bits}b: {r['sweeps_per_s']:10.1f} sweeps/s "
            f"(compile {r['compile_s']:.2f}s)", flush=True)
    if info["backend"] == "cpu":
      r = bench_numpy(n, m, batch, budget, repeats)
      rows.append({"lib": "numpy", "prng": "pcg64", "uniform_bits": 32,
                   "n": n, "m": m, "batch": batch, **r})
      print(f"({n},{m},{batch}) numpy: {r['sweeps_per_s']:10.1f} sweeps/s", flush=True)
  tag = args.tag or f"gibbs-{info['backend']}-{info['cores']}core"
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / f"{tag}.json").write_text(json.dumps({"machine": info, "results": rows}, indent=1))
  (out / f"{tag}.md").write_text(markdown_table(info, rows))
  print(markdown_table(info, rows))


def markdown_table(info: dict, rows: list[dict]) -> str:
  lines = [
    f"Block Gibbs sweeps/s (median of {rows[0]['repeats']}, [min-max]); "
    f"{info['device']} ({info['backend']}, {info['cores']} cores), jax {info['jax']}.",
    "FLOPs per sweep = 4*batch*n*m; compile time excluded from throughput.",
    "",
    f"Measured float32 matmul peak ({info['matmul_peak']['size']}^3, precision "
    f"{info['matmul_peak']['precision']}): {info['matmul_peak']['gflops']:.1f} GFLOP/s.",
    "",
    "| n, m, batch | library | PRNG | uniform bits | sweeps/s | min-max | GFLOP/s | % of peak |"
    " compile s |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  peak = info["matmul_peak"]["gflops"]
  for r in rows:
    gflops = r["sweeps_per_s"] * 4 * r["batch"] * r["n"] * r["m"] / 1e9
    comp = f"{r['compile_s']:.2f}" if "compile_s" in r else "-"
    lines.append(
      f"| {r['n']}, {r['m']}, {r['batch']} | {r['lib']} | {r['prng']} | {r['uniform_bits']} | "
      f"{r['sweeps_per_s']:.1f} | {r['min']:.0f}-{r['max']:.0f} | {gflops:.1f} | "
      f"{100 * gflops / peak:.1f} | {comp} |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()

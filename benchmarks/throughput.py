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
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import jax

from aerbm_jax import parallel
from bench_aerbm import jax_sampler, largest_on_gpu, sample_jax, train_jax
from bench_peers import (numpy_sampler, sample_numpy, sample_sklearn, sample_thrml, sample_torch,
                         train_numpy, train_sklearn, train_torch)
from bench_report import batch_plot, markdown
from bench_timing import calls_for, machine_info, matmul_call, matmul_peak_gflops, paired

# Compile times are measured: never load programs from a persistent compilation cache.
jax.config.update("jax_enable_compilation_cache", False)

SIZES = [(128, 64, 1024), (784, 500, 1000), (4096, 1024, 256), (128, 64, 1), (49152, 64, 64)]
QUICK_SIZES = [(64, 32, 64), (64, 32, 1)]
# On a GPU the sizes above are too small to fill the card: two larger ones show what the
# sampler reaches when the matmuls dominate.
GPU_SIZES = [(4096, 1024, 4096), (16384, 4096, 1024)]
BATCHES = [1, 8, 64, 256, 1024, 4096]
QUICK_BATCHES = [1, 8, 64]
THRML_MAX_EDGES = 400_000  # thrml builds a Python edge list: n * m objects
# The performance goals, each timed back to back (`paired`): aerbm_jax's float32 sampler
# against numpy's (ratio of sweeps/s) or against the float32 matmul (fraction of its FLOP/s).
CPU_TARGETS = [((128, 64, 1024), "numpy", 1.5), ((128, 64, 1), "numpy", 1.5),
               ((784, 500, 1000), "numpy", 1.2), ((4096, 1024, 256), "matmul", 0.85)]
GPU_TARGETS = [(size, "matmul", 0.5) for size in [(4096, 1024, 256)] + GPU_SIZES]
QUICK_TARGETS = [((64, 32, 64), "numpy", None), ((64, 32, 64), "matmul", None)]
TARGET_ROUNDS = 7
SCALING_SIZE = (784, 500, 4096)
QUICK_SCALING_SIZE = (64, 32, 64)


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


def _installed(module: str) -> bool:
  try:
    __import__(module)
    return True
  except ImportError:
    return False


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

  # The roofline is the best rate the machine showed: measured again at the end, because this
  # machine's matmul rate drifts within a run (benchmarks/results/ records both).
  peak_end = matmul_peak_gflops()
  print(f"float32 matmul peak at the end: {peak_end['gflops']:.1f} GFLOP/s", flush=True)
  info["matmul_peak"] = {**max(peak_start, peak_end, key=lambda r: r["gflops"]),
                         "gflops_start": peak_start["gflops"], "gflops_end": peak_end["gflops"]}
  memory = res["memory"]
  memory.update(_processmemory_bytes())
  memory["largest_rbm_on_80gb"] = largest_on_gpu(step=65536 if quick else 256)
  if args.scaling:
    res["scaling"] = scaling(quick)
  return res


def _processmemory_bytes() -> dict:
  """Peak resident memory of this process and, on GPU, the device's peak bytes in use."""
  memory = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
  stats = jax.devices()[0].memory_stats()
  if stats:
    memory["device_peak_bytes"] = stats.get("peak_bytes_in_use")
  return memory


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
    res["memory"].update(_processmemory_bytes())
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

"""The largest square RBM whose CD-1 epoch trains on this device, measured: XLA's memory plan
gives the starting size (`bench_aerbm.largest_on_gpu`, with the device's own memory), then a
real epoch is compiled and run there; on an out-of-memory error the size shrinks by 10% and
tries again. Writes JSON: every size tried, the one that trained, its epoch time.

  python benchmarks/largest_rbm.py [--out FILE] [--max-units N] [--batch 256]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp

import bench_aerbm
from aerbm_jax import epochs, rbm


def device_bytes() -> float:
  """The device's memory limit (bytes), or bench_aerbm.GPU_MEMORY where it does not say."""
  stats = jax.devices()[0].memory_stats() or {}
  return float(stats.get("bytes_limit", bench_aerbm.GPU_MEMORY))


def try_epoch(units: int, batch: int, n_batches: int) -> dict:
  """Compile and run one CD-1 epoch of a units x units RBM; raises on out-of-memory."""
  cfg = bench_aerbm.epoch_config("cd", batch)
  x = jax.random.bernoulli(jax.random.key(0), 0.5, (batch * n_batches, units)).astype(jnp.float32)
  params = rbm.init(jax.random.key(1), units, units, weight_scale=0.01)
  _, state, key = epochs.setup(jax.random.key(2), params, x, cfg)
  t0 = time.perf_counter()
  compiled = epochs.epochs.lower(key, 0, state, x, None, cfg, 1, False).compile()
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax.block_until_ready(compiled(key, 0, state, x, None).state)
  return {"units": units, "compile_s": compile_s, "epoch_s": time.perf_counter() - t0,
          "weights": units * units}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", default=None)
  ap.add_argument("--max-units", type=int, default=0, help="cap on the size tried (0: none)")
  ap.add_argument("--batch", type=int, default=256)
  ap.add_argument("--n-batches", type=int, default=4)
  args = ap.parse_args()
  bench_aerbm.GPU_MEMORY = device_bytes()
  plan = bench_aerbm.largest_on_gpu(batch=args.batch, n_batches=args.n_batches)
  units = plan["largest_square_units"] or 256
  if args.max_units:
    units = min(units, args.max_units)
  tried, trained = [], None
  while units >= 256 and trained is None:
    try:
      trained = try_epoch(units, args.batch, args.n_batches)
    except Exception as err:  # XLA raises its own error types for RESOURCE_EXHAUSTED
      tried.append({"units": units, "error": str(err).splitlines()[0][:200]})
      units = int(units * 0.9) // 256 * 256
  out = {"device": str(jax.devices()[0]), "memory_bytes": bench_aerbm.GPU_MEMORY,
         "planned": plan, "failed": tried, "trained": trained}
  print(json.dumps(out, indent=1))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()

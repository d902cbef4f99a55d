"""What bounds the MNIST PCD-1 epoch of `tasks.py` (500 hidden units, batch 100): the library's
compiled epoch against the same epoch with its divergence guard compiled out, and against
the epoch's matmuls alone.

Three executables, each compiled on its own and timed one epoch at a time in alternating
order over `--rounds` rounds, with the float32 matmul peak measured before and after:
- `library`: `epochs.epochs` as `bench_mnist.aerbm` runs it (centred PCD-1, lr 0.3 falling
  linearly, no momentum), each update guarded by `optim.guarded_sgd`;
- `unguarded`: the same compile with `guarded_sgd(check=False)`: every step applied, without
  the check (for W, the gradient bound's reductions over the update's rows and the scalar
  test; for the biases, a pass over the new values);
- `matmuls`: a scan over the same minibatches doing only the update's products, at their
  shapes and in their order (`v W` of the data, the chains' `h W^T` and `v W`, and the
  gradient's `(2 batch) x 784 x 500` product), with the smallest glue that keeps them live.
GFLOP/s count `bench_mnist.pcd1_flops` for every variant, so `matmuls` is the epoch's
ceiling on this machine and `library / matmuls` what the rest of the update costs.

  python benchmarks/epoch_bound.py [--mnist PATH] [--rounds 7] [--n-train 0] [--tag NAME]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial
from pathlib import Path
from unittest.mock import patch

import jax
import jax.numpy as jnp

import bench_mnist
from aerbm_jax import epochs, optim, rbm
from aerbm_jax.rng import permutation
from bench_timing import machine_info, matmul_peak_gflops, write_results

VARIANTS = ("library", "unguarded", "matmuls")


def epoch_call(variant: str, data: jax.Array, n_epochs: int):
  """`call(epoch)` runs one epoch of `variant` on `data` and returns its parameters' W."""
  cfg = bench_mnist.train_config(n_epochs)
  params = rbm.init(jax.random.key(0), data.shape[1], bench_mnist.N_HIDDEN, data=data)
  _, state, key = epochs.setup(jax.random.key(1), params, data, cfg)
  if variant == "matmuls":
    compiled = jax.jit(_matmuls_epoch).lower(key, params.W, data).compile()
    box = {"w": params.W}

    def call(e: int) -> jax.Array:
      box["w"] = jax.block_until_ready(compiled(jax.random.fold_in(key, e), box["w"], data))
      return box["w"]

    return call
  sgd = partial(optim.guarded_sgd, check=variant != "unguarded")
  jax.clear_caches()  # the jit cache is keyed by function, not by the patched optimizer
  with patch.object(optim, "guarded_sgd", sgd):
    compiled = epochs.epochs.lower(key, 0, state, data, None, cfg, 1, False).compile()
  jax.clear_caches()
  box = {"state": state}

  def call(e: int) -> jax.Array:
    box["state"] = compiled(key, e, box["state"], data, None).state
    return jax.block_until_ready(box["state"].params.W)

  call.compiled = compiled
  return call


def _matmuls_epoch(key: jax.Array, w: jax.Array, data: jax.Array) -> jax.Array:
  """The PCD-1 update's products over one epoch of minibatches, nothing else of the update."""
  batch = bench_mnist.BATCH
  n_batches = data.shape[0] // batch
  rows = permutation(key, data.shape[0])[: n_batches * batch].reshape(n_batches, batch)

  def update(carry, r):
    w, h_chain = carry
    v = data[r]
    h_data = v @ w
    v_model = (h_chain @ w.T > 0).astype(w.dtype)
    h_model = v_model @ w
    g = jnp.concatenate([v, v_model]).T @ jnp.concatenate([h_data, -h_model])
    return (w - 1e-9 * g, jax.nn.sigmoid(h_model)), None

  h0 = jnp.full((batch, w.shape[1]), 0.5, w.dtype)
  return jax.lax.scan(update, (w, h0), rows)[0][0]


def measure(data: jax.Array, rounds: int) -> dict:
  """Seconds per epoch of every variant, alternating (the order reversed every other round)."""
  calls = {v: epoch_call(v, data, rounds + 1) for v in VARIANTS}
  for call in calls.values():  # one warm-up epoch each
    call(0)
  times = {v: [] for v in VARIANTS}
  for r in range(rounds):
    for v in VARIANTS[:: 1 - 2 * (r % 2)]:
      t0 = time.perf_counter()
      calls[v](r + 1)
      times[v].append(time.perf_counter() - t0)
  return {v: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "epoch_s": t}
          for v, t in times.items()}


def markdown(out: dict) -> str:
  m, peak = out["machine"], out["peak_gflops"]
  lines = [f"# What bounds the MNIST PCD-1 epoch: {m['backend']} ({m['cores']} cores, {m['cpu']})",
           "", f"jax {m['versions']['jax']}; {out['n_train']} training digits, "
           f"{out['updates']} updates of batch {bench_mnist.BATCH} an epoch, 784 x "
           f"{bench_mnist.N_HIDDEN}; {out['rounds']} alternating rounds; float32 matmul peak "
           f"{peak:.1f} GFLOP/s (the higher of the two measurements, before and after). "
           f"`python benchmarks/epoch_bound.py`.", "",
           "| variant | s/epoch, median [min-max] | GFLOP/s | % of peak | vs library |",
           "|---|---|---|---|---|"]
  lib = out["variants"]["library"]["median_s"]
  for name, r in out["variants"].items():
    gf = out["flops_per_epoch"] / r["median_s"] / 1e9
    lines.append(f"| {name} | {r['median_s']:.3f} [{r['min_s']:.3f}-{r['max_s']:.3f}] | "
                 f"{gf:.1f} | {100 * gf / peak:.0f}% | {lib / r['median_s']:.2f}x |")
  return "\n".join(lines) + "\n"


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  bench_mnist.add_data_args(ap)
  ap.add_argument("--rounds", type=int, default=7)
  ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
  ap.add_argument("--tag", default=None)
  args = ap.parse_args()
  x, _ = bench_mnist.load(args.mnist, n_train=args.n_train, n_test=1)
  data = jnp.asarray(x)
  peak = matmul_peak_gflops()["gflops"]
  variants = measure(data, args.rounds)
  peak = max(peak, matmul_peak_gflops()["gflops"])
  updates = len(x) // bench_mnist.BATCH
  out = {"machine": machine_info(), "peak_gflops": peak, "n_train": len(x), "updates": updates,
         "rounds": args.rounds, "variants": variants,
         "flops_per_epoch": bench_mnist.pcd1_flops(784, bench_mnist.N_HIDDEN, bench_mnist.BATCH)
         * updates}
  tag = args.tag or f"epoch-bound-{out['machine']['backend']}-{out['machine']['cores']}core"
  write_results(args.out, tag, out, markdown(out))


if __name__ == "__main__":
  main()

"""Time to a log Z: forward and reverse AIS on an MNIST RBM (784 x 500) at the paper's schedule.

The model is `bench_mnist`'s (centred PCD-1, batch 100) after `--epochs` epochs on thresholded
MNIST; forward AIS from the training digits' base rate and reverse AIS from `--chains` training
digits (1,000 sweeps of burn-in), each called `--calls` times with a new key: the first call
compiles, the later ones are the estimator's own time. To time an earlier version of the
library, run this script with `PYTHONPATH` at a checkout of it.

  python benchmarks/ais_time.py [--mnist PATH] [--betas 14500] [--chains 100] [--epochs 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import bench_mnist
from aerbm_jax import ais, rbm
from bench_timing import machine_info, write_results


def measure(x: jax.Array, params: rbm.BernoulliRBM, n_betas: int, n_chains: int,
            calls: int) -> dict:
  """Seconds and estimates of every call of each direction, forward and reverse alternating."""
  base = ais.base_rate_bias(x)
  runs = {
    "forward": lambda k: ais.ais_log_partition(k, params, n_chains=n_chains, n_betas=n_betas,
                                               base=base),
    "reverse": lambda k: ais.reverse_ais_log_partition(k, params, x, n_chains=n_chains,
                                                       n_betas=n_betas, base=base),
  }
  out = {name: {"seconds": [], "log_z": [], "ess": []} for name in runs}
  for i in range(calls):
    for name, run in runs.items():
      t0 = time.perf_counter()
      res = run(jax.random.key(i))
      log_z = float(res.log_z)  # waits for the result
      out[name]["seconds"].append(time.perf_counter() - t0)
      out[name]["log_z"].append(log_z)
      out[name]["ess"].append(float(res.ess))
  return out


def markdown(out: dict) -> str:
  m = out["machine"]
  lines = [f"# AIS time: {m['backend']} ({m['cores']} cores, {m['cpu']})", "",
           f"jax {m['versions']['jax']}; 784 x {bench_mnist.N_HIDDEN} RBM after "
           f"{out['epochs']} epochs of `bench_mnist`'s training; {out['chains']} chains x "
           f"{out['betas']} betas. `python benchmarks/ais_time.py`.", "",
           "| direction | first call s | later calls s, median [min-max] | log Z of each call | "
           "ESS of each call |", "|---|---|---|---|---|"]
  for name, r in out["runs"].items():
    later = r["seconds"][1:] or r["seconds"]
    lines.append(f"| {name} | {r['seconds'][0]:.2f} | {statistics.median(later):.2f} "
                 f"[{min(later):.2f}-{max(later):.2f}] | "
                 + ", ".join(f"{z:.3f}" for z in r["log_z"]) + " | "
                 + ", ".join(f"{e:.1f}" for e in r["ess"]) + " |")
  return "\n".join(lines) + "\n"


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  bench_mnist.add_data_args(ap)
  ap.add_argument("--epochs", type=int, default=2)
  ap.add_argument("--betas", type=int, default=14_500)
  ap.add_argument("--chains", type=int, default=100)
  ap.add_argument("--calls", type=int, default=3)
  ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
  ap.add_argument("--tag", default=None)
  args = ap.parse_args()
  x_np, _ = bench_mnist.load(args.mnist, n_train=args.n_train, n_test=1)
  *_, (_, params) = bench_mnist.aerbm(x_np, args.epochs)  # bench_mnist's training, epoch by epoch
  x = jnp.asarray(x_np)
  out = {"machine": machine_info(), "epochs": args.epochs, "betas": args.betas,
         "chains": args.chains, "runs": measure(x, params, args.betas, args.chains, args.calls)}
  tag = args.tag or f"ais-time-{out['machine']['backend']}-{out['machine']['cores']}core"
  write_results(args.out, tag, out, markdown(out))


if __name__ == "__main__":
  main()

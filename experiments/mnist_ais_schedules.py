"""Score one finished row of an MNIST table run again, with longer AIS schedules and reverse AIS
with and without burn-in: how far the default schedule's figures are from converged ones.

  python experiments/mnist_ais_schedules.py RUN_DIR [--row big-threshold] [--data PATH]

RUN_DIR is an `aerbm experiment mnist` run directory; the row's trained RBM is read back from
its training checkpoint. Writes RUN_DIR/ais_schedules-ROW.json and prints each estimate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np

from aerbm_jax import ais, likelihoods, rbm, train
from aerbm_jax.data import mnist
from aerbm_jax.runs import read_config
from aerbm_jax.configs import MNISTConfig


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("run_dir")
  ap.add_argument("--row", default="big-threshold")
  ap.add_argument("--data", default=None, help="the MNIST the run used (default: its config's)")
  ap.add_argument("--chains", type=int, default=100)
  args = ap.parse_args()
  run_dir = Path(args.run_dir)
  config = read_config(run_dir, MNISTConfig)
  rows = likelihoods.rows_of(config)
  index = next(i for i, r in enumerate(rows) if r["name"] == args.row)
  row = rows[index]
  x_train, x_test, _ = mnist.load_mnist(args.data or config.data, row["binarisation"],
                                        config.seed)
  x_train, x_test = x_train[: config.n_train or None], x_test[: config.n_test or None]
  # The row's keys and settings, as `likelihoods` made them: a finished checkpoint returns at once.
  key_init, key_fit, _ = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), index),
                                          3)
  cfg = dataclasses.replace(config.train_config(row["epochs"], row["centered"], row["k"]),
                            method=row["method"])
  params, _ = train.fit(key_fit, rbm.init(key_init, 784, row["hidden"], data=x_train), x_train,
                        cfg, checkpoint_dir=run_dir / "checkpoints" / "train" / row["name"])
  mean_neg_f = float(np.mean(-rbm.free_energy(params, x_test)))
  base = ais.base_rate_bias(x_train)
  n = args.chains
  runs = {
    "forward 14,500": lambda k: ais.ais_log_partition(k, params, n_chains=n, base=base),
    "reverse 14,500, no burn-in": lambda k: ais.reverse_ais_log_partition(
      k, params, x_train, n_chains=n, base=base, burn_in=0),
    "reverse 14,500, 1,000 sweeps of burn-in": lambda k: ais.reverse_ais_log_partition(
      k, params, x_train, n_chains=n, base=base),
    "forward 100,000": lambda k: ais.ais_log_partition(k, params, n_chains=n, n_betas=100_000,
                                                       base=base),
    "reverse 100,000, 1,000 sweeps of burn-in": lambda k: ais.reverse_ais_log_partition(
      k, params, x_train, n_chains=n, n_betas=100_000, base=base),
  }
  out = {}
  for name, fn in runs.items():
    t0 = time.perf_counter()
    res = fn(jax.random.key(1))
    out[name] = {"test_log_likelihood": mean_neg_f - float(res.log_z),
                 "lower": mean_neg_f - float(res.log_z_upper),
                 "upper": mean_neg_f - float(res.log_z_lower), "ess": float(res.ess),
                 "chains": n, "seconds": time.perf_counter() - t0}
    print(f"{name}: {out[name]}", flush=True)
  (run_dir / f"ais_schedules-{args.row}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()

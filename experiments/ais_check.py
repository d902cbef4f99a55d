"""Reproduce a published-style check: AIS against the exact log-likelihood of a CD-1 RBM.

Salakhutdinov & Murray (2008) train Bernoulli RBMs on binarised MNIST with CD-1 and estimate
their log-likelihood with AIS; a model with 25 hidden units is small enough to enumerate, so
the estimate can be checked against the truth. Offline, the data are scikit-learn's digits
upsampled to 28x28 and thresholded at 0.5; with `--source tfds` the script reads tfds MNIST.

  python experiments/ais_check.py [--source digits|tfds] [--epochs 20] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from aerbm_jax import data, partition, rbm, train


def binarised(source: str, n: int | None) -> np.ndarray:
  if source == "tfds":
    x = data.load_tfds("mnist", 28, 1, split="train", n=n or 10_000)
  else:
    x = data.digits(28, 1)
  x = (x.reshape(len(x), -1) > 0.5).astype(np.float32)
  return x[:n] if n else x


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--source", choices=["digits", "tfds"], default="digits")
  ap.add_argument("--n", type=int, default=None, help="images to use (default: all)")
  ap.add_argument("--hidden", type=int, default=25)
  ap.add_argument("--epochs", type=int, default=20)
  ap.add_argument("--ais-chains", type=int, default=100)
  ap.add_argument("--ais-betas", type=int, default=14_500)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default=None, help="write the results as JSON here")
  args = ap.parse_args()

  x = binarised(args.source, args.n)
  key_init, key_fit, key_ais = jax.random.split(jax.random.key(args.seed), 3)
  params = rbm.init(key_init, x.shape[1], args.hidden, data=x)
  config = train.TrainConfig(method="cd", k=1, epochs=args.epochs, batch_size=100,
                             learning_rate=0.05, momentum=0.9, exact_ll=False)
  t0 = time.perf_counter()
  params, hist = train.fit(key_fit, params, x, config)
  t_fit = time.perf_counter() - t0

  t0 = time.perf_counter()
  exact_log_z = float(partition.exact_log_partition(params))
  t_exact = time.perf_counter() - t0
  t0 = time.perf_counter()
  ais = partition.ais_log_partition(key_ais, params, n_chains=args.ais_chains,
                                    n_betas=args.ais_betas, base=partition.base_rate_bias(x))
  t_ais = time.perf_counter() - t0
  mean_neg_f = float(np.mean(-np.asarray(rbm.free_energy(params, x))))
  result = {
    "data": f"{args.source}: {x.shape[0]} binarised 28x28 images",
    "hidden": args.hidden, "epochs": args.epochs, "train": "CD-1, lr 0.05, momentum 0.9",
    "exact_log_z": exact_log_z,
    "ais_log_z": float(ais.log_z), "ais_log_z_interval": [float(ais.log_z_lower),
                                                           float(ais.log_z_upper)],
    "exact_train_log_likelihood": mean_neg_f - exact_log_z,
    "ais_train_log_likelihood": mean_neg_f - float(ais.log_z),
    "ais_error_nats": float(ais.log_z) - exact_log_z,
    "seconds": {"fit": t_fit, "exact": t_exact, "ais": t_ais},
  }
  print(json.dumps(result, indent=1))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()

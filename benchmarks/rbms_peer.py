"""rbms >= 0.6 (PyTorch) trained on MNIST in its own interpreter, for `bench_mnist`'s "rbms 0.6".

rbms 0.6 needs Python >= 3.12, and this project's environment may be older, so `bench_mnist`
runs this script with the Python of an environment that has it (`RBMS_PYTHON`, `make
rbms-venv`). It imports neither JAX nor aerbm_jax. The set-up is the one `bench_mnist.rbms`
gives rbms 0.5: a `BBRBM` with weights `N(0, 0.01^2)`, visible biases at the logit of the
data mean, zero hidden biases; centred PCD-1 (rbms 0.6's `PCD` sampler) on random
minibatches, as its `train` loop does each update; SGD at its default rate 0.01. The clock
runs only while it trains; the parameters after every epoch are written with the epochs'
seconds.

  python rbms_peer.py --data x.npy --epochs 10 --out params.npz [--hidden 500 --batch 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rbms.bernoulli_bernoulli.classes import BBRBM
from rbms.sampler.pcd import PCD


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--data", required=True, help=".npy of (N, n_visible) float32 0/1 rows")
  ap.add_argument("--epochs", type=int, required=True)
  ap.add_argument("--out", required=True, help=".npz: epoch_s, W, b, c per epoch")
  ap.add_argument("--hidden", type=int, default=500)
  ap.add_argument("--batch", type=int, default=100)
  ap.add_argument("--learning-rate", type=float, default=0.01)
  args = ap.parse_args()

  torch.manual_seed(0)
  data = torch.from_numpy(np.load(args.data))
  p = data.mean(0).clamp(1e-4, 1 - 1e-4)
  model = BBRBM(weight_matrix=torch.randn(data.shape[1], args.hidden) * 1e-2,
                vbias=torch.log(p / (1 - p)), hbias=torch.zeros(args.hidden))
  model.init_grad()  # its gradient is written into .grad in place
  sampler = PCD(params=model, chains=model.init_chains(args.batch), num_steps=1)
  opt = torch.optim.SGD(model.parameters(), lr=args.learning_rate, maximize=True)
  weights = torch.ones(args.batch)
  out = {"epoch_s": [], "W": [], "b": [], "c": []}
  with torch.no_grad():
    for _ in range(args.epochs):
      t0 = time.perf_counter()
      for _ in range(len(data) // args.batch):
        v = data[torch.randperm(len(data))[: args.batch]]
        opt.zero_grad(set_to_none=False)
        batch = model.init_chains(num_samples=args.batch, weights=weights, start_v=v)
        chains = sampler.get_conf_grad(batch=v)
        model.compute_gradient(data=batch, chains=chains, centered=True)
        model.pre_grad_update()
        sampler.pre_grad_update()
        opt.step()
        model.post_grad_update()
        sampler.post_grad_update(params=model)
      out["epoch_s"].append(time.perf_counter() - t0)
      out["W"].append(model.weight_matrix.numpy().copy())
      out["b"].append(model.vbias.numpy().copy())
      out["c"].append(model.hbias.numpy().copy())
      print(f"rbms epoch {len(out['epoch_s'])}: {out['epoch_s'][-1]:.2f} s", flush=True)
  np.savez(args.out, **{k: np.asarray(v, np.float32) for k, v in out.items()})


if __name__ == "__main__":
  main()

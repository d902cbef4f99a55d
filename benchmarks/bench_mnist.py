"""MNIST, time to a log-likelihood: 500 hidden units, PCD-1 (CD-1 where a peer has no PCD),
batch 100, on thresholded MNIST, for aerbm_jax and every installed peer.

Each library trains with its own code at its documented defaults for this set-up; the clock
runs only while it trains. At fixed epochs its parameters are copied out and scored by the
same estimator (`partition.log_likelihood_estimate`, forward AIS beside reverse AIS, fixed
key and schedule) on the same test digits, so the curves differ only in the training.

  aerbm_jax  `epochs.epochs`, one compiled call per epoch, centred PCD-1, lr 0.3 falling
             linearly to 0 over the run (`schedule="linear"`), no momentum. Its schedule
             depends on the run's length, so each scored budget is its own run of that many
             epochs, as a user with that budget would train (`PER_BUDGET`); the row
             "aerbm_jax, one run" scores the checkpoints of the longest run instead
             (`aerbm experiment mnist` reproduces the published table at its own lr 0.01)
  sklearn    `BernoulliRBM.partial_fit` per minibatch (PCD-1; its documented lr 0.1)
  rbms       `rbms.training.pcd.fit_batch_pcd` + torch SGD, centred PCD-1, lr 0.01 (its
             default), random minibatches as its `train` draws them (rbms 0.5, the newest
             that installs on Python 3.11)
  rbms 0.6   the same set-up through rbms 0.6's `PCD` sampler, which needs Python >= 3.12:
             `rbms_peer.py` trains it in the interpreter at `RBMS_PYTHON` (`make rbms-venv`),
             when one is set
  learnergy  `learnergy.models.bernoulli.RBM.fit`, CD-1 (it has no PCD), lr 0.1 (its default)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from aerbm_jax import epochs, partition, rbm, train

N_HIDDEN, BATCH = 500, 100
SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"
# The rate that learnt best for 2-5 epochs, and second best for 1, with the schedule over the run
# (`python bench_mnist.py --rates ... --epochs ...`; benchmarks/results/mnist-lr-scan-cpu-2core.md).
LEARNING_RATE = 0.3


def load(path: str, n_train: int = 0, n_test: int = 2000) -> tuple[np.ndarray, np.ndarray]:
  """Thresholded (> 127) MNIST from an .npz with x_train and x_test, as float32 (N, 784)."""
  with np.load(path) as f:
    xtr, xte = f["x_train"], f["x_test"]
  xtr = (xtr.reshape(len(xtr), -1) > 127).astype(np.float32)
  xte = (xte.reshape(len(xte), -1) > 127).astype(np.float32)
  return (xtr[:n_train] if n_train else xtr), xte[:n_test]


def add_data_args(ap) -> None:
  """The scripts' MNIST options on an `argparse` parser: `--mnist PATH` and `--n-train N`."""
  ap.add_argument("--mnist", default=str(SHARED_MNIST), help="an .npz with x_train, x_test")
  ap.add_argument("--n-train", type=int, default=0, help="0: all 60,000")


Trainer = Callable[[np.ndarray, int], Iterator[tuple[float, rbm.BernoulliRBM]]]


def train_config(n_epochs: int, learning_rate: float = LEARNING_RATE) -> train.TrainConfig:
  """aerbm_jax's settings here: centred PCD-1, the rate falling linearly to 0 over the run."""
  return train.TrainConfig(method="pcd", k=1, epochs=n_epochs, batch_size=BATCH,
                           learning_rate=learning_rate, momentum=0.0, schedule="linear",
                           centered=True, exact_ll=False, progress=False)


def aerbm(x: np.ndarray, n_epochs: int,
          learning_rate: float = LEARNING_RATE) -> Iterator[tuple[float, rbm.BernoulliRBM]]:
  """(seconds of one epoch, parameters after it), epoch by epoch; compile time excluded."""
  cfg = train_config(n_epochs, learning_rate)
  data = jnp.asarray(x)
  params = rbm.init(jax.random.key(0), x.shape[1], N_HIDDEN, data=data)
  _, state, key = epochs.setup(jax.random.key(1), params, data, cfg)
  compiled = epochs.epochs.lower(key, 0, state, data, None, cfg, 1, False).compile()
  for e in range(n_epochs):
    t0 = time.perf_counter()
    state = compiled(key, e, state, data, None).state
    jax.block_until_ready(state)
    yield time.perf_counter() - t0, state.params


def sklearn(x: np.ndarray, n_epochs: int) -> Iterator[tuple[float, rbm.BernoulliRBM]]:
  from sklearn.neural_network import BernoulliRBM

  model = BernoulliRBM(n_components=N_HIDDEN, batch_size=BATCH, random_state=0)
  rng = np.random.default_rng(0)
  for _ in range(n_epochs):
    t0 = time.perf_counter()
    order = rng.permutation(len(x))
    for i in range(0, len(x) - BATCH + 1, BATCH):
      model.partial_fit(x[order[i : i + BATCH]])
    yield time.perf_counter() - t0, rbm.BernoulliRBM(
      jnp.asarray(model.components_.T, jnp.float32),
      jnp.asarray(model.intercept_visible_, jnp.float32),
      jnp.asarray(model.intercept_hidden_, jnp.float32))


def rbms(x: np.ndarray, n_epochs: int) -> Iterator[tuple[float, rbm.BernoulliRBM]]:
  import torch
  from rbms.bernoulli_bernoulli.classes import BBRBM
  from rbms.training.pcd import fit_batch_pcd

  torch.manual_seed(0)
  data = torch.from_numpy(x)
  p = data.mean(0).clamp(1e-4, 1 - 1e-4)
  model = BBRBM(weight_matrix=torch.randn(x.shape[1], N_HIDDEN) * 1e-2,
                vbias=torch.log(p / (1 - p)), hbias=torch.zeros(N_HIDDEN))
  for t in model.parameters():  # its trainer fills .grad in place (as rbms' setup does)
    t.grad = torch.zeros_like(t)
  chains = model.init_chains(BATCH)
  opt = torch.optim.SGD(model.parameters(), lr=0.01, maximize=True)
  weights = torch.ones(BATCH, 1)
  with torch.no_grad():
    for _ in range(n_epochs):
      t0 = time.perf_counter()
      for _ in range(len(x) // BATCH):
        idx = torch.randperm(len(data))[:BATCH]
        opt.zero_grad(set_to_none=False)
        chains, _ = fit_batch_pcd((data[idx], weights), chains, model, gibbs_steps=1,
                                  beta=1.0, centered=True)
        opt.step()
      yield time.perf_counter() - t0, rbm.BernoulliRBM(
        jnp.asarray(model.weight_matrix.numpy()), jnp.asarray(model.vbias.numpy()),
        jnp.asarray(model.hbias.numpy()))


def learnergy(x: np.ndarray, n_epochs: int) -> Iterator[tuple[float, rbm.BernoulliRBM]]:
  import torch
  from learnergy.models.bernoulli import RBM
  from torch.utils.data import TensorDataset

  torch.manual_seed(0)
  model = RBM(n_visible=x.shape[1], n_hidden=N_HIDDEN, steps=1)
  data = TensorDataset(torch.from_numpy(x), torch.zeros(len(x)))
  for _ in range(n_epochs):
    t0 = time.perf_counter()
    model.fit(data, batch_size=BATCH, epochs=1)
    yield time.perf_counter() - t0, rbm.BernoulliRBM(
      jnp.asarray(model.W.detach().numpy()), jnp.asarray(model.a.detach().numpy()),
      jnp.asarray(model.b.detach().numpy()))


# The Python of an environment with rbms >= 0.6 (which needs Python >= 3.12), or None.
RBMS_PYTHON = os.environ.get("RBMS_PYTHON") or None


def rbms_06(x: np.ndarray, n_epochs: int) -> Iterator[tuple[float, rbm.BernoulliRBM]]:
  """rbms >= 0.6, trained by `rbms_peer.py` in the interpreter at `RBMS_PYTHON`; its epochs'
  training seconds, as that process timed them, and the parameters after each."""
  with tempfile.TemporaryDirectory() as tmp:
    np.save(Path(tmp) / "x.npy", x)
    proc = subprocess.run(
      [RBMS_PYTHON, str(Path(__file__).with_name("rbms_peer.py")), "--data",
       str(Path(tmp) / "x.npy"), "--epochs", str(n_epochs), "--out", str(Path(tmp) / "p.npz"),
       "--hidden", str(N_HIDDEN), "--batch", str(BATCH)], capture_output=True, text=True)
    if proc.returncode:
      raise RuntimeError(f"rbms_peer.py under {RBMS_PYTHON} failed:\n{proc.stderr[-2000:]}")
    with np.load(Path(tmp) / "p.npz") as f:
      res = {k: f[k] for k in f.files}
  for e in range(n_epochs):
    yield float(res["epoch_s"][e]), rbm.BernoulliRBM(
      jnp.asarray(res["W"][e]), jnp.asarray(res["b"][e]), jnp.asarray(res["c"][e]))


TRAINERS: dict[str, Trainer] = {"aerbm_jax": aerbm, "aerbm_jax, one run": aerbm,
                                "sklearn": sklearn, "rbms": rbms, "rbms 0.6": rbms_06,
                                "learnergy": learnergy}
# Trainers whose schedule depends on the run's length: every scored budget is a fresh run.
# The peers train at a constant learning rate, where a run of e epochs is the first e epochs
# of a longer one, so their checkpoints are their per-budget results.
PER_BUDGET = {"aerbm_jax"}
PEERS = ("sklearn", "rbms", "rbms 0.6", "learnergy")


def available(name: str) -> bool:
  """Whether trainer `name` can run here: its library installed (for "rbms 0.6": an
  interpreter at `RBMS_PYTHON`)."""
  if name == "rbms 0.6":
    return RBMS_PYTHON is not None
  return name not in PEERS or importlib.util.find_spec(name) is not None


def pcd1_flops(n: int, m: int, batch: int) -> float:
  """Multiply-add FLOPs of one centred PCD-1 update in `gradients`: the data's hidden
  probabilities (v W), the chain's half-sweep from the hidden probabilities it kept (h W^T),
  the new chain's hidden probabilities (v W), and the two outer products of the gradient
  fused into one (2 batch) x n x m product."""
  return 2.0 * n * m * batch * 5


def curve(name: str, x: np.ndarray, x_test: np.ndarray, n_epochs: int, score_at: list[int],
          n_chains: int, n_betas: int, budget_s: float = float("inf")) -> dict:
  """Train `name` for `n_epochs`, or until its training time passes `budget_s`; AIS scores
  after the epochs in `score_at` and after the last epoch trained. For a trainer in
  `PER_BUDGET` each scored point is a fresh run of that many epochs instead."""
  points, epoch_s = [], []

  def score(e: int, wall: float, params: rbm.BernoulliRBM) -> None:
    t0 = time.perf_counter()
    ll = partition.log_likelihood_estimate(jax.random.key(7), params, x_test,
                                           n_chains=n_chains, n_betas=n_betas, base_data=x)
    points.append({"epoch": e, "train_s": wall, "log_likelihood": ll.log_likelihood,
                   "reverse_log_likelihood": ll.reverse_log_likelihood, "ess": ll.ess,
                   "warnings": list(ll.warnings), "score_s": time.perf_counter() - t0})
    print(f"  {name} epoch {e}: {wall:.1f} s, LL {ll.log_likelihood:.2f} "
          f"(reverse {ll.reverse_log_likelihood:.2f})", flush=True)

  if name in PER_BUDGET:
    for e in sorted({s for s in score_at if s < n_epochs} | {n_epochs}):
      run = list(TRAINERS[name](x, e))
      epoch_s += [seconds for seconds, _ in run]
      wall = sum(seconds for seconds, _ in run)
      score(e, wall, run[-1][1])
      if wall >= budget_s:
        break
  else:
    wall = 0.0
    for e, (seconds, params) in enumerate(TRAINERS[name](x, n_epochs), start=1):
      wall += seconds
      epoch_s.append(seconds)
      last = e == n_epochs or wall >= budget_s
      if e in score_at or last:
        score(e, wall, params)
      if last:
        break
  return {"epoch_s": epoch_s, "median_epoch_s": float(np.median(epoch_s)),
          "per_budget": name in PER_BUDGET, "points": points}


def main() -> None:
  """Learning-rate scan of aerbm_jax's setting: a run of each length at each rate, scored as
  `tasks.py` scores (its defaults: 1000 test digits, 64 AIS chains, 1000 betas)."""
  import argparse

  ap = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
  ap.add_argument("--mnist", default=str(SHARED_MNIST), help="an .npz with x_train, x_test")
  ap.add_argument("--rates", default="0.1,0.3")
  ap.add_argument("--epochs", default="1,2")
  ap.add_argument("--n-test", type=int, default=1000)
  args = ap.parse_args()
  x, x_test = load(args.mnist, n_test=args.n_test)
  print("| lr | epochs | test LL, forward [reverse] AIS |\n|---|---|---|")
  for lr in map(float, args.rates.split(",")):
    for e in map(int, args.epochs.split(",")):
      *_, (_, params) = aerbm(x, e, lr)
      ll = partition.log_likelihood_estimate(jax.random.key(7), params, x_test, n_chains=64,
                                             n_betas=1000, base_data=x)
      print(f"| {lr} | {e} | {ll.log_likelihood:.1f} [{ll.reverse_log_likelihood:.1f}] |",
            flush=True)


if __name__ == "__main__":
  main()

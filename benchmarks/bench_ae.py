"""The autoencoder stage against the same network in PyTorch: training images per second.

Both sides train the experiment's conv autoencoder (stride-2 3x3 convolutions with ReLU, one
per entry of `features`, a dense sigmoid code, a dense layer back, nearest 2x upsampling and
3x3 convolutions, a sigmoid image) with Adam on the MSE, at the same batch, on the same
threads, on random images (the rate does not depend on the pixels). aerbm_jax runs
`ae_train.train_step`, one compiled call per update as `ae_train.fit` does.

`python benchmarks/bench_ae.py` times that step against the same step with XLA's kernel
gradients in every layer (`layers.tap_kernel_grad` is the CPU default from
`layers.TAP_GRAD_MIN_FEATURES` output channels on), alternating, and prints the ratio;
`--min-features N --against M` times the taps from N channels on against them from M on.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time

import jax
import numpy as np

from aerbm_jax import ae_train
from aerbm_jax import autoencoder as ae
from aerbm_jax import configs, layers
from bench_timing import calls_for, paired


def median_rate(step, n_images: int, repeats: int, budget: float) -> dict:
  """Images/s of `step()`: median, min and max over `repeats` timed calls of ~`budget` s,
  and `calls`, the steps in each."""
  calls = calls_for(lambda k: [step() for _ in range(k)], budget)
  rates = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(calls):
      step()
    rates.append(calls * n_images / (time.perf_counter() - t0))
  return {"images_per_s": float(np.median(rates)), "min": float(min(rates)),
          "max": float(max(rates)), "calls": calls}


@contextlib.contextmanager
def _tap_threshold(min_features: int | None):
  """`layers.TAP_GRAD_MIN_FEATURES` set to `min_features` while a step is traced (None: left
  as it is). JAX caches traces by function, not by the module global, hence the clears."""
  if min_features is None:
    yield
    return
  default = layers.TAP_GRAD_MIN_FEATURES
  jax.clear_caches()
  layers.TAP_GRAD_MIN_FEATURES = min_features
  try:
    yield
  finally:
    layers.TAP_GRAD_MIN_FEATURES = default
    jax.clear_caches()


def jax_step(cfg: ae.AEConfig, tap_min_features: int | None = None):
  """aerbm_jax's compiled training step on a fixed random batch: `(step, compile_s)`; `step()`
  returns the update's loss, `step.compiled` is the executable it calls.

  The step calls its own executable, so steps built with different
  `tap_min_features` (`layers.TAP_GRAD_MIN_FEATURES` for this compile; `sys.maxsize`: XLA's
  kernel gradients everywhere) can be timed side by side.
  """
  x = jax.numpy.asarray(np.random.default_rng(0).random(
    (cfg.batch_size, cfg.image_size, cfg.image_size, cfg.channels), dtype=np.float32))
  params = ae.init(jax.random.key(0), cfg)
  state = {"p": params, "o": ae_train.optimizer(cfg).init(params), "i": 0}
  keys = list(jax.random.split(jax.random.key(1), 64))  # made up front, as `ae_train.fit` does
  t0 = time.perf_counter()
  with _tap_threshold(tap_min_features):
    compiled = ae_train.train_step.lower(state["p"], state["o"], x, keys[0], cfg).compile()
  p, o, loss = compiled(state["p"], state["o"], x, keys[0])
  loss.block_until_ready()
  compile_s = time.perf_counter() - t0
  state["p"], state["o"] = p, o

  def step():
    state["i"] += 1
    state["p"], state["o"], loss = compiled(state["p"], state["o"], x,
                                            keys[state["i"] % len(keys)])
    return loss.block_until_ready()

  step.compiled = compiled
  return step, compile_s


def torch_step(cfg: ae.AEConfig, threads: int):
  """The same network, loss and optimiser in PyTorch (channels-last tensors): `(step,
  parameter count)`."""
  import torch
  from torch import nn

  torch.set_num_threads(threads)
  stages = ae.n_stages(cfg.image_size, len(cfg.features))
  feats = cfg.features[:stages]
  side = cfg.image_size // 2**stages
  enc, c = [], cfg.channels
  for f in feats:
    enc += [nn.Conv2d(c, f, 3, stride=2, padding=1), nn.ReLU()]
    c = f
  dec = []
  for f in reversed(feats[:-1]):
    dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, f, 3, padding=1), nn.ReLU()]
    c = f
  dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, cfg.channels, 3, padding=1),
          nn.Sigmoid()]
  top = feats[-1]

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.enc = nn.Sequential(*enc)
      self.code = nn.Linear(top * side * side, cfg.latent_dim)
      self.expand = nn.Linear(cfg.latent_dim, top * side * side)
      self.dec = nn.Sequential(*dec)

    def forward(self, x):
      z = torch.sigmoid(self.code(self.enc(x).flatten(1)))
      h = torch.relu(self.expand(z)).view(-1, top, side, side)
      return self.dec(h)

  net = Net().to(memory_format=torch.channels_last)
  optim = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
  x = torch.rand(cfg.batch_size, cfg.channels, cfg.image_size, cfg.image_size).to(
    memory_format=torch.channels_last)

  def step():
    optim.zero_grad(set_to_none=True)
    loss = torch.mean((net(x) - x) ** 2)
    loss.backward()
    optim.step()

  return step, sum(p.numel() for p in net.parameters())


def tap_grad_ab(cfg: ae.AEConfig, steps: int, rounds: int, min_features: int | None = None,
                against: int = sys.maxsize) -> dict:
  """The step with tap kernel gradients from `min_features` output channels on (None: the
  library's default) over the same step with them from `against` channels on (by default
  none: XLA's kernel gradients for every layer): `paired` ratio of steps/s (> 1: the first is
  faster) over `rounds` alternating calls of `steps` steps each."""
  ours, _ = jax_step(cfg, tap_min_features=min_features)
  other, _ = jax_step(cfg, tap_min_features=against)
  r = paired(lambda: [ours() for _ in range(steps)], steps,
             lambda: [other() for _ in range(steps)], steps, rounds)
  return {**r, "steps": steps, "against": None if against == sys.maxsize else against,
          "min_features": layers.TAP_GRAD_MIN_FEATURES if min_features is None else min_features}


if __name__ == "__main__":
  ap = argparse.ArgumentParser(description="The mondrian autoencoder step with the kernel "
                               "gradients as tap matmuls (the CPU default) against XLA's.")
  ap.add_argument("--steps", type=int, default=8, help="steps per timed call")
  ap.add_argument("--rounds", type=int, default=21)
  ap.add_argument("--image-size", type=int, default=128)
  ap.add_argument("--min-features", type=int, default=None,
                  help="tap gradients from this many output channels on (default: the library's)")
  ap.add_argument("--against", type=int, default=sys.maxsize,
                  help="the step it is timed against takes tap gradients from this many "
                  "output channels on (default: none, XLA's kernel gradients everywhere)")
  args = ap.parse_args()
  cfg = dataclasses.replace(configs.make_config("mondrian").ae_config(),
                            image_size=args.image_size, augment=False, progress=False)
  print(json.dumps(tap_grad_ab(cfg, args.steps, args.rounds, args.min_features, args.against)))

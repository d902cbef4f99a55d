"""The autoencoder stage against the same network in PyTorch: training images per second.

Both sides train the experiment's conv autoencoder (stride-2 3x3 convolutions with ReLU, one
per entry of `features`, a dense sigmoid code, a dense layer back, nearest 2x upsampling and
3x3 convolutions, a sigmoid image) with Adam on the MSE, at the same batch, on the same
threads, on random images (the rate does not depend on the pixels). aerbm_jax runs
`ae_train.train_step`, one compiled call per update as `ae_train.fit` does.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from aerbm_jax import ae_train
from aerbm_jax import autoencoder as ae
from bench_timing import calls_for


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


def jax_step(cfg: ae.AEConfig):
  """aerbm_jax's compiled training step on a fixed random batch: `(step, compile_s)`."""
  x = jax.numpy.asarray(np.random.default_rng(0).random(
    (cfg.batch_size, cfg.image_size, cfg.image_size, cfg.channels), dtype=np.float32))
  params = ae.init(jax.random.key(0), cfg)
  state = {"p": params, "o": ae_train.optimizer(cfg).init(params), "i": 0}
  keys = list(jax.random.split(jax.random.key(1), 64))  # made up front, as `ae_train.fit` does
  t0 = time.perf_counter()
  p, o, loss = ae_train.train_step(state["p"], state["o"], x, keys[0], cfg)
  loss.block_until_ready()
  compile_s = time.perf_counter() - t0
  state["p"], state["o"] = p, o

  def step():
    state["i"] += 1
    state["p"], state["o"], loss = ae_train.train_step(
      state["p"], state["o"], x, keys[state["i"] % len(keys)], cfg)
    loss.block_until_ready()

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

"""Held-out MSE of a finished run's autoencoder with its codes refined: steps x step size.

For each step size and number of steps, the run's held-out images are encoded with
`AEConfig.refine_steps` / `refine_learning_rate` set so (`autoencoder.encode_batched`, the
library's own path) and decoded; 0 steps is the encoder's code. Prints a markdown table.

  python experiments/refine_sweep.py RUN_DIR [--steps 0,25,50,100,200] [--lrs 0.05,0.2,0.5]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from aerbm_jax import autoencoder as ae
from aerbm_jax.runs import load_run, load_split


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("run_dir")
  ap.add_argument("--steps", default="0,25,50,100,200")
  ap.add_argument("--lrs", default="0.02,0.05,0.1,0.2,0.5,1.0")
  args = ap.parse_args()
  run = load_run(args.run_dir)
  _, x_held, _ = load_split(run.config)
  base = dataclasses.replace(run.config.ae_config(), progress=False)
  steps = [int(s) for s in args.steps.split(",")]
  print(f"{len(x_held)} held-out images of {args.run_dir}; held-out MSE after each number of "
        "steps (seconds for the largest)\n")
  print("| step size | " + " | ".join(f"{s} steps" for s in steps) + " | s |")
  print("|---" * (len(steps) + 2) + "|")
  for lr in (float(v) for v in args.lrs.split(",")):
    cells, t = [], 0.0
    for s in steps:
      cfg = dataclasses.replace(base, refine_steps=s, refine_learning_rate=lr)
      t0 = time.perf_counter()
      rec = ae.decode_batched(run.ae_params, cfg, ae.encode_batched(run.ae_params, cfg, x_held))
      t = time.perf_counter() - t0
      cells.append(f"{np.mean((rec - x_held) ** 2):.4f}")
    print(f"| {lr} | " + " | ".join(cells) + f" | {t:.0f} |", flush=True)


if __name__ == "__main__":
  main()

"""The table of docs/code_noise.md: finished runs, each scored by `aerbm evaluate`, side by side.

For every run directory given, reads `metrics.json` (written by `aerbm experiment` and extended
by `aerbm evaluate RUN_DIR`, whose 256 samples per model the table reports), loads the run's
autoencoder and latent RBM to measure how binary the training codes are, and prints one
markdown row: the code noise and decoding, the AE's held-out MSE, the share of codes below 0.1
or above 0.9, the latent RBM's mean |W|, and KID x 1000 (with its standard error), MMD^2 and
recall for the AE-RBM and the Gaussian control. A * marks the metrics that ordered that run's
known cases (the only ones to believe for it).

  python experiments/code_noise_table.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from aerbm_jax import autoencoder as ae
from aerbm_jax import runs

METRICS = ("kid", "mmd2", "recall")


def row(run_dir: Path) -> str:
  """One markdown row for a finished, evaluated run."""
  m = json.loads((run_dir / "metrics.json").read_text())
  if "evaluation" not in m:
    raise SystemExit(f"{run_dir}: not evaluated yet; run `aerbm evaluate {run_dir}` first")
  run = runs.load_run(run_dir)
  x_train, _, _ = runs.load_split(run.config)
  z = ae.encode_batched(run.ae_params, run.config.ae_config(), x_train)
  q = m["evaluation"]["sample_quality"]
  cells = [run.config.name, f"{run.config.ae_code_noise:g}", run.config.latent_decode,
           f"{m['autoencoder']['held_out_mse']:.4f}", f"{np.mean((z < 0.1) | (z > 0.9)):.2f}",
           f"{np.abs(np.asarray(run.latent_rbm.W)).mean():.3f}"]
  for model in ("ae_rbm", "ae_gaussian"):
    s = q["models"][model]
    for k in METRICS:
      star = "*" if k in q["validated"] else ""
      value = (f"{s['kid']:.2f} ({s['kid_stderr']:.2f})" if k == "kid" else
               f"{s[k]:.3f}")
      cells.append(value + star)
  return "| " + " | ".join(cells) + " |"


def main(argv: list[str]) -> None:
  if not argv:
    raise SystemExit(__doc__)
  print("| data | noise | decoded | AE held-out MSE | codes near 0 or 1 | latent RBM mean abs W "
        "| AE-RBM KID | AE-RBM MMD^2 | AE-RBM recall | control KID | control MMD^2 "
        "| control recall |")
  print("|" + "---|" * 12)
  for d in argv:
    print(row(Path(d)), flush=True)


if __name__ == "__main__":
  main(sys.argv[1:])

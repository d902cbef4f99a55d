"""The MNIST log-likelihood table: RBMs trained on binarised MNIST, scored exactly or by AIS.

Rows (each trained with `train.fit`, scored with `partition.log_likelihood_estimate` on the
test digits): 16 hidden units, normal and centred, on the digits and on their flipped bits
`1 - x` (exact log Z); 500 hidden units, PCD-1, on the thresholded and the stochastically
binarised digits (forward and reverse AIS); and, on request, CD-25 on the stochastic digits.
Each finished row is written to `checkpoints/rows/` at once and training checkpoints to
`checkpoints/train/`, so a killed run resumes where it stopped. The report puts every row
beside the published figure for the same set-up.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax

from aerbm_jax import checkpoint, partition, rbm, train
from aerbm_jax.configs import MNISTConfig
from aerbm_jax.data import mnist
from aerbm_jax.html import write_report_html
from aerbm_jax.report import fmt, likelihood_cell, likelihood_warnings
from aerbm_jax.runs import open_run, read_done

__all__ = ["PUBLISHED", "rows_of", "run_mnist"]

# Published test log-likelihoods (nats) for the same set-ups: PyDeep (the code of Melchior,
# Fischer & Wiskott 2016), PCD-1, thresholded MNIST; Salakhutdinov & Murray (2008), CD-25
# on stochastically binarised MNIST.
PUBLISHED = {
  "small-normal": "-149.05 (PyDeep)", "small-centred": "-142.56 (PyDeep)",
  "small-normal-flipped": "-183.36 (PyDeep)", "small-centred-flipped": "-142.09 (PyDeep)",
  "big-threshold": "-84.86 AIS / -96.61 reverse AIS (PyDeep, centred PCD-1, 200 epochs)",
  "big-stochastic": "-86.34 (SM08, CD-25, 500 hidden)",
  "big-stochastic-cd25": "-86.34 (SM08, CD-25, 500 hidden)",
}


def rows_of(config: MNISTConfig) -> list[dict[str, Any]]:
  """The table's rows: name, binarisation, flip, hidden units, epochs, centring, method, k."""
  rows = []
  for centered in (False, True):
    for flip in (False, True):
      name = f"small-{'centred' if centered else 'normal'}" + ("-flipped" if flip else "")
      rows.append(dict(name=name, binarisation="threshold", flip=flip, hidden=config.small_hidden,
                       epochs=config.small_epochs, centered=centered, method=config.method,
                       k=config.k))
  if config.big_hidden:
    big = dict(flip=False, hidden=config.big_hidden, epochs=config.big_epochs,
               centered=config.big_centered, method=config.method, k=config.k)
    rows.append(dict(name="big-threshold", binarisation="threshold", **big))
    if config.stochastic:
      rows.append(dict(name="big-stochastic", binarisation="stochastic", **big))
    if config.cd25:
      rows.append(dict(name="big-stochastic-cd25", binarisation="stochastic",
                       **{**big, "method": "cd", "k": 25}))
  return rows


def _run_row(row: dict[str, Any], data: dict, config: MNISTConfig, index: int, run_dir: Path
             ) -> dict[str, Any]:
  """Train one row's RBM (resumably) and score it on the test digits."""
  x_train, x_test = data[row["binarisation"]]
  if row["flip"]:
    x_train, x_test = 1.0 - x_train, 1.0 - x_test
  key_init, key_fit, key_ll = jax.random.split(jax.random.fold_in(jax.random.key(config.seed),
                                                                  index), 3)
  cfg = dataclasses.replace(config.train_config(row["epochs"], row["centered"], row["k"]),
                            method=row["method"])
  t0 = time.perf_counter()
  params0 = rbm.init(key_init, 784, row["hidden"], data=x_train)
  params, history = train.fit(key_fit, params0, x_train, cfg,
                              checkpoint_dir=run_dir / "checkpoints" / "train" / row["name"])
  train_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  ll = partition.log_likelihood_estimate(key_ll, params, x_test, n_chains=config.ais_chains,
                                         n_betas=config.ais_betas, base_data=x_train)
  return {**row, "test_log_likelihood": ll._asdict(),
          "final_recon_error": float(history.recon_error[-1]), "train_s": train_s,
          "score_s": time.perf_counter() - t0, "published": PUBLISHED[row["name"]]}


def run_mnist(config: MNISTConfig, run_dir: str | Path, *, resume: bool = False
              ) -> dict[str, Any]:
  """Run every row of the table; results go to `run_dir` (`mnist.json`, `report.md`).

  Args:
    config: the table's settings (`configs.make_mnist_config`).
    run_dir: the run directory to create (or, with `resume`, to continue).
    resume: keep the finished rows in `run_dir` and continue with the next.

  Returns:
    The results, also in `run_dir/mnist.json`.
  """
  config.validate()
  run_dir = open_run(run_dir, config, resume)
  done_dir = run_dir / "checkpoints" / "rows"
  done_dir.mkdir(parents=True, exist_ok=True)
  t_start = time.perf_counter()
  data, source = {}, ""
  for how in ("threshold", "stochastic"):
    x_train, x_test, source = mnist.load_mnist(config.data, how, config.seed)
    data[how] = (x_train[: config.n_train or None], x_test[: config.n_test or None])
  source = source.rsplit(", binarised", 1)[0]
  print(f"mnist: {source}; {len(data['threshold'][0])} train / {len(data['threshold'][1])} "
        "test digits")
  results = []
  for index, row in enumerate(rows_of(config)):
    saved = done_dir / f"{index:03d}.json"
    row_done = read_done(saved, "a finished row")
    if row_done is not None:
      results.append(row_done)
      continue
    print(f"row {row['name']}: {row['hidden']} hidden, {row['epochs']} epochs, "
          f"{'centred' if row['centered'] else 'normal'}, k={row['k']}")
    results.append(_run_row(row, data, config, index, run_dir))
    checkpoint.write_text(saved, json.dumps(results[-1]))
    print(f"  test log-likelihood {likelihood_cell(results[-1]['test_log_likelihood'])}")
  out = {"config": dataclasses.asdict(config), "source": source,
         "n_train": len(data["threshold"][0]), "n_test": len(data["threshold"][1]),
         "rows": results, "total_s": time.perf_counter() - t_start}
  checkpoint.write_text(run_dir / "mnist.json", json.dumps(out, indent=1))
  checkpoint.write_text(run_dir / "report.md", _report(out))
  write_report_html(run_dir)
  print(f"done in {out['total_s']:.0f}s: {run_dir}/report.md")
  return out


def _report(out: dict[str, Any]) -> str:
  c = out["config"]
  lines = ["| row | hidden | epochs | training | test log-likelihood (nats) | published | "
           "train s | score s |", "|---|---|---|---|---|---|---|---|"]
  for r in out["rows"]:
    how = (f"{r['method'].upper()}-{r['k']}, {'centred' if r['centered'] else 'normal'}, "
           f"{r['binarisation']}{', flipped' if r['flip'] else ''}")
    lines.append(f"| {r['name']} | {r['hidden']} | {r['epochs']} | {how} | "
                 f"{likelihood_cell(r['test_log_likelihood'])} | {r['published']} | "
                 f"{r['train_s']:.0f} | {r['score_s']:.0f} |")
  warnings = likelihood_warnings({r["name"]: r["test_log_likelihood"] for r in out["rows"]})
  small = {r["name"]: r["test_log_likelihood"]["log_likelihood"] for r in out["rows"]}
  flips = []
  for kind in ("normal", "centred"):
    a, b = small.get(f"small-{kind}"), small.get(f"small-{kind}-flipped")
    if a is not None and b is not None:
      flips.append(f"{kind}: flipping the bits changes the test log-likelihood by "
                   f"{fmt(b - a)} nats")
  return f"""# MNIST test log-likelihoods

Data: {out['source']}; {out['n_train']} training and {out['n_test']} test digits, binarised at
0.5 (thresholded) or once by Bernoulli draws (stochastic, seed {c['seed']}). Batch
{c['batch_size']}, learning rate {c['learning_rate']}, momentum {c['momentum']}, weight decay
{c['weight_decay']}. Exact log Z where the hidden layer has at most {partition.EXACT_UNITS}
units; otherwise forward AIS ({c['ais_chains']} chains x {c['ais_betas']} betas, optimistic)
beside reverse AIS from training digits (pessimistic), with their gap and the effective sample
size of the forward weights. Total time {out['total_s']:.0f} s.

{chr(10).join(lines)}{warnings}

{chr(10).join('- ' + f for f in flips)}

Published figures are for the set-up named beside them; a row whose set-up differs (epochs,
binarisation, centring) is not a like-for-like comparison, and the report says which it used.
"""

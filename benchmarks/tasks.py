"""Time to a result on real tasks, against every installed peer, in one run:

- `mnist`: 500-hidden RBMs on thresholded MNIST, seconds per epoch and test log-likelihood
  against training time, for aerbm_jax, scikit-learn, rbms and learnergy (`bench_mnist`; rbms
  0.6 too, in its own interpreter, with `--rbms-python`); the epoch's FLOP rate against the
  float32 matmul peak measured at the run's two ends, and timed in turn with the epoch;
- `ae`: training images/s of the experiment's conv autoencoder against the same network in
  PyTorch (`bench_ae`): the mondrian preset's network, shape and batch;
- `small`: block Gibbs sweeps/s at 784 x 500 with 2, 8, 32 and 64 chains against numpy,
  timed back to back (`bench_timing.paired`), at the sampler's default precision and, apart,
  at `precision="int8"` (W as int8 digits, products about as accurate as float32's) and
  `precision="bfloat16"` (W rounded to bfloat16: a different model).

Every library in the process runs with glibc's malloc keeping freed memory for reuse, as the
`aerbm` command sets it (`heap.keep_freed_memory`; `--freed-memory release`: the C library's
defaults). rbms runs in its own interpreter with the defaults. A peer that is not installed
(`make bench` installs them) is skipped and named on stderr and in the results. Writes
`benchmarks/results/<tag>.json` and `<tag>.md`.

  python benchmarks/tasks.py [--mnist PATH] [--only mnist,ae,small] [--epochs 10] [--quick]
                             [--rbms-python PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import bench_ae
import bench_mnist
import epoch_bound
from aerbm_jax import configs, heap
from bench_aerbm import jax_sampler
from bench_peers import numpy_sampler
from bench_timing import machine_info, matmul_call, matmul_peak_gflops, paired, write_results

jax.config.update("jax_enable_compilation_cache", False)

SMALL_BATCHES = [2, 8, 32, 64]
OTHER_PRECISIONS = ("int8", "bfloat16")  # the sampler's other products, timed apart


def _installed(module: str) -> bool:
  import importlib.util

  return importlib.util.find_spec(module) is not None


def missing_peers(sections: list[str]) -> list[str]:
  """The peers that `sections` of a full run time and that cannot run here."""
  missing = []
  if "mnist" in sections:
    missing += [n for n in bench_mnist.PEERS if not bench_mnist.available(n)]
  if "ae" in sections and not _installed("torch"):
    missing.append("torch")
  return missing


def run_mnist(args, out: dict) -> None:
  x, x_test = bench_mnist.load(args.mnist, n_train=args.n_train, n_test=args.n_test)
  # Every epoch up to 10, then sparser: the time-to-a-likelihood table reads these points.
  score_at = sorted({e for e in (*range(1, 11), 20, 50) if e <= args.epochs} | {args.epochs})
  flops = bench_mnist.pcd1_flops(784, bench_mnist.N_HIDDEN, bench_mnist.BATCH) * (
    len(x) // bench_mnist.BATCH)
  res = {"n_train": len(x), "n_test": len(x_test), "epochs": args.epochs,
         "budget_s": args.budget_s,
         "ais": {"chains": args.ais_chains, "betas": args.ais_betas}, "flops_per_epoch": flops,
         "libraries": {}}
  for name in bench_mnist.TRAINERS:
    if not bench_mnist.available(name):
      continue
    print(f"mnist: {name}", flush=True)
    res["libraries"][name] = bench_mnist.curve(name, x, x_test, args.epochs, score_at,
                                               args.ais_chains, args.ais_betas, args.budget_s)
  res["share_of_peak"] = share_of_peak(x, flops, args.rounds)
  out["mnist"] = res


def share_of_peak(x, flops: float, rounds: int, matmuls: int = 5) -> dict:
  """aerbm_jax's epoch rate over the float32 matmul peak's, the two timed in turn (`paired`).

  The peak at the run's two ends is measured minutes away from the epochs, and this machine's
  speed drifts by more than the goal's margin between them; timed back to back, the drift
  mostly cancels. The epoch is `epoch_bound`'s `library` executable (the epoch `bench_mnist`
  trains), the peak call `matmuls` products of `matmul_call`'s size.
  """
  epoch = epoch_bound.epoch_call("library", jnp.asarray(x), rounds + 2)
  count = iter(range(rounds + 2))
  mm, mm_flops, _ = matmul_call()
  return paired(lambda: epoch(next(count)), flops / 1e9, lambda: [mm() for _ in range(matmuls)],
                matmuls * mm_flops / 1e9, rounds)


def time_to(points: list[dict], level: float, key: str = "log_likelihood") -> float | None:
  """Training seconds at the first scored point whose `key` estimate reaches `level`."""
  return next((p["train_s"] for p in points if p[key] >= level), None)


def time_to_same_ll(libraries: dict, key: str = "log_likelihood") -> list[dict]:
  """For every new best likelihood of a peer (a scored point above all its earlier ones): the
  fastest peer's time to it and aerbm_jax's (both read at scored epochs, so each time is an
  upper bound), and their ratio."""
  ours = libraries["aerbm_jax"]["points"]
  rows, levels = [], set()
  peers = {n: c for n, c in libraries.items() if not n.startswith("aerbm_jax")}
  for c in peers.values():
    best = -float("inf")
    for p in c["points"]:
      if p[key] > best:
        best = p[key]
        levels.add(best)
  for level in sorted(levels):
    t_peer, peer = min((t, n) for n, c in peers.items()
                       if (t := time_to(c["points"], level, key)) is not None)
    t_ours = time_to(ours, level, key)
    rows.append({"level": level, "peer": peer, "peer_s": t_peer, "aerbm_jax_s": t_ours,
                 "ratio": None if t_ours is None else t_peer / t_ours})
  return rows


def run_ae(args, out: dict) -> None:
  # The mondrian experiment's network, batch and learning rate, without its augmentations
  # (the PyTorch side has none).
  cfg = dataclasses.replace(configs.make_config("mondrian").ae_config(), image_size=args.ae_size,
                            augment=False, progress=False)
  threads = os.cpu_count()
  ours, compile_s = bench_ae.jax_step(cfg)
  theirs, n_params = bench_ae.torch_step(cfg, threads) if _installed("torch") else (None, 0)
  # Both steps run in turn before any timing: PyTorch's first ~10 s of steps ran up to 1.3x
  # slower (it had already run for minutes in a full run, after rbms and learnergy, but not
  # in an `--only ae` run, which then measured it slow).
  t0 = time.perf_counter()
  while time.perf_counter() - t0 < args.ae_warmup:
    ours()
    if theirs is not None:
      theirs()
  res = {"image_size": cfg.image_size, "batch": cfg.batch_size, "features": cfg.features,
         "warmup_s": args.ae_warmup,
         "aerbm_jax": {**bench_ae.median_rate(ours, cfg.batch_size, args.repeats, args.budget),
                       "compile_s": compile_s}}
  if theirs is not None:
    res["torch"] = {**bench_ae.median_rate(theirs, cfg.batch_size, args.repeats, args.budget),
                    "params": n_params}
    res["ratio"] = res["aerbm_jax"]["images_per_s"] / res["torch"]["images_per_s"]
    # The same two steps again, alternating (`paired`): the rates above are timed a minute
    # apart, and this machine's speed drifts by more than their difference.
    calls = []
    for step, name in ((ours, "aerbm_jax"), (theirs, "torch")):
      n = res[name]["calls"]  # the steps that filled one timed call above
      calls += [lambda step=step, n=n: [step() for _ in range(n)], n * cfg.batch_size]
    res["paired"] = paired(*calls, args.rounds)
  out["ae"] = res


def run_small(args, out: dict) -> None:
  rows = []
  for batch in SMALL_BATCHES:
    ours, steps, compile_s, _ = jax_sampler(784, 500, batch, args.budget / 4)
    other, sweeps = numpy_sampler(784, 500, batch, args.budget / 4)
    r = paired(ours, steps, other, sweeps, args.rounds)
    row = {"batch": batch, **r, "compile_s": compile_s}
    for precision in OTHER_PRECISIONS:
      call, n_steps, _, _ = jax_sampler(784, 500, batch, args.budget / 4, precision)
      row[precision] = paired(call, n_steps, other, sweeps, args.rounds)
    rows.append(row)
    print(f"small batch {batch}: {r['ratio']:.2f}x numpy [{r['min']:.2f}-{r['max']:.2f}]; "
          + "; ".join(f"{x} {row[x]['ratio']:.2f}x [{row[x]['min']:.2f}-{row[x]['max']:.2f}]"
                      for x in OTHER_PRECISIONS), flush=True)
  out["small"] = rows


def markdown(out: dict) -> str:
  m = out["machine"]
  lines = [f"# Time to a result: {m['backend']} ({m['device']}, {m['cores']} cores, {m['cpu']})",
           "", f"Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items() if v)}.",
           f"Float32 matmul peak measured in this run: {out['peak']['gflops']:.1f} GFLOP/s.",
           "glibc's malloc kept freed memory for reuse (`heap.keep_freed_memory`) for every "
           "library in the process." if out.get("keep_freed_memory") else
           "glibc's malloc ran with its default settings.", ""]
  if out.get("missing_peers"):
    lines[-1:-1] = [f"Not installed, so not timed: {', '.join(out['missing_peers'])}."]
  if "mnist" in out:
    r = out["mnist"]
    lines += ["## MNIST: 500 hidden units, batch 100, thresholded digits", "",
              f"{r['n_train']} training digits; log-likelihoods on {r['n_test']} test digits by "
              f"forward AIS ({r['ais']['chains']} chains, {r['ais']['betas']} betas; reverse "
              "AIS beside it), the same estimator for every library. Training time only.", "",
              f"Each library trains {r['epochs']} epochs or until its training time passes "
              f"{r['budget_s']:.0f} s. aerbm_jax anneals its learning rate to 0 over a run, so "
              "each of its points is a separate run of that many epochs (what a user with that "
              "budget gets); \"aerbm_jax, one run\" shows the checkpoints of its longest run. "
              "The peers train at a constant rate, where checkpoints are the same thing. "
              "GFLOP/s counts the products of aerbm_jax's PCD-1 update (`bench_mnist.pcd1_flops`: "
              "five of 100 x 784 x 500 each) for every library.", "",
              "| library | median s/epoch | vs sklearn | GFLOP/s (% of matmul) | "
              "test LL, forward [reverse] AIS, after (epochs, training s) |",
              "|---|---|---|---|---|"]
    sk = r["libraries"].get("sklearn", {}).get("median_epoch_s")
    for name, c in r["libraries"].items():
      gf = r["flops_per_epoch"] / c["median_epoch_s"] / 1e9
      rel = f"{sk / c['median_epoch_s']:.2f}x" if sk else "-"
      cells = [f"{p['log_likelihood']:.1f} [{p['reverse_log_likelihood']:.1f}] "
               f"({p['epoch']}, {p['train_s']:.0f} s)" for p in c["points"]]
      lines.append(f"| {name} | {c['median_epoch_s']:.2f} | {rel} | {gf:.1f} "
                   f"({100 * gf / out['peak']['gflops']:.0f}%) | " + "; ".join(cells) + " |")
    if "share_of_peak" in r:
      p = r["share_of_peak"]
      lines += ["", f"aerbm_jax's epoch and the matmul peak timed in turn ({p['rounds']} rounds, "
                f"`bench_timing.paired`): the epoch ran at {100 * p['ratio']:.0f}% of the peak "
                f"[{100 * p['min']:.0f}-{100 * p['max']:.0f}%]."]
    lines.append("")
    if len(r["libraries"]) > 1:
      lines += ["Time to the same log-likelihood: for each new best a peer reached at a "
                "scored epoch, the fastest peer's training time to it against aerbm_jax's (both "
                "read at scored epochs). Forward AIS overestimates a log-likelihood and "
                "reverse AIS underestimates it, so the table is given on each.", "",
                "| estimate | LL level | fastest peer | peer s | aerbm_jax s | peer / aerbm_jax |",
                "|---|---|---|---|---|---|"]
      for key, label in (("log_likelihood", "forward"), ("reverse_log_likelihood", "reverse")):
        for row in time_to_same_ll(r["libraries"], key):
          ours = "not reached" if row["aerbm_jax_s"] is None else f"{row['aerbm_jax_s']:.1f}"
          ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
          lines.append(f"| {label} | {row['level']:.1f} | {row['peer']} | {row['peer_s']:.1f} | "
                       f"{ours} | {ratio} |")
      lines.append("")
  if "ae" in out:
    a = out["ae"]
    lines += [f"## Autoencoder training, {a['image_size']}x{a['image_size']}x3, batch "
              f"{a['batch']}, features {tuple(a['features'])}", "",
              "| library | images/s | [min-max] |", "|---|---|---|",
              f"| aerbm_jax | {a['aerbm_jax']['images_per_s']:.1f} | "
              f"{a['aerbm_jax']['min']:.1f}-{a['aerbm_jax']['max']:.1f} |"]
    if "torch" in a:
      lines += [f"| torch | {a['torch']['images_per_s']:.1f} | "
                f"{a['torch']['min']:.1f}-{a['torch']['max']:.1f} |", "",
                f"aerbm_jax / torch: {a['ratio']:.2f}x from the rates above; "
                f"{a['paired']['ratio']:.2f}x [{a['paired']['min']:.2f}-"
                f"{a['paired']['max']:.2f}] timed back to back over {a['paired']['rounds']} "
                f"alternating rounds; aerbm_jax compile {a['aerbm_jax']['compile_s']:.1f} s; "
                f"both steps ran in turn for {a.get('warmup_s', 0):.0f} s before any timing."]
    lines.append("")
  if "small" in out:
    lines += ["## Small batches: 784 x 500 sampler against numpy, back to back", "",
              "| chains | aerbm_jax / numpy | [min-max] | compile s | "
              + " | ".join(f"{x} / numpy | [min-max]" for x in OTHER_PRECISIONS) + " |",
              "|---|---|---|---|" + "---|---|" * len(OTHER_PRECISIONS)]
    lines += [f"| {r['batch']} | {r['ratio']:.2f}x | {r['min']:.2f}-{r['max']:.2f} | "
              f"{r['compile_s']:.2f} | " + " | ".join(
                f"{r[x]['ratio']:.2f}x | {r[x]['min']:.2f}-{r[x]['max']:.2f}"
                for x in OTHER_PRECISIONS) + " |" for r in out["small"]]
    lines += ["", "The first column is the sampler's default (float32 products). `precision="
              "\"int8\"` writes W as four int8 digits (`aerbm_jax.digits`): products of the "
              "binary states about as accurate as float32's, rounded differently, so the "
              "chains differ from the default's. `precision=\"bfloat16\"` samples the model "
              "with W rounded to 8 significant bits: a different model."]
  return "\n".join(lines) + "\n"


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  bench_mnist.add_data_args(ap)
  ap.add_argument("--only", default="mnist,ae,small")
  ap.add_argument("--epochs", type=int, default=10)
  ap.add_argument("--budget-s", type=float, default=120.0,
                  help="MNIST: a library stops after the epoch that takes it past this")
  ap.add_argument("--rbms-python", default=bench_mnist.RBMS_PYTHON,
                  help="a Python with rbms >= 0.6 (Python >= 3.12), trained as the peer "
                  "'rbms 0.6' (default: $RBMS_PYTHON; `make rbms-venv` makes one)")
  ap.add_argument("--n-test", type=int, default=2000)
  ap.add_argument("--ais-chains", type=int, default=64)
  ap.add_argument("--ais-betas", type=int, default=1000)
  ap.add_argument("--ae-size", type=int, default=128)
  ap.add_argument("--ae-warmup", type=float, default=20.0,
                  help="seconds of both autoencoder steps, in turn, before they are timed")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--rounds", type=int, default=7)
  ap.add_argument("--budget", type=float, default=2.0, help="seconds per timed call")
  ap.add_argument("--quick", action="store_true", help="tiny sizes: about a minute")
  ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
  ap.add_argument("--tag", default=None)
  ap.add_argument("--freed-memory", choices=["keep", "release"], default="keep",
                  help="keep: glibc's malloc keeps freed memory for reuse, for every library in "
                  "this process (`heap.keep_freed_memory`, as the `aerbm` command sets it); "
                  "release: the C library's defaults")
  args = ap.parse_args()
  if args.quick:
    args.epochs, args.n_train, args.n_test, args.ais_betas, args.ais_chains = 1, 1000, 100, 50, 8
    args.ae_size, args.repeats, args.rounds, args.budget, args.ae_warmup = 32, 2, 2, 0.2, 0.5
  bench_mnist.RBMS_PYTHON = args.rbms_python
  missing = missing_peers(args.only.split(","))
  if missing:
    print(f"tasks.py: not installed here, so not timed: {', '.join(missing)}. `make bench` "
          "installs the peers into .venv, and `make rbms-venv` makes an interpreter for rbms "
          "0.6 (pass it with --rbms-python).", file=sys.stderr, flush=True)
  out: dict = {"machine": machine_info(), "missing_peers": missing,
               "keep_freed_memory": args.freed_memory == "keep" and heap.keep_freed_memory(),
               "peak": matmul_peak_gflops()}
  sections = {"mnist": run_mnist, "ae": run_ae, "small": run_small}
  for name in args.only.split(","):
    sections[name](args, out)
  out["peak_end"] = matmul_peak_gflops()
  out["peak"]["gflops"] = max(out["peak"]["gflops"], out["peak_end"]["gflops"])
  tag = args.tag or f"tasks-{out['machine']['backend']}-{out['machine']['cores']}core" + (
    "-quick" if args.quick else "")
  write_results(args.out, tag, out, markdown(out))


if __name__ == "__main__":
  main()

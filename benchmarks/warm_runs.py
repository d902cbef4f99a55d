"""Cold and warm runs of the `aerbm` command: the whole process's wall time with an empty
compile cache and again with the one the first run filled, for each cache threshold.

A threshold is the shortest compile JAX keeps in its persistent cache
(`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`; "default" leaves the command's own). Every
round runs each threshold in turn (the order reversed every other round), and for each
experiment: a cold run into a fresh cache, a warm run, then `aerbm sample` and `aerbm evaluate`
of the warm run's output, each twice (the first call finds the experiment's programs in the
cache, the second its own too). The warm run's metrics must equal the cold one's (timings
aside).

  python benchmarks/warm_runs.py [--rounds 2] [--experiments faces "digits --quick"]
      [--thresholds 0.1 default] [--tag NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_timing import machine_info, write_results

PHASES = ("cold", "warm", "sample", "sample again", "evaluate", "evaluate again")


def _timed(args: list[str], env: dict) -> float:
  """Wall seconds of `aerbm ARGS` in a fresh process; a failure is an error naming the call."""
  t0 = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", "aerbm_jax.cli", "--quiet", *args], env=env,
                        capture_output=True, text=True)
  if proc.returncode:
    raise RuntimeError(f"aerbm {shlex.join(args)} failed:\n{proc.stderr[-2000:]}")
  return time.perf_counter() - t0


def _metrics(run: Path) -> dict:
  """The run's metrics.json without its timings (all under "timings")."""
  metrics = json.loads((run / "metrics.json").read_text())
  metrics.pop("timings")
  return metrics


def one_round(experiment: str, threshold: str, work: Path) -> dict:
  """Seconds of each phase for `experiment` (a preset name and its flags) at `threshold`."""
  env = {k: v for k, v in os.environ.items() if k not in (
    "JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
  if threshold != "default":
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = threshold
  with tempfile.TemporaryDirectory(dir=work) as tmp:
    cache, tmp = ["--compile-cache", str(Path(tmp) / "xla")], Path(tmp)
    out = {}
    for phase in ("cold", "warm"):
      out[phase] = _timed([*cache, "experiment", *shlex.split(experiment), "--out",
                           str(tmp / phase)], env)
    if _metrics(tmp / "cold") != _metrics(tmp / "warm"):
      raise AssertionError(f"{experiment}: the warm run's metrics differ from the cold run's")
    for phase in ("sample", "sample again"):
      out[phase] = _timed([*cache, "sample", str(tmp / "warm"), "--out", str(tmp / phase)], env)
    for phase in ("evaluate", "evaluate again"):
      out[phase] = _timed([*cache, "evaluate", str(tmp / "warm")], env)
  return out


def markdown(out: dict) -> str:
  m = out["machine"]
  lines = [f"# Cold and warm runs of the `aerbm` command: {m['backend']} ({m['cores']} cores, "
           f"{m['cpu']})", "", f"jax {m['versions']['jax']}; {out['rounds']} rounds, the "
           "thresholds in turn; wall seconds of the whole process, median [min-max]. cold: "
           "`aerbm experiment` into an empty compile cache; warm: the same again with that "
           "cache; sample and evaluate: `aerbm sample` and `aerbm evaluate` of the warm run, "
           "each twice with that cache. The shortest compile the cache keeps: `default` is "
           "the command's own. "
           f"`python benchmarks/warm_runs.py --rounds {out['rounds']}`.", "",
           "| experiment | threshold, s | " + " | ".join(PHASES) + " |",
           "|---|---|" + "---|" * len(PHASES)]
  for experiment, by_threshold in out["runs"].items():
    for threshold, phases in by_threshold.items():
      cells = [f"{statistics.median(t):.1f} [{min(t):.1f}-{max(t):.1f}]"
               for t in (phases[p] for p in PHASES)]
      lines.append(f"| {experiment} | {threshold} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--rounds", type=int, default=2)
  ap.add_argument("--experiments", nargs="+", default=["faces", "digits --quick"])
  ap.add_argument("--thresholds", nargs="+", default=["0.1", "default"])
  ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
  ap.add_argument("--tag", default=None)
  args = ap.parse_args()
  runs = {e: {t: {p: [] for p in PHASES} for t in args.thresholds} for e in args.experiments}
  with tempfile.TemporaryDirectory() as work:
    for r in range(args.rounds):
      for threshold in args.thresholds[:: 1 - 2 * (r % 2)]:
        for experiment in args.experiments:
          for phase, s in one_round(experiment, threshold, Path(work)).items():
            runs[experiment][threshold][phase].append(s)
            print(f"round {r + 1}, {experiment}, threshold {threshold}: {phase} {s:.1f} s",
                  flush=True)
  out = {"machine": machine_info(), "rounds": args.rounds, "runs": runs}
  tag = args.tag or f"warm-runs-{out['machine']['backend']}-{out['machine']['cores']}core"
  write_results(args.out, tag, out, markdown(out))


if __name__ == "__main__":
  main()

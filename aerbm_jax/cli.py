"""The `aerbm` command: run experiments, then sample from and evaluate finished runs.

  aerbm experiment NAME [--data DIR] [--out DIR] [--seed N] [--quick] [--FIELD VALUE ...]
  aerbm experiment NAME --resume RUN_DIR
  aerbm sample RUN_DIR [--n 64] [--steps 1000] [--seed 0] [--out DIR]
  aerbm evaluate RUN_DIR [--n 256] [--steps 1000] [--seed 0]
  aerbm report RUN_DIR [--open]
  aerbm runs [FOLDER]

Every field of `ExperimentConfig` is an option (`--ae-epochs 10`, `--rbm-hidden 32`, ...).
A bad input gets one line naming it and exit code 2, diverging training one line naming the
epoch, the setting to change and the latest checkpoint, and exit code 3; `--debug` shows
the traceback.
Ctrl-C (or SIGTERM) checkpoints the training stage in progress and exits with code 130;
`--resume RUN_DIR` continues it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser"]

_SHORT = {"data", "seed"}  # fields that also have their own documented flags


def _parse_tuple(text: str) -> tuple[int, ...]:
  try:
    values = tuple(int(t) for t in text.split(",") if t.strip())
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None
  if not values:
    raise argparse.ArgumentTypeError("expected at least one int")
  return values


def _config_classes() -> dict[str, type]:
  """Each kind of experiment's config class: the recipe's, the CI study's, MNIST's."""
  from aerbm_jax.configs import CIStudyConfig, ExperimentConfig, MNISTConfig

  return {"recipe": ExperimentConfig, "ci_study": CIStudyConfig, "mnist": MNISTConfig}


def _config_fields() -> dict[str, set[str]]:
  """Field names of each kind of experiment's config."""
  from aerbm_jax.configs import field_kinds

  return {kind: set(field_kinds(cls)) - {"name"} for kind, cls in _config_classes().items()}


_GROUPS = {"recipe": "the recipe: faces, mondrian, digits", "ci_study": "the interval study",
           "mnist": "the MNIST table"}


def _add_config_options(parser: argparse.ArgumentParser, kind: str | None,
                        name: str | None) -> None:
  """One option per config field, with its documentation, default and allowed values.

  With `kind` (the experiment named on the command line), only that kind's fields and their
  defaults for `name`'s preset; otherwise every kind's, in a group each, shared fields first.
  """
  from aerbm_jax import configs

  classes = _config_classes()
  kinds = [kind] if kind else list(classes)
  owners: dict[str, list[str]] = {}
  for k in kinds:
    for field in configs.field_kinds(classes[k]):
      if field != "name" and field not in _SHORT:
        owners.setdefault(field, []).append(k)
  defaults = {}
  for k in reversed(kinds):
    if k == "recipe" and name in configs.PRESETS:
      defaults.update(dataclasses.asdict(configs.make_config(name)))
    else:
      defaults.update(dataclasses.asdict(classes[k]()))
  groups = {}
  if len(kinds) > 1:
    groups["shared"] = parser.add_argument_group("options of more than one experiment")
  for k in kinds:
    groups[k] = parser.add_argument_group(f"options of {_GROUPS[k]}" + (
      f" ({configs.__name__}.{classes[k].__name__})"))
  for field, where in owners.items():
    cls = classes[where[0]]
    kind_of = configs.field_kinds(cls)[field]
    doc = configs.field_help(cls).get(field, field.replace("_", " "))
    group = groups["shared" if len(where) > 1 else where[0]]
    flag = "--" + field.replace("_", "-")
    default = defaults.get(field)
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    text = f"{doc} (default: {shown})".replace("%", "%%")
    if kind_of == "bool":
      group.add_argument(flag, dest=field, action=argparse.BooleanOptionalAction, default=None,
                         help=text)
    elif kind_of == "ints":
      group.add_argument(flag, dest=field, type=_parse_tuple, default=None, metavar="N,N,...",
                         help=text)
    else:
      typ = {"int": int, "float": float}.get(kind_of, str)
      group.add_argument(flag, dest=field, type=typ, default=None, help=text,
                         choices=configs.CHOICES.get(field),
                         metavar=None if field in configs.CHOICES else typ.__name__.upper())


class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors: the bad option and where to look, no usage block."""

  def error(self, message: str):
    print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
    sys.exit(2)


def _global_flags(parser: argparse.ArgumentParser) -> None:
  """--debug and --quiet also after a subcommand (hidden there; documented at the top)."""
  for flag in ("--debug", "--quiet"):
    parser.add_argument(flag, action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)


def build_parser(experiment: str | None = None) -> argparse.ArgumentParser:
  """The `aerbm` parser; with `experiment`, `aerbm experiment` offers only that one's options."""
  parser = _Parser(prog="aerbm", description=__doc__.splitlines()[0])
  parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
  parser.add_argument("--quiet", action="store_true",
                      help="no progress bars (they are off anyway when output is not a terminal)")
  parser.add_argument(
    "--compile-cache", metavar="DIR", default=None,
    help="keep compiled XLA programs here for later runs (default: $JAX_COMPILATION_CACHE_DIR, "
         "else ~/.cache/aerbm_jax/xla; 'none' turns it off)")
  parser.add_argument(
    "--freed-memory", choices=["keep", "release"], default="keep",
    help="keep: malloc keeps freed memory for reuse, so that each compiled call does not map "
         "and zero its buffers afresh (glibc only; the process keeps its peak memory); "
         "release: the C library's defaults (default: keep)")
  dist = parser.add_argument_group(
    "multi-process runs (jax.distributed; also read from JAX_COORDINATOR_ADDRESS, "
    "JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
  dist.add_argument("--coordinator-address", metavar="HOST:PORT",
                    help="address of process 0, reachable from every process")
  dist.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
  dist.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1")
  dist.add_argument("--distributed", choices=["auto"],
                    help="let JAX detect the cluster (SLURM, Open MPI, TPU pod slices)")
  sub = parser.add_subparsers(dest="command", required=True)

  exp = sub.add_parser("experiment", help="run an experiment: the AE + RBM recipe (faces, "
                       "mondrian, digits), the interval study (ci_study) or the MNIST table")
  exp.add_argument("name", help="mondrian, faces, digits, ci_study (the interval study) or "
                   "mnist (the log-likelihood table)")
  exp.add_argument("--data", help="a folder of your own images (read at 128x128x3 by default); "
                   "for mnist the four idx files' folder, an .npz, or 'tfds'")
  exp.add_argument("--out", help="run directory to create (default runs/NAME-TIMESTAMP)")
  exp.add_argument("--seed", type=int, default=None, help="PRNG seed (default 0)")
  exp.add_argument("--quick", action="store_true", help="a seconds-long version of the pipeline")
  exp.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run from its checkpoints (no other options)")
  _global_flags(exp)
  _add_config_options(exp, experiment and _kind(experiment), experiment)

  smp = sub.add_parser("sample", help="draw new images from a finished run")
  smp.add_argument("run_dir")
  smp.add_argument("--n", type=int, default=64, help="images to draw")
  smp.add_argument("--steps", type=int, default=1000, help="Gibbs sweeps per chain")
  smp.add_argument("--seed", type=int, default=0)
  smp.add_argument("--out", help="folder for the PNGs (default RUN_DIR/samples)")
  _global_flags(smp)

  ev = sub.add_parser("evaluate", help="sample-quality metrics and likelihoods of a finished run")
  ev.add_argument("run_dir")
  ev.add_argument("--n", type=int, default=256, help="samples per model")
  ev.add_argument("--steps", type=int, default=1000, help="Gibbs sweeps per chain")
  ev.add_argument("--seed", type=int, default=0)
  _global_flags(ev)

  rep = sub.add_parser("report", help="write RUN_DIR/report.html: the run's reports as one "
                       "self-contained page")
  rep.add_argument("run_dir")
  rep.add_argument("--open", action="store_true", help="open it in the web browser")
  _global_flags(rep)

  lst = sub.add_parser("runs", help="list run directories: name, date, status, main figures")
  lst.add_argument("folder", nargs="?", default="runs", help="where the runs are (default runs)")
  _global_flags(lst)
  return parser


def _named_experiment(argv: Sequence[str]) -> str | None:
  """The NAME of `aerbm ... experiment NAME ...` in `argv`, if there is one."""
  argv = list(argv)
  if "experiment" not in argv:
    return None
  rest = argv[argv.index("experiment") + 1:]
  return next((a for a in rest if not a.startswith("-")), None)


def _kind(name: str) -> str:
  return name if name in ("ci_study", "mnist") else "recipe"


def _experiment(args: argparse.Namespace) -> int:
  from aerbm_jax.ci_study import run_study
  from aerbm_jax.configs import make_config, make_mnist_config, make_study_config
  from aerbm_jax.experiment import run_experiment
  from aerbm_jax.likelihoods import run_mnist

  fields = _config_fields()
  kind = _kind(args.name)
  given = {k: v for k, v in vars(args).items()
           if k in set().union(*fields.values()) and v is not None}
  foreign = sorted(set(given) - fields[kind])
  if foreign:
    flags = ", ".join("--" + f.replace("_", "-") for f in foreign)
    raise ValueError(f"experiment {args.name!r} has no option {flags}")
  if args.resume:
    return _resume(args, kind, given)
  if args.data and kind != "mnist":  # MNIST's --data may be a file; its loader checks it
    data = Path(args.data)
    if not data.exists():
      raise FileNotFoundError(f"--data {data}: no such folder")
    if not data.is_dir():
      raise NotADirectoryError(f"--data {data}: is a file; pass a folder of images")
  out = Path(args.out) if args.out else Path("runs") / f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
  args.run_dir = out
  if kind == "ci_study":
    run_study(make_study_config(quick=args.quick, **given), out)
  elif kind == "mnist":
    run_mnist(make_mnist_config(quick=args.quick, **given), out)
  else:
    run_experiment(make_config(args.name, quick=args.quick, folder=bool(args.data), **given), out)
  return 0


def _resume(args: argparse.Namespace, kind: str, given: dict) -> int:
  from aerbm_jax.ci_study import run_study
  from aerbm_jax.experiment import run_experiment
  from aerbm_jax.likelihoods import run_mnist
  from aerbm_jax.runs import read_config

  extra = sorted(given) + [f for f in ("data", "out", "seed", "quick") if getattr(args, f)]
  if extra:
    flags = ", ".join("--" + f.replace("_", "-") for f in extra)
    raise ValueError(f"--resume takes the options stored in the run; drop {flags}")
  run_dir = Path(args.resume)
  if not run_dir.is_dir():
    raise FileNotFoundError(f"--resume {run_dir}: no such run directory")
  args.run_dir = run_dir
  config = read_config(run_dir, _config_classes()[kind])
  if config.name != args.name:
    raise ValueError(f"--resume {run_dir} is a {config.name!r} run, not {args.name!r}")
  {"ci_study": run_study, "mnist": run_mnist, "recipe": run_experiment}[kind](
    config, run_dir, resume=True)
  return 0


def _sample(args: argparse.Namespace) -> int:
  from aerbm_jax.experiment import sample_run

  paths = sample_run(args.run_dir, n=args.n, steps=args.steps, seed=args.seed, out=args.out)
  for kind, path in paths.items():
    print(f"{kind}: {path}")
  return 0


def _evaluate(args: argparse.Namespace) -> int:
  from aerbm_jax.evaluate import evaluate_run

  if args.n < 4 or args.steps < 1:
    raise ValueError(f"--n must be >= 4 and --steps >= 1, got {args.n} and {args.steps}")
  evaluate_run(args.run_dir, n_samples=args.n, steps=args.steps, seed=args.seed)
  print(f"wrote {args.run_dir}/metrics.json and {args.run_dir}/evaluation.md")
  return 0


def _use_compile_cache(flag: str | None) -> None:
  """Point JAX's persistent compilation cache at `flag` (or the default folder).

  A rerun then loads every program, the many small ones too (JAX keeps only those over 1 s
  by default): compiling those cost a warm run a quarter of its time (docs/performance.md).
  """
  import jax

  if flag is None and os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return  # JAX read it at import
  if flag is not None and flag.lower() == "none":
    jax.config.update("jax_enable_compilation_cache", False)
    return
  if flag is None:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    flag = str(Path(base) / "aerbm_jax" / "xla")
  jax.config.update("jax_compilation_cache_dir", flag)
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _terminate(signum, frame):
  raise KeyboardInterrupt  # SIGTERM (a scheduler's kill) checkpoints like Ctrl-C


def _report(args: argparse.Namespace) -> int:
  from aerbm_jax.html import write_report_html

  path = write_report_html(args.run_dir)
  print(f"wrote {path}")
  if args.open:
    import webbrowser

    webbrowser.open(path.absolute().as_uri())
  return 0


def _runs(args: argparse.Namespace) -> int:
  from aerbm_jax.runs import list_runs

  found = list_runs(args.folder)
  if not found:
    print(f"no run directories in {args.folder}")
  for r in found:
    print(f"{str(r.path):40s} {r.name:9s} {r.date}  {r.status:9s}  {r.headline}")
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  # Help for a named experiment lists its own options only; parsing takes every experiment's,
  # so that another experiment's option gets a message naming the experiment.
  wants_help = any(a in ("-h", "--help") for a in argv)
  args = build_parser(_named_experiment(argv) if wants_help else None).parse_args(argv)
  if args.quiet:
    os.environ["AERBM_QUIET"] = "1"
  # orbax logs what it could not read through absl; the error line says it once, for the user
  logging.getLogger("absl").setLevel(logging.WARNING if args.debug else logging.CRITICAL)
  warnings.filterwarnings("ignore", category=DeprecationWarning)
  signal.signal(signal.SIGTERM, _terminate)
  # after parsing, so that --help stays fast: parallel imports JAX
  from aerbm_jax import heap, parallel
  from aerbm_jax.train import TrainingDivergedError

  _use_compile_cache(args.compile_cache)
  if args.freed_memory == "keep":
    heap.keep_freed_memory()
  try:
    parallel.initialize(parallel.distributed_settings(
      args.coordinator_address, args.num_processes, args.process_id,
      auto=args.distributed == "auto"))
    commands = {"experiment": _experiment, "sample": _sample, "evaluate": _evaluate,
                "report": _report, "runs": _runs}
    return commands[args.command](args)
  except KeyboardInterrupt:
    run_dir = getattr(args, "run_dir", None)
    hint = ""
    if run_dir is not None:
      hint = f"; training is checkpointed: resume with `aerbm experiment {args.name} " \
             f"--resume {run_dir}`"
    print(f"aerbm: interrupted{hint}", file=sys.stderr)
    return 130
  except (ValueError, TypeError, OSError) as err:
    if args.debug:
      raise
    print(f"aerbm: error: {err}", file=sys.stderr)
    return 2
  except (FloatingPointError, TrainingDivergedError) as err:  # a setting to change, not a bug
    if args.debug:
      raise
    print(f"aerbm: error: {err}", file=sys.stderr)
    return 3
  except Exception as err:  # noqa: BLE001 (a bug: one line, and the traceback with --debug)
    if args.debug:
      raise
    first = str(err).splitlines()[0][:300] if str(err) else ""
    print(f"aerbm: internal error: {type(err).__name__}: {first} (rerun with --debug for the "
          "traceback, and please report it)", file=sys.stderr)
    return 1


def run() -> None:
  """The console script: `main`, and after Ctrl-C an immediate exit.

  An interrupt can land inside XLA (mid-compile, mid-execution); the checkpoint is already
  written by then, and skipping the interpreter's teardown avoids a crash in it (seen as
  SIGSEGV after the clean message).
  """
  code = main()
  if code == 130:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)


if __name__ == "__main__":
  run()

"""Run directories: creating one, reading its config back, its images, and a finished run's models.

A recipe run directory holds `config.json`, `metrics.json`, `report.md`, PNG pictures and
`checkpoints/` (`autoencoder`, `latent_rbm`, `pixel_rbm`, `latent_scaler.npz`, and `train/`
for the training stages' periodic checkpoints). A study's holds `config.json`, `ci_study.json`,
`report.md`, plots and `checkpoints/settings/`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from aerbm_jax import autoencoder as ae
from aerbm_jax import checkpoint, data, rbm
from aerbm_jax.configs import ExperimentConfig, from_dict

__all__ = [
  "new_run_dir", "read_config", "load_config", "load_split",
  "Standardiser", "FinishedRun", "load_run", "RunSummary", "list_runs", "claim", "RunDirBusy",
  "read_json", "read_done", "open_run", "LOCK",
]


LOCK = ".lock"  # held (flock) by the process working in a run directory
_HELD: dict[Path, Any] = {}  # this process's locks, kept open until it exits


def claim(run_dir: str | Path) -> Path:
  """Take `run_dir`'s lock for this process (until it exits); another process holding it is a
  `RunDirBusy` naming its pid. The directory is created if need be."""
  run_dir = Path(run_dir).absolute()
  if run_dir in _HELD:
    return run_dir
  run_dir.mkdir(parents=True, exist_ok=True)
  handle = open(run_dir / LOCK, "a+")
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    handle.seek(0)
    pid = handle.read().strip() or "?"
    handle.close()
    raise RunDirBusy(f"run directory {run_dir} is in use by another aerbm process (pid {pid}); "
                     "wait for it to finish, or choose another --out") from None
  handle.seek(0)
  handle.truncate()
  handle.write(str(os.getpid()))
  handle.flush()
  _HELD[run_dir] = handle
  return run_dir


class RunDirBusy(OSError):
  """Another process is working in the run directory."""


def new_run_dir(run_dir: str | Path, config: Any) -> Path:
  """Create a run directory holding `config.json` and claim it; an existing, non-empty one
  (its lock file aside) is an error, and so is one another process has claimed."""
  run_dir = Path(run_dir)
  if run_dir.exists() and not run_dir.is_dir():
    raise NotADirectoryError(f"--out {run_dir} is a file; choose a folder")
  claim(run_dir)
  if any(p.name != LOCK for p in run_dir.iterdir()):
    raise FileExistsError(f"run directory {run_dir} exists and is not empty; choose another --out")
  checkpoint.write_text(run_dir / "config.json", json.dumps(dataclasses.asdict(config), indent=1))
  return run_dir


def open_run(run_dir: str | Path, config: Any, resume: bool) -> Path:
  """The run directory to work in: a new one for `config`, or (`resume`) the existing one,
  whose stored config must equal `config` (a ValueError lists the fields that differ)."""
  if not resume:
    return new_run_dir(run_dir, config)
  stored = read_config(run_dir, type(config))
  if stored != config:
    diff = [f.name for f in dataclasses.fields(config)
            if getattr(stored, f.name) != getattr(config, f.name)]
    raise ValueError(f"--resume {run_dir}: its config differs in {', '.join(diff)}; resume "
                     "without changing options")
  return claim(run_dir)


def read_json(path: Path, what: str) -> Any:
  """A JSON file of a run directory; a damaged one is a `DamagedFileError` naming it."""
  try:
    return json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as err:
    raise checkpoint.DamagedFileError(
      f"{path} is not valid JSON ({err}): it holds {what}; restore it from a copy, or start a "
      "new run") from None


def read_done(path: Path, what: str) -> Any | None:
  """A finished part of a resumable run (a study's setting, a table's row) saved as JSON, or
  None if it is not there. A damaged one is moved aside (`NAME.damaged`) with a warning, so
  that the run computes it again."""
  if not path.is_file():
    return None
  try:
    return read_json(path, what)
  except checkpoint.DamagedFileError as err:
    os.replace(path, path.with_name(path.name + ".damaged"))
    warnings.warn(f"{err}; computing it again", stacklevel=2)
    return None


def read_config(run_dir: str | Path, cls: type) -> Any:
  """The frozen config dataclass `cls` stored in `run_dir/config.json`, validated.

  A missing file is a FileNotFoundError; a damaged one, a field `cls` lacks and a bad value
  are ValueErrors naming the file.
  """
  path = Path(run_dir) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json")
  raw = read_json(path, "the run's settings")
  if not isinstance(raw, dict):
    raise checkpoint.DamagedFileError(f"{path} holds a JSON {type(raw).__name__}, not the "
                                      "run's settings; restore it from a copy")
  try:
    return from_dict(cls, raw, str(path))
  except TypeError as err:
    raise checkpoint.DamagedFileError(f"{path}: {err}") from None


def load_config(run_dir: str | Path) -> ExperimentConfig:
  """The `ExperimentConfig` stored in a recipe run directory."""
  return read_config(run_dir, ExperimentConfig)


def load_split(config: ExperimentConfig) -> tuple[np.ndarray, np.ndarray, str]:
  """The run's images split by name into `(train, held_out, description)`."""
  images, names, source = data.load_source(
    config.name, config.image_size, config.channels, folder=config.data, tfds=config.tfds,
    n=config.n_images, seed=config.seed)
  train_idx, held_idx = data.split_indices(names, config.held_out_fraction)
  return images[train_idx], images[held_idx], source


class Standardiser:
  """Per-dimension standardisation of latents for a Gaussian RBM (identity for Bernoulli)."""

  def __init__(self, mean: np.ndarray, std: np.ndarray):
    self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

  @classmethod
  def fit(cls, z: np.ndarray, on: bool) -> "Standardiser":
    """Fitted to codes `z: (N, d)` when `on`, else the identity."""
    if on:
      return cls(z.mean(0), z.std(0) + 1e-6)
    return cls(np.zeros(z.shape[1]), np.ones(z.shape[1]))

  def forward(self, z):
    """Codes to the RBM's space."""
    return ((z - self.mean) / self.std).astype(np.float32)

  def inverse(self, z):
    """The RBM's space back to codes."""
    return (z * self.std + self.mean).astype(np.float32)

  def save(self, path: Path) -> None:
    """Write `mean` and `std` to an .npz file atomically."""
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, mean=self.mean, std=self.std)
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: Path, dim: int | None = None) -> "Standardiser":
    """The scaler `save` wrote to `path` (for `dim` latents, when given); a missing or damaged
    file is an error naming it."""
    what = "the latent codes' standardisation (mean and std per latent)"
    if not path.is_file():
      raise FileNotFoundError(f"{path} is missing: it holds {what}; resume the run (--resume) "
                              "to write it again")
    try:
      with np.load(path) as f:
        scaler = cls(f["mean"], f["std"])
    except (OSError, ValueError, KeyError, EOFError) as err:
      raise checkpoint.DamagedFileError(f"{path} is damaged: it should hold {what} ({err}); "
                                        "resume the run (--resume) to write it again") from None
    wrong_size = dim is not None and scaler.mean.shape != (dim,)
    if (wrong_size or scaler.std.shape != scaler.mean.shape
        or not np.all(np.isfinite(scaler.std)) or not np.all(scaler.std > 0)):
      raise checkpoint.DamagedFileError(f"{path} does not hold {what} for {dim} latents; "
                                        "resume the run (--resume) to write it again")
    return scaler


class FinishedRun(NamedTuple):
  """What a finished recipe run directory holds, loaded."""

  config: ExperimentConfig
  ae_params: Any  # the autoencoder's flax variables
  latent_rbm: rbm.RBM
  pixel_rbm: rbm.RBM
  scaler: Standardiser


def load_run(run_dir: str | Path) -> FinishedRun:
  """A finished run's config, AE parameters, latent and pixel RBMs and latent scaler."""
  run_dir = Path(run_dir)
  config = load_config(run_dir)
  ae_cfg = config.ae_config()
  ckpt = run_dir / "checkpoints"
  if not (ckpt / "pixel_rbm").is_dir():
    raise FileNotFoundError(f"{run_dir} has not finished training; finish it with "
                            f"`aerbm experiment {config.name} --resume {run_dir}`")
  ae_params = checkpoint.restore(ckpt / "autoencoder", ae.init(jax.random.key(0), ae_cfg),
                                 what="trained autoencoder")
  key = jax.random.key(0)
  lat_like = jax.eval_shape(lambda: rbm.init(key, config.ae_latent_dim, config.rbm_hidden,
                                             visible=config.rbm_visible))
  n_pixels = config.image_size ** 2 * config.channels
  pix_like = jax.eval_shape(lambda: rbm.init(key, n_pixels, config.pixel_hidden))
  lat = checkpoint.load_rbm(ckpt / "latent_rbm", like=lat_like, what="trained latent RBM")
  pix = checkpoint.load_rbm(ckpt / "pixel_rbm", like=pix_like, what="trained pixel RBM")
  scaler = Standardiser.load(ckpt / "latent_scaler.npz", config.ae_latent_dim)
  return FinishedRun(config, ae_params, lat, pix, scaler)


class RunSummary(NamedTuple):
  """One line of `aerbm runs`."""

  path: Path
  name: str  # the experiment: mondrian, faces, digits, ci_study, mnist, ...
  date: str  # when the run started (its config.json), local time
  status: str  # "finished", "resumable" (checkpoints saved, not finished) or "started"
  headline: str  # the run's main figures, when finished


_RESULTS = {"ci_study": "ci_study.json", "mnist": "mnist.json"}  # else metrics.json


def _headline(run_dir: Path, name: str) -> str:
  """The run's main figures, from its results file."""
  data = json.loads((run_dir / _RESULTS.get(name, "metrics.json")).read_text())
  if name == "ci_study":
    report = (run_dir / "report.md").read_text() if (run_dir / "report.md").is_file() else ""
    claim = next((line.strip("*. ") for line in report.splitlines() if "The claim" in line), "")
    return f"{len(data['rows'])} settings; {claim}"
  if name == "mnist":
    cells = [f"{r['name']} {r['test_log_likelihood']['log_likelihood']:.2f}" for r in data["rows"]]
    return "test LL: " + ", ".join(cells)
  figures = [f"AE held-out MSE {data['autoencoder']['held_out_mse']:.4f}"]
  ll = data["latent_rbm"].get("held_out_log_likelihood")
  if ll:
    figures.append(f"latent LL {ll['log_likelihood']:.2f} ({ll['method']})")
  return ", ".join(figures)


def list_runs(folder: str | Path = "runs") -> list[RunSummary]:
  """Every run directory directly in `folder` (those with a config.json), oldest first."""
  import time

  folder = Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(f"{folder} is not a folder of run directories")
  out = []
  for run_dir in sorted(p for p in folder.iterdir() if (p / "config.json").is_file()):
    try:
      name = json.loads((run_dir / "config.json").read_text()).get("name", "?")
    except (OSError, ValueError):
      name = "?"
    finished = (run_dir / _RESULTS.get(name, "metrics.json")).is_file() and (
      run_dir / "report.md").is_file()
    ckpt = run_dir / "checkpoints"
    saved = ckpt.is_dir() and any(ckpt.rglob("*"))
    status = "finished" if finished else "resumable" if saved else "started"
    try:
      headline = _headline(run_dir, name) if finished else ""
    except (OSError, ValueError, KeyError):
      headline = "(results unreadable)"
    date = time.strftime("%Y-%m-%d %H:%M", time.localtime((run_dir / "config.json").stat().st_mtime))
    out.append(RunSummary(run_dir, name, date, status, headline))
  return sorted(out, key=lambda r: r.date)

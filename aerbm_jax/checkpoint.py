"""Orbax checkpoints: atomic saves of pytrees, RBMs restored with their kind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from aerbm_jax.rbm import RBM, BernoulliRBM, GaussianRBM

__all__ = ["save", "restore", "load_rbm", "new_run_dir"]


def new_run_dir(run_dir: str | Path, config: Any) -> Path:
  """Create a run directory holding `config.json`; an existing, non-empty one is an error."""
  run_dir = Path(run_dir)
  if run_dir.exists() and any(run_dir.iterdir()):
    raise FileExistsError(f"run directory {run_dir} exists and is not empty; choose another --out")
  run_dir.mkdir(parents=True, exist_ok=True)
  (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=1))
  return run_dir


def save(path: str | Path, tree: Any) -> Path:
  """Save a pytree to `path` (a new folder); orbax writes to a temporary name and renames."""
  path = Path(path).absolute()
  if path.exists():
    raise FileExistsError(f"checkpoint {path} already exists; remove it or choose another path")
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(path, tree)
  checkpointer.wait_until_finished()
  return path


def restore(path: str | Path, target: Any | None = None) -> Any:
  """Restore a pytree; with `target` (arrays or shape structs) the structure is checked."""
  path = Path(path).absolute()
  if not path.is_dir():
    raise FileNotFoundError(f"no checkpoint at {path}")
  if target is not None:
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), target)
  return ocp.StandardCheckpointer().restore(path, target)


def load_rbm(path: str | Path) -> RBM:
  """An RBM checkpoint as a BernoulliRBM or GaussianRBM (the kind is read from its fields)."""
  tree = restore(path)
  if not isinstance(tree, dict) or not {"W", "b", "c"} <= set(tree):
    raise ValueError(f"{path} does not hold an RBM checkpoint (fields: {sorted(tree)})")
  if "log_sigma" in tree:
    return GaussianRBM(tree["W"], tree["b"], tree["c"], tree["log_sigma"])
  return BernoulliRBM(tree["W"], tree["b"], tree["c"])

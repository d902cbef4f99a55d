"""Orbax checkpoints: atomic pytree saves, RBMs restored with their kind, periodic checkpoints.

`Progress` holds the periodic training checkpoints that let a killed run resume bit for bit.

Run directories (configs, a finished run's models) are `runs`; this module only stores trees.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from aerbm_jax.rbm import RBM, BernoulliRBM, GaussianRBM

__all__ = ["save", "restore", "load_rbm", "check_rbm", "write_text", "Progress"]


def write_text(path: str | Path, text: str) -> Path:
  """Write a file atomically: a reader sees the old content or the new, never half of it."""
  path = Path(path)
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  tmp.write_text(text)
  os.replace(tmp, path)
  return path


def save(path: str | Path, tree: Any, *, overwrite: bool = False) -> Path:
  """Save a pytree to `path` (a new folder); orbax writes to a temporary name and renames."""
  path = Path(path).absolute()
  if path.exists() and not overwrite:
    raise FileExistsError(f"checkpoint {path} already exists; remove it or choose another path")
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(path, tree, force=overwrite)
  checkpointer.wait_until_finished()
  return path


def restore(path: str | Path, target: Any | None = None) -> Any:
  """Restore a pytree; with `target` (arrays or shape structs) the structure is checked and
  the arrays land on the target's devices."""
  path = Path(path).absolute()
  if not path.is_dir():
    raise FileNotFoundError(f"no checkpoint at {path}")
  checkpointer = ocp.StandardCheckpointer()
  if target is None:  # onto the default device, whatever devices wrote it
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    tree = checkpointer.metadata(path).item_metadata.tree
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
  return checkpointer.restore(path, _abstract(target))


def _abstract(target: Any) -> Any:
  """Shapes, dtypes and (for placed arrays) shardings: restoring reshards onto them, so a
  checkpoint written on 8 devices loads onto 1 or 4."""
  def leaf(x):
    sharding = x.sharding if isinstance(x, jax.Array) else getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)
  return jax.tree.map(leaf, target)


def load_rbm(path: str | Path, like: RBM | None = None) -> RBM:
  """An RBM checkpoint as a BernoulliRBM or GaussianRBM (the kind is read from its fields).

  With `like`, the checkpoint must hold the same kind and size, else a ValueError names both.
  """
  tree = restore(path)
  if not isinstance(tree, dict) or not {"W", "b", "c"} <= set(tree):
    fields = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
    raise ValueError(f"{path} does not hold an RBM checkpoint (fields: {fields})")
  if "log_sigma" in tree:
    params: RBM = GaussianRBM(tree["W"], tree["b"], tree["c"], tree["log_sigma"])
  else:
    params = BernoulliRBM(tree["W"], tree["b"], tree["c"])
  if like is not None:
    check_rbm(params, like, str(path))
  return params


def _describe(params: RBM) -> str:
  return f"{type(params).__name__} with W of shape {tuple(np.shape(params.W))}"


def check_rbm(found: RBM, expected: RBM, where: str) -> None:
  """Raise ValueError unless `found` has the kind and shapes of `expected`."""
  same = type(found) is type(expected) and all(
    np.shape(a) == np.shape(b) for a, b in zip(found, expected))
  if not same:
    raise ValueError(f"{where} holds a {_describe(found)}, but this run needs a "
                     f"{_describe(expected)}; point to the matching run or checkpoint")


class Progress:
  """Periodic, atomic training checkpoints in one folder (an orbax `CheckpointManager`).

  Each checkpoint is a pytree of arrays (parameters, optimiser state, chains, PRNG key data,
  curves so far) and a JSON `meta` dict (step, config, model description). A save is written
  under a temporary name and renamed, so a process killed mid-save leaves the previous
  checkpoint intact. `save` writes at most every `min_interval_s` seconds unless forced.
  """

  def __init__(self, directory: str | Path, min_interval_s: float = 30.0, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    self.min_interval_s = min_interval_s
    options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, enable_async_checkpointing=False, cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)
    self._last_save = time.monotonic()

  def latest_step(self) -> int | None:
    self._manager.reload()
    return self._manager.latest_step()

  def save(self, step: int, tree: Any, meta: dict[str, Any], *, force: bool = False) -> bool:
    """Checkpoint `tree` as `step`; returns whether it was written."""
    due = time.monotonic() - self._last_save >= self.min_interval_s
    if not (force or due) or step in self._manager.all_steps():
      return False
    self._manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()
    self._last_save = time.monotonic()
    return True

  def restore(self, target: Any, expected_meta: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The latest checkpoint as `(tree, meta)`; its meta must agree with `expected_meta`.

    `target` gives the structure, shapes and dtypes (arrays or shape structs). A mismatch in
    any `expected_meta` entry (model kind, sizes, config) is a ValueError naming the entry.
    """
    step = self.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    meta = self._manager.restore(step, args=ocp.args.Composite(
      meta=ocp.args.JsonRestore())).meta
    expected_meta = json.loads(json.dumps(expected_meta))  # tuples -> lists, as stored
    for name, value in expected_meta.items():
      found = meta.get(name)
      if isinstance(found, dict) and isinstance(value, dict):
        diff = sorted(k for k in found.keys() | value.keys() if found.get(k) != value.get(k))
        found = {k: found.get(k) for k in diff}
        value = {k: value.get(k) for k in diff}
      if found != value:
        raise ValueError(
          f"checkpoint {self.directory} (step {step}) was written with {name}={found!r}, "
          f"but this run has {name}={value!r}; resume with the original settings or start a "
          "new run directory")
    tree = self._manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(_abstract(target)))).state
    return tree, meta

  def close(self) -> None:
    self._manager.close()

"""Orbax checkpoints: atomic pytree saves, RBMs restored with their kind, periodic checkpoints.

`Progress` holds the periodic training checkpoints that let a killed run resume bit for bit.

Run directories (configs, a finished run's models) are `runs`; this module only stores trees.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

from aerbm_jax.rbm import RBM, BernoulliRBM, GaussianRBM

__all__ = ["save", "restore", "load_rbm", "check_rbm", "write_text", "config_meta", "Progress",
           "Upgrade", "StorageError", "DamagedFileError"]

_FULL = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


class StorageError(OSError):
  """A write failed for want of space or permission; the message names the place and need."""


class DamagedFileError(ValueError):
  """A file of a run directory is truncated, corrupt or foreign; the message names it."""


class Upgrade(NamedTuple):
  """How `Progress.restore` reads a checkpoint written in an older layout of its tree."""

  target: Any  # the structure, shapes and dtypes the older layout stored
  meta: dict[str, Any]  # the step's meta as the current layout writes it (checked as usual)
  tree: Callable[[Any], Any]  # the restored older tree -> the current layout's tree


def _tree_bytes(tree: Any) -> int:
  return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree)))


def _storage_error(err: BaseException, where: Path, need: int) -> StorageError | None:
  """The one-line error for a failed write, or None if `err` is not about space or rights."""
  code = getattr(err, "errno", None)
  text = str(err)
  if code not in _FULL and not any(s in text for s in ("No space left", "Read-only file",
                                                       "Permission denied", "Disk quota")):
    return None
  probe = where
  while not probe.exists() and probe != probe.parent:
    probe = probe.parent
  free = shutil.disk_usage(probe).free if probe.exists() else 0
  reason = os.strerror(code) if code in _FULL else text.splitlines()[0][:120]
  return StorageError(code or errno.EIO,
                      f"cannot write to {where}: {reason}; it needs about {need / 1e6:.1f} MB "
                      f"({free / 1e6:.0f} MB free there). Free space or choose another --out; "
                      "the previous checkpoint is kept, and --resume continues from it")


def config_meta(config: Any) -> dict[str, Any]:
  """A training config as a checkpoint records it: every field but `progress`, which only
  decides whether a bar is shown, and the class's `INFERENCE_FIELDS` (settings used after
  training), so a run may resume with those changed."""
  skip = {"progress", *getattr(config, "INFERENCE_FIELDS", ())}
  return {k: v for k, v in dataclasses.asdict(config).items() if k not in skip}


def write_text(path: str | Path, text: str) -> Path:
  """Write a file atomically: a reader sees the old content or the new, never half of it."""
  path = Path(path)
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  try:
    tmp.write_text(text)
    os.replace(tmp, path)
  except OSError as err:
    tmp.unlink(missing_ok=True)
    raise (_storage_error(err, path.parent, len(text.encode())) or err) from None
  return path


def save(path: str | Path, tree: Any, *, overwrite: bool = False) -> Path:
  """Save a pytree to `path` (a new folder); orbax writes to a temporary name and renames."""
  path = Path(path).absolute()
  if path.exists() and not overwrite:
    raise FileExistsError(f"checkpoint {path} already exists; remove it or choose another path")
  checkpointer = ocp.StandardCheckpointer()
  try:
    checkpointer.save(path, tree, force=overwrite)
    checkpointer.wait_until_finished()
  except Exception as err:  # noqa: BLE001 (orbax wraps the OS's errors in its own)
    raise (_storage_error(err, path.parent, _tree_bytes(tree)) or err) from None
  return path


def restore(path: str | Path, target: Any | None = None, what: str = "checkpoint") -> Any:
  """Restore a pytree; with `target` (arrays or shape structs) the structure is checked and
  the arrays land on the target's devices.

  A missing folder is a FileNotFoundError and a damaged one (truncated, overwritten, foreign)
  a `DamagedFileError`, each naming `path` and `what` it holds.
  """
  path = Path(path).absolute()
  if not path.is_dir():
    raise FileNotFoundError(f"{path} is missing: it holds the {what}; resume the run "
                            "(--resume) to write it again")
  checkpointer = ocp.StandardCheckpointer()
  try:
    if target is None:  # onto the default device, whatever devices wrote it
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      tree = checkpointer.metadata(path).item_metadata.tree
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            tree)
    return checkpointer.restore(path, _abstract(target))
  except Exception as err:  # noqa: BLE001 (orbax, tensorstore and asyncio raise many kinds)
    detail = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}" if str(err) else \
      type(err).__name__
    raise DamagedFileError(f"{path} is damaged or incomplete: it holds the {what} ({detail}); "
                           "restore it from a copy, or resume the run (--resume) to retrain "
                           "that stage") from None


def _abstract(target: Any) -> Any:
  """Shapes, dtypes and (for placed arrays) shardings: restoring reshards onto them, so a
  checkpoint written on 8 devices loads onto 1 or 4."""
  def leaf(x):
    sharding = x.sharding if isinstance(x, jax.Array) else getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)
  return jax.tree.map(leaf, target)


def load_rbm(path: str | Path, like: RBM | None = None, what: str = "RBM") -> RBM:
  """An RBM checkpoint as a BernoulliRBM or GaussianRBM (the kind is read from its fields).

  With `like`, the checkpoint must hold the same kind and size, else a ValueError names both.
  """
  tree = restore(path, what=what)
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
    """Checkpoint `tree` as `step`; returns whether it was written.

    A write that fails for want of space or permission is a `StorageError` naming the folder
    and the space needed; the checkpoints before it stay as they were.
    """
    due = time.monotonic() - self._last_save >= self.min_interval_s
    if not (force or due) or step in self._manager.all_steps():
      return False
    try:
      self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)), force=True)
      self._manager.wait_until_finished()
    except Exception as err:  # noqa: BLE001 (orbax wraps the OS's errors in its own)
      raise (_storage_error(err, self.directory, _tree_bytes(tree)) or err) from None
    self._last_save = time.monotonic()
    return True

  def _quarantine(self, step: int, err: BaseException) -> None:
    """Move a damaged step aside (`damaged-STEP-TIME`), so that the one before is the latest."""
    aside = self.directory / f"damaged-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(self.directory / str(step), aside)
    warnings.warn(f"checkpoint {self.directory} step {step} is damaged ({type(err).__name__}); "
                  f"moved it to {aside.name} and resuming from the one before", stacklevel=3)

  def restore(self, target: Any, expected_meta: dict[str, Any],
              older: Callable[[dict[str, Any]], Upgrade | None] | None = None
              ) -> tuple[Any, dict[str, Any]] | None:
    """The latest good checkpoint as `(tree, meta)`; its meta must agree with `expected_meta`.

    `target` gives the structure, shapes and dtypes (arrays or shape structs). A mismatch in
    any `expected_meta` entry (model kind, sizes, config) is a ValueError naming the entry. A
    damaged step (truncated, overwritten, half-written) is moved aside with a warning and the
    step before it is used; None when no good step is left. `older(meta)`, given a step's
    meta, returns an `Upgrade` where that step holds an older layout the caller can convert
    (None elsewhere): the step is then read into `Upgrade.target`, its meta and tree
    converted, and returned as the current layout's.
    """
    expected_meta = json.loads(json.dumps(expected_meta))  # tuples -> lists, as stored
    while (step := self.latest_step()) is not None:
      try:
        meta = self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore())).meta
        if not isinstance(meta, dict):
          raise DamagedFileError(f"its meta is {type(meta).__name__}, not a dict")
      except Exception as err:  # noqa: BLE001 (a damaged JSON file or step folder)
        self._quarantine(step, err)
        continue
      upgrade = older(meta) if older is not None else None
      if upgrade is not None:
        meta = upgrade.meta
      self._check_meta(step, meta, expected_meta)
      try:
        tree = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(
          _abstract(target if upgrade is None else upgrade.target)))).state
      except Exception as err:  # noqa: BLE001 (damaged or truncated array files)
        self._quarantine(step, err)
        continue
      return (tree if upgrade is None else upgrade.tree(tree)), meta
    return None

  def _check_meta(self, step: int, meta: dict, expected_meta: dict) -> None:
    """ValueError naming the first entry of `expected_meta` that the step's meta contradicts."""
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

  def close(self) -> None:
    self._manager.close()

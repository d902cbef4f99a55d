"""The resumable host loop every trainer runs: compiled chunks, progress, checkpoints, Ctrl-C.

A trainer describes its work as `Chunks` (how to run a compiled chunk of units, epochs or
minibatch steps, and how to take in its results on the host) and `run` drives it:

- resumes from the latest checkpoint in a `checkpoint.Progress` folder, if there is one;
- runs chunk after chunk, each one compiled call (or a few), and shows a progress bar;
- saves at chunk boundaries the trainer allows, at most every `min_interval_s` seconds, and
  always at the end;
- on KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one by the CLI), takes in the chunk
  that had already returned, saves, and re-raises.

Chunk boundaries depend only on the trainer's settings, so a resumed run makes exactly the
compiled calls of an uninterrupted one and ends with the same bits. Divergence is the
trainer's to detect (in `accept`), since only it knows what its results mean; `where_saved`
gives the sentence that points the user to the last good checkpoint.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Generic, NamedTuple, TypeVar

import jax
from tqdm.auto import tqdm

from aerbm_jax import checkpoint

__all__ = ["Chunks", "run", "where_saved", "progress_bar"]

S = TypeVar("S")


class Chunks(NamedTuple, Generic[S]):
  """What a trainer tells `run`. `S` is the trainer's host-side state (a pytree of arrays)."""

  total: int  # units (epochs, steps) to run in all
  size: Callable[[int], int]  # units in the chunk that starts after `done` units
  advance: Callable[[S, int, int], Any]  # (state, start, n) -> the chunk's (device) results
  accept: Callable[[S, Any, int, int], S]  # (state, results, start, n) -> state; raises if bad
  to_tree: Callable[[S], Any]  # the checkpointed pytree
  from_tree: Callable[[S, Any], S]  # a restored pytree back into a state; raises if foreign
  may_save: Callable[[int], bool] = lambda done: True  # boundaries where a save is allowed
  postfix: Callable[[S, int], dict | None] = lambda state, done: None  # progress-bar figures
  # a checkpoint's meta -> how to read it, where it holds an older layout of the tree
  older: Callable[[dict], checkpoint.Upgrade | None] = lambda meta: None


def progress_bar(total: int, desc: str, unit: str, show: bool = True) -> tqdm:
  """A tqdm bar for host loops over compiled chunks: off when `show` is False, when the
  `AERBM_QUIET` environment variable is set (`aerbm --quiet`), and when output is not a
  terminal (logs)."""
  quiet = bool(os.environ.get("AERBM_QUIET"))
  return tqdm(total=total, desc=desc, unit=unit, leave=False,
              disable=True if (quiet or not show) else None)


def where_saved(progress: checkpoint.Progress | None, unit: str) -> str:
  """The tail of a divergence message: where the last good checkpoint is, if any."""
  if progress is None:
    return ""
  saved = progress.latest_step()
  if saved is None:
    return f"; it diverged before the first checkpoint in {progress.directory}"
  return f"; the latest checkpoint ({unit} {saved}) is in {progress.directory}"


def _alive(tree: Any) -> bool:
  """Whether no JAX array of `tree` has been donated to a call that did not return."""
  return not any(x.is_deleted() for x in jax.tree.leaves(tree) if isinstance(x, jax.Array))


def run(
  state: S,
  chunks: Chunks[S],
  progress: checkpoint.Progress | None,
  meta: dict[str, Any],
  *,
  desc: str,
  unit: str,
  show: bool = True,
) -> S:
  """Run every unit of `chunks` from `state` (or from the latest checkpoint) to the end.

  Args:
    state: the starting state (also the structure a checkpoint is restored into).
    chunks: the trainer's description of its work.
    progress: the checkpoint folder, or None for no checkpoints.
    meta: JSON facts a checkpoint must agree with to be resumed (config, sizes, model kind);
      `Progress.restore` names the first that differs. The step is added to it.
    desc, unit: the progress bar's label and unit.
    show: show the progress bar.

  Returns:
    The final state.
  """
  done = 0
  restored = None
  if progress is not None and progress.latest_step() is not None:
    restored = progress.restore(chunks.to_tree(state), meta, chunks.older)  # None: all damaged
  if restored is not None:
    tree, saved = restored
    state, done = chunks.from_tree(state, tree), saved["step"]

  def save(force: bool) -> None:
    if progress is not None:
      progress.save(done, chunks.to_tree(state), {**meta, "step": done}, force=force)

  bar = progress_bar(chunks.total, desc, unit, show)
  bar.update(done)
  pending = None
  try:
    while done < chunks.total:
      n = min(chunks.size(done), chunks.total - done)
      pending = (chunks.advance(state, done, n), n)
      state = chunks.accept(state, pending[0], done, n)
      pending = None
      done += n
      if chunks.may_save(done) or done == chunks.total:
        save(done == chunks.total)
      bar.update(n)
      postfix = chunks.postfix(state, done)
      if postfix:
        bar.set_postfix(postfix)
  except KeyboardInterrupt:
    if pending is not None:  # the interrupted chunk had returned: its results are valid
      results, n = pending
      state = chunks.accept(state, results, done, n)
      done += n
    if _alive(chunks.to_tree(state)):
      save(True)
    raise
  finally:
    bar.close()
  return state

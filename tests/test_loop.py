"""The shared host loop on a toy trainer: chunks, saves, resume, Ctrl-C and divergence."""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

from aerbm_jax import checkpoint, loop


class Toy(NamedTuple):
  total: jnp.ndarray  # the sum of the units run so far
  seen: np.ndarray  # which units ran, in order


def _chunks(n_units=10, size=3, fail_at=None, calls=None, may_save=lambda done: True):
  """A trainer whose unit i adds i to a sum; `fail_at` makes that unit's chunk "diverge"."""

  def advance(state, start, n):
    if calls is not None:
      calls.append(start)
    return state.total + jnp.sum(jnp.arange(start, start + n))

  def accept(state, out, start, n):
    if fail_at is not None and start <= fail_at < start + n:
      raise FloatingPointError(f"diverged at unit {fail_at}")
    state.seen[start:start + n] = np.arange(start, start + n)
    return Toy(out, state.seen)

  return loop.Chunks(
    total=n_units, size=lambda done: size, advance=advance, accept=accept,
    to_tree=lambda s: {"total": s.total, "seen": s.seen},
    from_tree=lambda s, tree: Toy(tree["total"], np.array(tree["seen"])), may_save=may_save)


def _start(n_units=10):
  return Toy(jnp.zeros((), jnp.int32), np.full(n_units, -1))


def test_runs_every_unit_once_in_chunks():
  calls = []
  out = loop.run(_start(), _chunks(calls=calls), None, {}, desc="toy", unit="unit", show=False)
  assert int(out.total) == sum(range(10)) and list(out.seen) == list(range(10))
  assert calls == [0, 3, 6, 9]  # the last chunk is cut to what is left


def test_saves_where_allowed_and_resumes_from_the_latest(tmp_path):
  progress = checkpoint.Progress(tmp_path, min_interval_s=0.0, max_to_keep=10)
  chunks = _chunks(may_save=lambda done: done % 2 == 0)
  loop.run(_start(), chunks, progress, {"what": "toy"}, desc="toy", unit="unit", show=False)
  saved = sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit())
  assert saved == [6, 10]  # even boundaries, and the end
  # A run that finds the finished checkpoint returns its state without running anything.
  calls = []
  again = loop.run(_start(), _chunks(calls=calls), checkpoint.Progress(tmp_path), {"what": "toy"},
                   desc="toy", unit="unit", show=False)
  assert calls == [] and int(again.total) == sum(range(10))
  with pytest.raises(ValueError, match="what"):  # another run's checkpoint is refused
    loop.run(_start(), _chunks(), checkpoint.Progress(tmp_path), {"what": "other"},
             desc="toy", unit="unit", show=False)


def test_ctrl_c_saves_the_units_done_and_a_resume_finishes_the_same(tmp_path):
  calls = []
  chunks = _chunks(calls=calls)

  def interrupted(state, start, n):
    if start == 6:
      raise KeyboardInterrupt
    return chunks.advance(state, start, n)

  progress = checkpoint.Progress(tmp_path, min_interval_s=1e9)
  with pytest.raises(KeyboardInterrupt):
    loop.run(_start(), chunks._replace(advance=interrupted), progress, {}, desc="toy",
             unit="unit", show=False)
  assert progress.latest_step() == 6  # forced on Ctrl-C, though no periodic save was due
  calls.clear()
  out = loop.run(_start(), chunks, checkpoint.Progress(tmp_path), {}, desc="toy", unit="unit",
                 show=False)
  assert calls == [6, 9] and int(out.total) == sum(range(10))
  assert list(out.seen) == list(range(10))


def test_divergence_propagates_and_saves_nothing_after_it(tmp_path):
  progress = checkpoint.Progress(tmp_path, min_interval_s=0.0)
  with pytest.raises(FloatingPointError, match="unit 4"):
    loop.run(_start(), _chunks(fail_at=4), progress, {}, desc="toy", unit="unit", show=False)
  assert progress.latest_step() == 3
  assert loop.where_saved(progress, "unit") == f"; the latest checkpoint (unit 3) is in {tmp_path}"
  assert loop.where_saved(None, "unit") == ""
  empty = checkpoint.Progress(tmp_path / "empty")
  assert "before the first checkpoint" in loop.where_saved(empty, "epoch")

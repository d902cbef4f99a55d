"""Orbax checkpoints: round trips, RBMs restored with their kind, atomic text, periodic saves."""

import jax
import numpy as np
import pytest

from aerbm_jax import checkpoint, rbm


def test_checkpoint_of_another_kind_or_size_is_refused(tmp_path):
  path = checkpoint.save(tmp_path / "lat", rbm.init(jax.random.key(0), 16, 8))
  with pytest.raises(ValueError, match=r"BernoulliRBM with W of shape \(16, 8\).*needs a "
                                       r"GaussianRBM with W of shape \(16, 8\)"):
    checkpoint.load_rbm(path, like=rbm.init(jax.random.key(0), 16, 8, visible="gaussian"))
  with pytest.raises(ValueError, match=r"\(16, 8\).*\(16, 4\)"):
    checkpoint.load_rbm(path, like=rbm.init(jax.random.key(0), 16, 4))
  not_rbm = checkpoint.save(tmp_path / "other", {"kernel": np.zeros(3)})
  with pytest.raises(ValueError, match="does not hold an RBM"):
    checkpoint.load_rbm(not_rbm)


def test_round_trip_keeps_values_dtypes_and_kind(tmp_path):
  tree = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.float32(2.5)}
  path = checkpoint.save(tmp_path / "tree", tree)
  back = checkpoint.restore(path)
  np.testing.assert_array_equal(back["a"], tree["a"])
  assert back["a"].dtype == np.int32 and float(back["b"]) == 2.5
  with pytest.raises(FileExistsError, match="already exists"):
    checkpoint.save(path, tree)
  g = rbm.init(jax.random.key(1), 5, 2, visible="gaussian")
  loaded = checkpoint.load_rbm(checkpoint.save(tmp_path / "g", g), like=g)
  assert isinstance(loaded, rbm.GaussianRBM)
  for x, y in zip(loaded, g):
    np.testing.assert_array_equal(x, y)
  with pytest.raises(FileNotFoundError, match="missing is missing: it holds the checkpoint"):
    checkpoint.restore(tmp_path / "missing")


def test_write_text_replaces_whole_files_and_leaves_no_temporary(tmp_path):
  path = checkpoint.write_text(tmp_path / "m.json", "first")
  checkpoint.write_text(path, "second")
  assert path.read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_progress_throttles_periodic_saves_and_keeps_two(tmp_path):
  progress = checkpoint.Progress(tmp_path, min_interval_s=1e9)
  tree = {"x": np.zeros(3, np.float32)}
  assert not progress.save(1, tree, {"step": 1})  # not due: the interval has not passed
  assert progress.save(2, tree, {"step": 2}, force=True)
  assert not progress.save(2, tree, {"step": 2}, force=True)  # a step is written once
  for step in (3, 4):
    progress.save(step, {"x": np.full(3, step, np.float32)}, {"step": step}, force=True)
  assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [3, 4]
  back, meta = progress.restore(tree, {})
  assert meta["step"] == 4 and np.all(np.asarray(back["x"]) == 4)

"""Run directories: creation, configs read back, the image split, the latent scaler."""

import json

import numpy as np
import pytest

from aerbm_jax import configs, data, runs


def test_new_run_dir_writes_the_config_and_never_overwrites(tmp_path):
  config = configs.make_config("digits", quick=True)
  run = runs.new_run_dir(tmp_path / "r", config)
  assert runs.load_config(run) == config
  assert json.loads((run / "config.json").read_text())["ae_features"] == [8, 16]
  with pytest.raises(FileExistsError, match="not empty"):
    runs.new_run_dir(run, config)
  with pytest.raises(ValueError, match="unknown field.*n_values"):
    runs.load_config(runs.new_run_dir(tmp_path / "s", configs.make_study_config(quick=True)))
  with pytest.raises(FileNotFoundError, match="not a run directory"):
    runs.load_config(tmp_path / "nothing")


def test_load_split_is_deterministic_and_disjoint():
  config = configs.make_config("mondrian", quick=True)
  train, held, source = runs.load_split(config)
  again, held_again, _ = runs.load_split(config)
  np.testing.assert_array_equal(train, again)
  np.testing.assert_array_equal(held, held_again)
  assert len(train) + len(held) == config.n_images and len(held) >= 1
  assert "Mondrian" in source and train.shape[1:] == (32, 32, 3)
  images, names, _ = data.load_source("mondrian", 32, 3, n=32, seed=0)
  train_idx, held_idx = data.split_indices(names, config.held_out_fraction)
  assert set(train_idx).isdisjoint(held_idx) and len(train_idx) + len(held_idx) == 32
  np.testing.assert_array_equal(train, images[train_idx])
  np.testing.assert_array_equal(held, images[held_idx])


def test_standardiser_round_trip(tmp_path):
  z = np.random.default_rng(0).normal(3.0, 2.0, (100, 4)).astype(np.float32)
  scaler = runs.Standardiser.fit(z, on=True)
  s = scaler.forward(z)
  np.testing.assert_allclose(s.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(s.std(0), 1, atol=1e-3)
  scaler.save(tmp_path / "scaler.npz")
  back = runs.Standardiser.load(tmp_path / "scaler.npz")
  np.testing.assert_allclose(back.inverse(s), z, rtol=1e-5)
  identity = runs.Standardiser.fit(z, on=False)
  np.testing.assert_array_equal(identity.forward(z), z)

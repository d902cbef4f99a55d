"""Experiment configs: presets and their precedence, field kinds, unknown and bad fields."""

import dataclasses

import pytest

from aerbm_jax import configs


def test_preset_then_folder_then_quick_then_overrides():
  plain = configs.make_config("faces")
  assert plain.image_size == 32 and plain.channels == 1 and plain.ae_epochs == 150
  folder = configs.make_config("faces", folder=True)
  assert folder.image_size == 128 and folder.channels == 3
  quick = configs.make_config("faces", folder=True, quick=True)
  assert quick.image_size == 32 and quick.channels == 3 and quick.ae_epochs == 2
  mine = configs.make_config("faces", quick=True, ae_epochs=4, seed=7)
  assert mine.ae_epochs == 4 and mine.seed == 7


def test_field_kinds_cover_every_field():
  kinds = configs.field_kinds(configs.ExperimentConfig)
  assert set(kinds) == {f.name for f in dataclasses.fields(configs.ExperimentConfig)}
  assert kinds["ae_features"] == "ints" and kinds["shard"] == "bool"
  assert kinds["rbm_hidden"] == "int" and kinds["held_out_fraction"] == "float"
  assert kinds["data"] == "str"
  assert configs.field_kinds(configs.CIStudyConfig)["n_values"] == "ints"


def test_from_dict_round_trips_json_values():
  config = configs.make_study_config(quick=True)
  raw = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
  assert configs.from_dict(configs.CIStudyConfig, raw, "x.json") == config
  with pytest.raises(ValueError, match="x.json has unknown field.* colour: it was not written"):
    configs.from_dict(configs.CIStudyConfig, {**raw, "colour": 1}, "x.json")
  with pytest.raises(ValueError, match="seeds must be >= 2"):
    configs.from_dict(configs.CIStudyConfig, {**raw, "seeds": 1}, "x.json")


def test_unknown_and_bad_fields_are_named():
  with pytest.raises(ValueError, match="unknown config field"):
    configs.make_config("faces", nosuch=1)
  with pytest.raises(ValueError, match="ci_study has no config field.* rbm_hidden; its fields"):
    configs.make_study_config(rbm_hidden=3)
  with pytest.raises(ValueError, match="unknown experiment 'x'"):
    configs.make_config("x")
  with pytest.raises(ValueError, match="needs latents in"):
    configs.make_config("faces", ae_latent_activation="linear")
  with pytest.raises(ValueError, match="ae_code_noise must be a finite number >= 0"):
    configs.make_config("faces", ae_code_noise=-1.0)
  assert configs.make_config("faces", ae_code_noise=2.0).ae_config().code_noise == 2.0
  with pytest.raises(ValueError, match=r"latent_decode must be one of \('mean', 'sample'\)"):
    configs.make_config("faces", latent_decode="binary")
  gaussian = configs.make_config("faces", rbm_visible="gaussian", ae_latent_activation="linear")
  assert gaussian.rbm_config().method == "cd" and gaussian.pixel_config().epochs == 300


def test_refine_fields_reach_the_ae_and_older_files_mean_no_refining():
  config = configs.make_config("faces", ae_refine_steps=7, ae_refine_learning_rate=0.5)
  assert (config.ae_config().refine_steps, config.ae_config().refine_learning_rate) == (7, 0.5)
  assert configs.make_config("mondrian").ae_config().refine_steps == 100
  with pytest.raises(ValueError, match="ae_refine_steps must be >= 0"):
    configs.make_config("faces", ae_refine_steps=-1)
  with pytest.raises(ValueError, match="refine_learning_rate must be finite and > 0"):
    configs.make_config("faces", ae_refine_learning_rate=0.0)
  with pytest.raises(ValueError, match="ae_refine_learning_rate must be a finite number"):
    configs.make_config("faces", ae_refine_learning_rate="fast")
  raw = {k: list(v) if isinstance(v, tuple) else v
         for k, v in dataclasses.asdict(configs.make_config("faces")).items()}
  assert configs.from_dict(configs.ExperimentConfig, raw, "x.json").ae_refine_steps == 100
  del raw["ae_refine_steps"]  # a run written before codes were refined
  assert configs.from_dict(configs.ExperimentConfig, raw, "x.json").ae_refine_steps == 0
  study = configs.make_study_config(quick=True, ae_refine_steps=0)
  assert study.ae_refine_steps == 0 and configs.make_study_config().ae_refine_steps == 100
  with pytest.raises(ValueError, match="ae_refine_steps must be an int >= 0"):
    configs.make_study_config(ae_refine_steps=-1)
  raw = {k: list(v) if isinstance(v, tuple) else v
         for k, v in dataclasses.asdict(configs.make_study_config()).items()}
  del raw["ae_refine_steps"]
  assert configs.from_dict(configs.CIStudyConfig, raw, "x.json").ae_refine_steps == 0

"""End to end: `aerbm experiment ... --quick` writes a complete run; `aerbm sample` reuses it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from aerbm_jax import cli

RUN_FILES = [
  "config.json", "metrics.json", "report.md", "train_images.png", "ae_reconstructions.png",
  "pixel_rbm_samples.png", "ae_rbm_samples.png", "interpolations.png", "training_curves.png",
  "hidden_units.png", "pixel_rbm_weights.png", "ae_gaussian_samples.png",
  "checkpoints/autoencoder", "checkpoints/latent_rbm", "checkpoints/pixel_rbm",
]


def _without_timings(path):
  m = json.loads(path.read_text())
  m.pop("timings")
  return m


def test_quick_mondrian_run_writes_everything(mondrian_run):
  for name in RUN_FILES:
    assert (mondrian_run / name).exists(), name
  m = json.loads((mondrian_run / "metrics.json").read_text())
  assert m["autoencoder"]["held_out_mse"] > 0 and m["pixel_rbm"]["n_visible"] == 32 * 32 * 3
  a = m["autoencoder"]  # --quick refines each code by 3 steps: fewer errors than the encoder's
  assert a["refine_steps"] == 3 and a["held_out_mse"] < a["encoder_held_out_mse"]
  assert m["timings"]["encode_s"] > 0
  ll = m["latent_rbm"]["held_out_log_likelihood"]  # 16 latents x 8 hidden: enumerated
  assert ll["method"] == "exact" and np.isfinite(ll["log_z"]) and np.isfinite(ll["log_likelihood"])
  report = (mondrian_run / "report.md").read_text()
  assert "refined by 3 Adam steps through the frozen decoder" in report
  for png in ("ae_rbm_samples.png", "pixel_rbm_samples.png", "interpolations.png"):
    assert png in report
  cfg = json.loads((mondrian_run / "config.json").read_text())
  assert cfg["name"] == "mondrian" and cfg["sample_steps"] == 20


def test_same_seed_gives_identical_metrics(mondrian_run, tmp_path):
  again = tmp_path / "again"
  assert cli.main(["experiment", "mondrian", "--quick", "--out", str(again)]) == 0
  assert _without_timings(again / "metrics.json") == _without_timings(mondrian_run / "metrics.json")


def test_sample_from_a_saved_run(mondrian_run, tmp_path):
  assert cli.main(["sample", str(mondrian_run), "--n", "6", "--steps", "5", "--seed", "3",
                   "--out", str(tmp_path)]) == 0
  pngs = sorted(p.name for p in tmp_path.glob("*.png"))
  assert pngs == ["ae_rbm_seed3_steps5.png", "pixel_rbm_seed3_steps5.png"]
  assert Image.open(tmp_path / pngs[0]).size[0] > 64


def test_faces_on_a_user_folder(tmp_path):
  folder = tmp_path / "photos"
  folder.mkdir()
  rng = np.random.default_rng(0)
  for i in range(12):
    Image.fromarray((rng.random((50, 40, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.jpg")
  (folder / "broken.png").write_bytes(b"nope")
  out = tmp_path / "run"
  with pytest.warns(UserWarning, match="broken.png"):
    assert cli.main(["experiment", "faces", "--quick", "--data", str(folder), "--out",
                     str(out), "--n-images", "12", "--rbm-batch-size", "4"]) == 0
  m = json.loads((out / "metrics.json").read_text())
  assert m["data"]["n_train"] + m["data"]["n_held_out"] == 12
  assert m["data"]["image_shape"] == [32, 32, 3]  # --quick shrinks the folder's 128x128x3
  for name in RUN_FILES:
    assert (out / name).exists(), name


def test_existing_run_directory_is_not_overwritten(mondrian_run, capsys):
  assert cli.main(["experiment", "mondrian", "--quick", "--out", str(mondrian_run)]) == 2
  assert "exists" in capsys.readouterr().err


def test_compile_cache_is_filled_and_reused_with_the_same_results(mondrian_run, tmp_path):
  """The warm run loads every program it runs from the cache, the small ones (which compile
  in milliseconds and JAX's default threshold leaves out) too, and draws the same images."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
  env["JAX_LOG_COMPILES"] = "1"
  cache = tmp_path / "xla"
  for run in ("cold", "warm"):
    proc = subprocess.run([sys.executable, "-m", "aerbm_jax.cli", "--compile-cache", str(cache),
                           "sample", str(mondrian_run), "--n", "4", "--steps", "3",
                           "--out", str(tmp_path / run)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(cache.iterdir())
  compiled = proc.stderr.count("Finished XLA compilation of ")
  loaded = proc.stderr.count("Persistent compilation cache hit for ")
  assert compiled > 10 and loaded == compiled, (loaded, compiled)
  cold, warm = sorted((tmp_path / "cold").iterdir()), sorted((tmp_path / "warm").iterdir())
  assert [p.name for p in cold] == [p.name for p in warm] and cold
  assert all(a.read_bytes() == b.read_bytes() for a, b in zip(cold, warm))




def test_hidden_unit_pictures_show_each_unit(mondrian_run):
  """One tile per hidden unit plus the all-off code (latent RBM, 8 hidden); one weight image
  per unit (pixel RBM, 8 hidden), each with its own grey scale."""
  tiles = Image.open(mondrian_run / "hidden_units.png").size
  weights = np.asarray(Image.open(mondrian_run / "pixel_rbm_weights.png").convert("L"))
  assert tiles[0] > 64 and weights.shape[0] > 64
  m = json.loads((mondrian_run / "metrics.json").read_text())["latent_rbm"]["n_hidden"]
  cols = int(np.ceil(np.sqrt(m + 1)))
  assert tiles[0] == cols * (64 + 2 * 2) + 2 * 2  # 32-pixel tiles shown at 64, 2-pixel pads
  assert weights.min() < 60 and weights.max() > 195  # each unit spans its own range


def test_quick_run_with_baselines_has_the_summary_table(tmp_path):
  out = tmp_path / "table"
  assert cli.main(["experiment", "mondrian", "--quick", "--baselines", "--quiet",
                   "--out", str(out)]) == 0
  m = json.loads((out / "metrics.json").read_text())
  q = m["sample_quality"]
  assert set(q["models"]) == {"ae_rbm", "ae_gaussian", "pixel_rbm", "ae_gaussian_rbm", "vae"}
  assert list(q["cases"]) == ["held_out", "reconstructions", "blurred", "collapse", "noise"]
  assert all(m["timings"]["model_s"][n] > 0 for n in q["models"])
  for name in ("ae_gaussian_samples.png", "ae_gaussian_rbm_samples.png", "vae_samples.png"):
    assert (out / name).is_file() and name in (out / "report.md").read_text()
  assert 0 < m["baselines"]["vae"]["ae_held_out_mse"] < 1
  assert "| VAE" in (out / "report.md").read_text()

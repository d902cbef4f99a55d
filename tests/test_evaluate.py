"""`aerbm evaluate` on a finished quick run: every metric for every model and known case."""

import json

import numpy as np

from aerbm_jax import cli


def test_evaluate_writes_metrics_and_table(mondrian_run):
  assert cli.main(["evaluate", str(mondrian_run), "--n", "8", "--steps", "5"]) == 0
  m = json.loads((mondrian_run / "metrics.json").read_text())["evaluation"]
  q = m["sample_quality"]
  assert set(q["models"]) == {"ae_rbm", "ae_gaussian", "pixel_rbm"}
  assert list(q["cases"]) == ["held_out", "reconstructions", "blurred", "collapse", "noise"]
  for s in [*q["models"].values(), *q["cases"].values()]:
    assert 0 <= s["precision"] <= 1 and 0 <= s["recall"] <= 1 and np.isfinite(s["mmd2"])
    assert np.isfinite(s["kid"]) and s["kid_stderr"] >= 0 and s["nn_distance_ratio"] >= 0
  assert set(q["validated"]) <= {"kid", "mmd2", "precision", "recall"}
  for name in ("latent_rbm_nats_per_code", "pixel_rbm_nats_per_image"):
    ll = m["log_likelihood"][name]  # 8 hidden units: both enumerated
    assert ll["method"] == "exact" and np.isfinite(ll["log_likelihood"]), ll
  table = (mondrian_run / "evaluation.md").read_text()
  assert "pixel RBM versus AE + RBM" in table and "*uniform noise*" in table


def test_noisy_code_run_decodes_binary_samples_and_tabulates(tmp_path):
  import runpy
  from pathlib import Path

  out = tmp_path / "noisy"
  assert cli.main(["experiment", "digits", "--quick", "--quiet", "--ae-code-noise", "2",
                   "--latent-decode", "sample", "--out", str(out)]) == 0
  m = json.loads((out / "metrics.json").read_text())
  assert m["sampling"]["decoded"] == "v of the last sweep"
  assert "the decoded\nv of the last sweep" in (out / "report.md").read_text()
  assert cli.main(["evaluate", str(out), "--n", "8", "--steps", "5"]) == 0
  assert "the AE-RBM decodes v of the last sweep" in (out / "evaluation.md").read_text()
  table = Path(__file__).parents[1] / "experiments" / "code_noise_table.py"
  cells = runpy.run_path(str(table))["row"](out).strip("| ").split(" | ")
  assert cells[:3] == ["digits", "2", "sample"] and len(cells) == 12
  assert 0 <= float(cells[4]) <= 1 and float(cells[5]) > 0  # codes near 0/1, mean |W|

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

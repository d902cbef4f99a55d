"""`aerbm evaluate` on a finished quick run: every metric, for every model, in both spaces."""

import json

import numpy as np

from aerbm_jax import cli


def test_evaluate_writes_metrics_and_table(mondrian_run):
  assert cli.main(["evaluate", str(mondrian_run), "--n", "8", "--steps", "5"]) == 0
  m = json.loads((mondrian_run / "metrics.json").read_text())["evaluation"]
  for space in ("pixels_8x8", "ae_encoder"):
    for model in ("ae_rbm", "pixel_rbm", "training_images"):
      s = m[space][model]
      assert 0 <= s["precision"] <= 1 and 0 <= s["recall"] <= 1 and np.isfinite(s["mmd2"])
  for name in ("latent_rbm_nats_per_code", "pixel_rbm_nats_per_image"):
    ll = m["log_likelihood"][name]  # 8 hidden units: both enumerated
    assert ll["method"] == "exact" and np.isfinite(ll["log_likelihood"]), ll
  assert "pixel RBM versus AE + RBM" in (mondrian_run / "evaluation.md").read_text()

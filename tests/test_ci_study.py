"""The confidence-interval study, end to end in its --quick form."""

import json

import numpy as np

from aerbm_jax import cli


def test_quick_ci_study(tmp_path):
  out = tmp_path / "ci"
  assert cli.main(["experiment", "ci_study", "--quick", "--out", str(out)]) == 0
  for name in ("config.json", "ci_study.json", "report.md", "ci_width_vs_dimension.png",
               "ci_width_and_quality_vs_n.png"):
    assert (out / name).exists(), name
  res = json.loads((out / "ci_study.json").read_text())
  spaces = {(r["space"], r["n"]) for r in res["rows"]}
  assert spaces == {("pixels", 12), ("latent8", 12), ("pixels", 24), ("latent8", 24)}
  for r in res["rows"]:
    for q in ("mean", "covariance", "wwt"):
      w = r["own_space"][q]
      assert np.isfinite(w["relative_width"]) and w["mean_width"] > 0
    assert r["pixel_mean_image"]["mean_width"] > 0
    assert 0 <= r["quality"]["precision"] <= 1
  report = (out / "report.md").read_text()
  assert "| 24 | pixels |" in report
  # The verdict follows from the widths the study printed.
  width = {(r["space"], r["n"]): r["pixel_mean_image"]["mean_width"] for r in res["rows"]}
  wins = sum(width[("latent8", n)] < width[("pixels", n)] for n in (12, 24))
  verdict = {2: "The claim held on this data", 0: "The claim did not hold on this data"}.get(
    wins, "The claim held only in part")
  assert f"**{verdict}" in report, (wins, report[:600])
  assert f"at {wins} of 2 sizes" in report
  # A study stopped after two settings resumes with the same results (timings aside).
  for name in ("002.json", "003.json"):
    (out / "checkpoints" / "settings" / name).unlink()
  (out / "ci_study.json").unlink()
  assert cli.main(["experiment", "ci_study", "--resume", str(out)]) == 0
  again = json.loads((out / "ci_study.json").read_text())
  strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
  assert strip(again["rows"]) == strip(res["rows"])

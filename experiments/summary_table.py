"""The course page's summary table, measured: one table per data set from `--baselines` runs.

Reads `RUNS/<name>/metrics.json` of runs made with
`aerbm experiment <name> --baselines --out RUNS/<name>` (faces, mondrian, digits) and writes
`docs/summary.md` (after the hand-written `docs/summary_findings.md`, if present): per data set, the known cases and the five models (pixel RBM, AE + Bernoulli
RBM, AE + Gaussian control, AE with linear latents + Gaussian RBM, VAE) with the validated
metrics, the nearest-training-image distance and each model's time, and the samples side by
side.

  python experiments/summary_table.py [--runs docs/summary] [--out docs/summary.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aerbm_jax.report import quality_table
from aerbm_jax.summary import BASELINE_NAMES

NAMES = {"pixel_rbm": "pixel RBM", "ae_rbm": "AE + Bernoulli RBM (sigmoid latents)",
         "ae_gaussian": "AE + full-covariance Gaussian (control)", **BASELINE_NAMES}
PICTURES = [("pixel_rbm", "pixel_rbm_samples.png"), ("ae_rbm", "ae_rbm_samples.png"),
            ("ae_gaussian", "ae_gaussian_samples.png"),
            ("ae_gaussian_rbm", "ae_gaussian_rbm_samples.png"), ("vae", "vae_samples.png")]


def section(name: str, run: Path, rel: str) -> str:
  m = json.loads((run / "metrics.json").read_text())
  q = m["sample_quality"]
  order = ["pixel_rbm", "ae_rbm", "ae_gaussian", "ae_gaussian_rbm", "vae"]
  q = {**q, "models": {k: q["models"][k] for k in order if k in q["models"]},
       "time_s": m["timings"].get("model_s") or q.get("time_s", {})}
  labels = {"ae_gaussian_rbm": "AE, linear latents", "vae": "VAE, posterior means"}
  mse = {"AE, sigmoid latents": m["autoencoder"]["held_out_mse"],
         **{labels[k]: v["ae_held_out_mse"] for k, v in m.get("baselines", {}).items()}}
  d = m["data"]
  lines = [f"## {name}", "",
           f"{d['source']}: {d['n_train']} training and {d['n_held_out']} held-out images of "
           f"{tuple(d['image_shape'])}; {m['sampling']['chains']} samples per model. "
           f"Whole run {m['timings']['total_s']:.0f} s.", "",
           quality_table(q, NAMES), "",
           "Held-out reconstruction MSE: " + "; ".join(f"{k} {v:.4f}" for k, v in mse.items())
           + f" (the mean image: {m['autoencoder']['mean_image_mse']:.4f}).", "",
           "| " + " | ".join(NAMES[k] for k, _ in PICTURES) + " |",
           "|---" * len(PICTURES) + "|",
           "| " + " | ".join(f"![{k}]({rel}/{png})" for k, png in PICTURES) + " |", ""]
  return "\n".join(lines)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  root = Path(__file__).parents[1]
  ap.add_argument("--runs", default=str(root / "docs" / "summary"))
  ap.add_argument("--out", default=str(root / "docs" / "summary.md"))
  args = ap.parse_args()
  runs, out = Path(args.runs), Path(args.out)
  parts = ["# The summary table, measured", "",
           "The course page ranks an RBM, a VAE and AE + RBM. Here every model is trained on "
           "the same images and scored the same way: the metrics are the ones that order the "
           "five known cases (italic rows, best to worst; [docs/metrics.md](metrics.md)) on "
           "that data set, every set against the training images. Times are each model's "
           "training and sampling on the 2-core CPU (the AE's time counts for every model "
           "built on it). Made by `aerbm experiment NAME --baselines` and "
           "`python experiments/summary_table.py`.", ""]
  findings = root / "docs" / "summary_findings.md"
  if findings.is_file():
    parts += [findings.read_text(), ""]
  for name in ("mondrian", "faces", "digits"):
    if (runs / name / "metrics.json").is_file():
      parts.append(section(name, runs / name, str((runs / name).relative_to(out.parent))))
  out.write_text("\n".join(parts))
  print(f"wrote {out}")


if __name__ == "__main__":
  main()

"""The recipe run's `report.md`: pictures side by side and the metrics table of `metrics.json`."""

from __future__ import annotations

import math
from typing import Any

from aerbm_jax.configs import ExperimentConfig

__all__ = ["experiment_report", "fmt", "likelihood_cell", "likelihood_warnings", "quality_table",
           "METRIC_NAMES", "MODEL_NAMES"]


def fmt(x: Any) -> str:
  """A table cell: floats to 4 significant digits, anything else as text."""
  return f"{x:.4g}" if isinstance(x, float) else str(x)


def likelihood_cell(ll: dict[str, Any] | None) -> str:
  """A `partition.LikelihoodResult` (as a dict) in one cell: the figure, and for AIS its
  interval, the reverse-AIS partner with the gap, the effective sample size and a flag."""
  if ll is None:
    return "-"
  if ll["method"] == "exact":
    return f"{fmt(ll['log_likelihood'])} (exact)"
  cell = f"{fmt(ll['log_likelihood'])} [{fmt(ll['lower'])}, {fmt(ll['upper'])}] (AIS"
  if not math.isnan(ll["reverse_log_likelihood"]):
    cell += f"; reverse {fmt(ll['reverse_log_likelihood'])}, gap {fmt(ll['gap'])}"
  cell += f"; ESS {ll['ess']:.0f})"
  return cell + (" **see warnings**" if ll["warnings"] else "")


def likelihood_warnings(named: dict[str, dict[str, Any] | None]) -> str:
  """Markdown bullets of every AIS warning, each under the name of its estimate."""
  lines = [f"- **{name}**: {w}" for name, ll in named.items() if ll for w in ll["warnings"]]
  return ("\n\nAIS warnings:\n" + "\n".join(lines)) if lines else ""


METRIC_NAMES = {"kid": "KID", "mmd2": "MMD^2", "precision": "precision", "recall": "recall"}
MODEL_NAMES = {"ae_rbm": "AE + RBM", "ae_gaussian": "AE + Gaussian (control)",
               "pixel_rbm": "pixel RBM"}  # the recipe's models, as the tables name them
_CASE_NAMES = {"held_out": "*held-out images*", "reconstructions": "*AE reconstructions*",
               "blurred": "*blurred held-out*", "collapse": "*collapse (averages)*",
               "noise": "*uniform noise*"}


def quality_table(q: dict[str, Any], names: dict[str, str] | None = None) -> str:
  """Markdown for `calibration.evaluate` output: the known cases (in italics) then the models,
  with only the metrics whose known-case order held, and a line on those that failed."""
  shown = [m for m in ("kid", "mmd2", "precision", "recall") if m in q["validated"]]
  head = {**METRIC_NAMES, "kid": "KID (± s.e.)"}
  times = q.get("time_s", {})
  cols = [head[m] for m in shown] + ["NN distance ratio", "time (s)"]
  lines = ["| set | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]

  def row(label: str, s: dict[str, float], time_s: float | None) -> str:
    cells = [f"{s['kid']:.3f} ± {s['kid_stderr']:.3f}" if m == "kid" else f"{s[m]:.3f}"
             for m in shown]
    cells += [f"{s['nn_distance_ratio']:.2f}", "-" if time_s is None else f"{time_s:.0f}"]
    return f"| {label} | " + " | ".join(cells) + " |"

  lines += [row(_CASE_NAMES[c], s, None) for c, s in q["cases"].items()]
  lines += [row((names or {}).get(n, n), s, times.get(n)) for n, s in q["models"].items()]
  failed = [m for m in q["order"] if m not in q["validated"]]
  note = (f"Features: 8x8 pooled colour and edge energy, standardised on the training images; "
          f"every set against the training images; precision/recall k = {q['k']}, averaged "
          f"over subsets of {q['n_fake']}. Lower KID and MMD^2 are better, higher precision "
          "and recall. The italic rows are known cases, best to worst; a metric is shown "
          "only if it ranks them in that order here.")
  if failed:
    vals = "; ".join(f"{m}: " + ", ".join(f"{v:.3g}" for v in q["order"][m]["values"])
                     for m in failed)
    note += f" Not shown, because they misorder the known cases: {vals}."
  return "\n".join(lines) + "\n\n" + note + "\n"


_BASELINE_PICTURES = """
| AE (linear latents) + Gaussian RBM | VAE, samples from its prior |
|---|---|
| ![AE + Gaussian RBM samples](ae_gaussian_rbm_samples.png) | ![VAE samples](vae_samples.png) |
"""


def _refined(m: dict[str, Any]) -> str:
  """How the codes were made, when the encoder's were refined (runs before refining: none)."""
  a = m["autoencoder"]
  if not a.get("refine_steps"):
    return ""
  return (f"\nEvery code (the latent RBM's training data, and the reconstructions here) is the "
          f"encoder's, refined by {a['refine_steps']} Adam steps through the frozen decoder "
          f"(encoding took {m['timings']['encode_s']:.0f} s in all); the encoder's own codes "
          f"give {a['encoder_held_out_mse']:.5f}.")


def experiment_report(config: ExperimentConfig, m: dict[str, Any]) -> str:
  """The markdown report of a recipe run whose metrics are `m` (as in `metrics.json`)."""
  a, lat, pix = m["autoencoder"], m["latent_rbm"], m["pixel_rbm"]
  lat_ll, pix_ll = lat.get("held_out_log_likelihood"), pix.get("held_out_log_likelihood")
  log_z = lambda ll: "-" if ll is None else f"{fmt(ll['log_z'])} ({ll['method']})"  # noqa: E731
  rows = [
    ("visible units", lat["n_visible"], pix["n_visible"]),
    ("hidden units", lat["n_hidden"], pix["n_hidden"]),
    ("weights", lat["n_visible"] * lat["n_hidden"], pix["n_visible"] * pix["n_hidden"]),
    ("final reconstruction MSE (RBM's own space)", lat["final_recon_error"],
     pix["final_recon_error"]),
    ("log Z (method)", log_z(lat_ll), log_z(pix_ll)),
    ("held-out mean -F(v) - log Z (nats, own space)", likelihood_cell(lat_ll),
     likelihood_cell(pix_ll)),
    ("sample MSE to nearest training image (pixels)",
     m["sample_pixel_mse_to_nearest_train"]["ae_rbm"],
     m["sample_pixel_mse_to_nearest_train"]["pixel_rbm"]),
  ]
  table = "\n".join(f"| {r[0]} | {fmt(r[1])} | {fmt(r[2])} |" for r in rows)
  t = m["timings"]
  quality = ""
  if "sample_quality" in m:
    q = {**m["sample_quality"], "time_s": m["timings"].get("model_s", {})}
    quality = "\n### Sample quality\n" + quality_table(q, {
      **MODEL_NAMES, **{n: b["name"] for n, b in m.get("baselines", {}).items()}})
    if m.get("baselines"):
      quality = _BASELINE_PICTURES + quality
  encoding = f"encoding {t['encode_s']:.0f} s, " if "encode_s" in t else ""
  return f"""# Experiment `{config.name}`

Data: {m['data']['source']}; {m['data']['n_train']} training and {m['data']['n_held_out']}
held-out images of shape {tuple(m['data']['image_shape'])}. Seed {config.seed}.
Total time {t['total_s']:.0f} s (autoencoder {t['autoencoder_s']:.0f} s, {encoding}latent RBM
{t['latent_rbm_s']:.0f} s, pixel RBM {t['pixel_rbm_s']:.0f} s).

## Training images and autoencoder reconstructions
![training images](train_images.png)

Pairs of (image, reconstruction). Reconstruction MSE on {a['evaluated_on']} images:
**{a['held_out_mse']:.5f}** (predicting the mean training image: {a['mean_image_mse']:.5f}).{_refined(m)}

![reconstructions](ae_reconstructions.png)

## Samples side by side
{m['sampling']['chains']} block Gibbs chains, {m['sampling']['steps']} sweeps each from random
starts; the pixel RBM's pictures are `E[v | h]` after the last sweep, the AE-RBM's the decoded
{m['sampling'].get('decoded', 'E[v | h] of the last sweep')}.

| AE + RBM ({lat['n_visible']} latents, {lat['n_hidden']} hidden) | RBM on pixels ({pix['n_visible']} visible, {pix['n_hidden']} hidden) |
|---|---|
| ![AE-RBM samples](ae_rbm_samples.png) | ![pixel RBM samples](pixel_rbm_samples.png) |

The control: the same decoder fed draws from one full-covariance Gaussian fitted to the
training codes (no RBM). If the RBM prior is worth having, its samples beat these.

![AE + Gaussian samples](ae_gaussian_samples.png)
{quality}
| | latent RBM | pixel RBM |
|---|---|---|
{table}{likelihood_warnings({"latent RBM": lat_ll, "pixel RBM": pix_ll})}

Log Z is exact where the enumerated layer is small enough, else a forward AIS estimate with
its 3-standard-error interval, beside reverse AIS (pessimistic where forward AIS is
optimistic) and the effective sample size of the weights. Log-likelihoods of the two RBMs live in different spaces (latent codes versus
pixels) and are not comparable with each other. Inputs in (0, 1) are treated as Bernoulli
means, so `-F(v) - log Z` is a proper log-probability only for binary inputs.

## What the hidden units paint
Latent RBM: the decoded mean code with every hidden unit off (first tile), then with one unit
on at a time. Pixel RBM: each hidden unit's weights as an image (grey is 0, lighter positive).

| latent RBM, one hidden unit on | pixel RBM weights |
|---|---|
| ![hidden units](hidden_units.png) | ![pixel RBM weights](pixel_rbm_weights.png) |

## Interpolations between the latents of two training images
![interpolations](interpolations.png)

## Training curves
![training curves](training_curves.png)
"""

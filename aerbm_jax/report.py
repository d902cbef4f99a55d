"""The recipe run's `report.md`: pictures side by side and the metrics table of `metrics.json`."""

from __future__ import annotations

from typing import Any

from aerbm_jax.configs import ExperimentConfig

__all__ = ["experiment_report", "fmt"]


def fmt(x: Any) -> str:
  """A table cell: floats to 4 significant digits, anything else as text."""
  return f"{x:.4g}" if isinstance(x, float) else str(x)


def _ll_cells(rbm_metrics: dict[str, Any]) -> tuple[str, str]:
  """The `log Z` and held-out log-likelihood cells of one RBM's column."""
  ll = rbm_metrics.get("held_out_log_likelihood")
  if ll is None:
    return "-", "-"
  interval = "" if ll["method"] == "exact" else f" [{fmt(ll['lower'])}, {fmt(ll['upper'])}]"
  return f"{fmt(ll['log_z'])} ({ll['method']})", fmt(ll["log_likelihood"]) + interval


def experiment_report(config: ExperimentConfig, m: dict[str, Any]) -> str:
  """The markdown report of a recipe run whose metrics are `m` (as in `metrics.json`)."""
  a, lat, pix = m["autoencoder"], m["latent_rbm"], m["pixel_rbm"]
  lat_z, lat_ll = _ll_cells(lat)
  pix_z, pix_ll = _ll_cells(pix)
  rows = [
    ("visible units", lat["n_visible"], pix["n_visible"]),
    ("hidden units", lat["n_hidden"], pix["n_hidden"]),
    ("weights", lat["n_visible"] * lat["n_hidden"], pix["n_visible"] * pix["n_hidden"]),
    ("final reconstruction MSE (RBM's own space)", lat["final_recon_error"],
     pix["final_recon_error"]),
    ("log Z (method)", lat_z, pix_z),
    ("held-out mean -F(v) - log Z (nats, own space)", lat_ll, pix_ll),
    ("sample MSE to nearest training image (pixels)",
     m["sample_pixel_mse_to_nearest_train"]["ae_rbm"],
     m["sample_pixel_mse_to_nearest_train"]["pixel_rbm"]),
  ]
  table = "\n".join(f"| {r[0]} | {fmt(r[1])} | {fmt(r[2])} |" for r in rows)
  t = m["timings"]
  return f"""# Experiment `{config.name}`

Data: {m['data']['source']}; {m['data']['n_train']} training and {m['data']['n_held_out']}
held-out images of shape {tuple(m['data']['image_shape'])}. Seed {config.seed}.
Total time {t['total_s']:.0f} s (autoencoder {t['autoencoder_s']:.0f} s, latent RBM
{t['latent_rbm_s']:.0f} s, pixel RBM {t['pixel_rbm_s']:.0f} s).

## Training images and autoencoder reconstructions
![training images](train_images.png)

Pairs of (image, reconstruction). Reconstruction MSE on {a['evaluated_on']} images:
**{a['held_out_mse']:.5f}** (predicting the mean training image: {a['mean_image_mse']:.5f}).

![reconstructions](ae_reconstructions.png)

## Samples side by side
{m['sampling']['chains']} block Gibbs chains, {m['sampling']['steps']} sweeps each from random
starts; each picture shows `E[v | h]` after the last sweep (for the AE-RBM, decoded).

| AE + RBM ({lat['n_visible']} latents, {lat['n_hidden']} hidden) | RBM on pixels ({pix['n_visible']} visible, {pix['n_hidden']} hidden) |
|---|---|
| ![AE-RBM samples](ae_rbm_samples.png) | ![pixel RBM samples](pixel_rbm_samples.png) |

| | latent RBM | pixel RBM |
|---|---|---|
{table}

Log Z is exact where the enumerated layer is small enough, else an AIS estimate with its
interval. Log-likelihoods of the two RBMs live in different spaces (latent codes versus
pixels) and are not comparable with each other. Inputs in (0, 1) are treated as Bernoulli
means, so `-F(v) - log Z` is a proper log-probability only for binary inputs.

## Interpolations between the latents of two training images
![interpolations](interpolations.png)

## Training curves
![training curves](training_curves.png)
"""

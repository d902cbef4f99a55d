"""`aerbm evaluate RUN_DIR`: every sample-quality metric for a finished run, side by side.

Samples are drawn afresh from the saved RBMs and from the Gaussian control (seeded) and
scored by `calibration.evaluate` beside the known cases (held-out images, reconstructions,
blur, collapse, noise) in a feature space that belongs to no model; only the metrics that
order those cases correctly are reported. The RBMs' held-out log-likelihoods are estimated
by AIS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax

from aerbm_jax import autoencoder as ae
from aerbm_jax import baselines, calibration, checkpoint, partition, sampling
from aerbm_jax.html import write_report_html
from aerbm_jax.report import MODEL_NAMES, likelihood_cell, likelihood_warnings, quality_table
from aerbm_jax.runs import claim, load_run, load_split, read_json

__all__ = ["evaluate_run"]


def evaluate_run(run_dir: str | Path, *, n_samples: int = 256, steps: int = 1000,
                 seed: int = 0) -> dict[str, Any]:
  """Compute the metrics, merge them into `metrics.json["evaluation"]`, write `evaluation.md`.

  Args:
    run_dir: a finished recipe run directory.
    n_samples: samples per model.
    steps: Gibbs sweeps per chain.
    seed: the seed of the samples and AIS runs.

  Returns:
    The evaluation's results (also under "evaluation" in `metrics.json`).
  """
  run_dir = claim(run_dir)
  config, ae_params, lat, pix, scaler = load_run(run_dir)
  ae_cfg = config.ae_config()
  x_train, x_held, _ = load_split(config)
  if len(x_held) < 5:
    raise ValueError(f"{run_dir}: only {len(x_held)} held-out images; metrics need >= 5 "
                     "(raise held_out_fraction or use more images)")
  key_latent, key_pixel, key_latent_ll, key_pixel_ll, key_gauss = jax.random.split(
    jax.random.key(seed), 5)
  z = sampling.sample_visibles(key_latent, lat, n_samples, steps, "latent RBM chains",
                               kind=config.latent_decode)
  ae_rbm = ae.decode_batched(ae_params, ae_cfg, scaler.inverse(z))
  px = sampling.sample_visibles(key_pixel, pix, n_samples, steps, "pixel RBM chains")
  pixel_rbm = px.reshape((-1,) + x_train.shape[1:])
  codes = ae.encode_batched(ae_params, ae_cfg, x_train)
  gaussian = ae.decode_batched(ae_params, ae_cfg, baselines.sample_gaussian(
    key_gauss, baselines.fit_gaussian(codes), n_samples))
  codes_held = ae.encode_batched(ae_params, ae_cfg, x_held)
  recon = ae.decode_batched(ae_params, ae_cfg, codes_held)
  results: dict[str, Any] = {"n_samples": n_samples, "steps": steps, "seed": seed,
                             "n_held_out": int(len(x_held)),
                             "decoded": sampling.VISIBLE_KINDS[config.latent_decode]}
  results["sample_quality"] = calibration.evaluate(
    {"ae_rbm": ae_rbm, "ae_gaussian": gaussian, "pixel_rbm": pixel_rbm}, x_train, x_held,
    recon, k=min(3, len(x_held) - 2), seed=seed)
  z_train = scaler.forward(codes)
  z_held = scaler.forward(codes_held)
  ll_kw = dict(n_chains=max(config.ais_chains, 2), n_betas=max(config.ais_betas, 100))
  results["log_likelihood"] = {
    "latent_rbm_nats_per_code": partition.log_likelihood_estimate(
      key_latent_ll, lat, z_held, base_data=z_train, **ll_kw)._asdict(),
    "pixel_rbm_nats_per_image": partition.log_likelihood_estimate(
      key_pixel_ll, pix, x_held.reshape(len(x_held), -1), base_data=x_train.reshape(len(x_train), -1),
      **ll_kw)._asdict(),
  }
  path = run_dir / "metrics.json"
  merged = read_json(path, "the run's metrics") if path.exists() else {}
  merged["evaluation"] = results
  checkpoint.write_text(path, json.dumps(merged, indent=1))
  checkpoint.write_text(run_dir / "evaluation.md", _table(results))
  write_report_html(run_dir)
  return results


def _table(r: dict[str, Any]) -> str:
  lines = [
    "# Evaluation: pixel RBM versus AE + RBM",
    "",
    f"{r['n_samples']} samples per model ({r['steps']} Gibbs sweeps, seed {r['seed']}; the "
    f"AE-RBM decodes {r['decoded']}), the "
    f"known cases built from {r['n_held_out']} held-out images. NN distance ratio: the median "
    "pixel distance from a sample to its nearest training image over the held-out images' "
    "(about 1 for new images, near 0 for copies).",
    "",
    quality_table(r["sample_quality"], MODEL_NAMES),
  ]
  ll = r["log_likelihood"]
  lines += ["## Held-out log-likelihood (each in its own space; not comparable with each other)",
            "", "| model | mean log p (nats) | log Z | method |", "|---|---|---|---|"]
  for name, v in ll.items():
    lines.append(f"| {name} | {likelihood_cell(v)} | {v['log_z']:.2f} | {v['method']} |")
  lines.append("")
  warned = likelihood_warnings(ll).strip()
  if warned:
    lines += [warned, ""]
  lines.append("Inputs in (0, 1) are treated as Bernoulli means, so these are proper "
               "log-probabilities only for binary inputs.")
  return "\n".join(lines) + "\n"

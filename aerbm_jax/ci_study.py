"""The page's thesis as a measurement: whether latent RBMs estimate their model more tightly.

For each training-set size N, S seeds of (a) a pixel RBM and (b) a latent RBM on the codes of
an autoencoder (one per latent size) are trained with `fit_many`: one vmapped, compiled call
per setting. Hidden units can be permuted between seeds, so the spread across seeds is
measured on permutation-invariant quantities: the model's mean and covariance (estimated from
samples) and `W W^T`, each as a 95% interval width relative to the quantity's size; and, for a
comparison in one common space, the spread of the model's mean image in pixels. Sample quality
(MMD, precision/recall against held-out images) and AIS log-likelihoods of the latent RBMs
complete the picture. Results: `ci_study.json`, `report.md` and three plots.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from aerbm_jax import ae_train
from aerbm_jax import autoencoder as ae
from aerbm_jax import (calibration, checkpoint, data, loop, metrics, parallel, partition, rbm,
                       sampling, train)
from aerbm_jax.configs import CIStudyConfig
from aerbm_jax.html import write_report_html
from aerbm_jax.report import METRIC_NAMES, likelihood_cell, likelihood_warnings, quality_table
from aerbm_jax.runs import open_run, read_done

__all__ = ["run_study"]


def _pool(config: CIStudyConfig) -> tuple[np.ndarray, np.ndarray, str]:
  """Training pool (enough for the largest N) and held-out images."""
  need = max(config.n_values)
  n = need + config.n_held_out if config.dataset == "mondrian" and not config.data else None
  images, _, source = data.load_source(config.dataset, config.image_size, config.channels,
                                       folder=config.data, n=n, seed=config.seed)
  held = min(config.n_held_out, len(images) // 4)
  pool, held_out = images[: len(images) - held], images[len(images) - held:]
  too_big = [n for n in config.n_values if n > len(pool)]
  if too_big:
    raise ValueError(f"n_values {too_big} exceed the {len(pool)} training images available "
                     f"from {source}; lower them")
  return pool, held_out, source


def _refined(config: CIStudyConfig) -> str:
  """How the latent codes were made, when refined."""
  if not config.ae_refine_steps:
    return ""
  return (f"; every code is the encoder's refined by {config.ae_refine_steps} Adam steps "
          "through the frozen decoder")


def _fit_seeds(key, x: np.ndarray, config: CIStudyConfig, lr: float):
  """S seeds of one setting in one vmapped call: stacked params."""
  keys = jax.random.split(key, config.seeds)
  init = jax.vmap(lambda key: rbm.init(key, x.shape[1], config.hidden, data=x))(keys)
  batch = min(config.rbm_batch_size, len(x))
  epochs = max(1, math.ceil(config.rbm_updates / (len(x) // batch)))
  cfg = train.TrainConfig(method="cd", epochs=epochs, batch_size=batch, learning_rate=lr,
                          exact_ll=False, progress=False)
  mesh = None
  if config.shard:
    mesh = parallel.make_mesh(seeds=math.gcd(config.seeds, jax.device_count()))
  params, _ = train.fit_many(keys, init, x, cfg, bootstrap=config.bootstrap, mesh=mesh)
  return params


def _model_samples(key, params, config: CIStudyConfig) -> np.ndarray:
  """`E[v | h]` after `moment_steps` sweeps, `(S, moment_chains, n_visible)`."""

  def one(key, p):
    v, h = sampling.sample(key, p, n_chains=config.moment_chains, n_steps=config.moment_steps,
                           return_hidden=True)
    return sampling.chain_means(p, sampling.GibbsState(v, h))

  return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(key, config.seeds), params))


def _spreads(samples: np.ndarray, params, cov_dims: int) -> dict[str, Any]:
  """Interval widths of permutation-invariant quantities over the seed axis."""
  d = min(cov_dims, samples.shape[-1])
  means = samples.mean(1)
  sub = samples[..., :d]
  cov = np.einsum("sci,scj->sij", sub - sub.mean(1, keepdims=True),
                  sub - sub.mean(1, keepdims=True)) / (sub.shape[1] - 1)
  W = np.asarray(params.W)[:, :d]
  wwt = np.einsum("sik,sjk->sij", W, W)
  return {name: metrics.seed_spread(q)._asdict()
          for name, q in (("mean", means), ("covariance", cov), ("wwt", wwt))}


def _quality(samples_px: np.ndarray, ref: calibration.Reference,
             rng: np.random.Generator) -> dict:
  """`ref.score_samples` of up to 2 x held-out-size pooled decoded samples (seeds together)."""
  pooled = samples_px.reshape((-1,) + samples_px.shape[2:])
  pick = rng.choice(len(pooled), size=min(len(pooled), 2 * ref.n_fake), replace=False)
  return ref.score_samples(pooled[pick])


def run_study(config: CIStudyConfig, run_dir: str | Path, *, resume: bool = False
              ) -> dict[str, Any]:
  """Run the study; results go to `run_dir`.

  Each finished setting (one N and one space) is written to `run_dir/checkpoints/settings/`
  at once; with `resume=True` those are kept and the study continues with the next setting.
  Every setting draws from its own keys, so a resumed study's results equal an uninterrupted
  one's (timings aside).
  """
  config.validate()
  run_dir = open_run(run_dir, config, resume)
  done_dir = run_dir / "checkpoints" / "settings"
  done_dir.mkdir(parents=True, exist_ok=True)
  t_start = time.perf_counter()
  pool, held, source = _pool(config)
  shape = pool.shape[1:]
  # Every setting's samples are scored against the largest training set, beside the known
  # cases built from the held-out images (no reconstructions: each setting has its own AE).
  ref = calibration.Reference(pool[: max(config.n_values)], held, None,
                              k=min(3, len(held) - 2), seed=config.seed)
  print(f"ci_study: {source}; N in {list(config.n_values)}, {config.seeds} seeds, latents "
        f"{list(config.latent_dims)}, pixels {int(np.prod(shape))}")
  key = jax.random.key(config.seed)
  rows: list[dict[str, Any]] = []
  settings = [(n, d) for n in config.n_values for d in (None, *config.latent_dims)]
  bar = loop.progress_bar(len(settings), "ci_study settings", "setting")
  for index, (n, d) in enumerate(settings):
    bar.update(1)
    saved = done_dir / f"{index:03d}.json"
    row = read_done(saved, "a finished setting")
    if row is not None:
      rows.append(row)
      continue
    rng = np.random.default_rng([config.seed, index])
    key_fit, key_samples, key_ae, key_ll, key_ae_init = jax.random.split(
      jax.random.fold_in(key, index), 5)
    x = pool[:n]
    t0 = time.perf_counter()
    if d is None:
      params = _fit_seeds(key_fit, x.reshape(n, -1), config, config.pixel_learning_rate)
      samples = _model_samples(key_samples, params, config)
      pixels = samples.reshape((config.seeds, -1) + shape)
      row = {"space": "pixels", "visible": int(np.prod(shape))}
    else:
      epochs = max(1, math.ceil(config.ae_updates / max(1, n // min(16, n))))
      ae_cfg = ae.AEConfig(image_size=config.image_size, channels=config.channels,
                           latent_dim=d, features=config.ae_features, epochs=epochs,
                           batch_size=min(16, n), augment=True, progress=False,
                           refine_steps=config.ae_refine_steps,
                           augment_dihedral=config.ae_dihedral and config.dataset == "mondrian"
                           and not config.data)
      ae_params, _ = ae_train.fit(key_ae, ae.init(key_ae_init, ae_cfg), x, ae_cfg)
      z = ae.encode_batched(ae_params, ae_cfg, x)
      params = _fit_seeds(key_fit, z, config, config.rbm_learning_rate)
      samples = _model_samples(key_samples, params, config)
      pixels = ae.decode_batched(ae_params, ae_cfg, samples.reshape(-1, d)).reshape(
        (config.seeds, -1) + shape)
      first = jax.tree.map(lambda a: a[0], params)
      z_held = ae.encode_batched(ae_params, ae_cfg, held)
      ll = partition.log_likelihood_estimate(key_ll, first, z_held, n_chains=config.ais_chains,
                                             n_betas=config.ais_betas, base_data=z)
      row = {"space": f"latent{d}", "visible": d,
             "ae_train_mse": ae.codes_mse(ae_params, ae_cfg, z, x),
             "ae_held_out_mse": ae.codes_mse(ae_params, ae_cfg, z_held, held),
             "latent_log_likelihood_seed0": ll._asdict()}
    row.update(
      n=n, seconds=time.perf_counter() - t0,
      own_space=_spreads(samples, params, config.cov_dims),
      pixel_mean_image=metrics.seed_spread(pixels.mean(1))._asdict(),
      quality=_quality(pixels, ref, rng),
    )
    rows.append(row)
    checkpoint.write_text(saved, json.dumps(row))
  bar.close()
  result = {"config": dataclasses.asdict(config), "source": source, "rows": rows,
            "calibration": ref.summary(), "total_s": time.perf_counter() - t_start}
  checkpoint.write_text(run_dir / "ci_study.json", json.dumps(result, indent=1))
  _plots(rows, config, run_dir)
  checkpoint.write_text(run_dir / "report.md", _report(rows, config, source, result["total_s"],
                                                       result["calibration"]))
  write_report_html(run_dir)
  print(f"done in {result['total_s']:.0f}s: {run_dir}/report.md")
  return result


def _plots(rows, config: CIStudyConfig, run_dir: Path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  spaces = ["pixels"] + [f"latent{d}" for d in config.latent_dims]
  by = {(r["space"], r["n"]): r for r in rows}

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for ax, qty in zip(axes, ("mean", "wwt")):
    for n in config.n_values:
      ordered = sorted(spaces, key=lambda s: by[(s, n)]["visible"])
      xs = [by[(s, n)]["visible"] for s in ordered]
      ys = [by[(s, n)]["own_space"][qty]["relative_width"] for s in ordered]
      ax.plot(xs, ys, marker="o", label=f"N={n}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("visible units (latents ... pixels)")
    ax.set_ylabel("relative 95% interval width")
    ax.set_title({"mean": "model mean <v>", "wwt": "W W^T"}[qty])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(run_dir / "ci_width_vs_dimension.png", dpi=110)
  plt.close(fig)

  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for s in spaces:
    ns = list(config.n_values)
    axes[0].plot(ns, [by[(s, n)]["pixel_mean_image"]["mean_width"] for n in ns], marker="o",
                 label=s)
    axes[1].plot(ns, [by[(s, n)]["quality"]["kid"] for n in ns], marker="o", label=s)
  axes[0].set_title("spread of the model's mean image (pixels)")
  axes[0].set_ylabel("95% interval width")
  axes[1].set_title("sample quality: KID to training images (lower is better)")
  for ax in axes:
    ax.set_xscale("log")
    ax.set_xticks(list(config.n_values), [str(n) for n in config.n_values])
    ax.minorticks_off()
    ax.set_xlabel("training images N")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(run_dir / "ci_width_and_quality_vs_n.png", dpi=110)
  plt.close(fig)


def _report(rows, config: CIStudyConfig, source: str, total_s: float,
            cal: dict[str, Any]) -> str:
  by = {(r["space"], r["n"]): r for r in rows}
  latents = [f"latent{d}" for d in config.latent_dims]
  shown = [m for m in ("kid", "mmd2", "precision", "recall") if m in cal["validated"]]
  head = ("| N | space | visible | rel. width <v> | rel. width W W^T | mean-image width (pixels) | "
          + " | ".join(METRIC_NAMES[m] for m in shown) + (" | " if shown else "") + "NN ratio |")
  lines = [head, "|" + "---|" * (7 + len(shown))]
  for r in rows:
    o = r["own_space"]
    q = r["quality"]
    cells = " | ".join(f"{q[m]:.3f}" for m in shown) + (" | " if shown else "")
    lines.append(f"| {r['n']} | {r['space']} | {r['visible']} | {o['mean']['relative_width']:.4f} "
                 f"| {o['wwt']['relative_width']:.4f} | {r['pixel_mean_image']['mean_width']:.4f} "
                 f"| {cells}{q['nn_distance_ratio']:.2f} |")
  # The claim, per latent size, in the common pixel space and in each model's own space.
  k = len(config.n_values)
  verdicts, wins = [], {}
  for s in latents:
    px_wins = [n for n in config.n_values if by[(s, n)]["pixel_mean_image"]["mean_width"]
               < by[("pixels", n)]["pixel_mean_image"]["mean_width"]]
    own_wins = [n for n in config.n_values if by[(s, n)]["own_space"]["wwt"]["relative_width"]
                < by[("pixels", n)]["own_space"]["wwt"]["relative_width"]]
    wins[s] = len(px_wins)
    verdicts.append(
      f"- {s}: mean image less variable than the pixel RBM's at {len(px_wins)} of {k} sizes "
      f"(N = {', '.join(map(str, px_wins)) or 'none'}); relative W W^T interval narrower at "
      f"{len(own_wins)} of {k} (N = {', '.join(map(str, own_wins)) or 'none'}).")
  if all(w == k for w in wins.values()):
    claim = "The claim held on this data: every latent RBM's estimate was less variable at every N"
  elif all(w == 0 for w in wins.values()):
    claim = "The claim did not hold on this data: no latent RBM's estimate was less variable"
  else:
    held = [s for s, w in wins.items() if w == k]
    claim = ("The claim held only in part: " + (f"{', '.join(held)} beat the pixel RBM at every N"
             if held else "no latent size beat the pixel RBM at every N") +
             "; see the per-size counts below")
  ll_rows = [f"| {r['n']} | {r['space']} | {likelihood_cell(r['latent_log_likelihood_seed0'])} "
             f"| {r['ae_held_out_mse']:.4f} |"
             for r in rows if "latent_log_likelihood_seed0" in r]
  ll_warnings = likelihood_warnings({f"N = {r['n']}, {r['space']}": r["latent_log_likelihood_seed0"]
                                     for r in rows if "latent_log_likelihood_seed0" in r})
  return f"""# Confidence-interval study

Data: {source}, {config.image_size}x{config.image_size}x{config.channels}. {config.seeds} seeds
per setting{' (each on a bootstrap resample)' if config.bootstrap else ''}, {config.hidden} hidden
units, CD-1 for {config.rbm_updates} updates; intervals are mean +- 1.96 s / sqrt(S) over seeds.
Relative width = mean interval width / RMS of the quantity, so spaces of different sizes compare.
Each latent setting uses one autoencoder (trained once on the N images), so the latent RBMs'
intervals measure the RBM's variability given that encoder, not the encoder's own.
Total time {total_s:.0f} s.

**{claim}.**

{chr(10).join(verdicts)}

{chr(10).join(lines)}

Sample quality of each setting's decoded samples (seeds pooled), against the
{max(config.n_values)} training images of the largest N; the metrics shown are those that rank
these known cases (built from the {cal["n_fake"]} held-out images) in order:

{quality_table({**cal, "models": {}})}
![interval width against dimension](ci_width_vs_dimension.png)

![interval width and sample quality against N](ci_width_and_quality_vs_n.png)

Held-out log-likelihood of each latent RBM (seed 0; nats per latent code, latents treated as
Bernoulli means; not comparable across latent sizes or with pixels){_refined(config)}:

| N | space | log p (nats) | AE held-out MSE |
|---|---|---|---|
{chr(10).join(ll_rows)}{ll_warnings}
"""

"""The course page's recipe end to end: AE on images, RBM on latents, sample, decode, compare.

`run_experiment(config, run_dir)` trains the autoencoder, encodes the training images, fits
the latent RBM, samples latents with block Gibbs chains and decodes them; for comparison it
fits an RBM directly on the pixels. Each stage is a function of its own below; everything
lands in the run directory (`runs`): `config.json`, `metrics.json`, orbax checkpoints, PNG
pictures and `report.md` (`report`). `sample_run` draws new images from a finished run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from aerbm_jax import ae_train
from aerbm_jax import autoencoder as ae
from aerbm_jax import (baselines, calibration, checkpoint, metrics, parallel, partition, plots,
                       rbm, sampling, train)
from aerbm_jax.configs import ExperimentConfig
from aerbm_jax.html import write_report_html
from aerbm_jax.report import experiment_report
from aerbm_jax.runs import Standardiser, load_run, load_split, open_run
from aerbm_jax.summary import BASELINE_NAMES, fit_baselines

__all__ = ["run_experiment", "sample_run", "paint_hidden_units"]


class _Keys:
  """The run's PRNG keys, each split off the seed's key for one use."""

  def __init__(self, seed: int):
    (self.ae_fit, self.latent_fit, self.pixel_fit, self.latent_chains, self.pixel_chains,
     self.latent_ll, self.pixel_ll, self.ae_init, self.latent_init, self.pixel_init,
     self.gaussian) = jax.random.split(jax.random.key(seed), 11)


def _estimate_ll(key, params: rbm.RBM, x: np.ndarray, config: ExperimentConfig,
                 base_data: np.ndarray) -> dict[str, Any]:
  """`partition.log_likelihood_estimate` of held-out `x`, where one can be made: exact when
  enumerable, else forward and reverse AIS when `ais_betas` > 0."""
  if not (partition.is_enumerable(params) or config.ais_betas):
    return {}
  res = partition.log_likelihood_estimate(
    key, params, x, n_chains=config.ais_chains, n_betas=config.ais_betas, base_data=base_data)
  return {"held_out_log_likelihood": res._asdict()}


def _fit_autoencoder(keys: _Keys, config: ExperimentConfig, x_train, x_held, run_dir: Path,
                     resume: bool):
  """Stage 2: train the AE and save it; `(params, ae config, history)`."""
  ae_cfg = config.ae_config()
  if ae_cfg.batch_size > len(x_train):
    ae_cfg = dataclasses.replace(ae_cfg, batch_size=len(x_train))
  ae_params = ae.init(keys.ae_init, ae_cfg)
  ae_params, hist = ae_train.fit(keys.ae_fit, ae_params, x_train, ae_cfg, held_out=x_held,
                           checkpoint_dir=run_dir / "checkpoints" / "train" / "autoencoder",
                           checkpoint_every_s=config.checkpoint_every_s)
  checkpoint.save(run_dir / "checkpoints" / "autoencoder", ae_params, overwrite=resume)
  return ae_params, ae_cfg, hist


def _encode_images(ae_params, ae_cfg: ae.AEConfig, hist, x_train, x_held, run_dir: Path):
  """Stage 2b: encode every image once (refined when `ae_refine_steps` > 0), save
  reconstructions and score them.

  Returns:
    `(codes, metrics)`: `codes` holds "train" and "held" codes `(N, latent_dim)` and "recon",
    the held-out images decoded from theirs (the training images' when none is held out).
  """
  codes = {"train": ae.encode_batched(ae_params, ae_cfg, x_train)}
  codes["held"] = ae.encode_batched(ae_params, ae_cfg, x_held) if len(x_held) else codes["train"]
  codes["recon"] = ae.decode_batched(ae_params, ae_cfg, codes["held"])
  eval_set = x_held if len(x_held) else x_train
  if len(x_held) >= 4:
    shown, recon = x_held[:16], codes["recon"][:16]
  else:
    shown, recon = x_train[:16], ae.decode_batched(ae_params, ae_cfg, codes["train"][:16])
  plots.save_grid(run_dir / "ae_reconstructions.png",
                  np.stack([shown, recon], 1).reshape((-1,) + shown.shape[1:]), cols=8)
  unrefined = dataclasses.replace(ae_cfg, refine_steps=0)
  metrics_ = {
    "train_mse": float(hist.train_mse[-1]),
    "held_out_mse": float(np.mean((codes["recon"] - eval_set) ** 2)),
    "encoder_held_out_mse": ae.held_out_mse(ae_params, unrefined, eval_set),
    "refine_steps": ae_cfg.refine_steps,
    "mean_image_mse": float(np.mean((eval_set - x_train.mean(0)) ** 2)),
    "evaluated_on": "held-out" if len(x_held) else "train",
  }
  return codes, metrics_


def _fit_rbm(key_init, key_fit, x: np.ndarray, n_hidden: int, visible: str,
             cfg: train.TrainConfig, name: str, config: ExperimentConfig, run_dir: Path,
             resume: bool, mesh):
  """Stages 3 and 4: an RBM on `x: (N, n_visible)`, initialised from the data, saved."""
  params0 = rbm.init(key_init, x.shape[1], n_hidden, visible=visible, data=x)
  params, hist = train.fit(key_fit, params0, x, cfg,
                           checkpoint_dir=run_dir / "checkpoints" / "train" / name,
                           checkpoint_every_s=config.checkpoint_every_s, mesh=mesh)
  checkpoint.save(run_dir / "checkpoints" / name, params, overwrite=resume)
  return params, hist


def run_experiment(config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False
                   ) -> dict[str, Any]:
  """Run the whole recipe; return the metrics also written to `run_dir/metrics.json`.

  Training checkpoints go to `run_dir/checkpoints/train/` at most every
  `config.checkpoint_every_s` seconds and on Ctrl-C. With `resume=True`, `run_dir` must hold
  a run of the same config; finished stages are restored, the interrupted one continues from
  its last checkpoint, and the final parameters equal an uninterrupted run's bit for bit.

  Args:
    config: the experiment's settings (`configs.make_config`).
    run_dir: the run directory to create (or, with `resume`, to continue).
    resume: continue the run in `run_dir`.

  Returns:
    The metrics dictionary.
  """
  config.validate()
  run_dir = open_run(run_dir, config, resume)
  if resume:
    print(f"resuming {run_dir}")
  mesh = parallel.make_mesh() if config.shard else None
  timings: dict[str, float] = {}
  t_start = time.perf_counter()
  keys = _Keys(config.seed)

  # 1. data
  t0 = time.perf_counter()
  x_train, x_held, source = load_split(config)
  timings["data_s"] = time.perf_counter() - t0
  print(f"data: {source}: {len(x_train)} train / {len(x_held)} held-out images of "
        f"{x_train.shape[1:]}")
  plots.save_grid(run_dir / "train_images.png", x_train[:64])

  # 2. autoencoder
  t0 = time.perf_counter()
  ae_params, ae_cfg, ae_hist = _fit_autoencoder(keys, config, x_train, x_held, run_dir,
                                                resume)
  timings["autoencoder_s"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  codes, ae_metrics = _encode_images(ae_params, ae_cfg, ae_hist, x_train, x_held, run_dir)
  timings["encode_s"] = time.perf_counter() - t0
  refined = (f", {ae_metrics['encoder_held_out_mse']:.5f} from the encoder's codes before "
             f"{ae_cfg.refine_steps} refining steps" if ae_cfg.refine_steps else "")
  print(f"autoencoder: held-out MSE {ae_metrics['held_out_mse']:.5f}{refined} "
        f"(predicting the mean image: {ae_metrics['mean_image_mse']:.5f})")

  # 3. latent RBM
  t0 = time.perf_counter()
  z_train, z_held = codes["train"], codes["held"]
  scaler = Standardiser.fit(z_train, config.rbm_visible == "gaussian")
  zs_train, zs_held = scaler.forward(z_train), scaler.forward(z_held)
  rbm_cfg = config.rbm_config()
  rbm_cfg = dataclasses.replace(rbm_cfg, batch_size=min(rbm_cfg.batch_size, len(zs_train)))
  lat, lat_hist = _fit_rbm(keys.latent_init, keys.latent_fit, zs_train, config.rbm_hidden,
                           config.rbm_visible, rbm_cfg, "latent_rbm", config, run_dir, resume,
                           mesh)
  scaler.save(run_dir / "checkpoints" / "latent_scaler.npz")
  timings["latent_rbm_s"] = time.perf_counter() - t0

  # 4. pixel RBM
  t0 = time.perf_counter()
  p_train = x_train.reshape(len(x_train), -1)
  p_held = x_held.reshape(len(x_held), -1) if len(x_held) else p_train
  pix_cfg = dataclasses.replace(config.pixel_config(), batch_size=rbm_cfg.batch_size)
  pix, pix_hist = _fit_rbm(keys.pixel_init, keys.pixel_fit, p_train, config.pixel_hidden,
                           "bernoulli", pix_cfg, "pixel_rbm", config, run_dir, resume, mesh)
  timings["pixel_rbm_s"] = time.perf_counter() - t0

  # 5. sampling and decoding
  t0 = time.perf_counter()
  z_sampled = sampling.sample_visibles(keys.latent_chains, lat, config.sample_chains,
                                      config.sample_steps, "latent RBM chains", mesh,
                                      config.latent_decode)
  ae_rbm_images = ae.decode_batched(ae_params, ae_cfg, scaler.inverse(z_sampled))
  timings["ae_rbm_sampling_s"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  pixel_images = sampling.sample_visibles(keys.pixel_chains, pix, config.sample_chains,
                                          config.sample_steps, "pixel RBM chains", mesh)
  pixel_images = pixel_images.reshape((-1,) + x_train.shape[1:])
  timings["pixel_rbm_sampling_s"] = time.perf_counter() - t0
  # The control: one full-covariance Gaussian over the same codes.
  t0 = time.perf_counter()
  gaussian = baselines.fit_gaussian(z_train)
  gaussian_images = ae.decode_batched(ae_params, ae_cfg, baselines.sample_gaussian(
    keys.gaussian, gaussian, config.sample_chains))
  timings["ae_gaussian_s"] = time.perf_counter() - t0
  samples = {"ae_rbm": ae_rbm_images, "ae_gaussian": gaussian_images, "pixel_rbm": pixel_images}
  ae_s = timings["autoencoder_s"] + timings["encode_s"]
  model_times = {
    "ae_rbm": ae_s + timings["latent_rbm_s"] + timings["ae_rbm_sampling_s"],
    "ae_gaussian": ae_s + timings["ae_gaussian_s"],
    "pixel_rbm": timings["pixel_rbm_s"] + timings["pixel_rbm_sampling_s"]}
  extra: dict[str, dict[str, Any]] = {}
  if config.baselines:
    extra = fit_baselines(config, x_train, x_held, run_dir, resume, config.sample_chains)
    for name, b in extra.items():
      samples[name], model_times[name] = b["images"], b["time_s"]
      timings[f"{name}_s"] = b["time_s"]
      plots.save_grid(run_dir / f"{name}_samples.png", b["images"])
  plots.save_grid(run_dir / "ae_rbm_samples.png", ae_rbm_images)
  plots.save_grid(run_dir / "pixel_rbm_samples.png", pixel_images)
  plots.save_grid(run_dir / "ae_gaussian_samples.png", gaussian_images)
  plots.save_grid(run_dir / "interpolations.png", _interpolations(ae_params, ae_cfg, z_train),
                  cols=8)
  paint_hidden_units(run_dir, ae_params, ae_cfg, lat, pix, scaler, x_train.shape[1:])
  plots.save_curves(run_dir / "training_curves.png", {
    "autoencoder MSE": {"train": ae_hist.train_mse,
                        "held-out, the encoder's codes": ae_hist.held_out_mse},
    "latent RBM reconstruction": {"train": lat_hist.recon_error},
    "pixel RBM reconstruction": {"train": pix_hist.recon_error},
  })

  # 6. metrics
  t0 = time.perf_counter()
  metrics_ = {
    "data": {"source": source, "n_train": int(len(x_train)), "n_held_out": int(len(x_held)),
             "image_shape": list(x_train.shape[1:])},
    "autoencoder": ae_metrics,
    "latent_rbm": {
      "n_visible": config.ae_latent_dim, "n_hidden": config.rbm_hidden,
      "visible": config.rbm_visible,
      "final_recon_error": float(lat_hist.recon_error[-1]),
      **_estimate_ll(keys.latent_ll, lat, zs_held, config, zs_train),
    },
    "pixel_rbm": {
      "n_visible": int(p_train.shape[1]), "n_hidden": config.pixel_hidden,
      "final_recon_error": float(pix_hist.recon_error[-1]),
      **_estimate_ll(keys.pixel_ll, pix, p_held, config, p_train),
    },
    "sampling": {"chains": config.sample_chains, "steps": config.sample_steps,
                 "start": "uniform random visibles",
                 "decoded": sampling.VISIBLE_KINDS[config.latent_decode]},
    "sample_pixel_mse_to_nearest_train": {
      "ae_rbm": _nearest_mse(ae_rbm_images, x_train),
      "pixel_rbm": _nearest_mse(pixel_images, x_train),
    },
  }
  if extra:
    metrics_["baselines"] = {n: {"ae_held_out_mse": b["ae_held_out_mse"],
                                 "name": BASELINE_NAMES[n]} for n, b in extra.items()}
  if len(x_held) >= 5:
    metrics_["sample_quality"] = calibration.evaluate(samples, x_train, x_held, codes["recon"],
                                                      seed=config.seed)
  timings["metrics_s"] = time.perf_counter() - t0
  timings["model_s"] = model_times  # each model's training and sampling, its AE's included
  timings["total_s"] = time.perf_counter() - t_start
  metrics_["timings"] = timings
  checkpoint.write_text(run_dir / "metrics.json", json.dumps(metrics_, indent=1))
  checkpoint.write_text(run_dir / "report.md", experiment_report(config, metrics_))
  write_report_html(run_dir)
  print(f"done in {timings['total_s']:.0f}s: {run_dir}/report.md")
  return metrics_


def paint_hidden_units(run_dir: Path, ae_params, ae_cfg: ae.AEConfig, lat: rbm.RBM,
                       pix: rbm.RBM, scaler: Standardiser, shape: tuple[int, ...]) -> None:
  """What each hidden unit draws: `hidden_units.png` and `pixel_rbm_weights.png`.

  Latent RBM: the decoded `E[z | h]` with every hidden unit off (the first tile), then with
  unit j alone on, for each j. Pixel RBM: each unit's weights as an image, mid-grey at 0 and
  scaled by the unit's largest |weight| (weights are not pixel values, so this is a view).
  """
  m = rbm.n_hidden(lat)
  h = np.concatenate([np.zeros((1, m)), np.eye(m)]).astype(np.float32)
  z = np.asarray(rbm.visible_mean(lat, h))
  plots.save_grid(run_dir / "hidden_units.png",
                  ae.decode_batched(ae_params, ae_cfg, scaler.inverse(z)))
  w = np.asarray(pix.W).T  # (n_hidden, n_pixels)
  scale = np.maximum(np.abs(w).max(axis=1, keepdims=True), 1e-12)
  plots.save_grid(run_dir / "pixel_rbm_weights.png", (0.5 + 0.5 * w / scale).reshape(
    (-1,) + tuple(shape)))


def _nearest_mse(samples: np.ndarray, train_images: np.ndarray) -> float:
  """Mean over samples of the per-pixel MSE to the nearest training image."""
  s = samples.reshape(len(samples), -1)
  d2 = metrics.nearest_sq_dists(s, train_images.reshape(len(train_images), -1))
  return float(np.mean(d2) / s.shape[1])


def _interpolations(params, cfg: ae.AEConfig, codes: np.ndarray, n_pairs: int = 4,
                    steps: int = 8) -> np.ndarray:
  """Decoded straight lines between pairs of `codes: (N, latent_dim)` (images 0-1, 2-3, ...),
  `(n_pairs*steps, H, W, C)`."""
  n_pairs = min(n_pairs, len(codes) // 2)
  ends = codes[: 2 * n_pairs]
  t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
  z = (1 - t) * ends[0::2, None] + t * ends[1::2, None]
  return ae.decode_batched(params, cfg, z.reshape(-1, z.shape[-1]))


def sample_run(run_dir: str | Path, *, n: int = 64, steps: int = 1000, seed: int = 0,
               out: str | Path | None = None) -> dict[str, Path]:
  """Draw new AE-RBM and pixel-RBM images from a saved run without retraining.

  Args:
    run_dir: a finished recipe run directory.
    n: images per model.
    steps: Gibbs sweeps per chain.
    seed: the sampling seed.
    out: folder for the PNGs (default `run_dir/samples`).

  Returns:
    The path of each model's grid.
  """
  if n < 1 or steps < 1:
    raise ValueError(f"--n and --steps must be >= 1, got n={n}, steps={steps}")
  run = load_run(run_dir)
  ae_cfg = run.config.ae_config()
  out_dir = Path(out) if out else Path(run_dir) / "samples"
  out_dir.mkdir(parents=True, exist_ok=True)
  key_latent, key_pixel = jax.random.split(jax.random.key(seed))
  z = sampling.sample_visibles(key_latent, run.latent_rbm, n, steps, "latent RBM chains",
                               kind=run.config.latent_decode)
  images = ae.decode_batched(run.ae_params, ae_cfg, run.scaler.inverse(z))
  shape = (run.config.image_size, run.config.image_size, run.config.channels)
  px = sampling.sample_visibles(key_pixel, run.pixel_rbm, n, steps, "pixel RBM chains")
  px = px.reshape((-1,) + shape)
  return {
    "ae_rbm": plots.save_grid(out_dir / f"ae_rbm_seed{seed}_steps{steps}.png", images),
    "pixel_rbm": plots.save_grid(out_dir / f"pixel_rbm_seed{seed}_steps{steps}.png", px),
  }

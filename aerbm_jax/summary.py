"""The summary table's extra models: AE + Gaussian RBM on linear latents, and a VAE.

With `ExperimentConfig.baselines`, a recipe run also trains (a) the same autoencoder with
linear latents and a Gaussian-visible RBM on its standardised codes, and (b) a VAE with the
same encoder and decoder, sampled from its N(0, I) prior. Each is checkpointed like the
recipe's own stages (a killed run resumes), and each returns its samples and its time.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from aerbm_jax import ae_train, checkpoint, rbm, sampling, train
from aerbm_jax import autoencoder as ae
from aerbm_jax.configs import ExperimentConfig
from aerbm_jax.runs import Standardiser

__all__ = ["fit_baselines", "BASELINE_NAMES"]

BASELINE_NAMES = {"ae_gaussian_rbm": "AE (linear latents) + Gaussian RBM",
                  "vae": "VAE (same encoder and decoder), prior samples"}


def _train_ae(key_init, key_fit, cfg: ae.AEConfig, x_train, x_held, run_dir: Path, name: str,
              config: ExperimentConfig, resume: bool):
  """Train (or resume) one autoencoder; save it under `checkpoints/NAME`."""
  if cfg.batch_size > len(x_train):
    cfg = dataclasses.replace(cfg, batch_size=len(x_train))
  params, _ = ae_train.fit(key_fit, ae.init(key_init, cfg), x_train, cfg, held_out=x_held,
                           checkpoint_dir=run_dir / "checkpoints" / "train" / name,
                           checkpoint_every_s=config.checkpoint_every_s)
  checkpoint.save(run_dir / "checkpoints" / name, params, overwrite=resume)
  eval_set = x_held if len(x_held) else x_train
  return params, cfg, ae.held_out_mse(params, cfg, eval_set)


def fit_baselines(config: ExperimentConfig, x_train: np.ndarray, x_held: np.ndarray,
                  run_dir: Path, resume: bool, n_samples: int) -> dict[str, dict[str, Any]]:
  """Train both baselines and draw `n_samples` images from each.

  Args:
    config: the run's settings (its AE, RBM and sampling fields apply to the baselines).
    x_train, x_held: `(N, H, W, C)` training and held-out images in [0, 1].
    run_dir: the run directory (checkpoints go under `checkpoints/`).
    resume: whether the run is being resumed.
    n_samples: images to draw from each model.

  Returns:
    Name ("ae_gaussian_rbm", "vae") -> {"images": (n_samples, H, W, C), "time_s",
    "ae_held_out_mse"} (the VAE's MSE decodes its posterior means).
  """
  keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 1), 8)
  base = dataclasses.replace(config.ae_config(), code_noise=0.0)  # linear codes: no noise
  out: dict[str, dict[str, Any]] = {}

  # (a) linear latents, Gaussian-visible RBM on the standardised codes
  t0 = time.perf_counter()
  lin_cfg = dataclasses.replace(base, latent_activation="linear")
  lin, lin_cfg, lin_mse = _train_ae(keys[0], keys[1], lin_cfg, x_train, x_held, run_dir,
                                    "linear_autoencoder", config, resume)
  z = ae.encode_batched(lin, lin_cfg, x_train)
  scaler = Standardiser.fit(z, True)
  zs = scaler.forward(z)
  cfg = dataclasses.replace(config.rbm_config(), centered=False,
                            batch_size=min(config.rbm_batch_size, len(zs)))
  params0 = rbm.init(keys[2], zs.shape[1], config.rbm_hidden, visible="gaussian", data=zs)
  g_rbm, _ = train.fit(keys[3], params0, zs, cfg,
                       checkpoint_dir=run_dir / "checkpoints" / "train" / "gaussian_rbm",
                       checkpoint_every_s=config.checkpoint_every_s)
  checkpoint.save(run_dir / "checkpoints" / "gaussian_rbm", g_rbm, overwrite=resume)
  zg = sampling.sample_visibles(keys[4], g_rbm, n_samples, config.sample_steps,
                             "Gaussian RBM chains")
  out["ae_gaussian_rbm"] = {"images": ae.decode_batched(lin, lin_cfg, scaler.inverse(zg)),
                            "time_s": time.perf_counter() - t0, "ae_held_out_mse": lin_mse}

  # (b) the VAE
  t0 = time.perf_counter()
  vae_cfg = dataclasses.replace(base, latent_activation="linear", variational=True,
                                kl_weight=config.vae_kl_weight, refine_steps=0,
                                epochs=config.vae_epochs or base.epochs)
  vae, vae_cfg, vae_mse = _train_ae(keys[5], keys[6], vae_cfg, x_train, x_held, run_dir,
                                    "vae", config, resume)
  prior = np.asarray(jax.random.normal(keys[7], (n_samples, vae_cfg.latent_dim)))
  out["vae"] = {"images": ae.decode_batched(vae, vae_cfg, prior),
                "time_s": time.perf_counter() - t0, "ae_held_out_mse": vae_mse}
  return out

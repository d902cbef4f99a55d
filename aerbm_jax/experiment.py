"""The course page's recipe end to end: AE on images, RBM on latents, sample, decode, compare.

`run_experiment(config, run_dir)` trains the autoencoder, encodes the training images, fits
the latent RBM, samples latents with block Gibbs chains and decodes them; for comparison it
fits an RBM directly on the pixels. Everything lands in the run directory: `config.json`,
`metrics.json`, orbax checkpoints, PNG pictures and `report.md`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from aerbm_jax import autoencoder as ae
from aerbm_jax import checkpoint, data, parallel, partition, plots, rbm, sampling, train

__all__ = [
  "ExperimentConfig", "PRESETS", "FOLDER_DEFAULTS", "QUICK", "make_config", "run_experiment",
  "sample_run", "load_run", "load_config", "load_images", "load_split", "sample_means", "Standardiser",
]


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Every setting of an experiment; the CLI exposes each field as `--field-name`."""

  name: str = "mondrian"
  data: str | None = None  # a folder of the user's images; overrides the built-in source
  tfds: str | None = None  # a tensorflow-datasets name (downloads; optional)
  n_images: int = 200  # images to generate (mondrian) or at most to use
  image_size: int = 128
  channels: int = 3
  held_out_fraction: float = 0.15
  seed: int = 0
  # autoencoder
  ae_latent_dim: int = 128
  ae_features: tuple[int, ...] = (16, 32, 64, 128)
  ae_latent_activation: str = "sigmoid"
  ae_epochs: int = 60
  ae_batch_size: int = 16
  ae_learning_rate: float = 2e-3
  ae_augment: bool = True
  # RBM on the latent codes
  rbm_visible: str = "bernoulli"  # "gaussian" needs ae_latent_activation="linear"
  rbm_hidden: int = 64
  rbm_method: str = "cd"  # CD-1: PCD-1 with momentum 0.9 collapsed the pixel RBMs (measured)
  rbm_k: int = 1
  rbm_epochs: int = 300
  rbm_batch_size: int = 16
  rbm_learning_rate: float = 0.01
  rbm_weight_decay: float = 1e-4
  # RBM on the pixels (for comparison)
  pixel_hidden: int = 64
  pixel_epochs: int = 300
  pixel_learning_rate: float = 0.005
  # sampling and evaluation
  sample_chains: int = 64
  sample_steps: int = 1000
  ais_chains: int = 32
  ais_betas: int = 2000  # 0 skips AIS
  # checkpoints (a killed run resumes with --resume RUN_DIR)
  checkpoint_every_s: float = 30.0  # least time between two training checkpoints
  rbm_epochs_per_call: int = 0  # RBM epochs per compiled call; 0: ~256 updates per call
  # devices: split RBM minibatches and sampling chains over every device (and host)
  shard: bool = False

  def validate(self) -> None:
    ints = [f.name for f in dataclasses.fields(self) if f.type in ("int", int)]
    for name in ints:
      v = getattr(self, name)
      if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{name} must be an int, got {v!r}")
      zero_ok = name in ("seed", "ais_betas", "rbm_epochs_per_call")
      if v < 0 or (v == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {v}")
    for name in ("ae_learning_rate", "rbm_learning_rate", "pixel_learning_rate",
                 "rbm_weight_decay", "held_out_fraction", "checkpoint_every_s"):
      v = getattr(self, name)
      if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if not 0 <= self.held_out_fraction < 1:
      raise ValueError(f"held_out_fraction must lie in [0, 1), got {self.held_out_fraction}")
    if self.rbm_visible not in ("bernoulli", "gaussian"):
      raise ValueError(f"rbm_visible must be 'bernoulli' or 'gaussian', got {self.rbm_visible!r}")
    if self.rbm_visible == "bernoulli" and self.ae_latent_activation != "sigmoid":
      raise ValueError("a Bernoulli latent RBM needs latents in (0, 1): set "
                       "ae_latent_activation=sigmoid, or rbm_visible=gaussian")
    if self.ais_betas and self.ais_betas < 3:
      raise ValueError(f"ais_betas must be 0 (off) or >= 3, got {self.ais_betas}")
    self.ae_config().validate()
    self.rbm_config().validate()
    self.pixel_config().validate()

  def ae_config(self) -> ae.AEConfig:
    return ae.AEConfig(
      image_size=self.image_size, channels=self.channels, latent_dim=self.ae_latent_dim,
      latent_activation=self.ae_latent_activation, features=tuple(self.ae_features),
      learning_rate=self.ae_learning_rate, epochs=self.ae_epochs,
      batch_size=self.ae_batch_size, augment=self.ae_augment)

  def rbm_config(self) -> train.TrainConfig:
    return train.TrainConfig(
      method=self.rbm_method, k=self.rbm_k, epochs=self.rbm_epochs,
      batch_size=self.rbm_batch_size, learning_rate=self.rbm_learning_rate,
      weight_decay=self.rbm_weight_decay, exact_ll=False,
      epochs_per_call=self.rbm_epochs_per_call)

  def pixel_config(self) -> train.TrainConfig:
    return dataclasses.replace(
      self.rbm_config(), epochs=self.pixel_epochs, learning_rate=self.pixel_learning_rate)


PRESETS: dict[str, dict[str, Any]] = {
  # Procedural Mondrian compositions at the page's 128x128x3.
  "mondrian": dict(n_images=200),
  # The 100 real face crops shipped with scikit-image (25x25 grey, shown at 32x32).
  "faces": dict(n_images=100, image_size=32, channels=1, ae_features=(32, 64, 128),
                ae_epochs=150, ae_batch_size=10, rbm_batch_size=10),
  # scikit-learn's 8x8 digits, shown at 28x28 for the autoencoder.
  "digits": dict(n_images=500, image_size=28, channels=1, ae_features=(32, 64),
                 ae_epochs=30, ae_batch_size=32, ae_augment=False, rbm_batch_size=32,
                 rbm_epochs=100, pixel_epochs=100),
}
# A user's folder (--data DIR) is read at the page's 128x128 colour unless overridden.
FOLDER_DEFAULTS: dict[str, Any] = dict(image_size=128, channels=3)
# --quick: the same pipeline in seconds, for tests.
QUICK: dict[str, Any] = dict(
  n_images=32, held_out_fraction=0.25, image_size=32, ae_latent_dim=16, ae_features=(8, 16), ae_epochs=2,
  ae_batch_size=8, rbm_hidden=8, rbm_epochs=3, rbm_batch_size=8, pixel_hidden=8,
  pixel_epochs=3, sample_chains=8, sample_steps=20, ais_chains=4, ais_betas=50)


def make_config(name: str, *, quick: bool = False, folder: bool = False, **overrides: Any
                ) -> ExperimentConfig:
  """The preset `name`, then folder defaults, then `--quick`, then explicit overrides."""
  if name not in PRESETS:
    raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(PRESETS)}")
  fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
  values: dict[str, Any] = {"name": name, **PRESETS[name]}
  if folder:
    values.update(FOLDER_DEFAULTS)
  if quick:
    values.update(QUICK)
  values.update(overrides)
  config = ExperimentConfig(**values)
  config.validate()
  return config


# ---------------------------------------------------------------------------- data


def load_images(config: ExperimentConfig) -> tuple[np.ndarray, list[str], str]:
  """Images `(N, S, S, C)` in [0, 1], a name for each (for the split) and a description."""
  size, ch = config.image_size, config.channels
  if config.data:
    images, names = data.load_folder(config.data, size, ch)
    source = f"folder {config.data}"
  elif config.tfds:
    images = data.load_tfds(config.tfds, size, ch, n=config.n_images)
    names, source = [f"{config.tfds}-{i}" for i in range(len(images))], f"tfds {config.tfds}"
  elif config.name == "mondrian":
    images = data.mondrian_batch(config.n_images, size, seed=config.seed)
    source = f"procedural Mondrian compositions (seed {config.seed})"
    names = [f"mondrian-{config.seed}-{i}" for i in range(len(images))]
  elif config.name == "faces":
    images = data.lfw_faces(size, ch)
    source = "scikit-image lfw_subset: 100 LFW face crops, 25x25 grey"
    names = [f"lfw-{i}" for i in range(len(images))]
  elif config.name == "digits":
    images = data.digits(size, ch)
    source = "scikit-learn digits, 8x8"
    names = [f"digit-{i}" for i in range(len(images))]
  else:
    raise ValueError(f"experiment {config.name!r} has no built-in data; pass --data DIR")
  if config.n_images and len(images) > config.n_images:
    images, names = images[: config.n_images], names[: config.n_images]
  return images, names, source


def load_split(config: ExperimentConfig) -> tuple[np.ndarray, np.ndarray, str]:
  """The run's images split by name into `(train, held_out, description)`."""
  images, names, source = load_images(config)
  train_idx, held_idx = data.split_indices(names, config.held_out_fraction)
  return images[train_idx], images[held_idx], source


# ---------------------------------------------------------------------------- pipeline


def _rbm_ll(key, params, x, config: ExperimentConfig, base_data) -> dict[str, float]:
  """AIS log Z and mean `-F(v) - log Z` over `x`, for Bernoulli RBMs."""
  if not config.ais_betas or not isinstance(params, rbm.BernoulliRBM):
    return {}
  res = partition.ais_log_partition(
    key, params, n_chains=config.ais_chains, n_betas=config.ais_betas,
    base=partition.base_rate_bias(base_data))
  ll = float(partition.log_likelihood(params, x, res.log_z))
  return {"ais_log_z": float(res.log_z), "ais_log_z_lower": float(res.log_z_lower),
          "ais_log_z_upper": float(res.log_z_upper), "held_out_log_p_star": ll}


_run_chains = jax.jit(sampling.run, static_argnames=("n_steps",))


def sample_means(key, params, n_chains: int, n_steps: int, desc: str, mesh=None) -> np.ndarray:
  """Block Gibbs chains from random starts, in compiled chunks of sweeps with a progress bar.

  Returns the visible means `E[v | h]` of the last hidden sample, `(n_chains, n_visible)`:
  the noise-free image or latent code those hidden units describe. With a `mesh` the chains
  are split over its devices.
  """
  chunk = max(1, min(n_steps, 100))
  key_init, key_run = jax.random.split(key)
  state = sampling.init(params, sampling.random_visible(key_init, params, n_chains))
  params, state, _ = parallel.place_chains(params, state, n_chains, mesh, "sample_chains")
  done = 0
  with tqdm(total=n_steps, desc=desc, leave=False, unit="sweep") as bar:
    while done < n_steps:
      step = min(chunk, n_steps - done)
      state = _run_chains(jax.random.fold_in(key_run, done), state, params, n_steps=step)
      done += step
      bar.update(step)
  return np.asarray(rbm.visible_mean(params, state.h))


class Standardiser:
  """Per-dimension standardisation of latents for a Gaussian RBM (identity for Bernoulli)."""

  def __init__(self, mean: np.ndarray, std: np.ndarray):
    self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

  @classmethod
  def fit(cls, z: np.ndarray, on: bool) -> "Standardiser":
    if on:
      return cls(z.mean(0), z.std(0) + 1e-6)
    return cls(np.zeros(z.shape[1]), np.ones(z.shape[1]))

  def forward(self, z):
    return ((z - self.mean) / self.std).astype(np.float32)

  def inverse(self, z):
    return (z * self.std + self.mean).astype(np.float32)

  def save(self, path: Path) -> None:
    """Write `mean` and `std` to an .npz file atomically."""
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, mean=self.mean, std=self.std)
    os.replace(tmp, path)


def load_config(run_dir: str | Path) -> ExperimentConfig:
  """The `ExperimentConfig` stored in a run directory's `config.json`."""
  return checkpoint.read_config(run_dir, ExperimentConfig, ("ae_features",))


def run_experiment(config: ExperimentConfig, run_dir: str | Path, *, resume: bool = False
                   ) -> dict[str, Any]:
  """Run the whole recipe; return the metrics also written to `run_dir/metrics.json`.

  Training checkpoints go to `run_dir/checkpoints/train/` at most every
  `config.checkpoint_every_s` seconds and on Ctrl-C. With `resume=True`, `run_dir` must hold
  a run of the same config; finished stages are restored, the interrupted one continues from
  its last checkpoint, and the final parameters equal an uninterrupted run's bit for bit.
  """
  config.validate()
  if resume:
    stored = load_config(run_dir)
    if stored != config:
      diff = [f.name for f in dataclasses.fields(config)
              if getattr(stored, f.name) != getattr(config, f.name)]
      raise ValueError(f"--resume {run_dir}: its config differs in {', '.join(diff)}; resume "
                       "without changing options")
    run_dir = Path(run_dir)
    print(f"resuming {run_dir}")
  else:
    run_dir = checkpoint.new_run_dir(run_dir, config)
  progress = run_dir / "checkpoints" / "train"
  every = config.checkpoint_every_s
  mesh = parallel.make_mesh() if config.shard else None
  timings: dict[str, float] = {}
  t_start = time.perf_counter()
  key = jax.random.key(config.seed)
  k_ae, k_rbm, k_pix, k_samp, k_psamp, k_ais, k_pais, k_init = jax.random.split(key, 8)

  # 1. data
  t0 = time.perf_counter()
  x_train, x_held, source = load_split(config)
  timings["data_s"] = time.perf_counter() - t0
  print(f"data: {source}: {len(x_train)} train / {len(x_held)} held-out images of "
        f"{x_train.shape[1:]}")
  plots.save_grid(run_dir / "train_images.png", x_train[:64])

  # 2. autoencoder
  t0 = time.perf_counter()
  ae_cfg = config.ae_config()
  if ae_cfg.batch_size > len(x_train):
    ae_cfg = dataclasses.replace(ae_cfg, batch_size=len(x_train))
  ae_params = ae.init(k_init, ae_cfg)
  ae_params, ae_hist = ae.fit(k_ae, ae_params, x_train, ae_cfg, held_out=x_held,
                              checkpoint_dir=progress / "autoencoder", checkpoint_every_s=every)
  timings["autoencoder_s"] = time.perf_counter() - t0
  checkpoint.save(run_dir / "checkpoints" / "autoencoder", ae_params, overwrite=resume)
  shown = x_held[:16] if len(x_held) >= 4 else x_train[:16]
  recon = ae.decode_batched(ae_params, ae_cfg, ae.encode_batched(ae_params, ae_cfg, shown))
  plots.save_grid(run_dir / "ae_reconstructions.png",
                  np.stack([shown, recon], 1).reshape((-1,) + shown.shape[1:]), cols=8)
  eval_set = x_held if len(x_held) else x_train
  ae_metrics = {
    "train_mse": float(ae_hist.train_mse[-1]),
    "held_out_mse": ae.held_out_mse(ae_params, ae_cfg, eval_set),
    "mean_image_mse": float(np.mean((eval_set - x_train.mean(0)) ** 2)),
    "evaluated_on": "held-out" if len(x_held) else "train",
  }
  print(f"autoencoder: held-out MSE {ae_metrics['held_out_mse']:.5f} "
        f"(predicting the mean image: {ae_metrics['mean_image_mse']:.5f})")

  # 3. latent RBM
  t0 = time.perf_counter()
  z_train = ae.encode_batched(ae_params, ae_cfg, x_train)
  z_held = ae.encode_batched(ae_params, ae_cfg, x_held) if len(x_held) else z_train
  gaussian = config.rbm_visible == "gaussian"
  scaler = Standardiser.fit(z_train, gaussian)
  zs_train, zs_held = scaler.forward(z_train), scaler.forward(z_held)
  rbm_cfg = config.rbm_config()
  rbm_cfg = dataclasses.replace(rbm_cfg, batch_size=min(rbm_cfg.batch_size, len(zs_train)))
  lat0 = rbm.init(k_init, config.ae_latent_dim, config.rbm_hidden, visible=config.rbm_visible,
                  data=zs_train)
  lat, lat_hist = train.fit(k_rbm, lat0, zs_train, rbm_cfg,
                            checkpoint_dir=progress / "latent_rbm", checkpoint_every_s=every,
                            mesh=mesh)
  timings["latent_rbm_s"] = time.perf_counter() - t0
  checkpoint.save(run_dir / "checkpoints" / "latent_rbm", lat, overwrite=resume)
  scaler.save(run_dir / "checkpoints" / "latent_scaler.npz")

  # 4. pixel RBM
  t0 = time.perf_counter()
  p_train = x_train.reshape(len(x_train), -1)
  p_held = x_held.reshape(len(x_held), -1) if len(x_held) else p_train
  pix0 = rbm.init(k_init, p_train.shape[1], config.pixel_hidden, data=p_train)
  pix_cfg = dataclasses.replace(config.pixel_config(), batch_size=rbm_cfg.batch_size)
  pix, pix_hist = train.fit(k_pix, pix0, p_train, pix_cfg,
                            checkpoint_dir=progress / "pixel_rbm", checkpoint_every_s=every,
                            mesh=mesh)
  timings["pixel_rbm_s"] = time.perf_counter() - t0
  checkpoint.save(run_dir / "checkpoints" / "pixel_rbm", pix, overwrite=resume)

  # 5. sampling and decoding
  t0 = time.perf_counter()
  z_mean = sample_means(k_samp, lat, config.sample_chains, config.sample_steps,
                        "latent RBM chains", mesh)
  ae_rbm_images = ae.decode_batched(ae_params, ae_cfg, scaler.inverse(z_mean))
  timings["ae_rbm_sampling_s"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  px_mean = sample_means(k_psamp, pix, config.sample_chains, config.sample_steps,
                         "pixel RBM chains", mesh)
  pixel_images = px_mean.reshape((-1,) + x_train.shape[1:])
  timings["pixel_rbm_sampling_s"] = time.perf_counter() - t0
  plots.save_grid(run_dir / "ae_rbm_samples.png", ae_rbm_images)
  plots.save_grid(run_dir / "pixel_rbm_samples.png", pixel_images)
  plots.save_grid(run_dir / "interpolations.png", _interpolations(ae_params, ae_cfg, x_train),
                  cols=8)
  plots.save_curves(run_dir / "training_curves.png", {
    "autoencoder MSE": {"train": ae_hist.train_mse, "held-out": ae_hist.held_out_mse},
    "latent RBM reconstruction": {"train": lat_hist.recon_error},
    "pixel RBM reconstruction": {"train": pix_hist.recon_error},
  })

  # 6. metrics
  t0 = time.perf_counter()
  metrics = {
    "data": {"source": source, "n_train": int(len(x_train)), "n_held_out": int(len(x_held)),
             "image_shape": list(x_train.shape[1:])},
    "autoencoder": ae_metrics,
    "latent_rbm": {
      "n_visible": config.ae_latent_dim, "n_hidden": config.rbm_hidden,
      "visible": config.rbm_visible,
      "final_recon_error": float(lat_hist.recon_error[-1]),
      **_rbm_ll(k_ais, lat, zs_held, config, zs_train),
    },
    "pixel_rbm": {
      "n_visible": int(p_train.shape[1]), "n_hidden": config.pixel_hidden,
      "final_recon_error": float(pix_hist.recon_error[-1]),
      **_rbm_ll(k_pais, pix, p_held, config, p_train),
    },
    "sampling": {"chains": config.sample_chains, "steps": config.sample_steps,
                 "start": "uniform random visibles", "decoded": "E[v | h] of the last sweep"},
    "sample_pixel_mse_to_nearest_train": {
      "ae_rbm": _nearest_mse(ae_rbm_images, x_train),
      "pixel_rbm": _nearest_mse(pixel_images, x_train),
    },
  }
  timings["metrics_s"] = time.perf_counter() - t0
  timings["total_s"] = time.perf_counter() - t_start
  metrics["timings"] = timings
  checkpoint.write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))
  checkpoint.write_text(run_dir / "report.md", _report(config, metrics))
  print(f"done in {timings['total_s']:.0f}s: {run_dir}/report.md")
  return metrics


def _interpolations(params, cfg: ae.AEConfig, images: np.ndarray, n_pairs: int = 4,
                    steps: int = 8) -> np.ndarray:
  """Decoded straight lines between the latents of image pairs, `(n_pairs*steps, H, W, C)`."""
  n_pairs = min(n_pairs, len(images) // 2)
  ends = ae.encode_batched(params, cfg, images[: 2 * n_pairs])
  t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
  z = (1 - t) * ends[0::2, None] + t * ends[1::2, None]
  return ae.decode_batched(params, cfg, z.reshape(-1, z.shape[-1]))


def _nearest_mse(samples: np.ndarray, train_images: np.ndarray) -> float:
  """Mean over samples of the per-pixel MSE to the nearest training image."""
  s = samples.reshape(len(samples), -1).astype(np.float64)
  t = train_images.reshape(len(train_images), -1).astype(np.float64)
  d = (s**2).sum(1)[:, None] - 2 * s @ t.T + (t**2).sum(1)[None]
  return float(np.mean(np.maximum(d.min(1), 0)) / s.shape[1])


def _fmt(x: Any) -> str:
  return f"{x:.4g}" if isinstance(x, float) else str(x)


def _report(config: ExperimentConfig, m: dict[str, Any]) -> str:
  a, lat, pix = m["autoencoder"], m["latent_rbm"], m["pixel_rbm"]
  rows = [
    ("visible units", lat["n_visible"], pix["n_visible"]),
    ("hidden units", lat["n_hidden"], pix["n_hidden"]),
    ("weights", lat["n_visible"] * lat["n_hidden"], pix["n_visible"] * pix["n_hidden"]),
    ("final reconstruction MSE (RBM's own space)", lat["final_recon_error"],
     pix["final_recon_error"]),
    ("AIS log Z", lat.get("ais_log_z", "-"), pix.get("ais_log_z", "-")),
    ("held-out mean -F(v) - log Z (nats, own space)", lat.get("held_out_log_p_star", "-"),
     pix.get("held_out_log_p_star", "-")),
    ("sample MSE to nearest training image (pixels)",
     m["sample_pixel_mse_to_nearest_train"]["ae_rbm"],
     m["sample_pixel_mse_to_nearest_train"]["pixel_rbm"]),
  ]
  table = "\n".join(f"| {r[0]} | {_fmt(r[1])} | {_fmt(r[2])} |" for r in rows)
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

Log-likelihoods of the two RBMs live in different spaces (latent codes versus pixels) and are
not comparable with each other. Inputs in (0, 1) are treated as Bernoulli means, so
`-F(v) - log Z` is a proper log-probability only for binary inputs.

## Interpolations between the latents of two training images
![interpolations](interpolations.png)

## Training curves
![training curves](training_curves.png)
"""


# ---------------------------------------------------------------------------- saved runs


def load_run(run_dir: str | Path
             ) -> tuple[ExperimentConfig, Any, rbm.RBM, rbm.RBM, Standardiser]:
  """A finished run's config, AE parameters, latent and pixel RBMs and latent scaler."""
  run_dir = Path(run_dir)
  config = load_config(run_dir)
  ae_cfg = config.ae_config()
  ckpt = run_dir / "checkpoints"
  if not (ckpt / "pixel_rbm").is_dir():
    raise FileNotFoundError(f"{run_dir} has not finished training; finish it with "
                            f"`aerbm experiment {config.name} --resume {run_dir}`")
  ae_params = checkpoint.restore(ckpt / "autoencoder", ae.init(jax.random.key(0), ae_cfg))
  key = jax.random.key(0)
  lat_like = jax.eval_shape(lambda: rbm.init(key, config.ae_latent_dim, config.rbm_hidden,
                                             visible=config.rbm_visible))
  n_pixels = config.image_size ** 2 * config.channels
  pix_like = jax.eval_shape(lambda: rbm.init(key, n_pixels, config.pixel_hidden))
  lat = checkpoint.load_rbm(ckpt / "latent_rbm", like=lat_like)
  pix = checkpoint.load_rbm(ckpt / "pixel_rbm", like=pix_like)
  with np.load(ckpt / "latent_scaler.npz") as f:
    scaler = Standardiser(f["mean"], f["std"])
  return config, ae_params, lat, pix, scaler


def sample_run(run_dir: str | Path, *, n: int = 64, steps: int = 1000, seed: int = 0,
               out: str | Path | None = None) -> dict[str, Path]:
  """Draw new AE-RBM and pixel-RBM images from a saved run without retraining."""
  if n < 1 or steps < 1:
    raise ValueError(f"--n and --steps must be >= 1, got n={n}, steps={steps}")
  config, ae_params, lat, pix, scaler = load_run(run_dir)
  ae_cfg = config.ae_config()
  out_dir = Path(out) if out else Path(run_dir) / "samples"
  out_dir.mkdir(parents=True, exist_ok=True)
  k_lat, k_pix = jax.random.split(jax.random.key(seed))
  z = sample_means(k_lat, lat, n, steps, "latent RBM chains")
  images = ae.decode_batched(ae_params, ae_cfg, scaler.inverse(z))
  px = sample_means(k_pix, pix, n, steps, "pixel RBM chains")
  shape = (config.image_size, config.image_size, config.channels)
  paths = {
    "ae_rbm": plots.save_grid(out_dir / f"ae_rbm_seed{seed}_steps{steps}.png", images),
    "pixel_rbm": plots.save_grid(out_dir / f"pixel_rbm_seed{seed}_steps{steps}.png",
                                 px.reshape((-1,) + shape)),
  }
  return paths

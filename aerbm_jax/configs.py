"""Experiment configs: the recipe's `ExperimentConfig` and presets, the study's, MNIST's.

Configs are frozen dataclasses. The helpers here are the one place that knows how a config's
fields are typed (`field_kinds`, used by the CLI to build its options and by run directories
to read `config.json` back) and how an unknown field is refused (`check_fields`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
from typing import Any, ClassVar, Iterable, Mapping

from aerbm_jax import autoencoder as ae
from aerbm_jax import sampling, train

__all__ = [
  "CHOICES", "field_help",
  "ExperimentConfig", "PRESETS", "FOLDER_DEFAULTS", "QUICK", "make_config",
  "CIStudyConfig", "STUDY_QUICK", "make_study_config",
  "MNISTConfig", "MNIST_QUICK", "make_mnist_config",
  "field_kinds", "check_fields", "from_dict",
]


def field_kinds(cls: type) -> dict[str, str]:
  """Each field's kind: "bool", "int", "float", "ints" (a tuple of ints) or "str"."""
  kinds = {}
  for f in dataclasses.fields(cls):
    kind = str(f.type)
    kinds[f.name] = ("ints" if kind.startswith("tuple") else
                     kind if kind in ("bool", "int", "float") else "str")
  return kinds


# Fields whose values come from a fixed set: the CLI offers (and names) exactly these.
CHOICES: dict[str, tuple[str, ...]] = {
  "ae_latent_activation": ("sigmoid", "linear"),
  "latent_decode": tuple(sampling.VISIBLE_KINDS),
  "rbm_visible": ("bernoulli", "gaussian"),
  "rbm_method": ("cd", "pcd"),
  "method": ("cd", "pcd"),
  "dataset": ("mondrian", "faces"),
}


@functools.cache
def field_help(cls: type) -> Mapping[str, str]:
  """Each field's one-line documentation: the comment beside it in the class's source.

  Read once per class (parsing the source takes milliseconds, and the CLI asks per field).
  """
  import inspect

  docs = {}
  for line in inspect.getsource(cls).splitlines():
    m = re.match(r"\s+(\w+): [^=]+=[^#]*#\s*(.+)$", line)
    if m:
      docs[m.group(1)] = m.group(2).strip()
  return types.MappingProxyType(docs)


def check_fields(cls: type, names: Iterable[str], message: str, hint: str = "") -> None:
  """ValueError `message: a, b{hint}` for the `names` that are not fields of `cls`."""
  unknown = sorted(set(names) - set(field_kinds(cls)))
  if unknown:
    raise ValueError(f"{message} {', '.join(unknown)}{hint}")


def from_dict(cls: type, raw: dict[str, Any], where: str) -> Any:
  """The config `cls(**raw)` from JSON values (lists become tuples), validated.

  A field `cls` lacks (another kind of run, or another version) is a ValueError naming
  `where` (the file) and the class; a field `raw` lacks takes the value in `cls.ABSENT` (what
  a file written before the field existed meant), else its default.
  """
  check_fields(cls, raw, f"{where} has unknown field(s)",
               f": it was not written by this version's {cls.__name__} (another kind of run, "
               "or version)")
  kinds = field_kinds(cls)
  values = {k: tuple(v) if kinds[k] == "ints" and isinstance(v, list) else v
            for k, v in {**getattr(cls, "ABSENT", {}), **raw}.items()}
  config = cls(**values)
  config.validate()
  return config


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Every setting of an experiment; the CLI exposes each field as `--field-name`."""

  name: str = "mondrian"  # the experiment: mondrian, faces or digits
  data: str | None = None  # a folder of the user's images; overrides the built-in source
  tfds: str | None = None  # a tensorflow-datasets name (downloads; optional)
  n_images: int = 200  # images to generate (mondrian) or at most to use
  image_size: int = 128  # images are resized to image_size x image_size
  channels: int = 3  # 1 (grey) or 3 (colour)
  held_out_fraction: float = 0.15  # images held out (by a hash of their names) for evaluation
  seed: int = 0  # the PRNG seed of every stage
  # autoencoder
  ae_latent_dim: int = 128  # latent code size
  ae_features: tuple[int, ...] = (16, 32, 64, 128)  # channels of each stride-2 conv stage
  ae_latent_activation: str = "sigmoid"  # sigmoid (codes in (0, 1)) or linear
  ae_epochs: int = 60  # passes over the training images
  ae_batch_size: int = 16  # images per Adam step
  ae_learning_rate: float = 2e-3  # Adam's step size
  ae_warmup_steps: int = 100  # Adam's step size rises linearly over these first updates
  ae_augment: bool = True  # random flips and small shifts of the training images
  ae_dihedral: bool = False  # also vertical flips and transposes (images with no up or left)
  ae_code_noise: float = 0.0  # std of noise on the sigmoid code's pre-activations in training
  ae_refine_steps: int = 100  # Adam steps on each image's code through the decoder; 0: none
  ae_refine_learning_rate: float = 0.2  # the step size of those steps (on pre-activations)
  # RBM on the latent codes
  rbm_visible: str = "bernoulli"  # latent RBM's visible units; gaussian needs linear latents
  rbm_hidden: int = 64  # hidden units of the latent RBM
  rbm_method: str = "cd"  # cd (chains restart at the data) or pcd (persistent chains)
  rbm_k: int = 1  # Gibbs sweeps per update, both RBMs
  rbm_epochs: int = 300  # passes over the latent codes
  rbm_batch_size: int = 16  # codes (and images, for the pixel RBM) per update
  rbm_learning_rate: float = 0.01  # SGD step size of the latent RBM (momentum 0.9)
  rbm_weight_decay: float = 1e-4  # L2 penalty on both RBMs' weights
  rbm_centered: bool = True  # centred gradients for the Bernoulli RBMs (latent and pixel)
  # RBM on the pixels (for comparison)
  pixel_hidden: int = 64  # hidden units of the pixel RBM
  pixel_epochs: int = 300  # passes over the training images
  pixel_learning_rate: float = 0.005  # SGD step size of the pixel RBM
  # sampling and evaluation
  sample_chains: int = 64  # Gibbs chains (pictures) per model
  sample_steps: int = 1000  # sweeps per chain
  latent_decode: str = "mean"  # decode each latent chain's E[v | h] (mean) or its last v (sample)
  ais_chains: int = 32  # AIS runs per log-likelihood (forward and reverse each)
  ais_betas: int = 2000  # AIS schedule length; 0 skips AIS (exact log Z still where small)
  baselines: bool = False  # also train AE + Gaussian RBM (linear latents) and a VAE to compare
  vae_epochs: int = 0  # the VAE's passes over the training images; 0: ae_epochs
  vae_kl_weight: float = 0.2  # VAE loss = MSE + vae_kl_weight * KL / pixels (2 sigma^2)

  # A field missing from a config.json written before it existed: the value that run used.
  ABSENT: ClassVar[dict[str, Any]] = {"ae_refine_steps": 0}
  # checkpoints (a killed run resumes with --resume RUN_DIR)
  checkpoint_every_s: float = 30.0  # least time between two training checkpoints
  rbm_epochs_per_call: int = 0  # RBM epochs per compiled call; 0: ~256 updates per call
  # devices: split RBM minibatches and sampling chains over every device (and host)
  shard: bool = False  # split minibatches and chains over every device and host

  def validate(self) -> None:
    """Raise ValueError naming the first bad field."""
    ints = [f.name for f in dataclasses.fields(self) if f.type in ("int", int)]
    for name in ints:
      v = getattr(self, name)
      if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{name} must be an int, got {v!r}")
      zero_ok = name in ("seed", "ais_betas", "rbm_epochs_per_call", "vae_epochs",
                         "ae_warmup_steps", "ae_refine_steps")
      if v < 0 or (v == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {v}")
    for name in ("ae_learning_rate", "rbm_learning_rate", "pixel_learning_rate",
                 "rbm_weight_decay", "held_out_fraction", "checkpoint_every_s",
                 "vae_kl_weight", "ae_code_noise", "ae_refine_learning_rate"):
      v = getattr(self, name)
      if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if not 0 <= self.held_out_fraction < 1:
      raise ValueError(f"held_out_fraction must lie in [0, 1), got {self.held_out_fraction}")
    if self.latent_decode not in CHOICES["latent_decode"]:
      raise ValueError(f"latent_decode must be one of {CHOICES['latent_decode']}, got "
                       f"{self.latent_decode!r}")
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
    """The autoencoder's settings."""
    return ae.AEConfig(
      image_size=self.image_size, channels=self.channels, latent_dim=self.ae_latent_dim,
      latent_activation=self.ae_latent_activation, features=tuple(self.ae_features),
      learning_rate=self.ae_learning_rate, epochs=self.ae_epochs,
      batch_size=self.ae_batch_size, augment=self.ae_augment,
      augment_dihedral=self.ae_dihedral, warmup_steps=self.ae_warmup_steps,
      code_noise=self.ae_code_noise, refine_steps=self.ae_refine_steps,
      refine_learning_rate=self.ae_refine_learning_rate)

  def rbm_config(self) -> train.TrainConfig:
    """The latent RBM's training settings."""
    return train.TrainConfig(
      method=self.rbm_method, k=self.rbm_k, epochs=self.rbm_epochs,
      batch_size=self.rbm_batch_size, learning_rate=self.rbm_learning_rate,
      weight_decay=self.rbm_weight_decay, exact_ll=False,
      epochs_per_call=self.rbm_epochs_per_call,
      centered=self.rbm_centered and self.rbm_visible == "bernoulli")

  def pixel_config(self) -> train.TrainConfig:
    """The pixel RBM's training settings."""
    return dataclasses.replace(
      self.rbm_config(), epochs=self.pixel_epochs, learning_rate=self.pixel_learning_rate,
      centered=self.rbm_centered)


PRESETS: dict[str, dict[str, Any]] = {
  # Procedural Mondrian compositions at the page's 128x128x3.
  # Three stages (a 16x16 map before the code), the square's symmetries and 400 epochs: the
  # held-out MSE each bought is in docs/mondrian.md.
  "mondrian": dict(n_images=200, ae_features=(16, 32, 64), ae_dihedral=True, ae_epochs=400),
  # The 100 real face crops shipped with scikit-image (25x25 grey, shown at 32x32).
  "faces": dict(n_images=100, image_size=32, channels=1, ae_features=(32, 64, 128),
                ae_epochs=150, ae_batch_size=10, rbm_batch_size=10),
  # scikit-learn's 8x8 digits, shown at 28x28 for the autoencoder.
  "digits": dict(n_images=500, image_size=28, channels=1, ae_features=(32, 64),
                 ae_epochs=30, vae_epochs=90, ae_batch_size=32, ae_augment=False,
                 rbm_batch_size=32, rbm_epochs=100, pixel_epochs=100),
}
# A user's folder (--data DIR) is read at the page's 128x128 colour unless overridden.
FOLDER_DEFAULTS: dict[str, Any] = dict(image_size=128, channels=3)
# --quick: the same pipeline in seconds, for tests.
QUICK: dict[str, Any] = dict(
  n_images=32, held_out_fraction=0.25, image_size=32, ae_latent_dim=16, ae_features=(8, 16), ae_epochs=2,
  ae_batch_size=8, rbm_hidden=8, rbm_epochs=3, rbm_batch_size=8, pixel_hidden=8,
  pixel_epochs=3, sample_chains=8, sample_steps=20, ais_chains=4, ais_betas=50,
  ae_refine_steps=3)


def make_config(name: str, *, quick: bool = False, folder: bool = False, **overrides: Any
                ) -> ExperimentConfig:
  """The preset `name`, then folder defaults, then `--quick`, then explicit overrides."""
  if name not in PRESETS:
    raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(PRESETS)}")
  check_fields(ExperimentConfig, overrides, "unknown config field(s):")
  values: dict[str, Any] = {"name": name, **PRESETS[name]}
  if folder:
    values.update(FOLDER_DEFAULTS)
  if quick:
    values.update(QUICK)
  values.update(overrides)
  config = ExperimentConfig(**values)
  config.validate()
  return config


@dataclasses.dataclass(frozen=True)
class CIStudyConfig:
  """Every setting of the confidence-interval study (`ci_study`)."""

  name: str = "ci_study"  # the study
  data: str | None = None  # a folder of images instead of generated Mondrian compositions
  dataset: str = "mondrian"  # "mondrian" or "faces" when no folder is given
  image_size: int = 32  # images are resized to image_size x image_size
  channels: int = 3  # 1 (grey) or 3 (colour)
  n_values: tuple[int, ...] = (25, 50, 100, 400)  # training-set sizes
  latent_dims: tuple[int, ...] = (16, 32, 64, 128)  # latent code sizes, one AE each
  seeds: int = 16  # RBMs per setting, trained in one vmapped call
  bootstrap: bool = False  # each seed trains on its own resample of the N images
  n_held_out: int = 200  # images for the sample-quality metrics
  hidden: int = 64  # hidden units of every RBM
  rbm_updates: int = 1500  # gradient updates per RBM, whatever N is
  rbm_batch_size: int = 16  # examples per update
  rbm_learning_rate: float = 0.01  # SGD step size of the latent RBMs
  pixel_learning_rate: float = 0.005  # SGD step size of the pixel RBMs
  ae_updates: int = 2000  # Adam steps per autoencoder
  ae_dihedral: bool = True  # generated Mondrian: augment with flips and transposes
  ae_features: tuple[int, ...] = (16, 32, 64)  # channels of each stride-2 conv stage
  ae_refine_steps: int = 100  # Adam steps on each image's code through the decoder; 0: none
  moment_chains: int = 200  # samples per seed for the model's mean and covariance
  moment_steps: int = 200  # Gibbs sweeps behind each of those samples
  cov_dims: int = 48  # covariance and W W^T on the first cov_dims visible units
  ais_chains: int = 32  # AIS runs per log-likelihood
  ais_betas: int = 1000  # AIS schedule length
  seed: int = 0  # the PRNG seed of every setting
  shard: bool = False  # split the seeds (then minibatches) over every device and host

  # A field missing from a config.json written before it existed: the value that run used.
  ABSENT: ClassVar[dict[str, Any]] = {"ae_refine_steps": 0}

  def validate(self) -> None:
    """Raise ValueError naming the first bad field."""
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      least = 0 if f.name in ("seed", "ae_refine_steps") else 1
      if f.type == "int" and (not isinstance(v, int) or isinstance(v, bool) or v < least):
        raise ValueError(f"{f.name} must be an int >= {least}, got {v!r}")
      if f.type == "float" and (not math.isfinite(v) or v <= 0):
        raise ValueError(f"{f.name} must be finite and > 0, got {v!r}")
    if self.seeds < 2:
      raise ValueError(f"seeds must be >= 2 to measure a spread, got {self.seeds}")
    if not self.n_values or min(self.n_values) < 2 or not self.latent_dims:
      raise ValueError("n_values (each >= 2) and latent_dims must not be empty")
    if self.dataset not in ("mondrian", "faces"):
      raise ValueError(f"dataset must be 'mondrian' or 'faces', got {self.dataset!r}")


STUDY_QUICK: dict[str, Any] = dict(
  image_size=16, n_values=(12, 24), latent_dims=(8,), seeds=4, n_held_out=16, hidden=8,
  rbm_updates=30, rbm_batch_size=4, ae_updates=20, ae_features=(8, 16), moment_chains=16,
  moment_steps=10, cov_dims=8, ais_chains=4, ais_betas=50)


def make_study_config(*, quick: bool = False, **overrides: Any) -> CIStudyConfig:
  """The interval study's defaults, then `--quick`, then explicit overrides, validated."""
  fields = field_kinds(CIStudyConfig)
  check_fields(CIStudyConfig, overrides, "ci_study has no config field(s)",
               f"; its fields: {', '.join(sorted(set(fields) - {'name'}))}")
  values = {**(STUDY_QUICK if quick else {}), **overrides}
  config = CIStudyConfig(**values)
  config.validate()
  return config


@dataclasses.dataclass(frozen=True)
class MNISTConfig:
  """The MNIST log-likelihood table (`aerbm experiment mnist`): which rows, how trained."""

  name: str = "mnist"  # the table
  data: str | None = None  # idx folder, .npz or "tfds"; None: the shipped 1,000 / 500 digits
  seed: int = 0  # training, AIS and the stochastic binarisation
  n_train: int = 0  # training digits to use; 0: all
  n_test: int = 0  # test digits to score; 0: all
  method: str = "pcd"  # every row's estimator: cd or pcd (persistent chains), k sweeps
  k: int = 1  # Gibbs sweeps per update
  batch_size: int = 100  # digits per update
  learning_rate: float = 0.01  # SGD step size
  momentum: float = 0.0  # SGD momentum
  weight_decay: float = 0.0  # L2 penalty on W
  small_hidden: int = 16  # the exact rows: normal and centred, on x and on 1 - x
  small_epochs: int = 50  # passes over the training digits, exact rows
  big_hidden: int = 500  # the AIS rows: 0 skips them
  big_epochs: int = 100  # passes over the training digits, AIS rows
  big_centered: bool = True  # centre the AIS rows (as in PyDeep's published row)
  stochastic: bool = True  # also the AIS row on stochastically binarised digits (SM08's data)
  cd25: bool = False  # also CD-25 on the stochastic digits, like SM08's CD25(500) (slow)
  ais_chains: int = 100  # AIS runs, forward and reverse each
  ais_betas: int = 14_500  # AIS schedule length (Salakhutdinov & Murray's 14,500)

  def validate(self) -> None:
    """Raise ValueError naming the first bad field."""
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if f.type == "int" and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
        raise ValueError(f"{f.name} must be an int >= 0, got {v!r}")
      if f.type == "float" and (not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
        raise ValueError(f"{f.name} must be a finite number >= 0, got {v!r}")
    for name in ("k", "batch_size", "small_hidden", "small_epochs", "ais_chains"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
    if self.big_hidden and (self.big_epochs < 1 or self.ais_betas < 3):
      raise ValueError("the AIS rows need big_epochs >= 1 and ais_betas >= 3")
    self.train_config(self.small_epochs, False).validate()

  def train_config(self, epochs: int, centered: bool, k: int | None = None) -> train.TrainConfig:
    """One row's training settings."""
    return train.TrainConfig(
      method=self.method, k=self.k if k is None else k, epochs=epochs,
      batch_size=self.batch_size, learning_rate=self.learning_rate, momentum=self.momentum,
      weight_decay=self.weight_decay, centered=centered, exact_ll=False)


MNIST_QUICK: dict[str, Any] = dict(
  n_train=500, n_test=200, batch_size=20, learning_rate=0.05, small_hidden=8, small_epochs=3,
  big_hidden=24, big_epochs=2, ais_chains=8, ais_betas=200)


def make_mnist_config(*, quick: bool = False, **overrides: Any) -> MNISTConfig:
  """The MNIST table's defaults, then `--quick`, then explicit overrides, validated."""
  check_fields(MNISTConfig, overrides, "mnist has no config field(s)")
  config = MNISTConfig(**{**(MNIST_QUICK if quick else {}), **overrides})
  config.validate()
  return config

"""aerbm_jax: Restricted Boltzmann Machines in JAX, alone and on autoencoder latents."""

from aerbm_jax import ais, epochs, gradients, partition, rbm, sampling, tempering, train
from aerbm_jax.partition import (ais_log_partition, exact_log_partition, log_likelihood,
                                 log_likelihood_estimate)
from aerbm_jax.rbm import BernoulliRBM, GaussianRBM, energy, free_energy
from aerbm_jax.sampling import sample
from aerbm_jax.tempering import sample_pt
from aerbm_jax.train import TrainConfig, fit, fit_many

__version__ = "0.1.0"

__all__ = [
  "ais", "epochs", "gradients", "partition", "rbm", "sampling", "tempering", "train",
  "BernoulliRBM", "GaussianRBM", "energy", "free_energy",
  "sample", "sample_pt",
  "exact_log_partition", "ais_log_partition", "log_likelihood", "log_likelihood_estimate",
  "TrainConfig", "fit", "fit_many",
]

"""Shared helpers: brute-force enumeration of tiny RBMs in float64 numpy."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile

# One compilation cache for the whole session, subprocesses included (they inherit the
# environment): the quick experiment runs in the CLI, reliability and CI-study tests compile
# the same programs. Set before JAX is imported, so JAX reads it at import. It starts empty in
# every session, like a clean clone, and is deleted at the end.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="aerbm-test-xla-")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import numpy as np
import pytest


def all_states(n: int) -> np.ndarray:
  """Every binary vector of length n, (2^n, n) float64."""
  return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def bernoulli_joint_energy(W, b, c, v, h):
  """E(v, h) for every pair: (len(v), len(h)) float64."""
  W, b, c = (np.asarray(x, np.float64) for x in (W, b, c))
  return -(v @ W @ h.T) - (v @ b)[:, None] - (h @ c)[None, :]


def exact_visible_probs(params) -> np.ndarray:
  """p(v) over all 2^n visible states of a tiny Bernoulli RBM, by brute force."""
  W = np.asarray(params.W, np.float64)
  v, h = all_states(W.shape[0]), all_states(W.shape[1])
  logits = -bernoulli_joint_energy(W, params.b, params.c, v, h)
  log_pv = np.logaddexp.reduce(logits, axis=1)
  log_pv -= np.logaddexp.reduce(log_pv)
  return np.exp(log_pv)


def state_index(v: np.ndarray) -> np.ndarray:
  """Index of binary rows in the order of `all_states` (first unit is the top bit)."""
  n = v.shape[1]
  return (np.asarray(v).astype(np.int64) * (2 ** np.arange(n - 1, -1, -1))).sum(axis=1)


def total_variation(samples: np.ndarray, probs: np.ndarray) -> float:
  counts = np.bincount(state_index(samples), minlength=len(probs))
  return 0.5 * float(np.abs(counts / counts.sum() - probs).sum())


def tv_tolerance(probs: np.ndarray, n_samples: int, slack: float = 0.01) -> float:
  """Bound on the TV of an exact sampler's empirical distribution.

  E[TV] <= 1/2 sum_i sqrt(p_i (1 - p_i) / N) (Jensen); TV moves by at most 1/N per sample, so
  McDiarmid gives P(TV > E[TV] + t) <= exp(-2 N t^2): for N = 50,000 and t = 0.01, e^-10.
  """
  return 0.5 * float(np.sqrt(probs * (1 - probs) / n_samples).sum()) + slack


@pytest.fixture
def rng():
  return np.random.default_rng(1234)

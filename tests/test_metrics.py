"""Metrics on distributions whose answer is known."""

import numpy as np
import pytest

from aerbm_jax import metrics


def _gauss(seed, n, d=5, shift=0.0):
  return np.random.default_rng(seed).normal(shift, 1.0, (n, d)).astype(np.float32)


def test_mmd_same_distribution_is_near_zero_and_shift_is_detected():
  same = metrics.mmd(_gauss(0, 200), _gauss(1, 200))
  assert abs(same.mmd2) < 0.02 and same.p_value > 0.05
  itself = metrics.mmd(_gauss(0, 100), _gauss(0, 100))
  assert itself.mmd2 < 0.0 + 1e-6  # identical sets: unbiased estimate <= 0
  shifted = metrics.mmd(_gauss(0, 200), _gauss(1, 200, shift=1.0))
  assert shifted.mmd2 > 0.2 and shifted.p_value < 0.01
  assert shifted.bandwidth > 0


def test_precision_recall_known_cases():
  real = _gauss(0, 300)
  p, r = metrics.precision_recall(real, real.copy(), k=3)
  assert p == 1.0 and r == 1.0
  p, r = metrics.precision_recall(real, _gauss(1, 300), k=3)
  assert p > 0.8 and r > 0.8
  p, r = metrics.precision_recall(real, _gauss(2, 300, shift=10.0), k=3)
  assert p == 0.0 and r == 0.0
  # Mode collapse: every fake sits on one real point -> high precision, low recall.
  collapsed = np.repeat(real[:1], 300, 0) + 1e-3 * _gauss(3, 300)
  p, r = metrics.precision_recall(real, collapsed, k=3)
  assert p == 1.0 and r < 0.05


def test_memorization_separates_copies_from_new_samples():
  train, held, new = _gauss(0, 200), _gauss(1, 100), _gauss(2, 100)
  copies = metrics.memorization(train[:100] + 1e-4, train, held)
  assert copies.near_copy_fraction == 1.0 and copies.median_ratio < 0.01
  fresh = metrics.memorization(new, train, held)
  assert fresh.near_copy_fraction < 0.15 and 0.7 < fresh.median_ratio < 1.3


def test_seed_spread():
  est = np.random.default_rng(0).normal(2.0, 0.5, (400, 10))
  s = metrics.seed_spread(est)
  np.testing.assert_allclose(s.mean_std, 0.5, rtol=0.1)
  np.testing.assert_allclose(s.mean_width, 2 * 1.96 * 0.5 / 20, rtol=0.1)
  np.testing.assert_allclose(s.relative_width, s.mean_width / 2.0, rtol=0.05)
  with pytest.raises(ValueError, match="S >= 2"):
    metrics.seed_spread(np.ones((1, 3)))


def test_metric_input_errors():
  with pytest.raises(ValueError, match="different feature sizes"):
    metrics.mmd(_gauss(0, 10, 3), _gauss(0, 10, 4))
  with pytest.raises(ValueError, match="NaN"):
    metrics.precision_recall(np.full((5, 2), np.nan), _gauss(0, 5, 2))
  with pytest.raises(ValueError, match=r"\(N, d\)"):
    metrics.memorization(np.ones(5), _gauss(0, 5), _gauss(1, 5))

"""Metrics on distributions whose answer is known."""

import numpy as np
import pytest
from conftest import compiled_programs

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


def test_kid_is_unbiased_detects_shift_and_has_an_honest_stderr():
  # Two samples of one distribution: KID near 0 within its standard error, over many draws.
  vals = np.array([metrics.kid(_gauss(2 * s, 40), _gauss(2 * s + 1, 60)) for s in range(60)])
  assert abs(vals[:, 0].mean()) < 2 * vals[:, 0].std() / np.sqrt(60)
  # At the null the jackknife is conservative (the U-statistic is degenerate there) ...
  assert vals[:, 1].mean() > vals[:, 0].std()
  # ... and away from it the standard error matches the spread over repeats (within 20%).
  alt = np.array([metrics.kid(_gauss(2 * s, 40), _gauss(2 * s + 1, 60, shift=0.7))
                  for s in range(60)])
  np.testing.assert_allclose(alt[:, 1].mean(), alt[:, 0].std(), rtol=0.2)
  assert alt[:, 0].mean() > 3 * alt[:, 1].mean()  # the shift is detected
  with pytest.raises(ValueError, match="different feature sizes"):
    metrics.kid(_gauss(0, 10, 3), _gauss(0, 10, 4))


def test_image_features_see_blur_and_noise_and_are_standardised():
  rng = np.random.default_rng(0)
  ref = (rng.random((30, 16, 16, 1)) > 0.5).astype(np.float32)
  space = metrics.FeatureSpace.fit(ref, size=4)
  f = space(ref)
  assert f.shape == (30, 4 * 4 * 3)  # colour, then |dx| and |dy| energy
  np.testing.assert_allclose(f.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.mean(f[:, :16] ** 2), 1.0, rtol=1e-4)
  np.testing.assert_allclose(np.mean(f[:, 16:] ** 2), 1.0, rtol=1e-4)
  # A flat image has no edge energy: its edge block sits far below the reference's.
  flat = space(np.full((2, 16, 16, 1), 0.5, np.float32))
  assert np.all(flat[:, 16:] < f[:, 16:].min(0))
  np.testing.assert_allclose(metrics.image_features(ref, ref, size=4), f)


def test_metrics_compile_a_few_whole_programs_for_a_new_shape():
  """Each metric is a few compiled programs. Run op by op, every operation compiled on its own
  for each new shape: MMD compiled 26 programs, precision-recall 50, memorisation 28."""
  for n, run, most in ((37, lambda x, y: metrics.mmd(x, y), 10),
                       (38, lambda x, y: metrics.precision_recall(x, y), 6),
                       (39, lambda x, y: metrics.memorization(x, y, x[:20]), 4)):
    x, y = _gauss(0, n, d=11), _gauss(1, n + 4, d=11)  # shapes no other test uses
    with compiled_programs() as names:
      run(x, y)
    assert 0 < len(names) <= most, names

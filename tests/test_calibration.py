"""The known-case ordering that decides which sample metrics the reports believe."""

import numpy as np
import pytest

from aerbm_jax import calibration as cal
from aerbm_jax import metrics
from aerbm_jax.data.preprocess import split_indices
from aerbm_jax.data.sources import load_source


@pytest.mark.parametrize("name,size,channels,n", [
  ("mondrian", 32, 3, 160), ("faces", 32, 1, None), ("digits", 28, 1, 400)])
def test_kid_mmd_and_recall_order_the_known_cases_on_every_dataset(name, size, channels, n):
  x, names, _ = load_source(name, size, channels, n=n)
  train_idx, held_idx = split_indices(names, 0.15)
  train, held = x[train_idx], x[held_idx]
  # A stand-in for an autoencoder's reconstructions: mildly blurred, slightly noisy copies.
  rng = np.random.default_rng(1)
  recon = np.clip(cal.blur(held, size / 64) + rng.normal(0, 0.03, held.shape), 0, 1)
  cases = cal.known_cases(train, held, recon)
  assert list(cases) == list(cal.CASES)
  space = metrics.FeatureSpace.fit(train)
  f_train = space(train)
  scores = {c: cal.score(v, f_train, space, n_fake=len(held), k=3) for c, v in cases.items()}
  order = cal.check_order(scores)
  for m in ("kid", "mmd2", "recall"):
    assert order[m]["ordered"], (m, order[m]["values"])
  # Held-out images are a sample of the training distribution: KID within 3 standard errors.
  assert abs(scores["held_out"]["kid"]) < 3 * scores["held_out"]["kid_stderr"]


def test_check_order_fails_a_metric_that_swaps_two_cases():
  good = {c: {"kid": i, "kid_stderr": 0.1, "mmd2": i, "precision": 1 - i / 10,
              "recall": 1 - i / 10} for i, c in enumerate(cal.CASES)}
  assert all(r["ordered"] for r in cal.check_order(good).values())
  swapped = {c: dict(v) for c, v in good.items()}
  swapped["blurred"]["kid"], swapped["collapse"]["kid"] = 3, 2
  swapped["noise"]["recall"] = 1.0  # noise recalls more than held-out data: wrong
  r = cal.check_order(swapped)
  assert not r["kid"]["ordered"] and not r["recall"]["ordered"] and r["mmd2"]["ordered"]
  flat = {c: dict(v, precision=1.0) for c, v in good.items()}
  assert not cal.check_order(flat)["precision"]["ordered"]  # constant: tells nothing


def test_score_averages_precision_recall_over_equal_sized_subsets():
  rng = np.random.default_rng(0)
  train = rng.random((40, 8, 8, 1), dtype=np.float32)
  space = metrics.FeatureSpace.fit(train, size=4)
  s = cal.score(rng.random((50, 8, 8, 1), dtype=np.float32), space(train), space, n_fake=10,
                k=3)
  assert set(s) == {"kid", "kid_stderr", "mmd2", "precision", "recall"}
  assert 0 <= s["precision"] <= 1 and 0 <= s["recall"] <= 1 and s["kid_stderr"] > 0

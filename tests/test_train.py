"""Training: estimators against the exact gradient, learning, reproducibility, fit_many."""

import shutil
from pathlib import Path
from unittest import mock

import jax
import numpy as np
import pytest

from conftest import tiny_problem

from aerbm_jax import checkpoint, partition, rbm, train
from aerbm_jax.train import TrainConfig


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_training_increases_exact_log_likelihood(method):
  p, data = tiny_problem(2)
  cfg = TrainConfig(method=method, epochs=30, batch_size=10, learning_rate=0.1, progress=False)
  trained, hist = train.fit(jax.random.key(0), p, data, cfg)
  ll0 = float(partition.log_likelihood(p, data, partition.exact_log_partition(p)))
  assert hist.log_likelihood.shape == (30,) and hist.recon_error.shape == (30,)
  assert hist.log_likelihood[-1] > ll0 + 0.5, (ll0, hist.log_likelihood[-1])
  assert hist.recon_error[-1] < hist.recon_error[0]


def test_same_seed_gives_bitwise_identical_parameters():
  p, data = tiny_problem(3)
  cfg = TrainConfig(method="pcd", epochs=3, batch_size=8, schedule="cosine", progress=False)
  a, ha = train.fit(jax.random.key(5), p, data, cfg)
  b, hb = train.fit(jax.random.key(5), p, data, cfg)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  np.testing.assert_array_equal(ha.recon_error, hb.recon_error)
  c, _ = train.fit(jax.random.key(6), p, data, cfg)
  raw, hraw = train.fit(jax.random.PRNGKey(5), p, data, cfg)  # legacy uint32 keys work too
  assert hraw.recon_error.shape == (cfg.epochs,) and np.array_equal(raw.W, a.W)
  assert not np.array_equal(a.W, c.W)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_fit_many_equals_separate_fits(method):
  _, data = tiny_problem(4)
  keys = jax.random.split(jax.random.key(0), 4)
  params = jax.vmap(lambda k: rbm.init(k, 6, 3, weight_scale=0.1))(keys)
  cfg = TrainConfig(method=method, epochs=3, batch_size=8, progress=False)
  stacked, hist = train.fit_many(keys, params, data, cfg)
  assert stacked.W.shape == (4, 6, 3) and hist.recon_error.shape == (4, 3)
  for s in range(4):
    one, h1 = train.fit(keys[s], jax.tree.map(lambda x: x[s], params), data, cfg)
    for x, y in zip(one, stacked):
      np.testing.assert_allclose(y[s], x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hist.log_likelihood[s], h1.log_likelihood, rtol=1e-5)


def test_fit_many_bootstrap_differs_per_seed():
  _, data = tiny_problem(5)
  keys = jax.random.split(jax.random.key(1), 3)
  p = rbm.init(jax.random.key(0), 6, 3)  # one model shared by every seed
  cfg = TrainConfig(epochs=2, batch_size=8, progress=False)
  stacked, _ = train.fit_many(keys, p, data, cfg, bootstrap=True)
  assert stacked.W.shape == (3, 6, 3) and not np.allclose(stacked.W[0], stacked.W[1])


def test_gaussian_rbm_learns_sigma_and_likelihood():
  r = np.random.default_rng(0)
  data = (r.normal(0, 1, (256, 4)) * [0.5, 1.0, 2.0, 1.0] + [1.0, -1.0, 0.0, 3.0]).astype(
    np.float32)
  p = rbm.init(jax.random.key(0), 4, 4, visible="gaussian")
  cfg = TrainConfig(epochs=40, batch_size=32, learning_rate=0.02, sigma_lr_scale=1.0,
                    progress=False)
  trained, hist = train.fit(jax.random.key(1), p, data, cfg)
  assert hist.log_likelihood[-1] > hist.log_likelihood[0] + 0.5
  np.testing.assert_allclose(np.exp(trained.log_sigma), data.std(0), rtol=0.35)
  frozen, _ = train.fit(jax.random.key(1), p, data, cfg.__class__(
    **{**cfg.__dict__, "learn_sigma": False}))
  np.testing.assert_array_equal(frozen.log_sigma, p.log_sigma)


def test_divergence_names_the_epoch():
  r = np.random.default_rng(0)
  data = (r.normal(0, 1, (64, 3)) * 50).astype(np.float32)
  p = rbm.init(jax.random.key(0), 3, 2, visible="gaussian", weight_scale=1.0)
  cfg = TrainConfig(epochs=5, batch_size=16, learning_rate=1e4, sigma_lr_scale=1.0,
                    progress=False)
  with pytest.raises(train.TrainingDivergedError, match=r"epoch \d") as err:
    train.fit(jax.random.key(0), p, data, cfg)
  assert all(np.all(np.isfinite(x)) for x in err.value.last_good_params)


@pytest.mark.parametrize(
  "make, match",
  [
    (lambda p, d: train.fit(jax.random.key(0), p, d[:, :3]), "columns"),
    (lambda p, d: train.fit(jax.random.key(0), p, d[0]), "2-D array"),
    (lambda p, d: train.fit(jax.random.key(0), p, d * 3), r"\[0, 1\]"),
    (lambda p, d: train.fit(jax.random.key(0), p, np.where(d > 0, np.nan, d)), "non-finite"),
    (lambda p, d: train.fit(jax.random.key(0), p, d, TrainConfig(batch_size=1000)), "batch_size"),
    (lambda p, d: train.fit(jax.random.key(0), p, d, TrainConfig(k=0)), "k must be"),
    (lambda p, d: train.fit(jax.random.key(0), p, d, TrainConfig(learning_rate=float("nan"))),
     "learning_rate"),
    (lambda p, d: train.fit(jax.random.key(0), p, d, TrainConfig(method="sgd")), "method"),
    (lambda p, d: rbm.init(jax.random.key(0), 6, 0), "n_hidden"),
    (lambda p, d: rbm.init(jax.random.key(0), 6, 2, visible="poisson"), "visible"),
  ],
)
def test_bad_input_gets_a_clear_error(make, match):
  p, data = tiny_problem()
  with pytest.raises(ValueError, match=match):
    make(p, data)


# ---------------------------------------------------------------------------- chunks, resume


def _leaves_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_resume_from_checkpoint_is_bitwise_identical(tmp_path, method):
  p, data = tiny_problem()
  cfg = TrainConfig(method=method, epochs=6, batch_size=8, epochs_per_call=2, progress=False)
  ref, href = train.fit(jax.random.key(7), p, data, cfg)
  ckpt = tmp_path / "ckpt"
  train.fit(jax.random.key(7), p, data, cfg, checkpoint_dir=ckpt, checkpoint_every_s=0)
  assert sorted(int(d.name) for d in ckpt.iterdir() if d.name.isdigit()) == [4, 6]
  import shutil
  shutil.rmtree(ckpt / "6")  # as if killed before the last save: resume from epoch 4
  out, hout = train.fit(jax.random.key(7), p, data, cfg, checkpoint_dir=ckpt)
  assert _leaves_equal(out, ref)
  np.testing.assert_array_equal(hout.recon_error, href.recon_error)
  # A finished checkpoint returns at once with the same result.
  again, _ = train.fit(jax.random.key(7), p, data, cfg, checkpoint_dir=ckpt)
  assert _leaves_equal(again, ref)


def test_keyboard_interrupt_saves_and_resumes(tmp_path, monkeypatch):
  p, data = tiny_problem()
  cfg = TrainConfig(method="pcd", epochs=6, batch_size=8, epochs_per_call=2, progress=False)
  ref, _ = train.fit(jax.random.key(2), p, data, cfg)
  real, calls = train.epochs, []

  def interrupted(*args):
    calls.append(1)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return real(*args)

  monkeypatch.setattr(train, "epochs", interrupted)
  ckpt = tmp_path / "ckpt"
  with pytest.raises(KeyboardInterrupt):
    train.fit(jax.random.key(2), p, data, cfg, checkpoint_dir=ckpt, checkpoint_every_s=1e9)
  assert [d.name for d in ckpt.iterdir() if d.name.isdigit()] == ["2"]  # saved on Ctrl-C
  monkeypatch.setattr(train, "epochs", real)
  out, _ = train.fit(jax.random.key(2), p, data, cfg, checkpoint_dir=ckpt)
  assert _leaves_equal(out, ref)


@pytest.mark.parametrize(
  "change, match",
  [
    (dict(params=rbm.init(jax.random.key(0), 6, 4)), "W_shape"),
    (dict(params=rbm.init(jax.random.key(0), 6, 3, visible="gaussian"), ), "model"),
    (dict(config=TrainConfig(method="pcd", epochs=6, batch_size=4, progress=False)), "batch_size"),
    (dict(key=jax.random.key(8)), "PRNG key"),
    (dict(state_format=1), "state_format=1, but this run has state_format=2"),
  ],
)
def test_resume_with_other_settings_is_refused(tmp_path, change, match):
  p, data = tiny_problem()
  cfg = TrainConfig(method="pcd", epochs=6, batch_size=8, progress=False)
  args = dict(key=jax.random.key(7), params=p, config=cfg, state_format=2) | change
  # A checkpoint of another state layout (an earlier version's) is refused by name.
  with mock.patch.object(train, "STATE_FORMAT", args["state_format"]):
    train.fit(jax.random.key(7), p, data, cfg, checkpoint_dir=tmp_path)
  with pytest.raises(ValueError, match=match):
    train.fit(args["key"], args["params"], data, args["config"], checkpoint_dir=tmp_path)


FORMAT_1 = Path(__file__).parent / "data" / "checkpoint-state-format-1"


@pytest.mark.parametrize("case", ["cd", "pcd", "pcd-seeds"])
def test_checkpoint_of_state_format_1_resumes_where_it_stopped(tmp_path, monkeypatch, case):
  """A checkpoint written before the optimizer carried its bounds (epoch 4 of 6, see
  tests/data/README.md) resumes there, with bounds rebuilt from its parameters and momentum,
  and ends where an uninterrupted run of this code ends, bit for bit."""
  p, data = tiny_problem()
  cfg = TrainConfig(method=case.split("-")[0], epochs=6, batch_size=8, epochs_per_call=2,
                    progress=False)
  seeds = case.endswith("seeds")
  run = ((lambda **kw: train.fit_many(jax.random.split(jax.random.key(7), 2), p, data, cfg, **kw))
         if seeds else (lambda **kw: train.fit(jax.random.key(7), p, data, cfg, **kw)))
  ref, href = run()
  ckpt = tmp_path / "ckpt"
  shutil.copytree(FORMAT_1 / case, ckpt)
  calls = []
  counted = lambda f: lambda *a: calls.append(a[1]) or f(*a)  # noqa: E731 (a[1]: first epoch)
  if seeds:  # `epochs_many(...)` makes the chunk function
    monkeypatch.setattr(train, "epochs_many", lambda *a, real=train.epochs_many: counted(real(*a)))
  else:
    monkeypatch.setattr(train, "epochs", counted(train.epochs))
  out, hout = run(checkpoint_dir=ckpt)
  assert calls == [4]  # one compiled chunk, epochs 4 and 5: resumed, not started again
  assert _leaves_equal(out, ref)
  np.testing.assert_array_equal(hout.recon_error, href.recon_error)
  assert sorted(d.name for d in ckpt.iterdir()) == ["4", "6"]  # nothing moved aside as damaged
  # The bounds carried on from the rebuilt ones hold at epoch 6: |W| and |momentum| under them.
  saved = checkpoint.restore(ckpt / "6" / "state")
  opt, w = saved["opt_state"], np.asarray(saved["params"]["W"])
  bounds, trace = np.asarray(opt["bounds"]["W"]), np.asarray(opt["trace"]["W"])
  assert bounds.shape == ((2, 2) if seeds else (2,))
  per_seed = lambda x: np.abs(x).reshape(bounds.shape[:-1] + (-1,)).max(-1)  # noqa: E731
  assert np.all(bounds[..., 0] >= per_seed(w)) and np.all(bounds[..., 1] >= per_seed(trace))
  assert np.all(per_seed(trace) > 0)  # momentum was carried over, not reset


def _diverges_in_epoch_1():
  """A Gaussian RBM with one minibatch per epoch whose second update overflows."""
  r = np.random.default_rng(0)
  data = (r.normal(0, 1, (64, 3)) * 50).astype(np.float32)
  p = rbm.init(jax.random.key(0), 3, 2, visible="gaussian", weight_scale=1.0)
  cfg = TrainConfig(epochs=5, batch_size=64, learning_rate=1e4, sigma_lr_scale=1.0,
                    epochs_per_call=1, progress=False)
  return p, data, cfg


def test_divergence_returns_the_parameters_before_the_refused_update():
  p, data, cfg = _diverges_in_epoch_1()
  with pytest.raises(train.TrainingDivergedError, match="diverged in epoch 1") as err:
    train.fit(jax.random.key(0), p, data, cfg)
  # One update per epoch: the refused update is epoch 1's, so the last good parameters are
  # bit for bit those of a run that stops after one epoch.
  good, _ = train.fit(jax.random.key(0), p, data, cfg.__class__(**{**cfg.__dict__, "epochs": 1}))
  for a, b in zip(err.value.last_good_params, good):
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


def test_divergence_names_the_latest_checkpoint_and_a_resume_diverges_alike(tmp_path):
  p, data, cfg = _diverges_in_epoch_1()
  run = lambda: train.fit(jax.random.key(0), p, data, cfg, checkpoint_dir=tmp_path,
                          checkpoint_every_s=0.0)
  with pytest.raises(train.TrainingDivergedError,
                     match=r"latest checkpoint \(epoch 1\) is in") as first:
    run()
  saved = [d.name for d in tmp_path.iterdir() if d.name.isdigit()]
  assert saved == ["1"]  # the stopped mid-epoch state is not saved
  with pytest.raises(train.TrainingDivergedError, match="diverged in epoch 1") as again:
    run()
  for a, b in zip(first.value.last_good_params, again.value.last_good_params):
    np.testing.assert_array_equal(a, b)




def test_centred_training_is_invariant_to_flipping_the_bits():
  """On the shipped MNIST digits (784 x 16, exact log Z): a centred RBM learns as well from
  1 - x as from x, a plain one does not. One seed's gap moves by about 3 nats from seed to
  seed either way (measured over 5 seeds), so test log-likelihoods are averaged over 4 seeds."""
  from aerbm_jax.data import mnist

  x, x_test, _ = mnist.load_mnist(None, "threshold")
  test_ll = {}
  for centered in (False, True):
    for flip in (False, True):
      a, b = (1 - x, 1 - x_test) if flip else (x, x_test)
      cfg = TrainConfig(method="pcd", epochs=20, batch_size=20, learning_rate=0.05,
                        momentum=0.0, weight_decay=0.0, centered=centered, exact_ll=False,
                        progress=False)
      lls = []
      for seed in (1, 2, 3, 4):
        p, _ = train.fit(jax.random.key(seed), rbm.init(jax.random.key(0), 784, 16, data=a), a,
                         cfg)
        lls.append(float(partition.log_likelihood(p, b, partition.exact_log_partition(p))))
      test_ll[centered, flip] = float(np.mean(lls))
  assert abs(test_ll[True, True] - test_ll[True, False]) < 3.0, test_ll
  assert test_ll[False, False] - test_ll[False, True] > 10.0, test_ll
  assert test_ll[True, True] > test_ll[False, True] + 10.0, test_ll


def test_centred_gaussian_and_a_bad_offset_rate_are_refused():
  p = rbm.init(jax.random.key(0), 4, 3, visible="gaussian")
  data = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
  with pytest.raises(ValueError, match="centered=True is for Bernoulli"):
    train.fit(jax.random.key(0), p, data, TrainConfig(centered=True, batch_size=8))
  with pytest.raises(ValueError, match="offset_rate"):
    TrainConfig(offset_rate=1.5).validate()


def test_resume_with_the_progress_bar_switched_is_allowed(tmp_path):
  p, data = tiny_problem()
  cfg = TrainConfig(method="pcd", epochs=4, batch_size=8, epochs_per_call=2, progress=False)
  ref, _ = train.fit(jax.random.key(7), p, data, cfg)
  train.fit(jax.random.key(7), p, data, cfg, checkpoint_dir=tmp_path, checkpoint_every_s=0)
  import shutil
  shutil.rmtree(tmp_path / "4")
  shown = TrainConfig(**{**cfg.__dict__, "progress": True})
  out, _ = train.fit(jax.random.key(7), p, data, shown, checkpoint_dir=tmp_path)
  assert all(np.array_equal(a, b) for a, b in zip(out, ref))

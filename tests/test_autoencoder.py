"""The autoencoder: shapes for every supported size, and it learns Mondrian compositions."""

import jax
import numpy as np
import pytest

from aerbm_jax import autoencoder as ae
from aerbm_jax import data


@pytest.mark.parametrize("size", [28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_encode_decode_shapes(size, channels):
  cfg = ae.AEConfig(image_size=size, channels=channels, latent_dim=24, features=(4, 8, 8, 8))
  params = ae.init(jax.random.key(0), cfg)
  x = np.random.default_rng(0).random((2, size, size, channels)).astype(np.float32)
  z = ae.encode(params, cfg, x)
  y = ae.decode(params, cfg, z)
  assert z.shape == (2, 24) and np.all((z > 0) & (z < 1))
  assert y.shape == x.shape and np.all((y >= 0) & (y <= 1))
  lin = ae.AEConfig(image_size=size, channels=channels, latent_dim=24, features=(4, 8),
                    latent_activation="linear")
  assert ae.encode(ae.init(jax.random.key(0), lin), lin, x).shape == (2, 24)


def test_reconstruction_beats_the_mean_image():
  images = data.mondrian_batch(144, 32, seed=0)
  train, held = images[:128], images[128:]
  cfg = ae.AEConfig(image_size=32, channels=3, latent_dim=64, features=(32, 64), epochs=30,
                    batch_size=16, learning_rate=3e-3, augment=False, progress=False)
  params, hist = ae.fit(jax.random.key(0), ae.init(jax.random.key(1), cfg), train, cfg,
                        held_out=held)
  baseline = float(np.mean((held - train.mean(0)) ** 2))
  got = ae.held_out_mse(params, cfg, held)
  assert got < 0.65 * baseline, (got, baseline)  # measured 0.53x
  assert hist.train_mse[-1] < hist.train_mse[0]
  assert np.isfinite(hist.held_out_mse[-1])


def test_batched_encode_matches_direct():
  cfg = ae.AEConfig(image_size=32, channels=1, latent_dim=8, features=(4, 8))
  params = ae.init(jax.random.key(0), cfg)
  x = np.random.default_rng(1).random((11, 32, 32, 1)).astype(np.float32)
  np.testing.assert_allclose(ae.encode_batched(params, cfg, x, batch=4),
                             ae.encode(params, cfg, x), rtol=1e-5, atol=1e-6)


def test_bad_images_and_config():
  cfg = ae.AEConfig(image_size=32, channels=3, features=(4,), epochs=1, batch_size=2)
  params = ae.init(jax.random.key(0), cfg)
  with pytest.raises(ValueError, match=r"shape \(N, 32, 32, 3\)"):
    ae.fit(jax.random.key(0), params, np.zeros((4, 32, 32, 1)), cfg)
  with pytest.raises(ValueError, match="latent_activation"):
    ae.AEConfig(latent_activation="tanh").validate()


def test_resume_mid_epoch_is_bitwise_identical(tmp_path, monkeypatch):
  cfg = ae.AEConfig(image_size=32, channels=1, latent_dim=8, features=(4, 8), epochs=3,
                    batch_size=4, progress=False)
  x = np.random.default_rng(2).random((12, 32, 32, 1)).astype(np.float32)
  p0 = ae.init(jax.random.key(0), cfg)
  ref, href = ae.fit(jax.random.key(1), p0, x, cfg, held_out=x[:4])
  real, calls = ae.train_step, []

  def interrupted(*args, **kwargs):
    calls.append(1)
    if len(calls) == 5:  # in the middle of the second epoch
      raise KeyboardInterrupt
    return real(*args, **kwargs)

  monkeypatch.setattr(ae, "train_step", interrupted)
  with pytest.raises(KeyboardInterrupt):
    ae.fit(jax.random.key(1), p0, x, cfg, held_out=x[:4], checkpoint_dir=tmp_path,
           checkpoint_every_s=1e9)
  assert [d.name for d in tmp_path.iterdir() if d.name.isdigit()] == ["4"]
  monkeypatch.setattr(ae, "train_step", real)
  out, hout = ae.fit(jax.random.key(1), p0, x, cfg, held_out=x[:4], checkpoint_dir=tmp_path)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref)))
  np.testing.assert_array_equal(hout.train_mse, href.train_mse)
  with pytest.raises(ValueError, match="config"):  # another architecture cannot resume it
    other = ae.AEConfig(**{**cfg.__dict__, "latent_dim": 9})
    ae.fit(jax.random.key(1), ae.init(jax.random.key(0), other), x, other,
           checkpoint_dir=tmp_path)

"""The autoencoder: shapes for every supported size, and it learns Mondrian compositions."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aerbm_jax import ae_train
from aerbm_jax import autoencoder as ae
from aerbm_jax import data, layers


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


@pytest.fixture(scope="module")
def trained():
  """A small AE trained on 128 Mondrian compositions at 32x32, with 16 held out."""
  images = data.mondrian_batch(144, 32, seed=0)
  train, held = images[:128], images[128:]
  cfg = ae.AEConfig(image_size=32, channels=3, latent_dim=64, features=(32, 64), epochs=30,
                    batch_size=16, learning_rate=3e-3, augment=False, progress=False)
  params, hist = ae_train.fit(jax.random.key(0), ae.init(jax.random.key(1), cfg), train, cfg,
                        held_out=held)
  return cfg, params, hist, train, held


def test_reconstruction_beats_the_mean_image(trained):
  cfg, params, hist, train, held = trained
  baseline = float(np.mean((held - train.mean(0)) ** 2))
  got = ae.held_out_mse(params, cfg, held)
  assert got < 0.65 * baseline, (got, baseline)  # measured 0.53x
  assert hist.train_mse[-1] < hist.train_mse[0]
  assert np.isfinite(hist.held_out_mse[-1])


def test_refined_codes_reconstruct_better_and_each_image_on_its_own(trained):
  cfg, params, _, _, held = trained
  plain = ae.held_out_mse(params, cfg, held)
  cfg20 = dataclasses.replace(cfg, refine_steps=20)
  refined = ae.held_out_mse(params, cfg20, held)
  assert refined < 0.8 * plain, (refined, plain)  # measured 0.69x
  # The same code whether an image is refined among 16 (encode_batched) or alone (encode).
  z = ae.encode_batched(params, cfg20, held)
  alone = np.concatenate([ae.encode(params, cfg20, held[i : i + 1]) for i in (0, 5, 15)])
  np.testing.assert_allclose(z[[0, 5, 15]], alone, atol=2e-4)
  assert np.all((z > 0) & (z < 1))  # still sigmoid codes
  # No steps: the encoder's own code, and the refining moved it.
  z0 = ae.encode_batched(params, cfg, held)
  np.testing.assert_allclose(z0, ae.encode(params, cfg, held), rtol=1e-5, atol=1e-6)
  assert np.abs(z - z0).max() > 0.05
  # reconstruct and mse go through the refined code too.
  np.testing.assert_allclose(float(ae.mse(params, cfg20, held)), refined, rtol=1e-4)


def test_refine_settings_are_checked_and_not_part_of_a_training_checkpoint():
  for bad, match in [(dict(refine_steps=-1), "refine_steps"),
                     (dict(refine_steps=2.5), "refine_steps"),
                     (dict(refine_learning_rate=0.0), "refine_learning_rate"),
                     (dict(refine_learning_rate=float("nan")), "refine_learning_rate"),
                     (dict(refine_steps=3, latent_activation="linear", variational=True),
                      "VAE")]:
    with pytest.raises(ValueError, match=match):
      ae.AEConfig(**bad).validate()
  from aerbm_jax import checkpoint
  meta = checkpoint.config_meta(ae.AEConfig(refine_steps=7))
  assert meta == checkpoint.config_meta(ae.AEConfig(refine_learning_rate=0.01))
  assert "refine_steps" not in meta and "epochs" in meta


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
    ae_train.fit(jax.random.key(0), params, np.zeros((4, 32, 32, 1)), cfg)
  with pytest.raises(ValueError, match="latent_activation"):
    ae.AEConfig(latent_activation="tanh").validate()


def test_resume_mid_epoch_is_bitwise_identical(tmp_path, monkeypatch):
  cfg = ae.AEConfig(image_size=32, channels=1, latent_dim=8, features=(4, 8), epochs=3,
                    batch_size=4, progress=False)
  x = np.random.default_rng(2).random((12, 32, 32, 1)).astype(np.float32)
  p0 = ae.init(jax.random.key(0), cfg)
  ref, href = ae_train.fit(jax.random.key(1), p0, x, cfg, held_out=x[:4])
  real, calls = ae_train.train_step, []

  def interrupted(*args, **kwargs):
    calls.append(1)
    if len(calls) == 5:  # in the middle of the second epoch
      raise KeyboardInterrupt
    return real(*args, **kwargs)

  monkeypatch.setattr(ae_train, "train_step", interrupted)
  with pytest.raises(KeyboardInterrupt):
    ae_train.fit(jax.random.key(1), p0, x, cfg, held_out=x[:4], checkpoint_dir=tmp_path,
           checkpoint_every_s=1e9)
  assert [d.name for d in tmp_path.iterdir() if d.name.isdigit()] == ["4"]
  monkeypatch.setattr(ae_train, "train_step", real)
  out, hout = ae_train.fit(jax.random.key(1), p0, x, cfg, held_out=x[:4], checkpoint_dir=tmp_path)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref)))
  np.testing.assert_array_equal(hout.train_mse, href.train_mse)
  with pytest.raises(ValueError, match="config"):  # another architecture cannot resume it
    other = ae.AEConfig(**{**cfg.__dict__, "latent_dim": 9})
    ae_train.fit(jax.random.key(1), ae.init(jax.random.key(0), other), x, other,
           checkpoint_dir=tmp_path)


def test_vae_trains_its_prior_decodes_and_kl_pulls_codes_to_the_prior():
  images = data.mondrian_batch(48, 16, seed=0)
  cfg = ae.AEConfig(image_size=16, channels=3, latent_dim=8, features=(8, 16), epochs=15,
                    batch_size=16, augment=False, variational=True, latent_activation="linear",
                    kl_weight=0.05, progress=False)
  params, hist = ae_train.fit(jax.random.key(0), ae.init(jax.random.key(1), cfg), images, cfg)
  assert np.all(np.isfinite(hist.train_mse)) and hist.train_mse[-1] < hist.train_mse[0]
  mean, log_var = ae.encode_stats(params, cfg, images)
  assert mean.shape == log_var.shape == (48, 8)
  np.testing.assert_array_equal(ae.encode(params, cfg, images), mean)
  prior = ae.decode(params, cfg, np.asarray(jax.random.normal(jax.random.key(2), (4, 8))))
  assert prior.shape == (4, 16, 16, 3)
  # With a large KL weight the posterior collapses towards N(0, I): smaller means.
  strong = ae.AEConfig(**{**cfg.__dict__, "kl_weight": 50.0})
  p2, _ = ae_train.fit(jax.random.key(0), ae.init(jax.random.key(1), strong), images, strong)
  m2, _ = ae.encode_stats(p2, strong, images)
  assert float(np.mean(np.asarray(m2) ** 2)) < 0.5 * float(np.mean(np.asarray(mean) ** 2))
  with pytest.raises(ValueError, match="linear"):
    ae.AEConfig(variational=True).validate()
  with pytest.raises(ValueError, match="needs a VAE"):
    ae.encode_stats(params, ae.AEConfig(image_size=16, latent_dim=8, features=(8, 16)), images)



def test_code_noise_pushes_sigmoid_codes_towards_0_and_1():
  images = data.mondrian_batch(48, 16, seed=0)
  cfg = ae.AEConfig(image_size=16, channels=3, latent_dim=8, features=(16, 32), epochs=40,
                    batch_size=8, learning_rate=3e-3, warmup_steps=20, augment=False,
                    progress=False)
  binary = {}
  for noise in (0.0, 4.0):
    c = ae.AEConfig(**{**cfg.__dict__, "code_noise": noise})
    params, hist = ae_train.fit(jax.random.key(0), ae.init(jax.random.key(1), c), images, c)
    assert hist.train_mse[-1] < hist.train_mse[0]
    z = np.asarray(ae.encode(params, c, images))
    binary[noise] = float(np.mean((z < 0.1) | (z > 0.9)))
  # The codes of the noisy training sit near 0 or 1 far more often (measured 0.99 against 0.58).
  assert binary[4.0] > binary[0.0] + 0.3, binary
  with pytest.raises(ValueError, match="code_noise"):
    ae.AEConfig(code_noise=1.0, latent_activation="linear").validate()
  with pytest.raises(ValueError, match="code_noise"):
    ae.AEConfig(code_noise=-1.0).validate()

# Non-square maps, one-pixel maps, and few or many channels each way.
@pytest.mark.parametrize("shape", [(2, 4, 4, 3, 5), (1, 8, 6, 16, 3), (3, 1, 1, 2, 2),
                                   (2, 3, 5, 4, 16), (1, 2, 2, 8, 20)])
def test_upsample_conv_equals_upsampling_then_a_same_convolution(shape):
  b, h, w, cin, cout = shape
  rng = np.random.default_rng(0)
  x = rng.normal(size=(b, h, w, cin)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, cin, cout)).astype(np.float32)
  bias = rng.normal(size=(cout,)).astype(np.float32)
  naive = lambda x, k, c: jax.lax.conv_general_dilated(  # noqa: E731
    layers.upsample(x), k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
    precision="highest") + c
  # Compiled whole: run op by op, each of the many small operations compiles on its own.
  want = jax.jit(naive)(x, kernel, bias)
  got = jax.jit(layers.upsample_conv)(x, kernel, bias)
  assert got.shape == (b, 2 * h, 2 * w, cout)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  # and its gradients (the phases' interleaving and the kernel's have their own)
  loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))  # noqa: E731
  grad = lambda f: jax.jit(jax.grad(loss(f), (0, 1, 2)))  # noqa: E731
  for g, r in zip(grad(layers.upsample_conv)(x, kernel, bias), grad(naive)(x, kernel, bias)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(r))))


# Stride 1 and 2, odd and even sides, output channels below and above the taps' threshold.
@pytest.mark.parametrize("shape", [(2, 8, 8, 3, 40, 2), (2, 7, 5, 16, 32, 2), (3, 6, 6, 5, 33, 1),
                                   (2, 5, 9, 4, 8, 1)])
def test_conv_layer_is_a_flax_conv_with_its_gradients(shape):
  b, h, w, cin, cout, stride = shape
  x = jnp.asarray(np.random.default_rng(0).normal(size=(b, h, w, cin)), jnp.float32)
  ours, flax_conv = layers.Conv(cout, (stride, stride)), nn.Conv(
    cout, (3, 3), (stride, stride), "SAME", kernel_init=layers.lecun_normal)
  params = ours.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, flax_conv.init(
    jax.random.key(0), x))  # the same parameter tree: checkpoints load into either
  params = jax.tree.map(lambda p: p + 0.1, params)  # a nonzero bias
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))  # noqa: E731
  np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x), rtol=1e-5,
                             atol=1e-5)
  got, want = (jax.grad(loss(m), argnums=(0, 1))(params, x) for m in (ours, flax_conv))
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(r))))
  if cout >= layers.TAP_GRAD_MIN_FEATURES and jax.default_backend() == "cpu":
    g = jnp.ones((b, -(-h // stride), -(-w // stride), cout))
    pads = jax.lax.padtype_to_pads((h, w), (3, 3), (stride, stride), "SAME")
    kernel = params["params"]["kernel"]
    dk = layers.tap_kernel_grad(jnp.pad(x, ((0, 0), *pads, (0, 0))), g, kernel.shape,
                                (stride, stride))
    _, vjp = jax.vjp(lambda k: layers.conv(x, k, (stride, stride), tuple(map(tuple, pads))),
                     kernel)
    np.testing.assert_array_equal(vjp(g)[0], dk)


def test_augmentations_are_symmetries_and_small_circular_shifts_of_each_image():
  x = np.random.default_rng(0).random((64, 16, 16, 1)).astype(np.float32)
  group = lambda img: [np.rot90(f, k) for f in (img, img[:, ::-1]) for k in range(4)]  # noqa
  flips = lambda img: [img, img[:, ::-1]]  # noqa: E731
  for dihedral, candidates, n_kinds in ((True, group, 8), (False, flips, 2)):
    out = np.asarray(ae_train.augment(jax.random.key(0), x, dihedral=dihedral))
    seen = set()
    for a, b in zip(x, out):
      found = [(i, dy, dx) for i, g in enumerate(candidates(a)) for dy in range(-1, 2)
               for dx in range(-1, 2) if np.array_equal(np.roll(g, (dy, dx), (0, 1)), b)]
      assert found, "not a symmetry plus a shift of at most 1/16 of the side"
      seen.add(found[0][0])
    assert len(seen) == n_kinds  # every symmetry occurs in 64 draws


def test_adam_warms_up_over_the_first_updates():
  cfg = ae.AEConfig(image_size=16, latent_dim=8, features=(8,), warmup_steps=100)
  plain = ae.AEConfig(image_size=16, latent_dim=8, features=(8,), warmup_steps=0)
  params = ae.init(jax.random.key(0), cfg)
  grads = jax.tree.map(np.ones_like, params)
  steps = [ae_train.optimizer(c).update(grads, ae_train.optimizer(c).init(params))[0]
           for c in (cfg, plain)]
  leaf = lambda t: float(np.abs(jax.tree.leaves(t)[0]).max())  # noqa: E731
  np.testing.assert_allclose(leaf(steps[0]), leaf(steps[1]) / 100, rtol=1e-4)
  with pytest.raises(ValueError, match="warmup_steps"):
    ae.AEConfig(warmup_steps=-1).validate()

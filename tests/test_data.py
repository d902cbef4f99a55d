"""Data sources: the folder loader on messy files, Mondrian, shipped sets, tfds on mock data."""

import warnings

import numpy as np
import pytest
from PIL import Image

from aerbm_jax import data


@pytest.fixture
def messy_folder(tmp_path):
  rng = np.random.default_rng(0)
  rgb = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
  Image.fromarray(rgb).save(tmp_path / "photo.jpg")
  rgba = np.dstack([rgb, np.full((40, 60), 128, np.uint8)])
  Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
  Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
  Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
  sub = tmp_path / "more"
  sub.mkdir()
  Image.fromarray(rgb).save(sub / "nested.bmp")
  (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "notes.txt").write_text("not an image")
  return tmp_path


def test_folder_loader_keeps_good_images_and_names_bad_ones(messy_folder):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    images, names = data.load_folder(messy_folder, size=16, channels=3)
  assert sorted(names) == ["alpha.png", "grey.png", "more/nested.bmp", "palette.png", "photo.jpg"]
  assert images.shape == (5, 16, 16, 3) and images.dtype == np.float32
  assert images.min() >= 0 and images.max() <= 1
  text = " ".join(str(w.message) for w in caught)
  for bad in ("corrupt.jpg", "empty.png", "notes.txt"):
    assert bad in text
  grey, _ = data.load_folder(messy_folder, size=8, channels=1)
  assert grey.shape == (5, 8, 8, 1)


def test_exif_orientation_is_applied(tmp_path):
  img = np.zeros((10, 30, 3), np.uint8)  # wide
  exif = Image.Exif()
  exif[0x0112] = 6  # rotate 90 degrees on display
  Image.fromarray(img).save(tmp_path / "rot.jpg", exif=exif)
  from aerbm_jax.data.folder import load_image
  from PIL import ImageOps
  with Image.open(tmp_path / "rot.jpg") as im:
    assert ImageOps.exif_transpose(im).size == (10, 30)
  assert load_image(tmp_path / "rot.jpg", 8, 3).shape == (8, 8, 3)


def test_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    data.load_folder(tmp_path / "missing", 16)
  (tmp_path / "a.txt").write_text("x")
  with pytest.raises(NotADirectoryError):
    data.load_folder(tmp_path / "a.txt", 16)
  with pytest.warns(UserWarning, match="a.txt"), pytest.raises(ValueError, match="no usable image"):
    data.load_folder(tmp_path, 16)


def test_split_is_deterministic_and_stable():
  names = [f"img{i}.png" for i in range(200)]
  tr, te = data.split_indices(names, 0.2)
  assert len(set(tr) | set(te)) == 200 and not set(tr) & set(te)
  assert 20 < len(te) < 60
  tr2, te2 = data.split_indices(names + ["new.png"], 0.2)
  assert set(te) <= set(te2)  # adding a file moves no other file


def test_mondrian_is_seeded_and_looks_like_mondrian():
  a = data.mondrian_batch(4, 64, seed=3)
  b = data.mondrian_batch(4, 64, seed=3)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, data.mondrian_batch(4, 64, seed=4))
  assert a.shape == (4, 64, 64, 3) and a.min() >= 0 and a.max() <= 1
  flat = a.reshape(-1, 3)
  black = np.all(flat < 0.1, axis=1).mean()
  white = np.all(flat > 0.9, axis=1).mean()
  assert 0.02 < black < 0.4 and white > 0.3  # lines on a mostly white canvas
  # The same seed at another size is the same composition.
  small = data.mondrian(np.random.SeedSequence(0), 32)
  big = data.mondrian(np.random.SeedSequence(0), 128)
  assert np.abs(small - big[::4, ::4]).mean() < 0.1
  # Every canvas has a black line (none is one flat colour).
  many = data.mondrian_batch(200, 32, seed=0)
  assert np.all(np.any(np.all(many < 0.1, axis=-1), axis=(1, 2)))


def test_shipped_faces_and_digits():
  faces = data.lfw_faces(32, 1)
  assert faces.shape == (100, 32, 32, 1) and 0 <= faces.min() and faces.max() <= 1
  d = data.digits()
  assert d.shape == (1797, 8, 8, 1) and d.max() == 1.0


def test_tfds_source_on_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=5):
    x = data.load_tfds("mnist", 16, 1, split="train", n=3)
  assert x.shape == (3, 16, 16, 1) and x.dtype == np.float32
  assert 0 <= x.min() and x.max() <= 1

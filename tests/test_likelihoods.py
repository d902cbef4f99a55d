"""The MNIST table: the loader's formats and errors, the binarisations, and a quick table that
resumes row by row."""

import gzip
import json
import struct

import numpy as np
import pytest

from aerbm_jax import cli, configs, likelihoods
from aerbm_jax.data import mnist


def _idx(array: np.ndarray) -> bytes:
  return struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(
    struct.pack(">I", d) for d in array.shape) + array.astype(np.uint8).tobytes()


def test_idx_files_gzipped_or_not_and_npz_read_the_same(tmp_path):
  x_train, x_test, _ = mnist.read_mnist(None)
  plain, zipped = tmp_path / "plain", tmp_path / "zipped"
  plain.mkdir(), zipped.mkdir()
  for name, arr in (("train-images-idx3-ubyte", x_train), ("t10k-images-idx3-ubyte", x_test)):
    (plain / name).write_bytes(_idx(arr))
    (zipped / f"{name}.gz").write_bytes(gzip.compress(_idx(arr)))
  np.savez(tmp_path / "m.npz", x_train=x_train, x_test=x_test)
  for source in (plain, zipped, tmp_path / "m.npz"):
    a, b, description = mnist.read_mnist(source)
    np.testing.assert_array_equal(a, x_train)
    np.testing.assert_array_equal(b, x_test)
    assert str(source) in description


def test_bad_sources_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="has no train-images-idx3-ubyte"):
    mnist.read_mnist(tmp_path)
  (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 5)
  (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"nope")
  with pytest.raises(ValueError, match="truncated|magic"):
    mnist.read_mnist(tmp_path)
  np.savez(tmp_path / "other.npz", images=np.zeros(3))
  with pytest.raises(ValueError, match="needs x_train and x_test"):
    mnist.read_mnist(tmp_path / "other.npz")
  (tmp_path / "junk.npz").write_bytes(b"junk")
  with pytest.raises(ValueError, match="not a readable .npz"):
    mnist.read_mnist(tmp_path / "junk.npz")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    mnist.read_mnist(tmp_path / "missing")


def test_binarisations():
  x = np.array([[0, 127, 128, 255]], np.uint8)
  np.testing.assert_array_equal(mnist.binarise(x, "threshold"), [[0, 0, 1, 1]])
  grey = np.full((20_000, 1), 64, np.uint8)
  bits = mnist.binarise(grey, "stochastic", seed=3)
  assert abs(bits.mean() - 64 / 255) < 0.01
  np.testing.assert_array_equal(bits, mnist.binarise(grey, "stochastic", seed=3))
  with pytest.raises(ValueError, match="binarisation must be one of"):
    mnist.binarise(x, "otsu")
  train, test, description = mnist.load_mnist(None, "stochastic", seed=1)
  assert train.shape == (1000, 784) and test.shape == (500, 784)
  assert set(np.unique(train)) <= {0.0, 1.0} and "stochastic (seed 1)" in description


def test_rows_follow_the_config():
  names = [r["name"] for r in likelihoods.rows_of(configs.make_mnist_config(cd25=True))]
  assert names == ["small-normal", "small-normal-flipped", "small-centred",
                   "small-centred-flipped", "big-threshold", "big-stochastic",
                   "big-stochastic-cd25"]
  cd25 = likelihoods.rows_of(configs.make_mnist_config(cd25=True))[-1]
  assert cd25["method"] == "cd" and cd25["k"] == 25 and cd25["binarisation"] == "stochastic"
  assert len(likelihoods.rows_of(configs.make_mnist_config(big_hidden=0))) == 4


def test_quick_table_writes_the_report_and_resumes_row_by_row(tmp_path):
  out = tmp_path / "mnist"
  assert cli.main(["experiment", "mnist", "--quick", "--out", str(out)]) == 0
  res = json.loads((out / "mnist.json").read_text())
  rows = {r["name"]: r for r in res["rows"]}
  assert rows["small-normal"]["test_log_likelihood"]["method"] == "exact"
  big = rows["big-threshold"]["test_log_likelihood"]  # 24 hidden units: AIS and reverse AIS
  assert big["method"] == "ais" and np.isfinite(big["reverse_log_likelihood"])
  assert big["gap"] == pytest.approx(big["log_likelihood"] - big["reverse_log_likelihood"])
  report = (out / "report.md").read_text()
  assert "| small-centred-flipped | 8 | 3 |" in report and "-142.09 (PyDeep)" in report
  assert "reverse" in report and "flipping the bits changes" in report
  for name in ("004.json", "005.json"):  # as if killed after four rows
    (out / "checkpoints" / "rows" / name).unlink()
  assert cli.main(["experiment", "mnist", "--resume", str(out)]) == 0
  again = json.loads((out / "mnist.json").read_text())
  strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]
  assert strip(again["rows"]) == strip(res["rows"])


def test_tfds_mnist_on_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    train, test, description = mnist.load_mnist("tfds", "threshold")
  assert train.shape == (6, 784) and test.shape == (6, 784) and description.startswith("tfds")
  assert set(np.unique(train)) <= {0.0, 1.0}

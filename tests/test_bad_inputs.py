"""Every bad input named in one table, through the CLI and the API: one clear line, no crash."""

import struct
import subprocess
import sys
import warnings
import zlib

import jax
import numpy as np
import pytest
from PIL import Image

from aerbm_jax import autoencoder as ae
from aerbm_jax import cli, configs, data, rbm, sampling, train
from aerbm_jax.data.folder import load_image

# ---------------------------------------------------------------------------- image files


def _png_claiming(width: int, height: int) -> bytes:
  """A PNG whose header claims `width x height` (a decompression bomb without the bytes)."""
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  chunk = lambda kind, body: (struct.pack(">I", len(body)) + kind + body
                              + struct.pack(">I", zlib.crc32(kind + body)))
  return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _write(kind: str, path):
  rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
  if kind == "corrupt":
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
  elif kind == "truncated":
    Image.fromarray(rgb).save(path, format="PNG")
    path.write_bytes(path.read_bytes()[:200])
  elif kind == "zero-byte":
    path.write_bytes(b"")
  elif kind == "non-image":
    path.write_text("a text file with an image's name")
  elif kind == "huge":
    path.write_bytes(_png_claiming(30000, 30000))
  elif kind == "1x1":
    Image.fromarray(rgb[:1, :1]).save(path, format="PNG")
  elif kind == "16-bit":
    img = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    assert img.mode.startswith("I;16")
    img.save(path, format="PNG")
  elif kind == "CMYK":
    Image.fromarray(rgb).convert("CMYK").save(path, format="JPEG")
  elif kind == "animated":
    frames = [Image.fromarray(np.full((20, 30, 3), v, np.uint8)) for v in (0, 255)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:])
  return path


# kind -> None if the image must load, else a fragment of the reason it is skipped
IMAGES = {
  "corrupt": "corrupt or truncated", "truncated": "corrupt or truncated",
  "zero-byte": "empty (0 bytes)", "non-image": "not an image pillow can read", "huge": "pixels", "1x1": None, "16-bit": None, "CMYK": None,
  "animated": None,
}


@pytest.mark.parametrize("kind", IMAGES)
def test_each_image_file_loads_or_is_skipped_by_name(kind, tmp_path):
  path = _write(kind, tmp_path / f"{kind}.img")
  reason = IMAGES[kind]
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if reason is None:
      x, names = data.load_folder(tmp_path, 8, 3)
      assert x.shape == (1, 8, 8, 3) and np.all((x >= 0) & (x <= 1)) and names == [path.name]
    else:
      with pytest.raises(ValueError, match="no usable image"):
        data.load_folder(tmp_path, 8, 3)
      text = " ".join(str(w.message) for w in caught)
      assert path.name in text and reason in text, text
  if kind == "animated":  # the first (black) frame
    assert load_image(path, 4, 1).max() == 0.0


@pytest.mark.parametrize("kind", [k for k, reason in IMAGES.items() if reason])
def test_cli_on_a_folder_of_one_bad_image(kind, tmp_path, capsys):
  _write(kind, tmp_path / f"{kind}.png")
  with pytest.warns(UserWarning, match=kind):
    assert cli.main(["experiment", "faces", "--quick", "--data", str(tmp_path),
                     "--out", str(tmp_path / "run")]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "no usable image" in err[0]


def test_fuzzed_bytes_never_crash_the_loader(tmp_path):
  rng = np.random.default_rng(0)
  magic = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00",
           b"RIFF\x00\x00\x00\x00WEBP", b"P6\n"]
  for i in range(160):
    body = rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()
    (tmp_path / f"f{i:03d}.png").write_bytes(magic[i % len(magic)] + body)
  Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "good.png")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    x, names = data.load_folder(tmp_path, 8, 3)
  assert "good.png" in names and np.all(np.isfinite(x))
  warned = " ".join(str(w.message) for w in caught)
  for i in range(160):  # every fuzzed file is either loaded or skipped with a warning
    name = f"f{i:03d}.png"
    assert name in names or f"{name}: " in warned, name


# ---------------------------------------------------------------------------- CLI


CLI_CASES = [
  # (argv, fragment of the one-line message)
  (["experiment", "faces", "--data", "{tmp}/missing"], "no such folder"),
  (["experiment", "faces", "--data", "{tmp}/file.txt"], "is a file"),
  (["experiment", "nosuch"], "unknown experiment"),
  (["experiment", "faces", "--no-such-option", "1"], "unrecognized arguments: --no-such-option"),
  (["experiment", "faces", "--rbm-hidden", "abc"], "invalid int value: 'abc'"),
  (["experiment", "faces", "--rbm-hidden", "-3"], "rbm_hidden must be > 0"),
  (["experiment", "faces", "--ae-batch-size", "0"], "ae_batch_size must be > 0"),
  (["experiment", "faces", "--rbm-learning-rate", "inf"], "rbm_learning_rate must be a finite"),
  (["experiment", "faces", "--pixel-learning-rate", "nan"], "pixel_learning_rate"),
  (["experiment", "faces", "--held-out-fraction", "1.5"], "held_out_fraction"),
  (["experiment", "faces", "--ae-features", "8,x"], "comma-separated ints"),
  (["experiment", "faces", "--rbm-visible", "poisson"], "choose from 'bernoulli', 'gaussian'"),
  (["experiment", "faces", "--rbm-method", "sgd"], "invalid choice: 'sgd' (choose from 'cd', 'pcd')"),
  (["experiment", "faces", "--resume", "{tmp}/missing"], "no such run directory"),
  (["experiment", "faces", "--resume", "{tmp}"], "no config.json"),
  (["sample", "{tmp}/missing"], "not a run directory"),
  (["evaluate", "{tmp}", "--n", "2"], "--n must be >= 4"),
  (["sample", "{tmp}/half"], "has not finished training"),
  (["--coordinator-address", "nohost", "sample", "{tmp}"], "must be host:port"),
  (["experiment", "faces", "--resume", "{tmp}/stale"], "unknown field(s) colour_mode"),
  (["--num-processes", "2", "sample", "{tmp}"], "need --coordinator-address, --process-id"),
]


@pytest.mark.parametrize("argv, message", CLI_CASES)
def test_cli_bad_input_is_one_line(argv, message, tmp_path, capsys):
  (tmp_path / "file.txt").write_text("x")
  (tmp_path / "half").mkdir()
  cfg = configs.make_config("faces", quick=True)
  import dataclasses
  import json
  (tmp_path / "half" / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
  (tmp_path / "stale").mkdir()
  (tmp_path / "stale" / "config.json").write_text(
    json.dumps({**dataclasses.asdict(cfg), "colour_mode": "rgb"}))
  code = None
  try:
    code = cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
  except SystemExit as exit_:
    code = exit_.code
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and message in err[0], err
  assert "Traceback" not in err[0]


@pytest.mark.parametrize("flag", [
  pytest.param("--ae-learning-rate", marks=pytest.mark.slow), "--rbm-learning-rate"])
def test_divergence_is_one_line_with_exit_code_3(flag, tmp_path, capsys):
  code = cli.main(["experiment", "digits", "--quick", flag, "1e30", "--ais-betas", "0",
                   "--ae-epochs", "1", "--out", str(tmp_path / "run")])
  err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aerbm")]
  assert code == 3 and len(err) == 1 and "diverged in epoch" in err[0], err  # progress bars aside
  assert "lower learning_rate" in err[0] and "checkpoint" in err[0]


def test_cli_subprocess_exit_codes_and_debug(tmp_path):
  run = lambda *a: subprocess.run([sys.executable, "-m", "aerbm_jax.cli", *a],
                                  capture_output=True, text=True)
  bad = run("experiment", "faces", "--rbm-hidden", "-3")
  assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
  assert "rbm_hidden must be > 0" in bad.stderr
  debug = run("--debug", "experiment", "faces", "--rbm-hidden", "-3")
  assert debug.returncode != 0 and "Traceback" in debug.stderr


# ---------------------------------------------------------------------------- API


def _p():
  return rbm.init(jax.random.key(0), 6, 3)


X = (np.random.default_rng(0).random((16, 6)) < 0.5).astype(np.float32)
API_CASES = [
  # (call, exception type, fragment)
  (lambda: train.fit(jax.random.key(0), _p(), X[:, :4]), ValueError, "4 columns"),
  (lambda: train.fit(jax.random.key(0), _p(), X[0]), ValueError, "2-D array"),
  (lambda: train.fit(jax.random.key(0), _p(), X[:0]), ValueError, "no rows"),
  (lambda: train.fit(jax.random.key(0), _p(), [["a"] * 6] * 4), ValueError, "dtype <U1"),
  (lambda: train.fit(jax.random.key(0), _p(), X + 1j), ValueError, "dtype complex"),
  (lambda: train.fit(jax.random.key(0), _p(), [[0.0] * 6, [1.0] * 5]), ValueError, "rectangular"),
  (lambda: train.fit(jax.random.key(0), _p(), X * np.inf), ValueError, "non-finite"),
  (lambda: train.fit(jax.random.key(0), _p(), X, train.TrainConfig(epochs=-1)), ValueError,
   "epochs must be a positive int"),
  (lambda: train.fit(jax.random.key(0), _p(), X, train.TrainConfig(batch_size=2.5)), ValueError,
   "batch_size must be a positive int"),
  (lambda: train.fit(jax.random.key(0), _p(), X, train.TrainConfig(learning_rate=float("inf"))),
   ValueError, "learning_rate"),
  (lambda: train.fit(jax.random.key(0), {"W": 1}, X), TypeError, "BernoulliRBM or GaussianRBM"),
  (lambda: train.fit_many(jax.random.key(0), _p(), X), ValueError, "1-D array of S keys"),
  (lambda: sampling.sample(jax.random.key(0), _p(), n_steps=2, v0=X[:, :5]), ValueError,
   r"shape \(chains, 6\)"),
  (lambda: sampling.sample(jax.random.key(0), _p(), n_steps=0, n_chains=2), ValueError,
   "n_steps must be >= 1"),
  (lambda: sampling.sample(jax.random.key(0), _p(), n_steps=2), ValueError, "n_chains"),
  (lambda: configs.make_config("faces", nosuch=1), ValueError, "unknown config field"),
  (lambda: configs.make_config("faces", rbm_hidden="8"), ValueError, "must be an int"),
  (lambda: configs.make_config("faces", rbm_epochs=-5), ValueError, "rbm_epochs must be > 0"),
  (lambda: ae.encode(ae.init(jax.random.key(0), ae.AEConfig(image_size=16, features=(4,))),
                     ae.AEConfig(image_size=16, features=(4,)), np.zeros((2, 16, 16, 1))),
   ValueError, r"shape \(N, 16, 16, 3\)"),
  (lambda: ae.decode(ae.init(jax.random.key(0), ae.AEConfig(image_size=16, features=(4,))),
                     ae.AEConfig(image_size=16, features=(4,)), np.zeros((2, 7))),
   ValueError, r"shape \(N, 128\)"),
  (lambda: data.load_folder("/nonexistent/folder", 8), FileNotFoundError, "does not exist"),
]


@pytest.mark.parametrize("call, error, fragment", API_CASES)
def test_api_bad_input_raises_a_named_error(call, error, fragment):
  with pytest.raises(error, match=fragment):
    call()

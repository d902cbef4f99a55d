"""Fault injection on run directories: damaged, truncated, missing and foreign files, full
disks and read-only folders during saves, two processes on one directory, and fuzzed
command lines. Each fault gets one line naming the file and what to do, never a traceback."""

import errno
import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import tiny_problem
from hypothesis import given, settings
from hypothesis import strategies as st

from aerbm_jax import checkpoint, cli, train
from aerbm_jax.train import TrainConfig


@pytest.fixture
def run_copy(mondrian_run, tmp_path):
  """A finished quick run this test may damage."""
  copy = tmp_path / "run"
  shutil.copytree(mondrian_run, copy, ignore=shutil.ignore_patterns(".lock"))
  return copy


def _overwrite_random(path):
  path.write_bytes(np.random.default_rng(0).bytes(max(path.stat().st_size, 16)))


def _overwrite_data(folder):
  """Random bytes in place of every array data file (orbax's `d/` chunks) of a checkpoint."""
  files = [p for p in folder.rglob("*") if p.is_file() and p.parent.name == "d"]
  assert files
  for p in files:
    _overwrite_random(p)


def _truncate_all(folder):
  for p in folder.rglob("*"):
    if p.is_file():
      p.write_bytes(b"")


FAULTS = {
  # name: (damage(run_dir), command, fragments the one line must hold)
  "checkpoint data overwritten": (
    lambda r: _overwrite_data(r / "checkpoints" / "latent_rbm"), "sample",
    ["latent_rbm", "damaged", "latent RBM"]),
  "checkpoint truncated to zero bytes": (
    lambda r: _truncate_all(r / "checkpoints" / "pixel_rbm"), "sample",
    ["pixel_rbm", "damaged", "pixel RBM"]),
  "checkpoint folder missing": (
    lambda r: shutil.rmtree(r / "checkpoints" / "autoencoder"), "sample",
    ["autoencoder is missing", "--resume"]),
  "foreign checkpoint": (
    lambda r: (shutil.rmtree(r / "checkpoints" / "latent_rbm"),
               shutil.copytree(r / "checkpoints" / "autoencoder", r / "checkpoints" / "latent_rbm")),
    "sample", ["latent_rbm", "does not hold an RBM"]),
  "config.json syntax error": (
    lambda r: (r / "config.json").write_text("{'name': mondrian"), "sample",
    ["config.json is not valid JSON", "settings"]),
  "config.json a list": (
    lambda r: (r / "config.json").write_text("[1, 2]"), "evaluate", ["config.json", "list"]),
  "config.json missing": (
    lambda r: (r / "config.json").unlink(), "sample", ["no config.json"]),
  "scaler missing": (
    lambda r: (r / "checkpoints" / "latent_scaler.npz").unlink(), "sample",
    ["latent_scaler.npz is missing", "standardisation", "--resume"]),
  "scaler overwritten": (
    lambda r: _overwrite_random(r / "checkpoints" / "latent_scaler.npz"), "sample",
    ["latent_scaler.npz is damaged"]),
  "scaler of another size": (
    lambda r: np.savez(r / "checkpoints" / "latent_scaler.npz", mean=np.zeros(3),
                       std=np.ones(3)), "sample", ["latent_scaler.npz does not hold"]),
  "metrics.json damaged": (
    lambda r: (r / "metrics.json").write_text("{"), "evaluate",
    ["metrics.json is not valid JSON", "metrics"]),
  "report.md missing": (
    lambda r: (r / "report.md").unlink(), "report", ["has no report.md"]),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_damaged_run_directory_gets_one_line(fault, run_copy, tmp_path, capsys):
  damage, command, fragments = FAULTS[fault]
  damage(run_copy)
  argv = {"sample": ["sample", str(run_copy), "--n", "2", "--steps", "2", "--out",
                     str(tmp_path / "s")],
          "evaluate": ["evaluate", str(run_copy), "--n", "8", "--steps", "2"],
          "report": ["report", str(run_copy)]}[command]
  code = cli.main(argv)
  err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aerbm")]
  assert code == 2 and len(err) == 1, err
  for fragment in fragments:
    assert fragment in err[0], (fragment, err[0])
  assert "Traceback" not in err[0]


def _fit(ckpt, **kw):
  p, data = tiny_problem(8)
  cfg = TrainConfig(method="pcd", epochs=6, batch_size=8, epochs_per_call=1, progress=False)
  return train.fit(jax.random.key(3), p, data, cfg, checkpoint_dir=ckpt, **kw)


def _equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("damage", ["overwrite", "truncate", "meta"])
def test_a_damaged_latest_checkpoint_is_skipped_and_the_result_is_unchanged(tmp_path, damage):
  ref, _ = _fit(None)
  ckpt = tmp_path / "ckpt"
  _fit(ckpt, checkpoint_every_s=0)  # keeps steps 5 and 6
  latest = ckpt / "6"
  if damage == "overwrite":
    _overwrite_data(latest / "state")
  elif damage == "truncate":
    _truncate_all(latest)
  else:
    (latest / "meta" / "metadata").write_text("{not json")
  (ckpt / "6.lock").touch()  # a stray file beside the steps does no harm either
  with pytest.warns(UserWarning, match="step 6 is damaged"):
    out, _ = _fit(ckpt)
  assert _equal(out, ref)
  assert any(p.name.startswith("damaged-6-") for p in ckpt.iterdir())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_stops_with_one_line_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, code):
  ref, _ = _fit(None)
  ckpt = tmp_path / "ckpt"
  real, calls = ocp.CheckpointManager.save, []

  def failing(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
      raise OSError(code, "injected")
    return real(self, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", failing)
  with pytest.raises(checkpoint.StorageError) as err:
    _fit(ckpt, checkpoint_every_s=0)
  message = str(err.value)
  assert str(ckpt) in message and "needs about" in message and "MB free" in message
  assert ("No space left" in message) == (code == errno.ENOSPC)
  monkeypatch.setattr(ocp.CheckpointManager, "save", real)
  assert checkpoint.Progress(ckpt).latest_step() == 2  # the checkpoint before the failure
  out, _ = _fit(ckpt)
  assert _equal(out, ref)


def test_a_full_disk_writing_a_report_is_one_line(run_copy, monkeypatch, capsys):
  import pathlib

  def full(self, *args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(pathlib.Path, "write_text", full)
  assert cli.main(["report", str(run_copy)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "cannot write to" in err[0] and "No space left" in err[0]


def test_two_processes_on_one_run_directory(tmp_path):
  out = tmp_path / "shared"
  cmd = [sys.executable, "-m", "aerbm_jax.cli", "experiment", "digits", "--quick",
         "--ae-epochs", "1", "--rbm-epochs", "1", "--pixel-epochs", "1", "--out", str(out)]
  procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
           for _ in range(2)]
  results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
  codes = sorted(code for code, _ in results)
  assert codes == [0, 2], results
  loser = next(err for code, err in results if code == 2)
  assert "in use by another aerbm process" in loser and "Traceback" not in loser
  assert json.loads((out / "config.json").read_text())["name"] == "digits"
  assert (out / "report.html").is_file()


TOKENS = ["experiment", "sample", "evaluate", "report", "runs", "faces", "mondrian", "digits",
          "ci_study", "mnist", "nosuch", "--quick", "--resume", "--out", "--data", "--seed",
          "--n", "--steps", "--rbm-hidden", "--ae-features", "--rbm-method", "--n-values",
          "--big-hidden", "--no-shard", "--ais-betas", "--compile-cache", "--quiet", "--debug",
          "--open", "-h", "0", "-1", "3", "1e30", "nan", "x", "8,x", "cd", "/nonexistent", "",
          "--coordinator-address", "--num-processes", "--process-id", "--distributed", "auto"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=6), max_size=7))
def test_fuzzed_command_lines_never_show_a_traceback(argv):
  """Any argument vector: an exit code and at most one line of error, never a traceback
  (the long-running commands are replaced by stand-ins: this checks parsing and errors)."""
  argv = [a for a in argv if a != "--debug"]
  import contextlib
  import io
  from unittest import mock

  err = io.StringIO()
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
      mock.patch("aerbm_jax.experiment.run_experiment"), mock.patch("aerbm_jax.ci_study.run_study"), \
      mock.patch("aerbm_jax.likelihoods.run_mnist"), mock.patch("aerbm_jax.experiment.sample_run", return_value={}), \
      mock.patch("aerbm_jax.evaluate.evaluate_run"), mock.patch("webbrowser.open"), \
      mock.patch("aerbm_jax.parallel.initialize"):
    try:
      code = cli.main(argv)
    except SystemExit as done:
      code = done.code
  text = err.getvalue()
  assert "Traceback" not in text, (argv, text)
  assert isinstance(code, int) and code in (0, 1, 2, 3), (argv, code)
  assert code != 1, (argv, text)  # an internal error is a bug to fix, not an answer


def test_the_whole_of_stderr_is_one_line_in_a_fresh_process(run_copy, tmp_path):
  _truncate_all(run_copy / "checkpoints" / "pixel_rbm")
  proc = subprocess.run([sys.executable, "-m", "aerbm_jax.cli", "sample", str(run_copy),
                         "--n", "2", "--steps", "2", "--out", str(tmp_path / "s")],
                        capture_output=True, text=True)
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr
  assert "pixel_rbm is damaged" in lines[0]

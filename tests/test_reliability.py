"""Reliability: killed runs resume bit for bit, and bad checkpoints get clear errors."""

import json
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from aerbm_jax import checkpoint, cli

# Enough epochs that a kill lands in training most of the time, small enough for CI.
ARGS = ["experiment", "digits", "--quick", "--ae-epochs", "3", "--rbm-epochs", "16",
        "--pixel-epochs", "16", "--rbm-epochs-per-call", "2", "--checkpoint-every-s", "0",
        "--ais-betas", "0", "--sample-steps", "5"]


def _final(run_dir):
  ckpt = run_dir / "checkpoints"
  trees = [checkpoint.restore(ckpt / "autoencoder"), checkpoint.load_rbm(ckpt / "latent_rbm"),
           checkpoint.load_rbm(ckpt / "pixel_rbm")]
  metrics = json.loads((run_dir / "metrics.json").read_text())
  metrics.pop("timings")
  return jax.tree.leaves(trees), metrics


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  out = tmp_path_factory.mktemp("ref") / "run"
  proc = subprocess.run([sys.executable, "-m", "aerbm_jax.cli", *ARGS, "--out", str(out)],
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return out


@pytest.mark.parametrize("sig, seed", [
  (signal.SIGKILL, 0),
  pytest.param(signal.SIGINT, 2, marks=pytest.mark.slow),  # Ctrl-C saving: test_train too
  pytest.param(signal.SIGKILL, 1, marks=pytest.mark.slow),
  pytest.param(signal.SIGKILL, 3, marks=pytest.mark.slow),
])
def test_killed_run_resumes_bitwise(reference, tmp_path, sig, seed):
  """Kill at a random moment of training (mid-epoch or mid-save), resume, compare bits."""
  ref_dir = reference
  out = tmp_path / "run"
  proc = subprocess.Popen([sys.executable, "-m", "aerbm_jax.cli", *ARGS, "--out", str(out)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  started = out / "checkpoints" / "train" / "autoencoder"
  deadline = time.monotonic() + 120
  while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
  time.sleep(np.random.default_rng(seed).uniform(0, 6))  # AE and RBM training take ~8 s
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=300)
  if sig == signal.SIGINT and proc.returncode != 0:
    assert proc.returncode == 130 and f"--resume {out}" in err, err[-2000:]
    assert "Traceback" not in err
  assert cli.main(["experiment", "digits", "--resume", str(out)]) == 0
  got, ref = _final(out), _final(ref_dir)
  assert got[1] == ref[1]
  assert all(np.array_equal(a, b) for a, b in zip(got[0], ref[0]))


def test_resume_refuses_changed_options_and_wrong_names(reference, capsys):
  ref_dir = reference
  assert cli.main(["experiment", "digits", "--resume", str(ref_dir), "--rbm-hidden", "4"]) == 2
  assert "drop --rbm-hidden" in capsys.readouterr().err
  assert cli.main(["experiment", "faces", "--resume", str(ref_dir)]) == 2
  assert "is a 'digits' run" in capsys.readouterr().err



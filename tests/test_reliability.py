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


PICTURES = ["train_images.png", "ae_reconstructions.png", "ae_rbm_samples.png",
            "pixel_rbm_samples.png", "interpolations.png", "training_curves.png",
            "hidden_units.png", "pixel_rbm_weights.png"]


def _final(run_dir):
  ckpt = run_dir / "checkpoints"
  trees = [checkpoint.restore(ckpt / "autoencoder"), checkpoint.load_rbm(ckpt / "latent_rbm"),
           checkpoint.load_rbm(ckpt / "pixel_rbm")]
  metrics = json.loads((run_dir / "metrics.json").read_text())
  metrics.pop("timings")
  pictures = [(run_dir / name).read_bytes() for name in PICTURES]
  return jax.tree.leaves(trees), metrics, pictures


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run, and how long it took (kills are placed at fractions of that)."""
  out = tmp_path_factory.mktemp("ref") / "run"
  t0 = time.monotonic()
  proc = subprocess.run([sys.executable, "-m", "aerbm_jax.cli", *ARGS, "--out", str(out)],
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return out, time.monotonic() - t0


# Where in the run a kill lands, as a fraction of the reference run's wall time: data and
# the autoencoder early, the RBMs in the middle, sampling, metrics and the report late.
FAST_KILLS = [(signal.SIGKILL, 0.15), (signal.SIGKILL, 0.55), (signal.SIGKILL, 0.9)]
SLOW_KILLS = [(signal.SIGINT, 0.5)] + [(signal.SIGKILL, f) for f in
                                       np.random.default_rng(7).uniform(0.02, 1.0, 12).round(3)]


@pytest.mark.parametrize("sig, fraction", FAST_KILLS + [
  pytest.param(sig, f, marks=pytest.mark.slow) for sig, f in SLOW_KILLS])
def test_killed_run_resumes_to_the_same_results(reference, tmp_path, sig, fraction):
  """Kill at a moment of any stage (mid-epoch, mid-save, mid-report), resume, and compare the
  parameters' bits, metrics.json and every picture with the uninterrupted run's."""
  ref_dir, ref_seconds = reference
  out = tmp_path / "run"
  proc = subprocess.Popen([sys.executable, "-m", "aerbm_jax.cli", *ARGS, "--out", str(out)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  time.sleep(fraction * ref_seconds)
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=300)
  if sig == signal.SIGINT and proc.returncode != 0:
    assert proc.returncode == 130 and f"--resume {out}" in err, err[-2000:]
    assert "Traceback" not in err
  if not (out / "config.json").is_file():  # killed before the run directory was written
    assert cli.main([*ARGS, "--out", str(out)]) == 0
  elif proc.returncode != 0 or not (out / "report.html").is_file():
    assert cli.main(["experiment", "digits", "--resume", str(out)]) == 0
  got, ref = _final(out), _final(ref_dir)
  assert got[1] == ref[1]
  assert all(np.array_equal(a, b) for a, b in zip(got[0], ref[0]))
  assert [len(p) for p in got[2]] == [len(p) for p in ref[2]] and got[2] == ref[2]


@pytest.mark.parametrize("fraction", [0.3, pytest.param(0.7, marks=pytest.mark.slow)])
def test_killed_evaluation_reruns_to_the_same_results(reference, tmp_path, fraction):
  import shutil

  ref_dir, _ = reference
  run = tmp_path / "run"
  shutil.copytree(ref_dir, run)
  cmd = [sys.executable, "-m", "aerbm_jax.cli", "evaluate", str(run), "--n", "16", "--steps",
         "5"]
  t0 = time.monotonic()
  assert subprocess.run(cmd, capture_output=True).returncode == 0
  whole = json.loads((run / "metrics.json").read_text())["evaluation"]
  seconds = time.monotonic() - t0
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  time.sleep(fraction * seconds)
  proc.kill()
  proc.wait()
  assert subprocess.run(cmd, capture_output=True).returncode == 0
  assert json.loads((run / "metrics.json").read_text())["evaluation"] == whole


def test_resume_refuses_changed_options_and_wrong_names(reference, capsys):
  ref_dir, _ = reference
  assert cli.main(["experiment", "digits", "--resume", str(ref_dir), "--rbm-hidden", "4"]) == 2
  assert "drop --rbm-hidden" in capsys.readouterr().err
  assert cli.main(["experiment", "faces", "--resume", str(ref_dir)]) == 2
  assert "is a 'digits' run" in capsys.readouterr().err



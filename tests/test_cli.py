"""The `aerbm` command line: its help, one-line errors and exit codes."""

import subprocess
import sys

import pytest

from aerbm_jax import cli


@pytest.mark.parametrize(
  "args, message",
  [
    (["experiment", "nosuch", "--quick"], "unknown experiment 'nosuch'"),
    (["experiment", "faces", "--data", "/nonexistent/photos"], "no such folder"),
    (["experiment", "mondrian", "--rbm-hidden", "0"], "rbm_hidden must be > 0"),
    (["experiment", "mondrian", "--ae-learning-rate", "nan"], "ae_learning_rate"),
    (["experiment", "mondrian", "--n-values", "3,4"], "has no option --n-values"),
    (["experiment", "ci_study", "--seeds", "1"], "seeds must be >= 2"),
    (["sample", "/nonexistent/run"], "not a run directory"),
  ],
)
def test_cli_errors_are_one_line(args, message, capsys):
  assert cli.main(args) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_console_script_exit_code():
  proc = subprocess.run([sys.executable, "-m", "aerbm_jax.cli", "experiment", "nosuch"],
                        capture_output=True, text=True)
  assert proc.returncode == 2 and "unknown experiment" in proc.stderr


def test_help_lists_every_command_and_config_field(capsys):
  with pytest.raises(SystemExit) as done:
    cli.main(["--help"])
  assert done.value.code == 0
  out = capsys.readouterr().out
  for command in ("experiment", "sample", "evaluate"):
    assert command in out
  with pytest.raises(SystemExit):
    cli.main(["experiment", "--help"])
  out = capsys.readouterr().out
  for flag in ("--rbm-hidden", "--ae-features", "--n-values", "--resume", "--quick",
               "--no-ae-augment"):
    assert flag in out, flag


def test_config_options_reach_the_config(monkeypatch, tmp_path):
  seen = {}
  monkeypatch.setattr("aerbm_jax.experiment.run_experiment",
                      lambda config, out, **kw: seen.update(config=config, out=out))
  assert cli.main(["experiment", "faces", "--quick", "--rbm-hidden", "5", "--ae-features",
                   "4,8", "--no-ae-augment", "--rbm-learning-rate", "0.02",
                   "--out", str(tmp_path / "r")]) == 0
  config = seen["config"]
  assert config.rbm_hidden == 5 and config.ae_features == (4, 8) and config.ae_augment is False
  assert config.rbm_learning_rate == 0.02 and config.name == "faces"
  assert config.ae_epochs == 2  # --quick's value where no option overrides it

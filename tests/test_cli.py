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


def test_each_experiment_shows_only_its_own_options_with_defaults(capsys):
  helps = {}
  for name in ("faces", "ci_study", "mnist"):
    with pytest.raises(SystemExit):
      cli.main(["experiment", name, "--help"])
    helps[name] = capsys.readouterr().out
  assert "--ae-latent-dim" in helps["faces"] and "--n-values" not in helps["faces"]
  assert "--n-values" in helps["ci_study"] and "--ae-latent-dim" not in helps["ci_study"]
  assert "--big-hidden" in helps["mnist"] and "--rbm-hidden" not in helps["mnist"]
  # Defaults are the named preset's; each option says what it does.
  assert "passes over the training images (default: 150)" in " ".join(helps["faces"].split())
  assert "training-set sizes (default: 25,50,100,400)" in " ".join(helps["ci_study"].split())


def test_a_wrong_choice_names_the_allowed_ones(capsys):
  with pytest.raises(SystemExit):
    cli.main(["experiment", "faces", "--rbm-method", "sgd"])
  err = capsys.readouterr().err
  assert "invalid choice: 'sgd'" in err and "'cd'" in err and "'pcd'" in err


def test_runs_lists_status_and_headline(mondrian_run, tmp_path, capsys):
  import shutil

  folder = tmp_path / "runs"
  shutil.copytree(mondrian_run, folder / "done", ignore=shutil.ignore_patterns("checkpoints"))
  half = folder / "half"
  (half / "checkpoints" / "train" / "autoencoder").mkdir(parents=True)
  (half / "checkpoints" / "train" / "autoencoder" / "4").mkdir()
  shutil.copy(mondrian_run / "config.json", half / "config.json")
  (folder / "new").mkdir()
  shutil.copy(mondrian_run / "config.json", folder / "new" / "config.json")
  (folder / "not-a-run").mkdir()
  assert cli.main(["runs", str(folder)]) == 0
  lines = {line.split()[0].rsplit("/", 1)[-1]: line for line in capsys.readouterr().out.splitlines()}
  assert set(lines) == {"done", "half", "new"}
  assert "finished" in lines["done"] and "AE held-out MSE" in lines["done"]
  assert "latent LL" in lines["done"] and "mondrian" in lines["done"]
  assert "resumable" in lines["half"] and "started" in lines["new"]
  assert cli.main(["runs", str(tmp_path / "nowhere")]) == 2


def test_quiet_shows_no_progress_bars(mondrian_run, tmp_path):
  run = lambda *flags: subprocess.run(
    [sys.executable, "-m", "aerbm_jax.cli", *flags, "sample", str(mondrian_run), "--n", "4",
     "--steps", "3", "--out", str(tmp_path)], capture_output=True, text=True)
  quiet = run("--quiet")
  assert quiet.returncode == 0 and "sweep" not in quiet.stderr, quiet.stderr[-500:]


def test_global_flags_work_after_the_subcommand_too(mondrian_run, tmp_path):
  proc = subprocess.run([sys.executable, "-m", "aerbm_jax.cli", "sample", str(mondrian_run),
                         "--n", "4", "--steps", "3", "--out", str(tmp_path), "--quiet"],
                        capture_output=True, text=True)
  assert proc.returncode == 0 and "sweep" not in proc.stderr, proc.stderr[-500:]

"""The benchmarks' --quick modes write complete, well-formed results (not speeds)."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "throughput.py"


# Slow: throughput.py's whole quick run (about 45 s of a worker); the fast suite still runs its
# start in test_interrupted_benchmark_writes_the_rows_it_has, and CI runs this after it.
@pytest.mark.slow
def test_quick_benchmark_output_format(tmp_path):
  proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--peers", "numpy", "--out",
                         str(tmp_path), "--tag", "quick"], capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads((tmp_path / "quick.json").read_text())
  assert res["machine"]["matmul_peak"]["gflops"] > 0 and res["machine"]["versions"]["jax"]
  libs = {(r["lib"], r["variant"], r["batch"]) for r in res["sampling"]}
  for batch in (64, 1):
    for lib in [("aerbm_jax", "float32"), ("aerbm_jax", "bfloat16"), ("numpy", "pcg64")]:
      assert lib + (batch,) in libs
  for r in res["sampling"] + res["training"] + res["batch_sweep"]:
    assert r["rate"] > 0 and r["min"] <= r["rate"] <= r["max"] and r["repeats"] >= 5, r
  assert {(r["kind"], r["lib"]) for r in res["training"]} >= {
    ("cd", "aerbm_jax"), ("pcd", "aerbm_jax"), ("cd", "numpy"), ("pcd", "numpy")}
  jax_rows = [r for r in res["sampling"] + res["training"] if r["lib"] == "aerbm_jax"]
  assert all(r["compile_s"] > 0 and r["memory_bytes"] > 0 for r in jax_rows)
  assert {(t["against"], t["batch"]) for t in res["targets"]} == {("numpy", 64), ("matmul", 64)}
  for t in res["targets"]:
    assert 0 < t["min"] <= t["ratio"] <= t["max"] and t["rounds"] >= 5 and t["met"] is None, t
  assert res["memory"]["peak_rss_bytes"] > 0
  big = res["memory"]["largest_rbm_on_80gb"]  # compiled from shapes, to the nearest 65,536
  assert big["largest_square_units"] >= 65536 and 0 < big["plan_bytes"] <= 80e9
  assert 8 <= big["bytes_per_weight"] <= 64  # at least parameters and momentum
  md = (tmp_path / "quick.md").read_text()
  for heading in ("## Goals, timed back to back", "## Block Gibbs sampling", "## Training",
                  "## Memory", "vs fastest peer", "XLA plans within 80 GB", "% of matmul peak",
                  "quick-batch.png"):
    assert heading in md
  assert (tmp_path / "quick-batch.png").stat().st_size > 1000


def test_interrupted_benchmark_writes_the_rows_it_has(tmp_path):
  """A timeout's SIGTERM ends the run, and the goals measured before it are still written."""
  proc = subprocess.Popen([sys.executable, str(SCRIPT), "--quick", "--peers", "numpy", "--out",
                           str(tmp_path), "--tag", "cut"], stdout=subprocess.PIPE, text=True)
  for line in proc.stdout:
    if line.startswith("sample "):  # the goals are done, the sampling rows have begun
      proc.terminate()
      break
  proc.stdout.read()
  assert proc.wait(timeout=120) == 0
  res = json.loads((tmp_path / "cut.json").read_text())
  assert res["interrupted"] and len(res["targets"]) == 2 and res["memory"]["peak_rss_bytes"] > 0
  assert "This run was interrupted" in (tmp_path / "cut.md").read_text()


# Slow: tasks.py's quick run of every section, the fast suite's longest test (86 s of a worker
# here); CI runs it after the fast suite.
@pytest.mark.slow
def test_quick_task_benchmark_output_format(tmp_path):
  """tasks.py on a mock MNIST file: every section is written, with the peers installed here."""
  rng = np.random.default_rng(0)
  mock = tmp_path / "mnist.npz"
  np.savez(mock, x_train=rng.integers(0, 256, (1000, 28, 28), dtype=np.uint8),
           x_test=rng.integers(0, 256, (100, 28, 28), dtype=np.uint8))
  script = SCRIPT.parent / "tasks.py"
  proc = subprocess.run([sys.executable, str(script), "--quick", "--mnist", str(mock), "--out",
                         str(tmp_path), "--tag", "tasks"], capture_output=True, text=True,
                        timeout=600, cwd=SCRIPT.parent)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads((tmp_path / "tasks.json").read_text())
  libs = res["mnist"]["libraries"]
  assert {"aerbm_jax", "sklearn"} <= set(libs)
  for c in libs.values():
    assert c["median_epoch_s"] > 0 and len(c["points"]) == 1
    assert np.isfinite(c["points"][0]["log_likelihood"]) and c["points"][0]["log_likelihood"] < 0
  # The epoch's share of the matmul peak, timed in turn: a rate below the peak's.
  share = res["mnist"]["share_of_peak"]
  assert 0 < share["min"] <= share["ratio"] <= share["max"] < 1.5 and share["rounds"] >= 2, share
  assert res["ae"]["aerbm_jax"]["images_per_s"] > 0 and res["ae"]["aerbm_jax"]["compile_s"] > 0
  if "torch" in res["ae"]:  # the back-to-back ratio comes with the two separate rates
    p = res["ae"]["paired"]
    assert 0 < p["min"] <= p["ratio"] <= p["max"] and p["rounds"] >= 2, p
  assert [r["batch"] for r in res["small"]] == [2, 8, 32, 64]
  assert all(r["ratio"] > 0 and r["bfloat16"]["ratio"] > 0 and r["int8"]["ratio"] > 0
             for r in res["small"])
  md = (tmp_path / "tasks.md").read_text()
  for heading in ("## MNIST", "## Autoencoder training", "## Small batches"):
    assert heading in md
  assert "Time to the same log-likelihood" in md
  assert f"the epoch ran at {100 * share['ratio']:.0f}% of the peak" in md


def test_time_to_the_same_log_likelihood_reads_the_fastest_peer_at_each_level():
  sys.path.insert(0, str(SCRIPT.parent))
  import tasks

  def pts(*pairs):
    return {"points": [{"train_s": t, "log_likelihood": ll} for t, ll in pairs]}

  libs = {"aerbm_jax": pts((2, -120), (4, -100)), "slow": pts((10, -110), (15, -130), (20, -95)),
          "fast": pts((5, -110)), "aerbm_jax, one run": pts((1, -50))}  # ours: not a peer
  rows = tasks.time_to_same_ll(libs)
  assert [r["level"] for r in rows] == [-110, -95]  # -130 is no new best of "slow"
  # -110: "fast" reaches it at 5 s, before "slow"; aerbm_jax first at its 4 s point.
  assert (rows[0]["peer"], rows[0]["peer_s"], rows[0]["aerbm_jax_s"]) == ("fast", 5, 4)
  assert rows[0]["ratio"] == 5 / 4
  # -95: only "slow" reaches it, and aerbm_jax never does.
  assert rows[1]["peer"] == "slow" and rows[1]["aerbm_jax_s"] is None and rows[1]["ratio"] is None


def test_missing_peers_are_named_in_the_results(monkeypatch):
  sys.path.insert(0, str(SCRIPT.parent))
  import bench_mnist
  import tasks

  monkeypatch.setattr(bench_mnist, "available", lambda name: name == "sklearn")
  monkeypatch.setattr(tasks, "_installed", lambda module: False)
  assert tasks.missing_peers(["mnist", "ae", "small"]) == ["rbms", "rbms 0.6", "learnergy",
                                                           "torch"]
  assert tasks.missing_peers(["small"]) == []
  machine = {"backend": "cpu", "device": "cpu", "cores": 2, "cpu": "x", "versions": {"jax": "0"}}
  md = tasks.markdown({"machine": machine, "peak": {"gflops": 1.0},
                       "missing_peers": ["rbms", "torch"]})
  assert "Not installed, so not timed: rbms, torch." in md
  monkeypatch.setattr(bench_mnist, "available", lambda name: True)
  monkeypatch.setattr(tasks, "_installed", lambda module: True)
  assert tasks.missing_peers(["mnist", "ae", "small"]) == []
  assert "Not installed" not in tasks.markdown({"machine": machine, "peak": {"gflops": 1.0},
                                                "missing_peers": []})


def test_per_budget_curve_scores_a_fresh_run_per_budget(monkeypatch):
  """A trainer in PER_BUDGET is run afresh for each scored epoch count, and each point's time
  is that run's own training time; other trainers are scored at checkpoints of one run."""
  sys.path.insert(0, str(SCRIPT.parent))
  import bench_mnist
  from aerbm_jax import rbm

  calls = []

  def fake(x, n_epochs):
    calls.append(n_epochs)
    for e in range(n_epochs):
      yield 1.0 + e, rbm.BernoulliRBM(jnp.zeros((4, 3)), jnp.zeros(4), jnp.zeros(3))

  monkeypatch.setitem(bench_mnist.TRAINERS, "fake", fake)
  monkeypatch.setattr(bench_mnist, "PER_BUDGET", {"fake"})
  x = np.random.default_rng(0).integers(0, 2, (20, 4)).astype(np.float32)
  c = bench_mnist.curve("fake", x, x[:5], 3, [1, 2], 4, 10)
  assert calls == [1, 2, 3] and c["per_budget"]
  assert [p["train_s"] for p in c["points"]] == [1.0, 3.0, 6.0]
  # Zero parameters: the uniform distribution, -4 log 2 per 4-pixel image, exact under AIS.
  assert np.allclose([p["log_likelihood"] for p in c["points"]], -4 * np.log(2), atol=1e-4)
  monkeypatch.setattr(bench_mnist, "PER_BUDGET", set())
  calls.clear()
  c = bench_mnist.curve("fake", x, x[:5], 3, [1, 2], 4, 10)
  assert calls == [3] and [p["train_s"] for p in c["points"]] == [1.0, 3.0, 6.0]


def test_rbms_06_runs_in_the_interpreter_it_is_given(monkeypatch):
  """"rbms 0.6" is a peer only with an interpreter set; one that cannot train it (this one: no
  rbms 0.6 here) fails with an error naming it. With $RBMS_PYTHON set to one that can, a real
  epoch comes back as parameters."""
  sys.path.insert(0, str(SCRIPT.parent))
  import bench_mnist

  x = (np.random.default_rng(0).random((300, 784)) < 0.2).astype(np.float32)
  monkeypatch.setattr(bench_mnist, "RBMS_PYTHON", None)
  assert not bench_mnist.available("rbms 0.6") and bench_mnist.available("aerbm_jax")
  monkeypatch.setattr(bench_mnist, "RBMS_PYTHON", sys.executable)
  assert bench_mnist.available("rbms 0.6")
  with pytest.raises(RuntimeError, match="rbms_peer.py under"):
    list(bench_mnist.rbms_06(x, 1))
  if os.environ.get("RBMS_PYTHON"):
    monkeypatch.setattr(bench_mnist, "RBMS_PYTHON", os.environ["RBMS_PYTHON"])
    (seconds, params), = list(bench_mnist.rbms_06(x, 1))
    assert seconds > 0 and params.W.shape == (784, bench_mnist.N_HIDDEN)
    assert np.all(np.isfinite(params.W)) and float(jnp.std(params.W)) > 0


@pytest.mark.slow  # small_bound.py's run, about 20 s of a worker
def test_small_batch_bound_writes_every_column(tmp_path):
  # numpy's BLAS on one thread: with its default pool, contending with the other test worker's
  # threads, one numpy loop of a back-to-back pair could run 1.8x slower than the other.
  env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
  # The matmuls alone are part of the sweep, so they cannot take longer than all of it; the
  # shares are timed back to back, so a change in the machine's load between the separate
  # timings (another test worker's) does not move them; within a pair, noise from that worker
  # has still put numpy's share at 1.21 at 2 chains on one thread, where it is about 0.95, and
  # ours at 1.51 once in a CI run (1.0 or below alone): a share over the bound is measured
  # once more, and fails if it is over again. Each share is the median of 9 pairs of samples of
  # at least 0.1 s (`small_bound.SHARE_SAMPLE_S`).
  for _ in range(2):
    proc = subprocess.run([sys.executable, "small_bound.py", "--batches", "2", "--sweeps", "400",
                           "--ab-flops", "3e8", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300, cwd=SCRIPT.parent, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (md,) = tmp_path.glob("small-bound-*.md")
    row = [line for line in md.read_text().splitlines() if line.startswith("| 2 |")]
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    times = [float(c) for c in cells[1:5]]
    assert len(cells) == 9 and all(t > 0 for t in times)
    shares = [float(c) for c in cells[7:9]]
    if all(0 < s <= 1.35 for s in shares):
      break
  assert all(0 < s <= 1.35 for s in shares), shares
  # The hash alone, ours and JAX's lowering (the script checks that they give the same words).
  hash_cells = [c.strip() for c in row[1].strip("|").split("|")]
  assert len(row) == 2 and len(hash_cells) == 4
  assert all(float(c) > 0 for c in hash_cells[1:3]) and float(hash_cells[3].rstrip("x")) > 0
  # Whole sweeps against JAX's hash (the script checks that both draw the same samples), then
  # the batch in halves against it whole: two chains are too few for halves by default, and the
  # halves' products may round differently, so the last column says whether the samples agreed.
  ab = [line.strip("|").split("|") for line in md.read_text().splitlines()
        if line.startswith("| 784, 500, 2 |")]
  assert [len(cells) for cells in ab] == [3, 7] and ab[1][1].strip() == "whole"
  assert ab[1][6].strip() in ("yes", "no")
  assert all(float(c.strip().rstrip("x")) > 0 for c in (ab[0][1], ab[1][2], ab[1][4]))


def test_autoencoder_step_against_xla_kernel_gradients_compiles_each_way():
  sys.path.insert(0, str(SCRIPT.parent))
  import dataclasses

  import bench_ae
  import jax

  from aerbm_jax import configs, layers

  cfg = dataclasses.replace(configs.make_config("mondrian").ae_config(), image_size=16,
                            augment=False, progress=False)
  default = layers.TAP_GRAD_MIN_FEATURES
  ours, _ = bench_ae.jax_step(cfg)
  xla, _ = bench_ae.jax_step(cfg, tap_min_features=sys.maxsize)
  assert layers.TAP_GRAD_MIN_FEATURES == default  # restored after the compile
  # Two programs (the jit cache would otherwise hand the second step the first's), computing
  # the same training: the second update's loss depends on the first update's gradients.
  if jax.default_backend() == "cpu":
    assert ours.compiled.as_text() != xla.compiled.as_text()
  losses = [(ours(), xla()) for _ in range(3)]
  np.testing.assert_allclose(*zip(*losses), rtol=1e-5)
  assert losses[2][0] != losses[0][0]


def test_epoch_bound_times_three_programs(tmp_path):
  """epoch_bound.py on a mock MNIST file: a row per variant, and the unguarded epoch is its own
  program (without it, the jit cache would hand it the guarded one), training alike."""
  sys.path.insert(0, str(SCRIPT.parent))
  import epoch_bound

  rng = np.random.default_rng(0)
  mock = tmp_path / "mnist.npz"
  np.savez(mock, x_train=rng.integers(0, 256, (300, 28, 28), dtype=np.uint8),
           x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
  proc = subprocess.run([sys.executable, "epoch_bound.py", "--mnist", str(mock), "--rounds", "2",
                         "--out", str(tmp_path), "--tag", "eb"], capture_output=True, text=True,
                        timeout=300, cwd=SCRIPT.parent)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads((tmp_path / "eb.json").read_text())
  assert list(res["variants"]) == list(epoch_bound.VARIANTS) and res["updates"] == 3
  for r in res["variants"].values():
    assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"] and len(r["epoch_s"]) == 2
  assert "| matmuls |" in (tmp_path / "eb.md").read_text()
  data = jnp.asarray(np.asarray(rng.random((300, 784)) < 0.2, np.float32))
  guarded, unguarded = (epoch_bound.epoch_call(v, data, 2) for v in ("library", "unguarded"))
  assert guarded.compiled.as_text() != unguarded.compiled.as_text()
  np.testing.assert_allclose(guarded(0), unguarded(0), atol=1e-5)


@pytest.mark.slow
def test_gpu_script_dry_run_packs_every_section(tmp_path):
  """`QUICK=1 bash benchmarks/gpu_tasks.sh` (the device script at tiny sizes, here on the CPU):
  every section exits 0 and its results come back in the one archive."""
  rng = np.random.default_rng(0)
  mock = tmp_path / "mnist.npz"
  np.savez(mock, x_train=rng.integers(0, 256, (1000, 28, 28), dtype=np.uint8),
           x_test=rng.integers(0, 256, (100, 28, 28), dtype=np.uint8),
           y_train=rng.integers(0, 10, 1000), y_test=rng.integers(0, 10, 100))
  env = {**os.environ, "QUICK": "1", "MNIST": str(mock), "OUT": str(tmp_path / "out"),
         "WORK": str(tmp_path / "work"), "RUNS": str(tmp_path / "runs"),
         "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
  proc = subprocess.run(["bash", "benchmarks/gpu_tasks.sh"], cwd=SCRIPT.parent.parent, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  summary = (tmp_path / "out" / "gpu.txt").read_text()
  sections = ["throughput", "mnist", "largest", "experiment-faces", "experiment-mondrian",
              "mnist-table"]
  for name in sections:
    assert f"{name}: exit 0 in" in summary, summary
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gpu.txt", "gpu_results.tgz"]
  with tarfile.open(tmp_path / "out" / "gpu_results.tgz") as tar:
    names = {Path(n).name for n in tar.getnames()}
  assert {"throughput-gpu.json", "tasks-gpu.json", "largest_rbm.json",
          "experiment-faces-metrics.json", "experiment-mondrian-metrics.json",
          "mnist-table.json"} | {f"{name}.log" for name in sections} <= names


def test_paired_timings_idle_before_each_call():
  """`paired` starts each timed call `pause_s` after the one before, or as long as that call
  took if shorter, so that one library's spinning threads do not slow the other's call."""
  import time

  sys.path.insert(0, str(SCRIPT.parent))
  import bench_timing

  def gaps(pause_s: float) -> list[float]:
    marks = []

    def call():
      marks.append(("start", time.perf_counter()))
      time.sleep(0.04)
      marks.append(("end", time.perf_counter()))

    bench_timing.paired(call, 1, call, 1, 3, pause_s=pause_s)
    return [b[1] - a[1] for a, b in zip(marks, marks[1:]) if (a[0], b[0]) == ("end", "start")]

  long_pause = gaps(0.03)
  assert len(long_pause) == 7 and min(long_pause[1:]) >= 0.03  # the first is the warm-up's
  capped = gaps(1.0)  # capped at the last call's duration, about 0.04 s
  assert 0.035 <= min(capped[1:]) and max(capped) < 0.5


def test_ais_time_writes_both_directions(tmp_path):
  """ais_time.py on a mock MNIST file: every call of each direction timed, with its estimate."""
  rng = np.random.default_rng(0)
  mock = tmp_path / "mnist.npz"
  np.savez(mock, x_train=rng.integers(0, 256, (300, 28, 28), dtype=np.uint8),
           x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
  proc = subprocess.run([sys.executable, "ais_time.py", "--mnist", str(mock), "--epochs", "1",
                         "--betas", "20", "--chains", "4", "--calls", "2", "--out", str(tmp_path),
                         "--tag", "ais"], capture_output=True, text=True, timeout=300,
                        cwd=SCRIPT.parent)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads((tmp_path / "ais.json").read_text())
  assert set(res["runs"]) == {"forward", "reverse"} and res["betas"] == 20
  for r in res["runs"].values():
    assert len(r["seconds"]) == len(r["log_z"]) == len(r["ess"]) == 2
    assert all(s > 0 for s in r["seconds"]) and all(np.isfinite(r["log_z"]))
    assert all(0 < e <= 4 for e in r["ess"])
  md = (tmp_path / "ais.md").read_text()
  assert "| forward |" in md and "| reverse |" in md


# Slow: two runs of the quick digits experiment and four sample and evaluate calls (about a
# minute of a worker).
@pytest.mark.slow
def test_warm_runs_times_every_phase_and_the_warm_run_is_faster(tmp_path):
  """warm_runs.py for one experiment and threshold: each phase timed once, and the run with the
  cache its first run filled is faster than that first run (the script itself checks that
  both gave the same metrics)."""
  proc = subprocess.run([sys.executable, "warm_runs.py", "--rounds", "1", "--experiments",
                         "digits --quick", "--thresholds", "default", "--out", str(tmp_path),
                         "--tag", "wr"], capture_output=True, text=True, timeout=600,
                        cwd=SCRIPT.parent)
  assert proc.returncode == 0, proc.stderr[-3000:]
  phases = json.loads((tmp_path / "wr.json").read_text())["runs"]["digits --quick"]["default"]
  assert list(phases) == ["cold", "warm", "sample", "sample again", "evaluate", "evaluate again"]
  assert all(len(t) == 1 and t[0] > 0 for t in phases.values())
  assert phases["warm"][0] < phases["cold"][0]
  assert "| digits --quick | default |" in (tmp_path / "wr.md").read_text()

"""Sharded runs equal unsharded ones: chains, seeds, temperatures, AIS, data-parallel training.

The checks need several devices. On a machine with one, `test_on_eight_cpu_devices` reruns this
file in a subprocess with `XLA_FLAGS=--xla_force_host_platform_device_count=8`.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from aerbm_jax import checkpoint, parallel, partition, rbm, sampling, tempering, train

N_DEVICES = 8
many = pytest.mark.skipif(jax.device_count() < N_DEVICES,
                          reason="runs in the 8-device subprocess")
FLAGS = "--xla_force_host_platform_device_count="


def _env(n_devices: int) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {FLAGS}{n_devices}".strip()
  env["JAX_PLATFORMS"] = "cpu"
  return env


@pytest.mark.skipif(jax.device_count() >= N_DEVICES, reason="already on 8 devices")
def test_on_eight_cpu_devices(request):
  marks = request.config.getoption("-m")  # `make test-all` runs the slow cases there too
  proc = subprocess.run(
    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marks, __file__],
    env=_env(N_DEVICES), capture_output=True, text=True, cwd=Path(__file__).parent.parent)
  tail = proc.stdout[-3000:] + proc.stderr[-2000:]
  assert proc.returncode == 0, tail
  assert " passed" in proc.stdout and "skipped" in proc.stdout, tail


def _model(n=12, m=5, seed=0):
  p = rbm.init(jax.random.key(seed), n, m, weight_scale=0.5)
  return p._replace(b=jax.random.normal(jax.random.key(seed + 1), (n,)) * 0.3)


def _data(n=12, rows=64, seed=0):
  return (np.random.default_rng(seed).random((rows, n)) < 0.3).astype(np.float32)


def _spread(x) -> int:
  return len(x.sharding.device_set)


@many
@pytest.mark.parametrize("bits", [pytest.param(16, marks=pytest.mark.slow), 32])
def test_sharded_sampling_equals_unsharded(bits):
  p, mesh = _model(), parallel.make_mesh()
  ref = sampling.sample(jax.random.key(3), p, n_chains=64, n_steps=10, uniform_bits=bits)
  got = sampling.sample(jax.random.key(3), p, n_chains=64, n_steps=10, uniform_bits=bits,
                        mesh=mesh)
  assert _spread(got) == N_DEVICES and not got.sharding.is_fully_replicated
  np.testing.assert_array_equal(got, ref)
  v0 = _data(rows=16)
  np.testing.assert_array_equal(
    sampling.sample(jax.random.key(4), p, n_steps=5, v0=v0, mesh=mesh),
    sampling.sample(jax.random.key(4), p, n_steps=5, v0=v0))
  with pytest.raises(ValueError, match="n_chains=60 must be divisible by the 8 devices"):
    sampling.sample(jax.random.key(3), p, n_chains=60, n_steps=1, mesh=mesh)


@many
def test_sharded_parallel_tempering_equals_unsharded():
  p, mesh = _model(), parallel.make_mesh()
  betas = tempering.pt_betas(4, 0.3)
  v, state, acc = tempering.sample_pt(jax.random.key(5), p, betas=betas, n_steps=20, n_chains=32)
  vs, states, accs = tempering.sample_pt(jax.random.key(5), p, betas=betas, n_steps=20,
                                        n_chains=32, mesh=mesh)
  assert _spread(vs) == N_DEVICES
  np.testing.assert_array_equal(vs, v)
  np.testing.assert_array_equal(states.v, state.v)
  np.testing.assert_allclose(accs, acc, rtol=1e-6)


@many
def test_sharded_ais_equals_unsharded():
  p, mesh = _model(), parallel.make_mesh()
  ref = partition.ais_log_partition(jax.random.key(6), p, n_chains=64, n_betas=200)
  got = partition.ais_log_partition(jax.random.key(6), p, n_chains=64, n_betas=200, mesh=mesh)
  np.testing.assert_allclose(got.log_weights, ref.log_weights, rtol=1e-6)
  np.testing.assert_allclose(got.log_z, ref.log_z, rtol=1e-6)


@many
@pytest.mark.parametrize("seeds, method", [
  (2, "pcd"),  # seeds and minibatches both sharded
  pytest.param(8, "cd", marks=pytest.mark.slow), pytest.param(8, "pcd", marks=pytest.mark.slow),
  pytest.param(2, "cd", marks=pytest.mark.slow),
])
def test_sharded_fit_many_equals_unsharded(seeds, method):
  keys = jax.random.split(jax.random.key(7), 16)
  params = jax.vmap(lambda k: rbm.init(k, 12, 5))(keys)
  cfg = train.TrainConfig(method=method, epochs=3, batch_size=8, progress=False)
  ref, href = train.fit_many(keys, params, _data(), cfg)
  mesh = parallel.make_mesh(seeds=seeds)  # seeds x (8 / seeds) minibatch shards
  got, hgot = train.fit_many(keys, params, _data(), cfg, mesh=mesh)
  assert _spread(got.W) == N_DEVICES
  for a, b in zip(got, ref):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hgot.log_likelihood, href.log_likelihood, rtol=1e-5)


@many
@pytest.mark.parametrize("method", ["cd", pytest.param("pcd", marks=pytest.mark.slow)])
def test_data_parallel_fit_equals_single_device(method):
  p = _model()
  cfg = train.TrainConfig(method=method, epochs=4, batch_size=16, progress=False)
  ref, href = train.fit(jax.random.key(8), p, _data(), cfg)
  got, hgot = train.fit(jax.random.key(8), p, _data(), cfg, mesh=parallel.make_mesh())
  for a, b in zip(got, ref):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hgot.recon_error, href.recon_error, rtol=1e-5)
  with pytest.raises(ValueError, match="batch_size=12 must be divisible"):
    train.fit(jax.random.key(8), p, _data(), train.TrainConfig(batch_size=12),
              mesh=parallel.make_mesh())


@many
@pytest.mark.slow
def test_sharded_training_resumes_from_its_checkpoint(tmp_path):
  keys = jax.random.split(jax.random.key(9), 8)
  params = jax.vmap(lambda k: rbm.init(k, 12, 5))(keys)
  cfg = train.TrainConfig(method="pcd", epochs=4, batch_size=8, epochs_per_call=2,
                          progress=False)
  mesh = parallel.make_mesh(seeds=8)
  ref, _ = train.fit_many(keys, params, _data(), cfg, mesh=mesh)
  train.fit_many(keys, params, _data(), cfg, mesh=mesh, checkpoint_dir=tmp_path,
                 checkpoint_every_s=0)
  import shutil
  shutil.rmtree(tmp_path / "4")
  got, _ = train.fit_many(keys, params, _data(), cfg, mesh=mesh, checkpoint_dir=tmp_path)
  for a, b in zip(got, ref):
    np.testing.assert_array_equal(a, b)


RESTORE = textwrap.dedent("""
  import sys, jax, numpy as np
  from aerbm_jax import checkpoint, parallel, rbm
  path, want = sys.argv[1], np.load(sys.argv[2])
  n = jax.device_count()
  like = jax.eval_shape(lambda: jax.vmap(lambda k: rbm.init(k, 12, 5))(
    jax.random.split(jax.random.key(0), 8)))
  mesh = parallel.make_mesh(seeds=n)
  target = jax.tree.map(lambda s: jax.device_put(np.zeros(s.shape, s.dtype),
                                                 parallel.batch_sharding(mesh, len(s.shape))),
                        like)
  got = checkpoint.restore(path, target)
  plain = checkpoint.load_rbm(path)  # no target: onto the default device
  assert len(got.W.sharding.device_set) == n, got.W.sharding
  assert np.array_equal(np.asarray(got.W), want) and np.array_equal(np.asarray(plain.W), want)
  print("restored on", n)
""")


@many
def test_checkpoint_saved_on_8_devices_restores_on_1_and_4(tmp_path):
  keys = jax.random.split(jax.random.key(0), 8)
  params = parallel.shard_batch(jax.vmap(lambda k: rbm.init(k, 12, 5))(keys),
                                parallel.make_mesh(seeds=8), axes=parallel.SEEDS)
  assert _spread(params.W) == 8
  path = checkpoint.save(tmp_path / "ckpt", params)
  np.save(tmp_path / "W.npy", np.asarray(params.W))
  for n in (1, 4):
    proc = subprocess.run([sys.executable, "-c", RESTORE, str(path), str(tmp_path / "W.npy")],
                          env=_env(n), capture_output=True, text=True)
    assert proc.returncode == 0 and f"restored on {n}" in proc.stdout, proc.stderr[-3000:]


# ---------------------------------------------------------------------------- multi-host


def test_distributed_settings_from_flags_and_environment():
  assert parallel.distributed_settings(environ={}) is None
  assert parallel.distributed_settings(auto=True, environ={}) == {}
  env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4",
         "JAX_PROCESS_ID": "3"}
  assert parallel.distributed_settings(environ=env) == {
    "coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3}
  assert parallel.distributed_settings(process_id=0, environ=env)["process_id"] == 0  # flag wins
  assert parallel.distributed_settings(num_processes=2, auto=True, environ={}) == {
    "num_processes": 2}
  for kwargs, env, match in [
    ({}, {"JAX_NUM_PROCESSES": "two"}, "not an integer"),
    ({"coordinator_address": "nohost"}, {}, "host:port"),
    ({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2}, {}, r"\[0, 2\)"),
    ({"coordinator_address": "h:1"}, {}, "--num-processes, --process-id"),
    ({"num_processes": 0}, {}, ">= 1"),
  ]:
    with pytest.raises(ValueError, match=match):
      parallel.distributed_settings(**kwargs, environ=env)


TWO_PROCESS = textwrap.dedent("""
  import sys, jax, numpy as np
  from aerbm_jax import parallel, rbm, sampling
  parallel.initialize(parallel.distributed_settings(sys.argv[1], 2, int(sys.argv[2])))
  assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
  p = rbm.init(jax.random.key(0), 10, 4, weight_scale=0.5)
  got = sampling.sample(jax.random.key(1), p, n_chains=16, n_steps=5, mesh=parallel.make_mesh())
  ref = sampling.sample(jax.random.key(1), p, n_chains=16, n_steps=5,
                        mesh=parallel.make_mesh(devices=jax.local_devices()[:1]))
  ref = np.asarray(ref)
  for shard in got.addressable_shards:
    assert np.array_equal(np.asarray(shard.data), ref[shard.index]), shard.index
  print("process", jax.process_index(), "ok", len(got.addressable_shards))
""")


@pytest.mark.skipif(jax.device_count() >= N_DEVICES, reason="runs once, in the parent session")
def test_two_processes_on_localhost():
  import socket
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  procs = [subprocess.Popen([sys.executable, "-c", TWO_PROCESS, f"localhost:{port}", str(i)],
                            env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for i in range(2)]
  outs = [p.communicate(timeout=180) for p in procs]
  for i, (p, (out, err)) in enumerate(zip(procs, outs)):
    assert p.returncode == 0 and f"process {i} ok 2" in out, err[-3000:]


@many
@pytest.mark.slow
def test_experiment_with_shard_runs_on_every_device(tmp_path):
  from aerbm_jax import cli
  out = tmp_path / "run"
  assert cli.main(["experiment", "digits", "--quick", "--shard", "--ais-betas", "0",
                   "--out", str(out)]) == 0
  m = json.loads((out / "metrics.json").read_text())
  assert np.isfinite(m["latent_rbm"]["final_recon_error"])
  assert json.loads((out / "config.json").read_text())["shard"] is True

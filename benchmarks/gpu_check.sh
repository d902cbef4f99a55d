#!/usr/bin/env bash
# One short run on a lent GPU machine (JAX with CUDA preinstalled there), under the device
# tool's 600 s per-command limit: the throughput benchmark first (its rows are logged as they
# come, so a timeout still leaves them in $OUT/bench.log), then the uniform, model, sampler,
# optimizer and partition tests on the GPU. Results go to $OUT.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax, flax, optax; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__)" | tee -a "$OUT/gpu.txt"
timeout "${BENCH_S:-360}" python3 benchmarks/throughput.py --prng-sweep --out "$OUT" \
  --tag throughput-gpu 2>&1 | tee "$OUT/bench.log" | tail -n 60
timeout "${TESTS_S:-150}" python3 -m pytest -q -p no:cacheprovider -o addopts="-m 'not slow'" \
  tests/test_rng.py tests/test_rbm.py tests/test_sampling.py tests/test_optim.py tests/test_partition.py \
  2>&1 | tail -n 40 | tee "$OUT/gpu_tests.log"

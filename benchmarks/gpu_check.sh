#!/usr/bin/env bash
# One short run on a lent GPU machine (JAX with CUDA preinstalled there): the RBM core test
# suite on the GPU, then the Gibbs throughput benchmark. Results go to $OUT.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax, flax, optax; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__)" | tee -a "$OUT/gpu.txt"
timeout 300 python3 -m pytest -q -p no:cacheprovider -o addopts="" \
  tests \
  2>&1 | tail -n 40 | tee "$OUT/gpu_tests.log"
timeout 400 python3 benchmarks/throughput.py --prng-sweep --out "$OUT" --tag throughput-gpu 2>&1 | tail -n 40

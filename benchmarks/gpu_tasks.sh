#!/usr/bin/env bash
# Issue-sized GPU check, under 10 minutes on one H100/H200-class card (device tool: run it as
# `bash benchmarks/gpu_tasks.sh` with the MNIST file at $MNIST and wheels in .whl/):
#   1. install from the wheels carried in .whl/ (no network there), if any;
#   2. sampler rate against the card's measured matmul at (4096, 1024, 256) and larger, with
#      compile times (throughput.py's GPU targets);
#   3. MNIST time to a log-likelihood, aerbm_jax only (tasks.py --only mnist);
#   4. the largest RBM that trains on the card, measured (`largest_rbm.py`, a real epoch);
#   5. both default experiments and the MNIST 500-hidden row, timed end to end.
# Every section has its own timeout and writes JSON/logs to $OUT as it goes, so a timeout
# keeps what finished.
set -uo pipefail
export PYTHONPATH="$PWD/benchmarks:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
MNIST="${MNIST:-shared/data/mnist.npz}"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install --quiet --no-index --find-links .whl -e . 2>&1 | tail -n 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"

section() {  # section NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local start; start=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? in $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
  tail -n 25 "$OUT/$name.log"
}

section throughput 150 python3 benchmarks/throughput.py --peers none --out "$OUT" --tag throughput-gpu
section mnist 120 python3 benchmarks/tasks.py --only mnist --mnist "$MNIST" --epochs 10 \
  --out "$OUT" --tag tasks-gpu
section largest 60 python3 benchmarks/largest_rbm.py --out "$OUT/largest_rbm.json"
for name in faces mondrian; do
  section "experiment-$name" 90 python3 -m aerbm_jax.cli --quiet experiment "$name" \
    --out "/tmp/runs/$name"
  cp "/tmp/runs/$name/metrics.json" "$OUT/experiment-$name-metrics.json" 2>/dev/null
done
section mnist-table 120 python3 -m aerbm_jax.cli --quiet experiment mnist --data "$MNIST" \
  --no-stochastic --out /tmp/runs/mnist
cp /tmp/runs/mnist/mnist.json "$OUT/mnist-table.json" 2>/dev/null

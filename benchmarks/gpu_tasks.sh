#!/usr/bin/env bash
# Issue-sized GPU check, under 10 minutes on one H100/H200-class card:
#   1. install from the wheels carried in .whl/ (no network there), if any;
#   2. sampler rate against the card's measured matmul at (4096, 1024, 256) and larger, with
#      compile times (throughput.py's GPU targets);
#   3. MNIST time to a log-likelihood, aerbm_jax and the installed peers (tasks.py --only mnist);
#   4. the largest RBM that trains on the card, measured (`largest_rbm.py`, a real epoch);
#   5. both default experiments and the MNIST 500-hidden table, timed end to end.
# Every section has its own timeout (525 s in all) and writes its JSON and log to $WORK; after
# each one $WORK is packed into $OUT/gpu_results.tgz (the device tool brings back at most 8
# files from $OUT), so a timeout keeps what finished.
#
# The device machine gets the checkout alone, not the shared folder beside it: `make gpu-kit`
# copies MNIST into .gpu/ (ignored by git), and the device tool's call carries it:
#   run(command="bash benchmarks/gpu_tasks.sh", carry=[".gpu"], timeout_s=600)
# MNIST is read from $MNIST, else .gpu/mnist.npz, else shared/data/ or ../shared/data/.
# `QUICK=1 bash benchmarks/gpu_tasks.sh` runs every section at tiny sizes on any machine (a
# dry run of the plumbing, a few minutes on a 2-core CPU).
set -uo pipefail
export PYTHONPATH="$PWD/benchmarks:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu_out}"; WORK="${WORK:-/tmp/gpu_work}"; RUNS="${RUNS:-/tmp/runs}"
mkdir -p "$OUT" "$WORK"
if [ -z "${MNIST:-}" ]; then
  for f in .gpu/mnist.npz shared/data/mnist.npz ../shared/data/mnist.npz; do
    if [ -f "$f" ]; then MNIST=$f; break; fi
  done
fi
quick=(); [ "${QUICK:-0}" = 1 ] && quick=(--quick)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install --quiet --no-index --find-links .whl -e . 2>&1 | tail -n 3
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null \
    || echo "no nvidia-smi"; } | tee "$WORK/gpu.txt"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$WORK/gpu.txt"
echo "MNIST: ${MNIST:-not found}" | tee -a "$WORK/gpu.txt"

section() {  # section NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local start; start=$(date +%s)
  timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
  echo "$name: exit $? in $(( $(date +%s) - start )) s" | tee -a "$WORK/gpu.txt"
  tail -n 25 "$WORK/$name.log"
  pack
}
pack() { cp "$WORK/gpu.txt" "$OUT/"; tar -czf "$OUT/gpu_results.tgz" -C "$WORK" .; }

section throughput 120 python3 benchmarks/throughput.py --peers none "${quick[@]}" \
  --out "$WORK" --tag throughput-gpu
if [ -n "${MNIST:-}" ]; then
  section mnist 120 python3 benchmarks/tasks.py --only mnist --mnist "$MNIST" --epochs 10 --budget-s 40 \
    "${quick[@]}" --out "$WORK" --tag tasks-gpu
fi
largest=(); [ "${QUICK:-0}" = 1 ] && largest=(--max-units 512 --batch 16)
section largest 60 python3 benchmarks/largest_rbm.py "${largest[@]}" --out "$WORK/largest_rbm.json"
for name in faces mondrian; do
  section "experiment-$name" $([ "$name" = faces ] && echo 60 || echo 75) \
    python3 -m aerbm_jax.cli --quiet --compile-cache none experiment "$name" "${quick[@]}" \
    --out "$RUNS/$name"
  cp "$RUNS/$name/metrics.json" "$WORK/experiment-$name-metrics.json" 2>/dev/null
done
if [ -n "${MNIST:-}" ]; then
  section mnist-table 90 python3 -m aerbm_jax.cli --quiet --compile-cache none experiment mnist \
    --data "$MNIST" --no-stochastic "${quick[@]}" --out "$RUNS/mnist"
  cp "$RUNS/mnist/mnist.json" "$WORK/mnist-table.json" 2>/dev/null
fi
pack

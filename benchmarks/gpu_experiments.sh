#!/usr/bin/env bash
# The default faces and mondrian experiments on a lent GPU; metrics JSON copied to $OUT.
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/gpu_out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/gpu.txt"
for name in faces mondrian; do
  start=$(date +%s)
  python3 -m aerbm_jax.cli experiment "$name" --out "/tmp/runs/$name" 2>&1 | grep -v "it/s\|s/it\|sweep" | tail -n 4
  echo "$name wall $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
  cp "/tmp/runs/$name/metrics.json" "$OUT/$name-metrics.json"
  cp "/tmp/runs/$name/ae_rbm_samples.png" "$OUT/$name-ae_rbm_samples.png"
done

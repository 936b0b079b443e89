#!/usr/bin/env bash
# DFM against the fastest AR decoder of the same 7B-shaped backbone on one GPU, in one go:
#
#   bash scripts/gpu_speed.sh [OUT_DIR]        (default bench/results/7b-speed)
#
# bf16, then nf4 (bitsandbytes 4-bit): DFM with CUDA graphs at blocks 16 and 32, 4 and 8 steps
# per block, against HF `generate` eager and with a compiled static cache, each model alone on
# the device (so each peak is its own). Each run's JSON is rewritten after every measurement,
# so a run cut short keeps what it measured. SIZE=tiny runs the same at a tiny size (on a CPU
# in seconds: the check before spending GPU time). NAME names the device in the files
# (default: h200).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 BENCH_TMP=${BENCH_TMP:-/tmp}
OUT=${1:-bench/results/7b-speed}
SIZE=${SIZE:-7b}
NAME=${NAME:-h200}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
for q in none 4bit; do
  tag=$([ "$q" = none ] && echo bf16 || echo nf4)
  echo "== $SIZE $tag"
  "$PY" -m bench.scale --size "$SIZE" --quantization "$q" --compile --blocks 16,32 \
      --steps 4,8 --graphs on --json "$OUT/scale-$NAME-$tag-whole-steps.json" \
      || echo "failed: $tag (what it measured is in the JSON)"
done

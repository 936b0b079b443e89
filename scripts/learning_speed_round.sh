#!/usr/bin/env bash
# Two learning-speed runs side by side, one thread each (docs/recipe.md lists every round):
#   bash scripts/learning_speed_round.sh NAME_A "FLAGS_A" NAME_B "FLAGS_B" [CPU_MINUTES]
# Each run trains from scratch on the example bank (runs/bank) for CPU_MINUTES (default 20)
# and appends its row to bench/results/learning-speed/runs.jsonl. COMMON="FLAGS" replaces the
# flags both runs share (the defaults below), for a round that questions one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
PY=${PYTHON:-.venv/bin/python}
MIN=${5:-20}
read -ra COMMON <<< "${COMMON:---stages sft --mix caption=1,vqa=2,t2i=2 --all-blocks --per-example-loss --batch-tokens 4096 --warmup 50}"
TASKS=${TASKS:-caption,vqa,vqa:heldout,caption:heldout,t2i}
run() {
  local name=$1; shift
  # shellcheck disable=SC2086
  "$PY" -m bench.learning_speed --variant "$name" --minutes "$MIN" --threads 1 --n 100 \
    --tasks "$TASKS" --bank runs/bank -- "${COMMON[@]}" $1 > "runs/learning-speed-$name.log" 2>&1
}
mkdir -p runs
run "$1" "$2" & a=$!
run "$3" "$4" & b=$!
wait $a; wait $b

#!/usr/bin/env bash
# Score the pair trained by scripts/train_nano_recipe.sh against the shipped one:
#
#   bash scripts/eval_recipe.sh [RUNS_DIR]     (default runs/recipe)
#
# Every task at n = 200 (N) plus the held-out phrasings and speech at 20 dB SNR, for
# RUNS_DIR/nano and RUNS_DIR/nano-ar, and those three for the shipped checkpoints (their full
# numbers are the README's), into bench/results/recipe/ (a result already there is kept);
# then the table against the floors with the shipping rule's verdict (bench/eval_table.py
# --against), and DFM against AR per reply at the app's decoding (bench/dfm_vs_ar.py, n = 50,
# BENCH_N; its cache and length ablations are left out). Nothing is shipped:
# scripts/ship_nano.sh does that.
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
R=${1:-runs/recipe}
PY=${PYTHON:-.venv/bin/python}
N=${N:-200}
WORKERS=${WORKERS:-$(nproc)}
OUT=${OUT:-bench/results/recipe}
SHIPPED=bench/results/generation-weighted-sft  # the shipped pair's full eval (commit bef355a)
mkdir -p "$OUT"
EXTRA=caption:heldout,vqa:heldout,asr@20
ALL=$("$PY" -c "from nextomni.eval.omni import LAYOUT; print(','.join(LAYOUT))"),$EXTRA

score() {  # CHECKPOINT TASKS JSON
  if [ -f "$3" ]; then echo "kept: $3"; return; fi
  [ -f "$1/model.safetensors" ] || { echo "not trained: $1" >&2; exit 1; }
  echo "== $1 ($2) -> $3"
  "$PY" -m nextomni.eval --checkpoint "$1" --n "$N" --workers "$WORKERS" --tasks "$2" \
      --json "$3.part"
  mv "$3.part" "$3"
}
score checkpoints/nano "$EXTRA" "$OUT/eval-shipped-nano-heldout.json"
score checkpoints/nano-ar "$EXTRA" "$OUT/eval-shipped-nano-ar-heldout.json"
score "$R/nano" "$ALL" "$OUT/eval-recipe-nano.json"
score "$R/nano-ar" "$ALL" "$OUT/eval-recipe-nano-ar.json"
"$PY" -m bench.eval_table \
    "shipped nano=$SHIPPED/eval-nano-gen5.json+$OUT/eval-shipped-nano-heldout.json" \
    "shipped nano-ar=$SHIPPED/eval-nano-ar-gen5.json+$OUT/eval-shipped-nano-ar-heldout.json" \
    "recipe nano=$OUT/eval-recipe-nano.json" "recipe nano-ar=$OUT/eval-recipe-nano-ar.json" \
    --against "shipped nano" --json "$OUT/eval-table.json"
[ -f "$OUT/dfm-vs-ar.json" ] || "$PY" -m bench.dfm_vs_ar --dfm "$R/nano" --ar "$R/nano-ar" \
    --n "${BENCH_N:-50}" --variants dfm-cache-dynamic,ar --json "$OUT/dfm-vs-ar.json"

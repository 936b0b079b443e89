#!/usr/bin/env bash
# The nano recipe chosen by the learning-speed harness (docs/recipe.md), from scratch:
#
#   bash scripts/train_nano_recipe.sh [RUNS_DIR]          (default runs/recipe)
#
# 0. The tokenizers: IMAGE_CODES=global (the default; local codes lost round 2 of
#    docs/recipe.md) keeps the shipped ones; IMAGE_CODES=local first trains an image tokenizer
#    whose codes depend on their own patch only, from scratch into RUNS_DIR/tokenizers
#    (IMAGE_STEPS, default 9000; resumable), beside the shipped text and audio tokenizers.
#    TOKENIZERS=DIR uses the tokenizers in DIR instead.
# 1. The example bank, RUNS_DIR/bank: BANK_EXAMPLES task examples (default 60000) made once by
#    WORKERS processes (default: one per core), resumable. The bank holds plain media, so one
#    bank serves any tokenizers.
# 2. DFM (RUNS_DIR/nano) and its AR twin (RUNS_DIR/nano-ar): the same bank, steps, seed and
#    tokenizers, trained from scratch side by side.
#
# On a CPU each run takes one thread; PIECE_MINUTES (e.g. 150) stops both with their state
# saved after that long, and rerunning the command continues them, so the recipe goes in
# pieces across machines. With a GPU (GPU=1; the default when nvidia-smi answers) the bank is
# made by every core, batches are larger, steps autocast to bf16, and both runs share the GPU
# for GPU_MINUTES each (default 6), so the whole recipe takes about ten minutes.
# A step whose output holds model.safetensors is skipped. Nothing is shipped: compare
#   python -m nextomni.eval --checkpoint RUNS_DIR/nano --json ...
# with the shipped numbers, and ship a better model with scripts/ship_nano.sh. DRY_RUN=1
# prints the commands.
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
R=${1:-runs/recipe}
PY=${PYTHON:-.venv/bin/python}
IMAGE_CODES=${IMAGE_CODES:-global}
case "$IMAGE_CODES" in local|global) ;; *) echo "IMAGE_CODES is local or global" >&2; exit 2;; esac
if [ -z "${GPU:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then GPU=1; else GPU=0; fi
fi
WORKERS=${WORKERS:-$(nproc)}

# the recipe (docs/recipe.md): every stage's mixture, every reply block a target, each
# example weighted the same, user speech through noise and rooms (--speech-augment default),
# peak learning rate 2e-3 (round 2)
RECIPE=(--hidden-size 256 --num-layers 6 --stages pt,cpt,sft --all-blocks --per-example-loss
        --lr 2e-3 --seed 0)
if [ "$GPU" = 1 ]; then
  SCHEDULE=(--pt-steps 300 --cpt-steps 500 --sft-steps 700 --minutes "${GPU_MINUTES:-6}"
            --batch 256 --batch-tokens 32768 --data-workers 6 --precision bf16 --warmup 100)
else
  # 3300 steps of 4096 positions: ~4 CPU hours a model at ~4.3 s a step on one thread, so
  # the pair takes ~8 CPU hours (about 4 hours on two cores, in pieces)
  SCHEDULE=(--pt-steps 600 --cpt-steps 900 --sft-steps 1800 --batch-tokens 4096
            --data-workers 0 --threads 1 --warmup 200 --save-every 100)
  [ -z "${PIECE_MINUTES:-}" ] || SCHEDULE+=(--max-minutes "$PIECE_MINUTES")
fi

show() { printf '%q ' "$@"; echo; }
run() { if [ -n "${DRY_RUN:-}" ]; then show "$@"; else "$@"; fi; }

if [ -n "${TOKENIZERS:-}" ]; then TOK=$TOKENIZERS
elif [ "$IMAGE_CODES" = global ]; then TOK=checkpoints/nano
else  # the shipped text BPE and audio codes, a new image tokenizer with local codes
  TOK=$R/tokenizers
  device=(); [ "$GPU" = 1 ] && device=(--device cuda)
  tok=("$PY" -m nextomni.train.tokenizers --out "$TOK" --work "$R/work-tokenizers" --only image
       --local-image-codes --image-steps "${IMAGE_STEPS:-9000}" ${device[@]+"${device[@]}"})
  if [ -n "${DRY_RUN:-}" ]; then show "${tok[@]}"
  elif [ ! -f "$TOK/image_tokenizer/model.safetensors" ]; then
    mkdir -p "$TOK"
    cp -r checkpoints/nano/tokenizer.json checkpoints/nano/audio_tokenizer "$TOK/"
    echo "== $TOK/image_tokenizer (log: $R/tokenizers.log)"
    "${tok[@]}" >> "$R/tokenizers.log" 2>&1
  fi
fi

bank=("$PY" -m nextomni.data.bank --out "$R/bank" --examples "${BANK_EXAMPLES:-60000}"
      --workers "$WORKERS")
run "${bank[@]}"

train() {  # NAME EXTRA...: one run of the recipe into $R/NAME
  local name=$1; shift
  local cmd=("$PY" -m nextomni.train.omni --out "$R/$name" --work "$R/work-$name"
             --tokenizers "$TOK" --bank "$R/bank" "${RECIPE[@]}" "${SCHEDULE[@]}" "$@")
  if [ -n "${DRY_RUN:-}" ]; then show "${cmd[@]}"; return; fi
  if [ -f "$R/$name/model.safetensors" ]; then echo "done already: $R/$name"; return; fi
  echo "== $R/$name (log: $R/$name.log)"
  if [ "$GPU" = 1 ]; then "${cmd[@]}" >> "$R/$name.log" 2>&1
  else OMP_NUM_THREADS=1 "${cmd[@]}" >> "$R/$name.log" 2>&1; fi
}

pids=()
trap 'kill ${pids[@]+"${pids[@]}"} 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
if [ -n "${DRY_RUN:-}" ]; then train nano; train nano-ar --causal; exit 0; fi
train nano & pids+=($!)
train nano-ar --causal & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || { echo "failed (see $R/*.log)" >&2; exit 1; }; done
pids=()
for d in nano nano-ar; do
  [ -f "$R/$d/model.safetensors" ] || echo "paused: $R/$d (rerun to continue)"
done

#!/usr/bin/env bash
# Reproduce checkpoints/nano (DFM) and checkpoints/nano-ar (its AR baseline) from nothing:
#
#   bash scripts/retrain_nano.sh [RUNS_DIR]        (default runs/retrain)
#
# The whole recipe of README "Retrain the nano model" as one command: the tokenizers, the
# three-stage run, the SFT continuation, then the generation-weighted pieces, each piece
# warm-started (--init-from) from the one before with its own data seed. Every step writes
# under RUNS_DIR and is skipped once its output holds model.safetensors, and an interrupted
# step resumes from its state under RUNS_DIR/work-*, so rerunning the command continues.
# Only the last step copies the results into checkpoints/.
#
# DFM and AR steps run side by side with one thread each (two runs with a thread per core
# each spin against each other's OpenMP pools). DATA_WORKERS (default 7 with a GPU, else 1)
# sets the processes that make the batches of the three-stage run. DRY_RUN=1 prints the
# commands instead of running them (tests/test_retrain_script.py checks them against the
# training CLI). The shipped weights came from this recipe across machines (the three-stage
# run on one H100, the rest on 2 CPU cores); the tokenizers read by that run had themselves
# trained on before, so a rerun lands near, not bit-exactly on, the shipped numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
R=${1:-runs/retrain}
PY=${PYTHON:-.venv/bin/python}
if [ -z "${DATA_WORKERS:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1; then DATA_WORKERS=7; else DATA_WORKERS=1; fi
fi

# the training runs started in the background stop with the script (Ctrl-C, a failure)
pids=()
trap 'kill ${pids[@]+"${pids[@]}"} 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

show() { printf '%q ' "$@"; echo; }
# a folder is finished once it holds model.safetensors: save_pretrained writes it last
done_in() { [ -f "$1/model.safetensors" ]; }
# run OUT CMD...: the step unless OUT already holds its weights
run() {
  local out=$1; shift
  if [ -n "${DRY_RUN:-}" ]; then show "$@"; return; fi
  if done_in "$out"; then echo "done already: $out"; return; fi
  echo "== $out"; "$@"
}

tok=("$PY" -m nextomni.train.tokenizers --out "$R/base" --work "$R/work-tokenizers")
if [ -n "${DRY_RUN:-}" ]; then show "${tok[@]}"
elif [ ! -f "$R/base/tokenizer.json" ] || [ ! -d "$R/base/image_tokenizer" ] \
    || [ ! -d "$R/base/audio_tokenizer" ]; then "${tok[@]}"; fi

# three stages: PT alignment -> CPT -> SFT (hidden 256, 6 layers, block 16, lr 1e-3, seed 0)
stages=(--pt-steps 780 --cpt-steps 975 --sft-steps 2145 --per-example-loss
        --data-workers "$DATA_WORKERS")
run "$R/base" "$PY" -m nextomni.train.omni --out "$R/base" --work "$R/work-base" \
    "${stages[@]}" --all-blocks --batch-tokens 4096
run "$R/base-ar" "$PY" -m nextomni.train.omni --causal --out "$R/base-ar" \
    --tokenizers "$R/base" --work "$R/work-base-ar" "${stages[@]}"

# side by side: step NAME PREV_DFM PREV_AR P ARGS... (DFM into $R/NAME with
# --code-time-power P, AR into $R/NAME-ar); the AR runs read the DFM line's first
# tokenizers: the omni runs train only the decoders, so every DFM folder gives the same codes
step() {
  local name=$1 prev=$2 prev_ar=$3 power=$4; shift 4
  local dfm=("$PY" -m nextomni.train.omni --init-from "$prev" --out "$R/$name"
             --work "$R/work-$name" --all-blocks --batch-tokens 4096
             --code-time-power "$power" "$@")
  local ar=("$PY" -m nextomni.train.omni --causal --init-from "$prev_ar" --tokenizers "$R/base"
            --out "$R/$name-ar" --work "$R/work-$name-ar" "$@")
  if [ -n "${DRY_RUN:-}" ]; then show "${dfm[@]}"; show "${ar[@]}"; return; fi
  pids=()
  if done_in "$R/$name"; then echo "done already: $R/$name"; else
    echo "== $R/$name"; OMP_NUM_THREADS=1 "${dfm[@]}" >> "$R/$name.log" 2>&1 & pids+=($!)
  fi
  if done_in "$R/$name-ar"; then echo "done already: $R/$name-ar"; else
    echo "== $R/$name-ar"; OMP_NUM_THREADS=1 "${ar[@]}" >> "$R/$name-ar.log" 2>&1 & pids+=($!)
  fi
  for p in ${pids[@]+"${pids[@]}"}; do
    wait "$p" || { echo "failed: $name (see $R/$name*.log)" >&2; exit 1; }
  done
  pids=()
}

sft=(--stages sft --lr 3e-4 --warmup 50 --per-example-loss --threads 1)
MIX=caption=1,vqa=1.5,asr=1,video=1,spoken_vqa=0.5,t2i=6,edit=3,a2i=1.5,tts=2.5,i2s=1
MIX35=${MIX/tts=2.5/tts=3.5}
[ -n "${DRY_RUN:-}" ] || mkdir -p "$R"
step cont "$R/base" "$R/base-ar" 1 "${sft[@]}" --sft-steps 1600 --seed 1
step gen1 "$R/cont" "$R/cont-ar" 3 "${sft[@]}" --sft-steps 1000 --seed 5 --mix "$MIX"
step gen2 "$R/gen1" "$R/gen1-ar" 3 "${sft[@]}" --sft-steps 1500 --seed 6 --mix "$MIX"
step gen3 "$R/gen2" "$R/gen2-ar" 3 "${sft[@]}" --sft-steps 2000 --seed 7 --mix "$MIX35"
step gen4 "$R/gen3" "$R/gen3-ar" 3 "${sft[@]}" --sft-steps 1000 --seed 8 --mix "$MIX35"
step gen5 "$R/gen4" "$R/gen4-ar" 3 "${sft[@]}" --sft-steps 2500 --seed 9 --mix "$MIX35"
LAST=gen5

if [ -n "${DRY_RUN:-}" ]; then show ship "$R/$LAST" "$R/$LAST-ar"; exit 0; fi
bash "$(dirname "$0")/ship_nano.sh" "$R/$LAST" "$R/$LAST-ar"

#!/usr/bin/env bash
# Ship a trained pair as the app's models:  bash scripts/ship_nano.sh DFM_DIR AR_DIR
# Ship only a better model than the one in checkpoints/ (compare their eval JSON first): every
# shipped checkpoint stays in the repository's history for good.
set -euo pipefail
cd "$(dirname "$0")/.."
DFM=$1 AR=$2
done_in() { [ -f "$1/model.safetensors" ]; }
# ship: copies next to checkpoints/ first, then swapped in, so that a failure on the way
# leaves the shipped checkpoints as they were; the baseline links its tokenizers to ../nano
for d in "$DFM" "$AR"; do
  done_in "$d" || { echo "not trained: $d" >&2; exit 1; }
done
rm -rf checkpoints/.nano.new checkpoints/.nano-ar.new checkpoints/.nano.old checkpoints/.nano-ar.old
# -L: a run links the tokenizers it was trained with; the shipped folder holds them
cp -rL "$DFM" checkpoints/.nano.new
mkdir checkpoints/.nano-ar.new
cp -r "$AR/config.json" "$AR/model.safetensors" "$AR/backbone" \
    checkpoints/.nano-ar.new/
for t in tokenizer.json image_tokenizer audio_tokenizer; do
  ln -s "../nano/$t" "checkpoints/.nano-ar.new/$t"
done
[ ! -e checkpoints/nano ] || mv checkpoints/nano checkpoints/.nano.old
[ ! -e checkpoints/nano-ar ] || mv checkpoints/nano-ar checkpoints/.nano-ar.old
mv checkpoints/.nano.new checkpoints/nano
mv checkpoints/.nano-ar.new checkpoints/nano-ar
rm -rf checkpoints/.nano.old checkpoints/.nano-ar.old
du -shL checkpoints/nano checkpoints/nano-ar

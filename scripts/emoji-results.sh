#!/usr/bin/env bash
# Reproduce the numbers and figures of docs/results.md on the emoji family's 100 held-out test emoji.
# Needs the six emoji models, the family's encoder and translator and the FT ablation models
# (scripts/build-emoji-zoo.sh --ablation).
#   scripts/emoji-results.sh [OUT]        METRIC=ssim (default; lpips-alex where its weights are) STEPS=500 SAMPLES=2000
set -euo pipefail
out=${1:-results}
metric=${METRIC:-ssim}
steps=${STEPS:-500}
samples=${SAMPLES:-2000}
styles=emoji-twemoji,emoji-openmoji,emoji-fluent-flat,emoji-fluent-color,emoji-fluent-3d
mkdir -p "$out"

# Table I: the model distance to the base of FT, FC-FT and FC-FT-LS at every swap level the models' resolution has
# (l = 1, 2 at 32 px; 1, 2, 3 at 64 px); and the whole family's matrix
for style in twemoji fluent-3d; do
  zoo distance-matrix --variants "emoji-$style" --ft "emoji-$style-ft" --metric "$metric" --samples "$samples" \
    --out "$out/table1-$style" --force
done
zoo distance-matrix --family emoji --metric "$metric" --samples "$samples" --out "$out/family" --force

# Table II: noto -> every style by the paper's bounded inversion, without and with layer swap (every level of the models'
# resolution), on one inversion of the held-out noto emoji
zoo eval --from emoji-noto --to "$styles" --inputs test-split --method bounded --swap all --metric "$metric" \
  --steps "$steps" --json "$out/table2.json" --force
# and by the family's default, its distilled translator (at the recipe's swap level; needs emoji-noto-translator)
zoo eval --from emoji-noto --to "$styles" --inputs test-split --method distilled --metric "$metric" --no-fid \
  --json "$out/table2-distilled.json" --force

# Table III: reconstruction of the held-out noto emoji, bounded inversion against plain projection, equal steps, in the
# default precision (bfloat16 where the CPU has it natively) and in float32
for method in bounded projection; do
  for precision in auto float32; do
    zoo eval --from emoji-noto --to emoji-twemoji --inputs test-split --method "$method" --steps "$steps" --styles 0 \
      --metric "$metric" --no-fid --precision "$precision" --json "$out/table3-$method-$precision.json" --force
  done
done

python "$(dirname "$0")/emoji_figures.py" --out "$out" --steps "$steps"
python "$(dirname "$0")/emoji_figures.py" --out "$out" --distilled
python "$(dirname "$0")/emoji_tables.py" "$out" > "$out/tables.md"
echo "wrote $out/tables.md and the figures in $out/"

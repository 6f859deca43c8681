#!/usr/bin/env bash
# Rebuild the embedded emoji zoo from the bundled data (plugins/zoo_plugins/emoji/data), exactly as shipped:
#   1. emoji-noto, the family's base, trained from scratch on every noto image;
#   2. emoji-noto-encoder, the family's image -> latent encoder, trained on the base's own samples;
#   3. every other style fine-tuned from the base with the mapping network frozen (FreezeFC), on its training split
#      only (the held-out test emoji are never trained on; see docs/results.md);
#   4. emoji-noto-translator, the family's distilled translator into every style (the emoji recipe's method);
#   5. with --ablation, the paper's FT variant (mapping trained too) of two styles, for docs/results.md's Table I.
# Every step resumes from its last snapshot and skips what is already installed, so the script can be stopped at any
# moment and run again. Times at 64 px on 2 CPU cores: the base 15,000 steps at ~1.55 s, about 6.5 hours; each style
# 2,000 steps at 1.07x a base step (measured side by side), about 55 minutes; the encoder 1,000 steps at ~0.8 s, about
# 15 minutes; the translator 2,000 steps at ~1.8 s, about an hour (these two measured on one thread beside another
# training: upper bounds). The whole family with --ablation: about 14 hours.
set -euo pipefail

installed() { zoo list "$1" --installed --json | grep -q "\"domain\": \"$1\""; }

installed emoji-noto || zoo train-base emoji-noto --snapshot-every 500 --sample-every 500 --resume
installed emoji-noto-encoder || zoo train-encoder emoji-noto --iters 1000 --batch 16 --snapshot-every 100 --resume
for style in twemoji openmoji fluent-flat fluent-color fluent-3d; do
  installed "emoji-$style" || zoo add-domain "emoji-$style" --no-discriminator --snapshot-every 500 --sample-every 500 --resume
done
# after every style: the translator learns the family's installed members, each of them its target
installed emoji-noto-translator || zoo train-translator emoji-noto --iters 2000 --resume
if [ "${1:-}" = "--ablation" ]; then
  for style in twemoji fluent-3d; do
    installed "emoji-$style-ft" ||
      zoo add-domain "emoji-$style" --as "emoji-$style-ft" --no-freeze-fc --no-discriminator --snapshot-every 500 --sample-every 500 --resume
  done
fi

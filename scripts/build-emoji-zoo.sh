#!/usr/bin/env bash
# Rebuild the embedded emoji zoo from the bundled data (plugins/zoo_plugins/emoji/data), exactly as shipped:
#   1. emoji-noto, the family's base, trained from scratch on every noto image;
#   2. every other style fine-tuned from it with the mapping network frozen (FreezeFC), on its training split only
#      (the held-out test emoji are never trained on; see docs/results.md);
#   3. with --ablation, the paper's FT variant (mapping trained too) of two styles, for docs/results.md's Table I.
# Every step resumes from its last snapshot and skips models that are already installed, so the script can be
# stopped at any moment and run again. On 2 CPU cores the base takes about 3 hours and each style about 25 minutes.
set -euo pipefail

installed() { zoo list "$1" --installed --json | grep -q "\"domain\": \"$1\""; }

installed emoji-noto || zoo train-base emoji-noto --snapshot-every 500 --sample-every 500 --resume
for style in twemoji openmoji fluent-flat fluent-color fluent-3d; do
  installed "emoji-$style" || zoo add-domain "emoji-$style" --no-discriminator --snapshot-every 500 --sample-every 500 --resume
done
if [ "${1:-}" = "--ablation" ]; then
  for style in twemoji fluent-3d; do
    installed "emoji-$style-ft" ||
      zoo add-domain "emoji-$style" --as "emoji-$style-ft" --no-freeze-fc --no-discriminator --snapshot-every 500 --sample-every 500 --resume
  done
fi

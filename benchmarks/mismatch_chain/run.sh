#!/usr/bin/env bash
# The recorded run of the default (device-chain) protocol: 3 data seeds, 2 training seeds each, 6 unseen and
# 2 seen devices drawn at random, every other IR for augmentation. Then summarize.py writes README.md's table.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECIPES=baseline,ideal,sc,pcen,dir-aug,synth-fr-aug,freq-mixstyle,umc,umc+sc,umc+dir-aug
for s in 1 2 3; do
  micmatch bench mismatch --data ../shared/data/fsdd --irs ../shared/data/micirp/ir --aug-from-rest \
    --recipes "$RECIPES" --seeds 2 --data-seed "$s" -o "benchmarks/mismatch_chain/data-seed-$s"
done
python benchmarks/mismatch_chain/summarize.py

#!/usr/bin/env bash
# The recorded run of the default (device-chain) protocol: data seeds 1-3 (each its own random draw of 6 unseen
# and 2 seen devices, every other IR for augmentation), 2 training seeds each; data seed 1 also ran sc and pcen.
# Then the converter recipe again on data seed 1 with the cpu-short converter, and the pooled table.
set -euo pipefail
cd "$(dirname "$0")/../.."
COMMON=(--data ../shared/data/fsdd --irs ../shared/data/micirp/ir --aug-from-rest --seeds 2)
RECIPES=baseline,ideal,dir-aug,synth-fr-aug,freq-mixstyle,umc,umc+sc,umc+dir-aug
micmatch bench mismatch "${COMMON[@]}" --recipes "baseline,ideal,sc,pcen,${RECIPES#baseline,ideal,}" \
  --data-seed 1 -o benchmarks/mismatch_chain/data-seed-1
for s in 2 3; do
  micmatch bench mismatch "${COMMON[@]}" --recipes "$RECIPES" --data-seed "$s" -o "benchmarks/mismatch_chain/data-seed-$s"
done
micmatch bench mismatch "${COMMON[@]}" --recipes umc --umc-preset cpu-short --umc-epochs 30 --data-seed 1 \
  -o benchmarks/mismatch_chain/umc-cpu-short/data-seed-1
python benchmarks/mismatch_chain/plot_umc.py benchmarks/mismatch_chain/data-seed-2
python benchmarks/mismatch_chain/plot_umc.py benchmarks/mismatch_chain/umc-cpu-short/data-seed-1
python benchmarks/mismatch_chain/summarize.py --variant cpu-short=benchmarks/mismatch_chain/umc-cpu-short

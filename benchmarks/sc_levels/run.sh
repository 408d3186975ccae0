#!/usr/bin/env bash
# sc against the baseline with the level matched (default) and kept (--sc-level keep), both tracks, data seeds 1-3,
# 2 training seeds, at the adapt track's settings (../mismatch_adapt/run.sh), into {generalize,adapt}/data-seed-N/
# here; then summary.md. About 3 minutes a recipe and data seed on a 2-core CPU (50 minutes in all).
#   DATA=/path/to/data benchmarks/sc_levels/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=benchmarks/sc_levels
for s in 1 2 3; do
  for track in generalize adapt; do
    out="$HERE/$track/data-seed-$s"
    TRACK=$track SEED=$s benchmarks/mismatch_adapt/run.sh --recipes baseline -o "$out/baseline"
    TRACK=$track SEED=$s benchmarks/mismatch_adapt/run.sh --recipes sc -o "$out/sc-match"
    TRACK=$track SEED=$s benchmarks/mismatch_adapt/run.sh --recipes sc --sc-level keep -o "$out/sc-keep"
  done
done
python "$HERE/summarize.py"

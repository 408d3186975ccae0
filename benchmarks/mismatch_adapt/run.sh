#!/usr/bin/env bash
# One adapt-track run of the device-mismatch benchmark sized for a 2-core CPU (about 45 minutes at most): one data
# seed, the known-device recipes, 2 training seeds. Repeat with SEED=2 and SEED=3 for the recorded 3 x 2 table.
#   DATA=/path/to/data SEED=1 benchmarks/mismatch_adapt/run.sh
# DATA holds fsdd/ and micirp/ (see its README); MICMATCH is the command (default: micmatch).
# TRACK=generalize runs the generalize track at the same settings instead (baseline, ideal, synth-fr-aug and the
# converter in the same form), into benchmarks/mismatch_generalize/ (its run.sh does that).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
SEED=${SEED:-1}
MICMATCH=${MICMATCH:-micmatch}
if [ "${TRACK:-adapt}" = generalize ]; then
  TRACK_ARGS=(--track generalize --recipes baseline,ideal,synth-fr-aug,umc)
  OUT="benchmarks/mismatch_generalize/data-seed-$SEED"
else
  TRACK_ARGS=(--track adapt --adapt-clips 200 --recipes baseline,ideal,sc,device-std,known-aug,umc,umc-synth)
  OUT="benchmarks/mismatch_adapt/data-seed-$SEED"
fi
# shellcheck disable=SC2086
nice -n "${NICE:-10}" $MICMATCH bench mismatch --data "$DATA/fsdd" --irs "$DATA/micirp/ir" --aug-from-rest \
  "${TRACK_ARGS[@]}" --seeds 2 --data-seed "$SEED" \
  --n-fft 256 --hop-length 128 --n-mels 40 \
  --umc-preset cpu-short --umc-epochs 6 --umc-form stochastic --umc-discriminator conditional \
  --compute cpu -o "$OUT" "$@"

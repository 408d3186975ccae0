#!/usr/bin/env bash
# The generalize track (devices never heard) with the converter in the form the adapt track uses, beside
# synth-fr-aug, at the adapt track's CPU budget settings; one data seed per call, into data-seed-N/ here:
#   DATA=/path/to/data SEED=1 benchmarks/mismatch_generalize/run.sh
TRACK=generalize exec "$(dirname "$0")/../mismatch_adapt/run.sh" "$@"

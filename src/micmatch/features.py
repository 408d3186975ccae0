"""The feature namespace: the log-mel front end, the normalizations and the fitted feature statistics, in one place.

The work lives in three modules, one job each: :mod:`micmatch.logmel` (mel scale, librosa-compatible filterbank,
log-mel spectrogram and :class:`LogMelConfig`), :mod:`micmatch.normalizations` (pure functions on spectrogram
batches: spectrum correction as a band dB vector, mean subtraction, CMS, median-filter residual, PCEN, RASTA) and
:mod:`micmatch.feature_stats` (per-device and global standardization fitted on a set of recordings, and their
JSON files). ``from micmatch.features import X`` reaches every public name of the three. The
:mod:`micmatch.registry` lists each method under one name with its torch twin.
"""

from __future__ import annotations

from micmatch.errors import FeatureError
from micmatch.feature_stats import (
    FORMAT, FORMAT_VERSION, MIN_STD_DB, BandStats, GlobalNormalizer, PerDeviceStandardizer, load_feature_stats,
)
from micmatch.logmel import (
    DEFAULT_AMIN, LogMelConfig, hz_to_mel, log_mel, mel_filterbank, mel_frequencies, mel_spectrogram, mel_to_hz,
    power_to_db,
)
from micmatch.normalizations import (
    PCEN_PRESETS, RASTA_NUMERATOR, apply_band_db, as_features, cepstral_mean_subtraction, check_pcen_options,
    check_rasta_pole, correction_band_db, curve_band_db, dct_matrix, median_filter_residual, median_size, pcen,
    pcen_smoothing_coefficient, rasta, spectrogram_mean_subtraction,
)

# Old names of the band dB functions and of the statistics reader, kept for one release (they go in the next one).
band_gain_db = curve_band_db
correction_offset_db = correction_band_db
apply_band_offset = apply_band_db
load_normalizer = load_feature_stats

__all__ = [
    "BandStats", "DEFAULT_AMIN", "FORMAT", "FORMAT_VERSION", "FeatureError", "GlobalNormalizer", "LogMelConfig",
    "MIN_STD_DB", "PCEN_PRESETS", "PerDeviceStandardizer", "RASTA_NUMERATOR", "apply_band_db", "apply_band_offset",
    "as_features", "band_gain_db", "cepstral_mean_subtraction", "check_pcen_options", "check_rasta_pole",
    "correction_band_db", "correction_offset_db", "curve_band_db", "dct_matrix", "hz_to_mel", "load_feature_stats",
    "load_normalizer", "log_mel", "median_filter_residual", "median_size", "mel_filterbank", "mel_frequencies",
    "mel_spectrogram", "mel_to_hz", "pcen", "pcen_smoothing_coefficient", "power_to_db", "rasta",
    "spectrogram_mean_subtraction",
]

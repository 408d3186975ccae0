"""How close converted recordings come to real ones: distance between distributions of per-band frame levels.

A device converter (or an augmentation that imitates a device) is judged here directly, not through a
classifier trained with it: the same clips, converted from the reference device and as the device really
recorded them, should show the same distribution of log-mel frame levels in every band: their noise floor
(low quantiles), their loud frames (high quantiles) and the spread between. :func:`band_quantiles` gives the
per-band quantiles of every frame of a set of clips, :func:`quantile_distance` the mean absolute difference of
two such sets in dB (0 for identical distributions; a constant offset of ``c`` dB in every band gives ``c``).
Numpy only.
"""

from __future__ import annotations

import numpy as np

from micmatch.errors import ParameterError

#: Quantiles compared per band: 5 % to 95 % in steps of 5 %.
QUANTILES = np.round(np.arange(0.05, 0.951, 0.05), 2)


def band_quantiles(features_db: np.ndarray, quantiles: np.ndarray = QUANTILES) -> np.ndarray:
    """Per-band quantiles ``(n_mels, n_quantiles)`` of every frame of log-mel features ``(n, n_mels, n_frames)``
    (or one ``(n_mels, n_frames)``), in dB."""
    x = np.asarray(features_db, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] * x.shape[2] == 0:
        raise ParameterError(f"features must be (n_clips, n_mels, n_frames) with at least one frame, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ParameterError("features hold NaN or infinite values")
    frames = x.transpose(1, 0, 2).reshape(x.shape[1], -1)
    return np.quantile(frames, np.asarray(quantiles, dtype=np.float64), axis=1).T


def quantile_distance(converted_db: np.ndarray, real_db: np.ndarray, quantiles: np.ndarray = QUANTILES) -> float:
    """Mean absolute difference (dB) between the per-band frame-level quantiles of two sets of log-mel features
    with the same number of bands (the clips and their number may differ)."""
    a, b = band_quantiles(converted_db, quantiles), band_quantiles(real_db, quantiles)
    if a.shape != b.shape:
        raise ParameterError(f"the two sets have {a.shape[0]} and {b.shape[0]} mel bands; compare like with like")
    return float(np.mean(np.abs(a - b)))


__all__ = ["QUANTILES", "band_quantiles", "quantile_distance"]

"""Metrics: log spectral distance, response error, and (below) classification metrics.

Floors: every power is floored at ``floor_db`` below the reference spectrogram's maximum (default 120 dB), so
digital silence in one signal cannot make the distance infinite.
"""

from __future__ import annotations

import numpy as np

from micmatch import spectral
from micmatch.audio import validate_audio
from micmatch.errors import ConfigMismatchError

DEFAULT_LSD_FLOOR_DB = 120.0


def lsd_from_power_db(reference_db: np.ndarray, estimate_db: np.ndarray, *, floor_db: float = DEFAULT_LSD_FLOOR_DB,
                      frame_weights: np.ndarray | None = None) -> float:
    """Log spectral distance (dB) between two log-power spectrograms ``(n_bins, n_frames)``.

    ``LSD = mean over frames of sqrt(mean over bins of (P_ref_dB - P_est_dB)^2)``, the definition used by seed 000.
    Both are floored at the reference's maximum minus ``floor_db``.
    """
    r = np.asarray(reference_db, dtype=np.float64)
    e = np.asarray(estimate_db, dtype=np.float64)
    if r.shape != e.shape:
        raise ConfigMismatchError(f"spectrogram shapes differ: {r.shape} vs {e.shape}")
    lo = r.max() - floor_db
    d = np.maximum(r, lo) - np.maximum(e, lo)
    per_frame = np.sqrt(np.mean(d * d, axis=-2))
    if frame_weights is None:
        return float(np.mean(per_frame))
    w = np.asarray(frame_weights, dtype=np.float64)
    return float(np.sum(per_frame * w) / np.sum(w))


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int | None = None, *,
                          n_fft: int = 2048, hop_length: int = 512, floor_db: float = DEFAULT_LSD_FLOOR_DB) -> float:
    """Log spectral distance (dB) between two time-aligned recordings of the same length (1-D).

    Hann frames of ``n_fft`` every ``hop_length`` samples; see :func:`lsd_from_power_db`.
    """
    r = validate_audio(reference, sample_rate, name="reference", min_samples=n_fft)
    e = validate_audio(estimate, sample_rate, name="estimate", min_samples=n_fft)
    if r.shape != e.shape or r.ndim != 1:
        raise ConfigMismatchError(f"reference and estimate must be 1-D of equal length; got {r.shape} and {e.shape}")
    pr = spectral.log_power_frames(r, n_fft=n_fft, hop_length=hop_length)
    pe = spectral.log_power_frames(e, n_fft=n_fft, hop_length=hop_length)
    return lsd_from_power_db(pr, pe, floor_db=floor_db)


def response_error_db(estimate_db: np.ndarray, truth_db: np.ndarray, freqs_hz: np.ndarray, *,
                      band: tuple[float, float] | None = None, remove_mean: bool = False) -> float:
    """RMS difference (dB) between two responses over a band of frequencies.

    Parameters
    ----------
    band : (low_hz, high_hz), optional
        Inclusive band; default all bins above 0 Hz.
    remove_mean : bool
        Compare shapes only (remove the mean difference over the band first).
    """
    e = np.asarray(estimate_db, dtype=np.float64)
    t = np.asarray(truth_db, dtype=np.float64)
    f = np.asarray(freqs_hz, dtype=np.float64)
    if not (e.shape == t.shape == f.shape):
        raise ConfigMismatchError(f"shapes differ: estimate {e.shape}, truth {t.shape}, freqs {f.shape}")
    lo, hi = band if band is not None else (np.nextafter(0.0, 1.0), np.inf)
    m = (f >= lo) & (f <= hi)
    if not m.any():
        raise ValueError(f"band {band} contains no frequency bin")
    d = e[m] - t[m]
    if remove_mean:
        d = d - d.mean()
    return float(np.sqrt(np.mean(d * d)))

"""Metrics: log spectral distance, response error, and (below) classification metrics.

Floors: every power is floored at ``floor_db`` below the reference spectrogram's maximum (default 120 dB), so
digital silence in one signal cannot make the distance infinite.
"""

from __future__ import annotations

import numpy as np

from micmatch import spectral
from micmatch.audio import validate_audio
from micmatch.errors import ConfigMismatchError, ParameterError

DEFAULT_LSD_FLOOR_DB = 120.0


def lsd_from_power_db(reference_db: np.ndarray, estimate_db: np.ndarray, *, floor_db: float = DEFAULT_LSD_FLOOR_DB,
                      bins: np.ndarray | None = None, frame_weights: np.ndarray | None = None) -> float:
    """Log spectral distance (dB) between two log-power spectrograms ``(n_bins, n_frames)``.

    ``LSD = mean over frames of sqrt(mean over bins of (P_ref_dB - P_est_dB)^2)``, the definition used by
    "A Frequency Response Normalization Method based on Deep Neural Networks for IoT Devices".
    Both are floored at the reference's maximum minus ``floor_db``. ``bins`` (a boolean mask or indices) restricts
    the bins compared.
    """
    r = np.asarray(reference_db, dtype=np.float64)
    e = np.asarray(estimate_db, dtype=np.float64)
    if r.shape != e.shape:
        raise ConfigMismatchError(f"spectrogram shapes differ: {r.shape} vs {e.shape}")
    if bins is not None:
        r, e = r[bins], e[bins]
    lo = r.max() - floor_db
    d = np.maximum(r, lo) - np.maximum(e, lo)
    per_frame = np.sqrt(np.mean(d * d, axis=-2))
    if frame_weights is None:
        return float(np.mean(per_frame))
    w = np.asarray(frame_weights, dtype=np.float64)
    return float(np.sum(per_frame * w) / np.sum(w))


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int | None = None, *,
                          n_fft: int = 2048, hop_length: int = 512, floor_db: float = DEFAULT_LSD_FLOOR_DB,
                          band_hz: tuple[float, float] | None = None, active_db: float | None = None) -> float:
    """Log spectral distance (dB) between two time-aligned recordings of the same length (1-D).

    Hann frames of ``n_fft`` every ``hop_length`` samples; see :func:`lsd_from_power_db`. The 0 Hz bin is always
    left out: it holds each recording's DC offset, not a device's response (on FSDD clips it alone adds about
    0.3 dB of noise-versus-noise difference to the LSD). ``band_hz=(low, high)`` restricts the comparison to a
    band and needs ``sample_rate``. ``active_db`` keeps only frames whose reference level is within that many dB
    of the reference's loudest frame (pauses hold only noise floors, which no correction can match).
    """
    r = validate_audio(reference, sample_rate, name="reference", min_samples=n_fft)
    e = validate_audio(estimate, sample_rate, name="estimate", min_samples=n_fft)
    if r.shape != e.shape or r.ndim != 1:
        raise ConfigMismatchError(f"reference and estimate must be 1-D of equal length; got {r.shape} and {e.shape}")
    pr = spectral.log_power_frames(r, n_fft=n_fft, hop_length=hop_length)
    pe = spectral.log_power_frames(e, n_fft=n_fft, hop_length=hop_length)
    keep = np.arange(n_fft // 2 + 1) > 0
    if band_hz is not None:
        if sample_rate is None:
            raise ParameterError("band_hz needs sample_rate")
        f = spectral.frequencies(sample_rate, n_fft)
        keep &= (f >= band_hz[0]) & (f <= band_hz[1])
    weights = None
    if active_db is not None:
        level = 10.0 * np.log10(np.maximum(np.mean(10.0 ** (pr / 10.0), axis=0), 1e-30))
        weights = (level >= level.max() - active_db).astype(np.float64)
    return lsd_from_power_db(pr, pe, floor_db=floor_db, bins=keep, frame_weights=weights)


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
        raise ParameterError(f"band {band} contains no frequency bin")
    d = e[m] - t[m]
    if remove_mean:
        d = d - d.mean()
    return float(np.sqrt(np.mean(d * d)))


# ----------------------------------------------------------------------------------------------------------------
# Classification metrics (device-mismatch benchmark)


def _labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ConfigMismatchError(f"y_true.shape={t.shape} and y_pred.shape={p.shape} must be equal and 1-D")
    if t.size == 0:
        raise ParameterError("y_true is empty; score at least one clip")
    return t, p


def macro_f1(y_true, y_pred, *, n_classes: int | None = None) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN) (as ``sklearn.metrics.f1_score(average="macro")``).

    Classes are ``0 .. n_classes - 1`` (default: every label present in either array). A class with no true and no
    predicted clip has ``2 TP + FP + FN = 0``; its F1 counts as 0, which is what sklearn does for such classes when
    they are listed explicitly.
    """
    t, p = _labels(y_true, y_pred)
    classes = np.arange(n_classes) if n_classes is not None else np.union1d(t, p)
    f1 = []
    for c in classes:
        tp = np.sum((t == c) & (p == c))
        denom = 2 * tp + np.sum((t != c) & (p == c)) + np.sum((t == c) & (p != c))
        f1.append(2.0 * tp / denom if denom > 0 else 0.0)
    return float(np.mean(f1))


def per_device_accuracy(y_true, y_pred, devices) -> dict[str, float]:
    """Accuracy of each device's clips: ``{device: fraction correct}``, devices sorted by name."""
    t, p = _labels(y_true, y_pred)
    d = np.asarray(devices)
    if d.shape != t.shape:
        raise ConfigMismatchError(f"devices.shape={d.shape} must equal y_true.shape={t.shape}")
    return {str(name): float(np.mean(t[d == name] == p[d == name])) for name in sorted(set(d.tolist()))}


def device_gap(accuracy: dict[str, float], reference: str) -> float:
    """Reference accuracy minus the mean accuracy of every other device (the device gap of the DCASE 2019
    task 1B report on device distortion in log-mel features)."""
    if reference not in accuracy:
        raise KeyError(f"reference {reference!r} is not among the devices {sorted(accuracy)}")
    others = [v for k, v in accuracy.items() if k != reference]
    if not others:
        raise ParameterError("device_gap needs at least one device besides the reference")
    return float(accuracy[reference] - np.mean(others))


def gap_closed(value: float, baseline: float, ideal: float) -> float | None:
    """Share of the baseline-to-ideal gap a remedy closes: ``(value - baseline) / (ideal - baseline)``.

    None when ``ideal - baseline`` is below 1e-9 (no gap to close, the ratio is undefined).
    """
    span = ideal - baseline
    if abs(span) < 1e-9:
        return None
    return float((value - baseline) / span)

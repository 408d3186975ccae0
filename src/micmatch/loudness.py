"""Loudness and peaks: ITU-R BS.1770 integrated loudness (pyloudnorm) and the overs policy of matched files.

Overs policy (``scale``, the default of ``micmatch match``): when a result in an integer format (16/24-bit PCM)
would exceed a true peak of -1 dBTP, the whole file is lowered by one gain. It keeps the file's format and adds no
distortion; the price is a loudness below the wanted level by exactly that reduction, which is reported.
A true-peak limiter would keep the loudness but change the sound (attack/release artefacts on transients);
benchmarks/bench_match.py measures how often and how much reduction the simulated pairs need.
"""

from __future__ import annotations

import math
import re

import numpy as np

from micmatch.errors import ParameterError

#: Ceiling of the true peak after the overs policy (dBTP), as EBU R128 recommends for distribution.
TRUE_PEAK_CEILING_DB = -1.0
#: BS.1770 gating needs at least one 400 ms block.
MIN_SECONDS = 0.4


def parse_loudness(value: str | float) -> str | float:
    """``"match"``, ``"keep"``, or a level in LUFS from ``-23``, ``"-23"``, ``"-23LUFS"`` or ``"-23 LUFS"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        level = float(value)
    else:
        text = str(value).strip()
        if text.lower() in ("match", "keep"):
            return text.lower()
        m = re.fullmatch(r"([-+]?\d+(?:\.\d+)?)\s*(?:lufs)?", text, flags=re.IGNORECASE)
        if not m:
            raise ParameterError(f"loudness={value!r} must be 'match', 'keep' or a level such as -23LUFS")
        level = float(m.group(1))
    if not -70.0 <= level <= 0.0:
        raise ParameterError(f"loudness={level} LUFS must lie between -70 and 0")
    return level


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness (LUFS, ITU-R BS.1770-4 with its gates) of ``(channels, n_samples)`` or 1-D audio.

    Returns None when the audio is shorter than one 400 ms block or entirely below the -70 LUFS gate (silence).
    """
    import pyloudnorm as pyln  # a core dependency, imported only when loudness is measured

    x = np.asarray(audio, dtype=np.float64)
    x = x[np.newaxis] if x.ndim == 1 else x
    if x.shape[-1] < MIN_SECONDS * sample_rate:
        return None
    meter = pyln.Meter(int(sample_rate))
    if x.shape[0] > 5:  # pyloudnorm stops at 5.0; BS.1770 sums any number of channels
        return _many_channel_loudness(meter, x, int(sample_rate))
    data = x.T if x.shape[0] > 1 else x[0]
    with np.errstate(divide="ignore"):
        value = float(meter.integrated_loudness(data))
    return value if math.isfinite(value) else None


def _many_channel_loudness(meter, x: np.ndarray, sample_rate: int) -> float | None:
    """BS.1770-4 integrated loudness of more than five channels, each weighted 1 (channel order is unknown in a
    plain file, so no channel is taken for a surround one): the meter's K-weighting, then the gated mean of the
    channel sum over 400 ms blocks with 75% overlap."""
    from micmatch.errors import AudioError

    filters = getattr(meter, "_filters", None)
    if not isinstance(filters, dict):  # pragma: no cover - another pyloudnorm layout
        raise AudioError(f"{x.shape[0]} channels: loudness is measured for at most 5 channels; use --loudness keep")
    y = np.array(x, dtype=np.float64)
    for stage in filters.values():
        y = np.stack([stage.apply_filter(ch) for ch in y])
    block, step = int(0.4 * sample_rate), int(0.1 * sample_rate)
    starts = np.arange(0, y.shape[-1] - block + 1, step)
    power = np.cumsum(np.concatenate([[0.0], np.sum(y * y, axis=0)]))
    return gated_mean_loudness((power[starts + block] - power[starts]) / block)


def gated_mean_loudness(power: np.ndarray) -> float | None:
    """BS.1770-4 gating of 400 ms block powers (K-weighted, channel-weighted mean squares): absolute gate
    -70 LUFS, relative gate -10 LU below the loudness of the blocks above it; the loudness (LUFS) of the blocks
    kept, or None when every block is silent."""
    with np.errstate(divide="ignore"):
        blocks = -0.691 + 10.0 * np.log10(power)
        kept = power[blocks >= -70.0]
        if not kept.size:
            return None
        relative = -0.691 + 10.0 * np.log10(np.mean(kept)) - 10.0
        kept = power[(blocks >= -70.0) & (blocks > relative)]
        value = -0.691 + 10.0 * np.log10(np.mean(kept)) if kept.size else -math.inf
    return float(value) if math.isfinite(value) else None


def true_peak_db(audio: np.ndarray, sample_rate: int) -> float:
    """True peak (dBTP): the sample peak of the signal upsampled 4x (BS.1770-4 annex 2; 4x suffices at 44.1 kHz
    and above), floored at -300 dB."""
    import scipy.signal

    x = np.asarray(audio, dtype=np.float64)
    x = x[np.newaxis] if x.ndim == 1 else x
    factor = 4 if sample_rate < 96000 else 2
    up = scipy.signal.resample_poly(x, factor, 1, axis=-1)
    peak = max(float(np.abs(up).max(initial=0.0)), float(np.abs(x).max(initial=0.0)))
    return 20.0 * math.log10(max(peak, 1e-15))


def peak_reduction_db(audio: np.ndarray, sample_rate: int, *, ceiling_db: float = TRUE_PEAK_CEILING_DB) -> float:
    """Gain reduction (dB, >= 0) that brings the true peak down to ``ceiling_db``."""
    return max(0.0, true_peak_db(audio, sample_rate) - ceiling_db)


__all__ = ["integrated_loudness", "parse_loudness", "peak_reduction_db", "true_peak_db"]

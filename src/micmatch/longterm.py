"""Long-term spectra: measured from recordings or read from a target curve, compared in 1/3-octave bands.

Level per bin, signal over noise floor, target curve files (AutoEq's ``frequency,raw``), and the distance between
two long-term spectra as a spectrum analyser shows it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from micmatch.align import Alignment, align
from micmatch.errors import ParameterError
from micmatch.estimate import array_stats
from micmatch.metrics import log_spectral_distance
from micmatch.response import LogSpectrumStats, SpectralConfig
from micmatch.spectral import log_power_frames, smooth_fractional_octave

#: Long-term distance: 1/3-octave bands from 100 Hz to 16 kHz (or to 0.45 x the sample rate).
DISTANCE_BAND_HZ = (100.0, 16000.0)
#: Frames used for the noise-floor percentile of :func:`snr_db` (evenly spread), bounding memory on long recordings.
NOISE_FRAMES = 4000



def long_term_spectrum_db(audio: np.ndarray, config: SpectralConfig, *, statistic: str = "power") -> np.ndarray:
    """Long-term level per bin (dB) of ``(..., n_samples)`` audio (channels mixed), frames gated as in
    :func:`micmatch.estimate.array_stats`: ``power`` = mean power, ``log`` = mean log power."""
    stats = array_stats(audio, config)
    return stats.power_db if statistic == "power" else stats.mean_db


def snr_db(audio: np.ndarray, stats: LogSpectrumStats, config: SpectralConfig) -> np.ndarray:
    """Long-term power over noise floor per bin (dB, 1/3-octave smoothed) of a 1-D recording whose statistics are
    ``stats``; the floor is the 10th percentile over frames of each bin's power (sounds pause in every bin)."""
    x = np.asarray(audio, dtype=np.float64)
    step = max(1, (x.shape[-1] // config.hop_length) // NOISE_FRAMES)
    frames = log_power_frames(x, n_fft=config.n_fft, hop_length=config.hop_length * step)
    floor = np.percentile(frames, 10, axis=1)
    return smooth_fractional_octave(stats.power_db - floor, config.frequencies, 1.0 / 3.0)


def third_octave_levels_db(spectrum_db: np.ndarray, freqs_hz: np.ndarray, *,
                           band_hz: tuple[float, float] = DISTANCE_BAND_HZ) -> tuple[np.ndarray, np.ndarray]:
    """Band power (dB) of a power spectrum in 1/3-octave bands centred on ``1000 * 2**(k/3)`` inside ``band_hz``.

    Returns
    -------
    centres_hz, levels_db : np.ndarray [shape=(n_bands,)]
        Bands with no FFT bin are left out.
    """
    f = np.asarray(freqs_hz, dtype=np.float64)
    p = 10.0 ** (np.asarray(spectrum_db, dtype=np.float64) / 10.0)
    # Nominal centres (100 Hz is 1000 * 2**(-10/3) = 99.2 Hz): a 2% tolerance keeps the named edge bands.
    k = np.arange(math.ceil(3 * math.log2(band_hz[0] / 1000.0) - 0.05),
                  math.floor(3 * math.log2(band_hz[1] / 1000.0) + 0.05) + 1)
    centres, levels = [], []
    for c in 1000.0 * 2.0 ** (k / 3.0):
        sel = (f >= c * 2 ** (-1 / 6)) & (f < c * 2 ** (1 / 6))
        if sel.any():
            centres.append(c)
            levels.append(10.0 * np.log10(max(p[sel].mean(), 1e-30)))
    return np.asarray(centres), np.asarray(levels)


def long_term_distance_db(a_db: np.ndarray, b_db: np.ndarray, freqs_hz: np.ndarray, *,
                          band_hz: tuple[float, float] = DISTANCE_BAND_HZ) -> float:
    """RMS over 1/3-octave bands of the difference of two long-term power spectra (dB), their mean difference
    (the level) removed: what a spectrum analyser shows once the two are level-matched."""
    _, la = third_octave_levels_db(a_db, freqs_hz, band_hz=band_hz)
    _, lb = third_octave_levels_db(b_db, freqs_hz, band_hz=band_hz)
    d = la - lb
    d = d - d.mean()
    return float(np.sqrt(np.mean(d * d)))


#: Bounds of a target curve's rows: frequencies (Hz) and gains (dB, either sign).
MAX_CURVE_HZ = 1e6
MAX_CURVE_DB = 200.0


def read_target_curve(path: str | os.PathLike, freqs_hz: np.ndarray) -> np.ndarray:
    """A target curve CSV (``frequency,raw`` as AutoEq writes it; other columns ignored) on ``freqs_hz`` (dB).

    Interpolated linearly in log frequency, held constant beyond its ends.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read target curve ({exc})") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ParameterError(f"{path}: empty target curve; expected columns frequency,raw")
    header = [h.strip().lower() for h in lines[0].split(",")]
    if "frequency" not in header or "raw" not in header:
        raise ParameterError(f"{path}: target curve needs columns 'frequency' and 'raw'; found {header}")
    fi, ri = header.index("frequency"), header.index("raw")
    f, g = [], []
    for n, ln in enumerate(lines[1:], start=2):
        parts = ln.split(",")
        try:
            f.append(float(parts[fi]))
            g.append(float(parts[ri]))
        except (ValueError, IndexError):
            raise ParameterError(f"{path}: line {n} is not 'frequency,raw' numbers: {ln!r}") from None
        if not (math.isfinite(f[-1]) and 0 < f[-1] <= MAX_CURVE_HZ):
            raise ParameterError(f"{path}: line {n}: frequency {f[-1]} must be a finite number of Hz in "
                                 f"(0, {MAX_CURVE_HZ:g}]")
        if not (math.isfinite(g[-1]) and abs(g[-1]) <= MAX_CURVE_DB):
            raise ParameterError(f"{path}: line {n}: gain {g[-1]} must be a finite number of dB within "
                                 f"+-{MAX_CURVE_DB:g}")
    fa, ga = np.asarray(f), np.asarray(g)
    if fa.size < 2 or (fa <= 0).any() or np.any(np.diff(fa) <= 0) or not np.isfinite(ga).all():
        raise ParameterError(f"{path}: target curve needs at least 2 rows of increasing positive frequencies")
    x = np.log(np.maximum(np.asarray(freqs_hz, dtype=np.float64), fa[0]))
    return np.interp(x, np.log(fa), ga)


__all__ = ["DISTANCE_BAND_HZ", "NOISE_FRAMES", "frame_lsd_db", "long_term_distance_db", "long_term_spectrum_db", "read_target_curve",
           "snr_db", "third_octave_levels_db"]


def frame_lsd_db(ref: np.ndarray, before: np.ndarray, after: np.ndarray, sr: int, alignment: Alignment) -> dict:
    """Frame LSD (dB) to the reference ``ref`` of ``before`` and ``after``, on the target aligned to the reference's clock, with both
    level-matched (the level is the loudness step's job) and pauses left out."""
    out = {}
    top = min(DISTANCE_BAND_HZ[1], 0.45 * sr)
    for key, sig in (("before", before), ("after", after)):
        a = align(sig, alignment, ref.shape[-1])
        scale = math.sqrt(float(np.mean(ref.astype(np.float64) ** 2)) / max(float(np.mean(a.astype(np.float64) ** 2)),
                                                                            1e-30))
        out[key] = log_spectral_distance(ref, a * scale, sr, band_hz=(DISTANCE_BAND_HZ[0], top), active_db=40.0)
    return out

"""FIR filters for corrections: design from a gain curve, and fast filtering by FFT overlap-save.

A correction's curve becomes an FIR (default 1025 taps) by least squares (``firls``) or frequency sampling
(``firwin2``), linear phase or minimum phase. Filtering runs by overlap-save with one batched real FFT per segment
(benchmarks/bench_correct.py: about 10x ``scipy.signal.lfilter``); a linear-phase filter's ``(n_taps - 1) / 2``
delay is removed, so the output stays sample-aligned with the input.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import numpy as np
import scipy.fft
import scipy.signal

from micmatch import audio as audio_io
from micmatch.errors import ParameterError
from micmatch.render import BLOCK_FRAMES, Processor, process_array
from micmatch.spectral import frame_view

DEFAULT_N_TAPS = 1025
FIR_DESIGNS = ("firls", "firwin2")
PHASES = ("linear", "minimum")


#: Designed filters by (curve, rate, settings): a batch designs each filter once (firls takes about 0.1 s).
_FIR_CACHE: dict[tuple, np.ndarray] = {}
_FIR_CACHE_SIZE = 32


def design_fir(correction, *, n_taps: int = DEFAULT_N_TAPS, design: str = "firls",
               phase: str = "linear") -> np.ndarray:
    """An FIR filter whose magnitude follows the correction (cached: the same curve and settings are designed
    once per process; the returned array is read-only). See :func:`design_fir_uncached`."""
    key = (hashlib.sha1(correction.gain_db.tobytes()).hexdigest(), correction.sample_rate, correction.n_fft,
           n_taps, design, phase)
    taps = _FIR_CACHE.get(key)
    if taps is None:
        taps = design_fir_uncached(correction, n_taps=n_taps, design=design, phase=phase)
        taps.setflags(write=False)
        if len(_FIR_CACHE) >= _FIR_CACHE_SIZE:
            _FIR_CACHE.pop(next(iter(_FIR_CACHE)))
        _FIR_CACHE[key] = taps
    return taps


def design_fir_uncached(correction, *, n_taps: int = DEFAULT_N_TAPS, design: str = "firls",
                        phase: str = "linear") -> np.ndarray:
    """An FIR filter whose magnitude follows the correction.

    ``firls`` solves least squares over contiguous bands covering 0 Hz to Nyquist (one band per pair of adjacent
    bins: well conditioned; gaps between bands make firls ill-conditioned, see METHODS.md section 9);
    ``firwin2`` samples the response and windows it (frequency sampling). benchmarks/bench_fir_design.py compares
    their accuracy: firls is the default because it is the more accurate.

    ``phase="minimum"`` converts the linear-phase design with :func:`scipy.signal.minimum_phase` (homomorphic,
    full length, same magnitude): no pre-ringing and no bulk delay, but a frequency-dependent delay.

    Returns
    -------
    taps : np.ndarray [shape=(n_taps,)]
    """
    if n_taps < 3 or n_taps % 2 == 0:
        raise ParameterError(f"n_taps={n_taps} must be an odd integer >= 3 (a linear-phase type I filter)")
    if design not in FIR_DESIGNS:
        raise ParameterError(f"design={design!r} must be one of {FIR_DESIGNS}")
    if phase not in PHASES:
        raise ParameterError(f"phase={phase!r} must be one of {PHASES}")
    f = correction.frequencies
    g = correction.gain
    fs = correction.sample_rate
    if design == "firls":
        bands = np.repeat(f, 2)[1:-1]
        desired = np.repeat(g, 2)[1:-1]
        taps = scipy.signal.firls(n_taps, bands, desired, fs=fs)
    else:
        taps = scipy.signal.firwin2(n_taps, f, g, fs=fs, nfreqs=max(1 + 2 ** math.ceil(math.log2(n_taps)), f.size))
    if phase == "minimum":
        taps = scipy.signal.minimum_phase(taps, method="homomorphic", half=False)
    return taps


def fir_response_db(taps: np.ndarray, freqs_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Magnitude response (dB) of FIR taps at the given frequencies."""
    _, h = scipy.signal.freqz(taps, worN=np.asarray(freqs_hz, dtype=np.float64), fs=sample_rate)
    return 20.0 * np.log10(np.maximum(np.abs(h), 1e-12))


def _overlap_save(taps: np.ndarray, fft_size: int = 16384) -> Callable[[np.ndarray], np.ndarray]:
    """'valid' convolution of a segment by overlap-save with one batched real FFT (float32)."""
    n_taps = taps.size
    while fft_size < 4 * n_taps:
        fft_size *= 2
    step = fft_size - n_taps + 1
    h = scipy.fft.rfft(taps.astype(np.float32), fft_size)

    def func(seg: np.ndarray) -> np.ndarray:
        lead = seg.shape[:-1]
        flat = seg.reshape(-1, seg.shape[-1])
        n_valid = seg.shape[-1] - n_taps + 1
        n_blocks = -(-n_valid // step)
        outs = []
        for row in flat:
            # Long enough for n_blocks frames of fft_size every step: (n_blocks - 1) * step + fft_size samples.
            padded = np.zeros(n_blocks * step + n_taps - 1, dtype=np.float32)
            padded[: row.size] = row
            spec = scipy.fft.rfft(frame_view(padded, fft_size, step), axis=-1)
            spec *= h
            y = scipy.fft.irfft(spec, n=fft_size, axis=-1)[:, n_taps - 1 :]
            outs.append(y.reshape(-1)[:n_valid].astype(np.float32, copy=False))
        return np.stack(outs).reshape(*lead, -1)

    return func


def fir_processor(taps: np.ndarray, *, compensate_delay: bool = True) -> Processor:
    """FIR filtering as a :class:`~micmatch.render.Processor` (overlap-save), for :func:`micmatch.render.render_file`.

    With ``compensate_delay`` the output is advanced by ``(n_taps - 1) // 2`` samples (a linear-phase filter's
    delay), so it stays sample-aligned with the input.
    """
    t = np.asarray(taps)
    n = t.size
    if compensate_delay:
        d = (n - 1) // 2
        return Processor(_overlap_save(t), d, n - 1 - d, BLOCK_FRAMES)
    return Processor(_overlap_save(t), n - 1, 0, BLOCK_FRAMES)


def fir_filter(audio: np.ndarray, taps: np.ndarray, *, compensate_delay: bool = True) -> np.ndarray:
    """Filter ``(..., n_samples)`` audio with FIR taps by FFT overlap-save; float32 output of the input's shape.

    With ``compensate_delay`` the ``(n_taps - 1) // 2`` samples of a linear-phase filter's delay are removed, so
    the output is sample-aligned with the input (equal to ``scipy.signal.lfilter(taps, 1, x)`` shifted by that
    delay, the end continued with zeros). Speed: benchmarks/bench_correct.py.
    """
    x = audio_io.validate_audio(audio)
    t = np.asarray(taps, dtype=np.float64)
    if t.ndim != 1 or t.size < 1 or not np.isfinite(t).all():
        raise ParameterError(f"taps must be a finite 1-D array; got shape {t.shape}")
    return process_array(x, fir_processor(t, compensate_delay=compensate_delay))

"""Corrections from one device to a reference, and applying them to audio.

A :class:`Correction` is a gain curve ``C(d -> r) = H_r / H_d`` in dB on a profile's FFT grid. It is regularised:

* **floors**: each response is floored at its maximum minus ``dynamic_range_db`` (default 80 dB) before the ratio,
  so bins where a device recorded nothing cannot produce absurd ratios;
* **clamps**: the gain is limited to ``+max_boost_db`` (default 20 dB) and ``-max_cut_db`` (default 30 dB); the
  spectrum-correction paper warns that raw gain ranges cause trouble, and boosting a band a device barely captured mostly boosts its noise;
* **smoothing** (optional): fractional-octave smoothing of the dB curve (``smoothing_octaves=1/6`` say).

Applied two ways, both streaming in bounded memory and sample-aligned with the input:

* ``stft``: Hann STFT (hop n_fft/4), gain per bin, overlap-add; exact reconstruction at unity gain.
* ``fir``: an FIR (default 1025 taps, least-squares design, linear phase with its (n_taps-1)/2 delay removed, or
  minimum phase) by FFT overlap-save (benchmarks/bench_correct.py: about 10x scipy.signal.lfilter).

Reference-free forms (section 2.5 of "Spectrum Correction: Acoustic Scene Classification with Mismatched Recording Devices"): reference ``":mean"`` is the average response of all devices in the
set, ``":flat"`` removes the device's own long-term spectrum (mean-subtraction form), level-normalised so the mean
gain over the analysis band is 0 dB.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal
import soundfile as sf

from micmatch import audio as audio_io
from micmatch.errors import AudioError, ConfigMismatchError, ParameterError
from micmatch.outputs import atomic_path, staging_path
from micmatch.response import DeviceResponse, ResponseSet
from micmatch.spectral import db_to_gain, frequencies, hann, smooth_fractional_octave

DEFAULT_MAX_BOOST_DB = 20.0
DEFAULT_MAX_CUT_DB = 30.0
DEFAULT_DYNAMIC_RANGE_DB = 80.0
DEFAULT_N_TAPS = 1025
REFERENCE_FREE = (":mean", ":flat")
METHODS = ("stft", "fir")
FIR_DESIGNS = ("firls", "firwin2")
PHASES = ("linear", "minimum")
OVERS = ("float", "scale", "clip")
STATISTICS = ("log", "power")
#: Default long-term statistic (benchmarks/bench_match.py compares the two on reverberant, noisy pairs).
DEFAULT_STATISTIC = "log"
#: A device "has signal" in a bin when its smoothed level is within this many dB of its typical level.
DEFAULT_BAND_RANGE_DB = 40.0
#: Width of the raised-cosine transition to 0 dB outside the corrected band (octaves).
DEFAULT_TRANSITION_OCTAVES = 1.0 / 3.0


@dataclass(frozen=True)
class Correction:
    """A gain curve that turns recordings of ``device`` into recordings as if made by ``reference``.

    Attributes
    ----------
    gain_db : np.ndarray [shape=(n_fft // 2 + 1,)]
        Gain per FFT bin in dB (positive = boost).
    settings : dict
        The regularisation used (clamps, floor, smoothing), kept for reports and exports.
    """

    device: str
    reference: str
    sample_rate: int
    n_fft: int
    gain_db: np.ndarray
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        g = np.asarray(self.gain_db, dtype=np.float64)
        if g.shape != (self.n_fft // 2 + 1,):
            raise ConfigMismatchError(f"gain_db has {g.size} bins; n_fft={self.n_fft} needs {self.n_fft // 2 + 1}")
        if not np.isfinite(g).all():
            raise ParameterError("gain_db contains NaN or infinite values")
        object.__setattr__(self, "gain_db", g)

    @property
    def frequencies(self) -> np.ndarray:
        return frequencies(self.sample_rate, self.n_fft)

    @property
    def gain(self) -> np.ndarray:
        """Linear amplitude gain per bin."""
        return db_to_gain(self.gain_db)

    def interpolate_db(self, freqs_hz: np.ndarray) -> np.ndarray:
        """Gain in dB at arbitrary frequencies (linear interpolation on the bin grid, clamped at the ends)."""
        return np.interp(np.asarray(freqs_hz, dtype=np.float64), self.frequencies, self.gain_db)

    def check_sample_rate(self, sample_rate: int, what: str = "audio") -> None:
        if sample_rate != self.sample_rate:
            raise ConfigMismatchError(
                f"{what} is at {sample_rate} Hz but the correction was estimated at {self.sample_rate} Hz; "
                f"resample the audio or build the profile at {sample_rate} Hz"
            )


def response_level_db(response, statistic: str = "log") -> np.ndarray:
    """A device's long-term level per bin (dB) under ``statistic``.

    ``"log"`` is the mean of log power (geometric mean of magnitudes, the spectrum-correction estimate: ``response_db``);
    ``"power"`` is the log of the mean power (the long-term average spectrum), from the statistics' power sums.
    Measured and built-in responses (sweep, impulse, builtin, model) have one value per bin, the same for both.
    """
    if statistic not in STATISTICS:
        raise ParameterError(f"statistic={statistic!r} must be one of {STATISTICS}")
    if statistic == "log" or response.method in ("sweep", "impulse", "builtin", "model"):
        return response.response_db
    if response.stats is None or response.stats.sum_power is None:
        raise ParameterError(f"device {response.name!r} has no power statistics (method {response.method}, or a "
                             f"responses file from an older micmatch); use statistic 'log' or profile it again")
    return response.stats.power_db


def signal_band(levels_db: Iterable[np.ndarray], freqs_hz: np.ndarray, *, range_db: float = DEFAULT_BAND_RANGE_DB,
                min_hz: float = 20.0) -> tuple[float, float]:
    """The band where every device has signal: its 1/3-octave smoothed level within ``range_db`` of its own
    typical level (the 75th percentile over log-spaced frequencies from 100 Hz to 0.9 x Nyquist, where recordings
    carry sound; log spacing so a band-limited device's empty top octave does not count as most of the band).

    Outside, a recording holds only its noise floor (or nothing at all, beyond a band limit): a correction there
    boosts noise, which is the +20 dB edge boost match-EQ users complain about. Returns the widest contiguous band
    (in octaves) of qualifying bins above ``min_hz`` (Hz).
    """
    f = np.asarray(freqs_hz, dtype=np.float64)
    ok = f >= min_hz
    nyq = f[-1]
    grid = np.geomspace(min(100.0, 0.1 * nyq), 0.9 * nyq, 256)
    for lv in levels_db:
        sm = smooth_fractional_octave(np.asarray(lv, dtype=np.float64), f, 1.0 / 3.0)
        ok &= sm >= np.percentile(np.interp(grid, f, sm), 75) - range_db
    return widest_band(ok, f)


def widest_band(ok: np.ndarray, freqs_hz: np.ndarray) -> tuple[float, float]:
    """Edges (Hz) of the widest contiguous run, in octaves, of True bins in ``ok``."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    ok = np.asarray(ok, dtype=bool) & (f > 0)
    if not ok.any():
        raise ParameterError("no frequency band where every recording has signal; pass an explicit band")
    edges = np.diff(np.r_[0, ok.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    widest = int(np.argmax(np.log2(f[stops - 1]) - np.log2(f[starts]) + 1e-9 * (stops - starts)))
    return float(f[starts[widest]]), float(f[stops[widest] - 1])


def band_taper(freqs_hz: np.ndarray, band_hz: tuple[float, float], *,
               transition_octaves: float = DEFAULT_TRANSITION_OCTAVES) -> np.ndarray:
    """Weights in [0, 1]: 1 inside ``band_hz``, falling to 0 over ``transition_octaves`` outside it along a
    raised cosine in log frequency (no step, so no ringing filter and no hard edge in the curve)."""
    lo, hi = band_hz
    if not 0 <= lo < hi:
        raise ParameterError(f"band {lo}..{hi} Hz must have 0 <= low < high")
    if transition_octaves <= 0:
        raise ParameterError(f"transition_octaves={transition_octaves} must be positive")
    f = np.maximum(np.asarray(freqs_hz, dtype=np.float64), 1e-3)
    dist = np.zeros_like(f)
    if lo > 0:
        dist = np.maximum(dist, np.log2(lo / f))
    dist = np.maximum(dist, np.log2(f / hi))
    d = np.clip(dist / transition_octaves, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * d))


def correction_curve(
    responses: ResponseSet,
    device: str,
    reference: str,
    *,
    max_boost_db: float = DEFAULT_MAX_BOOST_DB,
    max_cut_db: float = DEFAULT_MAX_CUT_DB,
    dynamic_range_db: float = DEFAULT_DYNAMIC_RANGE_DB,
    smoothing_octaves: float | None = None,
    band_hz: tuple[float, float] | None = None,
    statistic: str = DEFAULT_STATISTIC,
    limit_band: str | tuple[float, float] | None = None,
    transition_octaves: float = DEFAULT_TRANSITION_OCTAVES,
    strength: float = 1.0,
    reference_weights: dict[str, float] | None = None,
    outside: str = "cuts",
) -> Correction:
    """The regularised correction ``H_reference / H_device`` in dB (module docstring for the regularisation).

    Parameters
    ----------
    responses : ResponseSet
    device : str
        Device whose recordings will be corrected.
    reference : str
        Target device, or ``":mean"`` (average of all devices, or of those in ``reference_weights``, weighted) /
        ``":flat"`` (reference-free mean subtraction).
    max_boost_db, max_cut_db : float
        Clamp of the gain (both non-negative).
    dynamic_range_db : float
        Each response is floored at its maximum minus this before the ratio.
    smoothing_octaves : float, optional
        Fractional-octave smoothing of the final curve (e.g. 1/6).
    band_hz : (float, float), optional
        Band over which ``":flat"`` normalises its mean gain to 0 dB; default 100 Hz to 0.45 x sample rate.
    statistic : {"log", "power"}
        Long-term level of each device: mean of log power (geometric mean, as in spectrum correction) or mean power (long-term
        average spectrum); see :func:`response_level_db`.
    limit_band : "auto", (float, float) or None
        Where the correction acts: ``"auto"`` finds the band where both devices have signal
        (:func:`signal_band`; only from absolute responses: aligned-pair responses are relative and use the whole
        band), a (low, high) pair in Hz sets it, None (the default; the commands default to "auto") disables
        the limit. Outside, the gain goes to 0 dB over ``transition_octaves`` along a raised cosine.
    outside : {"cuts", "flat"}
        Outside the band, ``"cuts"`` (default) fades only boosts to 0 dB and keeps cuts (a cut never raises noise:
        where the device has more energy than a reference without signal, the match removes it; on simulated
        reverberant pairs fading cuts too left the long-term spectrum several dB from the reference,
        benchmarks/results/match.md); ``"flat"`` fades every gain to 0 dB.
    strength : float
        0..1: the correction in dB is scaled by this (0 leaves the audio unchanged, 1 is the full match).
    reference_weights : dict, optional
        Device -> weight for ``reference=":mean"`` (only these devices, normalised weights).
    """
    if max_boost_db < 0 or max_cut_db < 0:
        raise ParameterError(f"max_boost_db={max_boost_db} and max_cut_db={max_cut_db} must be non-negative")
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength={strength} must lie between 0 and 1")
    cfg = responses.config
    freqs = cfg.frequencies

    def floored(db: np.ndarray) -> np.ndarray:
        return np.maximum(db, db.max() - dynamic_range_db)

    def level(name: str) -> np.ndarray:
        return floored(response_level_db(responses[name], statistic))

    dev = level(device)
    lo, hi = band_hz or (100.0, 0.45 * cfg.sample_rate)
    in_band = (freqs >= lo) & (freqs <= hi)
    used = [device]
    if reference == ":mean":
        names = list(reference_weights) if reference_weights else list(responses)
        w = np.array([reference_weights[n] for n in names] if reference_weights else [1.0] * len(names), float)
        if (w < 0).any() or w.sum() <= 0:
            raise ParameterError(f"reference weights {w.tolist()} must be non-negative with a positive sum")
        ref = floored(np.tensordot(w / w.sum(), np.array([level(n) for n in names]), axes=1))
        used += names
    elif reference == ":flat":
        ref = np.full_like(dev, np.mean(dev[in_band]) if in_band.any() else np.mean(dev))
    else:
        ref = level(reference)
        used.append(reference)
    active = None
    if isinstance(limit_band, str):
        if limit_band != "auto":
            raise ParameterError(f"limit_band={limit_band!r} must be 'auto', a (low, high) pair in Hz, or None")
        if all(responses[n].method != "aligned" for n in used):
            active = signal_band([response_level_db(responses[n], statistic) for n in dict.fromkeys(used)], freqs)
    elif limit_band is not None:
        active = (float(limit_band[0]), float(limit_band[1]))
    recorded = [float(responses[n].meta["band_hz"]) for n in dict.fromkeys(used) if "band_hz" in responses[n].meta]
    return correction_from_levels(
        dev, ref, cfg.sample_rate, cfg.n_fft, device=device, reference=reference, max_boost_db=max_boost_db,
        max_cut_db=max_cut_db, smoothing_octaves=smoothing_octaves, band_hz=active,
        transition_octaves=transition_octaves, outside=outside, strength=strength,
        recorded_band_hz=min(recorded) if recorded else None,
        settings={"dynamic_range_db": dynamic_range_db, "hop_length": cfg.hop_length, "statistic": statistic},
    )


def correction_from_levels(
    device_db: np.ndarray,
    reference_db: np.ndarray,
    sample_rate: int,
    n_fft: int,
    *,
    device: str = "device",
    reference: str = "reference",
    max_boost_db: float = DEFAULT_MAX_BOOST_DB,
    max_cut_db: float = DEFAULT_MAX_CUT_DB,
    smoothing_octaves: float | None = None,
    band_hz: tuple[float, float] | None = None,
    transition_octaves: float = DEFAULT_TRANSITION_OCTAVES,
    outside: str = "cuts",
    strength: float = 1.0,
    recorded_band_hz: float | None = None,
    settings: dict | None = None,
) -> Correction:
    """The regularised correction from two long-term level curves on one FFT grid (no responses file needed).

    Parameters
    ----------
    device_db, reference_db : np.ndarray [shape=(n_fft // 2 + 1,)]
        Long-term levels in dB of the recording to correct and of the one to sound like (already floored).
    sample_rate, n_fft : int
        The grid of both curves.
    band_hz : (float, float), optional
        Where the correction acts; outside it boosts (``outside="cuts"``) or all gains (``"flat"``) go to 0 dB
        over ``transition_octaves`` along a raised cosine. None: the whole band.
    recorded_band_hz : float, optional
        Highest frequency either recording holds (a file recorded at a lower rate): 0 dB above it.
    settings : dict, optional
        Extra entries for :attr:`Correction.settings` (e.g. the statistic the levels came from).

    Other options as in :func:`correction_curve`.
    """
    if max_boost_db < 0 or max_cut_db < 0:
        raise ParameterError(f"max_boost_db={max_boost_db} and max_cut_db={max_cut_db} must be non-negative")
    if not 0.0 <= strength <= 1.0:
        raise ParameterError(f"strength={strength} must lie between 0 and 1")
    if outside not in ("cuts", "flat"):
        raise ParameterError(f"outside={outside!r} must be 'cuts' or 'flat'")
    freqs = frequencies(sample_rate, n_fft)
    gain = np.asarray(reference_db, dtype=np.float64) - np.asarray(device_db, dtype=np.float64)
    if gain.shape != freqs.shape:
        raise ConfigMismatchError(f"level curves of {gain.shape} bins; n_fft={n_fft} needs {freqs.size}")
    if smoothing_octaves:
        gain = smooth_fractional_octave(gain, freqs, smoothing_octaves)
    if band_hz is not None:
        w = band_taper(freqs, band_hz, transition_octaves=transition_octaves)
        gain = w * gain + (1.0 - w) * (np.minimum(gain, 0.0) if outside == "cuts" else 0.0)
    # A device recorded below the analysis band (e.g. 8 kHz audio profiled at 48 kHz) holds nothing above its own
    # Nyquist frequency: 0 dB there, not a boost of resampling silence up to the clamp.
    if recorded_band_hz is not None and recorded_band_hz < freqs[-1]:
        gain = np.where(freqs > recorded_band_hz, 0.0, gain)
    gain = np.clip(gain, -max_cut_db, max_boost_db) * strength
    extra = dict(settings or {})
    all_settings = {"max_boost_db": max_boost_db, "max_cut_db": max_cut_db,
                    "dynamic_range_db": extra.pop("dynamic_range_db", None),
                    "smoothing_octaves": smoothing_octaves, "hop_length": extra.pop("hop_length", None),
                    "statistic": extra.pop("statistic", None),
                    "band_hz": None if band_hz is None else [round(band_hz[0], 2), round(band_hz[1], 2)],
                    "transition_octaves": transition_octaves, "outside": outside, "strength": strength, **extra}
    return Correction(device, reference, sample_rate, n_fft, gain, all_settings)


def resample_correction(correction: Correction, sample_rate: int) -> Correction:
    """The same correction for audio at another ``sample_rate``: the curve interpolated onto a grid of the same
    bin spacing (``n_fft`` scaled with the rate, kept even), held at its last value above the old Nyquist."""
    if sample_rate == correction.sample_rate:
        return correction
    if sample_rate <= 0:
        raise ParameterError(f"sample_rate={sample_rate} must be positive")
    n_fft = max(16, 2 * round(correction.n_fft * sample_rate / correction.sample_rate / 2))
    f = frequencies(sample_rate, n_fft)
    settings = {**correction.settings, "resampled_from_hz": correction.sample_rate}
    return Correction(correction.device, correction.reference, sample_rate, n_fft, correction.interpolate_db(f),
                      settings)


def with_target_curve(responses: ResponseSet, device: str, curve_db: np.ndarray, *, name: str = "target curve",
                      statistic: str = DEFAULT_STATISTIC) -> ResponseSet:
    """``responses`` plus a reference ``name`` whose response is a target curve (dB on the set's grid), shifted to
    the device's level (median difference over 100 Hz to 10 kHz) so the clamps act on the shape only."""
    freqs = responses.frequencies
    dev = response_level_db(responses[device], statistic)
    sel = (freqs >= 100.0) & (freqs <= min(10000.0, 0.45 * responses.config.sample_rate))
    curve = np.asarray(curve_db, dtype=np.float64)
    curve = curve + float(np.median((dev - curve)[sel])) if sel.any() else curve
    return ResponseSet(responses.config, list(responses.values()) + [DeviceResponse(name, curve, method="model")])


# ----------------------------------------------------------------------------------------------------------------
# FIR design


#: Designed filters by (curve, rate, settings): a batch designs each filter once (firls takes about 0.1 s).
_FIR_CACHE: dict[tuple, np.ndarray] = {}
_FIR_CACHE_SIZE = 32


def design_fir(correction: Correction, *, n_taps: int = DEFAULT_N_TAPS, design: str = "firls",
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


def design_fir_uncached(correction: Correction, *, n_taps: int = DEFAULT_N_TAPS, design: str = "firls",
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


# ----------------------------------------------------------------------------------------------------------------
# Streaming engine: out[t] depends on in[t - left : t + right + 1]. Input blocks of any size go in; the output
# has exactly the input's length. Blocks of ``block`` samples are processed with their context, so the result does
# not depend on how the input was chunked (arrays and files go through the same code).


def _stream_with_context(
    chunks: Iterable[np.ndarray],
    func: Callable[[np.ndarray], np.ndarray],
    *,
    left: int,
    right: int,
    block: int,
) -> Iterator[np.ndarray]:
    buf: np.ndarray | None = None
    n_in = 0
    n_out = 0
    for chunk in chunks:
        c = np.asarray(chunk, dtype=np.float32)
        if buf is None:
            buf = np.zeros(c.shape[:-1] + (left,), dtype=np.float32)
        buf = np.concatenate([buf, c], axis=-1)
        n_in += c.shape[-1]
        while buf.shape[-1] >= left + block + right:
            yield func(buf[..., : left + block + right])
            buf = buf[..., block:]
            n_out += block
    if buf is None:
        return
    while n_out < n_in:
        need = left + block + right - buf.shape[-1]
        if need > 0:
            buf = np.concatenate([buf, np.zeros(buf.shape[:-1] + (need,), dtype=np.float32)], axis=-1)
        out = func(buf[..., : left + block + right])
        take = min(block, n_in - n_out)
        yield out[..., :take]
        buf = buf[..., block:]
        n_out += take


def _stft_gain_func(gain: np.ndarray, n_fft: int, hop: int) -> Callable[[np.ndarray], np.ndarray]:
    """Process one segment: frames at offsets 0, hop, ...; returns the fully covered middle part."""
    window = hann(n_fft).astype(np.float32)
    # Periodic Hann at hops dividing n_fft/4: the sum of squared windows over overlapping frames is the constant
    # sum(w^2)/hop, folded into the synthesis window.
    synthesis = (window / np.float32(np.sum(window * window) / hop)).astype(np.float32)
    g = gain.astype(np.float32)
    left = n_fft - hop

    def func(seg: np.ndarray) -> np.ndarray:
        lead = seg.shape[:-1]
        flat = np.ascontiguousarray(seg.reshape(-1, seg.shape[-1]))
        length = seg.shape[-1]
        count = 1 + (length - n_fft) // hop
        outs = []
        for row in flat:
            frames = np.lib.stride_tricks.as_strided(row, shape=(count, n_fft),
                                                     strides=(hop * row.strides[0], row.strides[0]), writeable=False)
            spec = scipy.fft.rfft(frames * window, axis=-1, overwrite_x=True)
            spec *= g
            y = scipy.fft.irfft(spec, n=n_fft, axis=-1, overwrite_x=True).astype(np.float32, copy=False)
            y *= synthesis
            acc = np.zeros(length, dtype=np.float32)
            r = n_fft // hop
            seg_blocks = y.reshape(count, r, hop)
            view = acc[: (count + r - 1) * hop].reshape(-1, hop)
            for j in range(r):
                view[j : j + count] += seg_blocks[:, j, :]
            outs.append(acc[left : length - left])
        return outs[0].reshape(*lead, -1) if len(outs) == 1 else np.stack(outs).reshape(*lead, -1)

    return func


def _fir_func(taps: np.ndarray, fft_size: int = 16384) -> Callable[[np.ndarray], np.ndarray]:
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
            padded = np.zeros(n_blocks * step + n_taps - 1, dtype=np.float32)
            padded[: row.size] = row
            frames = np.lib.stride_tricks.as_strided(
                padded, shape=(n_blocks, fft_size), strides=(step * 4, 4), writeable=False)
            # The last frame may read past `padded`; pad so every frame is in bounds.
            if (n_blocks - 1) * step + fft_size > padded.size:
                padded = np.concatenate([padded, np.zeros((n_blocks - 1) * step + fft_size - padded.size,
                                                          dtype=np.float32)])
                frames = np.lib.stride_tricks.as_strided(
                    padded, shape=(n_blocks, fft_size), strides=(step * 4, 4), writeable=False)
            spec = scipy.fft.rfft(frames, axis=-1)
            spec *= h
            y = scipy.fft.irfft(spec, n=fft_size, axis=-1)[:, n_taps - 1 :]
            outs.append(y.reshape(-1)[:n_valid].astype(np.float32, copy=False))
        return np.stack(outs).reshape(*lead, -1)

    return func


@dataclass(frozen=True)
class _Plan:
    func: Callable[[np.ndarray], np.ndarray]
    left: int
    right: int
    block: int


def _plan(correction: Correction, method: str, *, n_taps: int, design: str, phase: str,
          hop_length: int | None, taps: np.ndarray | None = None) -> _Plan:
    if method == "stft":
        hop = hop_length or correction.n_fft // 4
        if correction.n_fft % hop or correction.n_fft // hop < 4:
            raise ParameterError(f"hop_length={hop} must divide n_fft={correction.n_fft} at least 4 times")
        ctx = correction.n_fft - hop
        block = hop * max(1, (1 << 17) // hop)
        return _Plan(_stft_gain_func(correction.gain, correction.n_fft, hop), ctx, ctx, block)
    if method == "fir":
        if taps is None:
            taps = design_fir(correction, n_taps=n_taps, design=design, phase=phase)
        return _fir_plan(taps, compensate_delay=phase == "linear")
    raise ParameterError(f"method={method!r} must be one of {METHODS}")


def _fir_plan(taps: np.ndarray, *, compensate_delay: bool) -> _Plan:
    n = np.asarray(taps).size
    if compensate_delay:
        d = (n - 1) // 2
        return _Plan(_fir_func(np.asarray(taps)), d, n - 1 - d, 1 << 17)
    return _Plan(_fir_func(np.asarray(taps)), n - 1, 0, 1 << 17)


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
    plan = _fir_plan(t, compensate_delay=compensate_delay)
    parts = list(_stream_with_context([x.astype(np.float32, copy=False)], plan.func, left=plan.left,
                                      right=plan.right, block=plan.block))
    return np.concatenate(parts, axis=-1)


def apply_correction(
    audio: np.ndarray,
    sample_rate: int,
    correction: Correction,
    *,
    method: str = "stft",
    n_taps: int = DEFAULT_N_TAPS,
    design: str = "firls",
    phase: str = "linear",
    hop_length: int | None = None,
) -> np.ndarray:
    """Apply a correction to ``(..., n_samples)`` audio; returns float32 of the same shape (input untouched).

    Parameters
    ----------
    method : {"stft", "fir"}
        STFT-domain gain (hop ``n_fft // 4`` unless ``hop_length``) or FIR filtering (``n_taps``, ``design``,
        ``phase``). Linear-phase FIR output is delay compensated: sample-aligned with the input.

    Notes
    -----
    No clipping is applied: the result may exceed full scale (see :func:`correct_file` for what files do).
    """
    x = audio_io.validate_audio(audio, sample_rate)
    correction.check_sample_rate(sample_rate)
    plan = _plan(correction, method, n_taps=n_taps, design=design, phase=phase, hop_length=hop_length)
    parts = list(_stream_with_context([x.astype(np.float32, copy=False)], plan.func, left=plan.left,
                                      right=plan.right, block=plan.block))
    return np.concatenate(parts, axis=-1) if parts else np.zeros_like(x, dtype=np.float32)


@dataclass(frozen=True)
class FileResult:
    """What :func:`correct_file` did to one file."""

    input: Path
    output: Path
    peak: float
    action: str  # "ok", "float", "scaled", "clipped"
    message: str = ""


def correct_file(
    path: str | os.PathLike,
    output: str | os.PathLike,
    correction: Correction,
    *,
    method: str = "stft",
    n_taps: int = DEFAULT_N_TAPS,
    design: str = "firls",
    phase: str = "linear",
    overs: str = "scale",
    subtype: str | None = None,
    resample: bool = False,
    taps: np.ndarray | None = None,
    warn: bool = True,
) -> FileResult:
    """Correct one file, streaming in blocks, and write ``output`` atomically in the input's format and subtype.

    ``overs`` says what happens when the corrected signal exceeds full scale and the output subtype is integer
    PCM: ``scale`` (default: the input's format is kept) lowers the whole file's gain so its peak is -0.1 dBFS,
    ``float`` writes a float file instead (WAV/AIFF/CAF; other formats fall back to ``scale``), ``clip`` clips and
    reports how many samples; the returned :class:`FileResult` says which (a warning too unless ``warn=False``).
    A file at another rate than the correction is refused unless ``resample`` (then the correction is
    re-sampled to the file's rate, :func:`resample_correction`; the audio keeps its rate). ``taps`` passes an FIR
    designed beforehand (method ``fir``), so a batch in several processes designs it once.
    The input is only read; nothing is written under ``output`` until the file is complete.
    """
    if overs not in OVERS:
        raise ParameterError(f"overs={overs!r} must be one of {OVERS}")
    meta = audio_io.info(path)
    if resample and meta.sample_rate != correction.sample_rate:
        correction = resample_correction(correction, meta.sample_rate)
        taps = None
    correction.check_sample_rate(meta.sample_rate, what=str(meta.path))
    output = Path(output)
    if output.resolve() == meta.path.resolve():
        raise AudioError(f"{meta.path}: output would overwrite the input; choose another output folder")
    plan = _plan(correction, method, n_taps=n_taps, design=design, phase=phase, hop_length=None, taps=taps)
    out_subtype = subtype or meta.subtype
    out_format = meta.format
    if not sf.check_format(out_format, out_subtype):
        out_subtype = sf.default_subtype(out_format)
    is_float = out_subtype in ("FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III")
    peak = 0.0
    blocks = audio_io.iter_blocks(meta.path, block_frames=1 << 17, channels="keep", dtype="float32")
    # The corrected float signal is staged in a hidden file beside the output (its peak decides what happens to
    # overs before the final file is written) and always removed afterwards.
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = staging_path(output.with_name(output.name + ".float"))  # a staging name: find_audio_files skips it
    try:
        with sf.SoundFile(str(stage), "w", samplerate=meta.sample_rate, channels=meta.channels,
                          format="WAV", subtype="FLOAT") as tmp:
            for y in _stream_with_context(blocks, plan.func, left=plan.left, right=plan.right, block=plan.block):
                peak = max(peak, float(np.abs(y).max(initial=0.0)))
                tmp.write(y.T)
        action, gain, message = "ok", 1.0, ""
        if peak > 1.0 and not is_float:
            if overs == "float" and sf.check_format(out_format, "FLOAT"):
                out_subtype, action = "FLOAT", "float"
                message = (f"{meta.path}: corrected peak {20 * math.log10(peak):+.1f} dBFS exceeds full scale; "
                           f"written as 32-bit float to keep it (use --overs scale or clip to avoid)")
            elif overs in ("float", "scale"):
                gain, action = 10 ** (-0.1 / 20) / peak, "scaled"
                message = f"{meta.path}: corrected peak {20 * math.log10(peak):+.1f} dBFS; scaled by {20 * math.log10(gain):.1f} dB"
            else:
                action = "clipped"
        n_clipped = 0
        with atomic_path(output) as final:
            with sf.SoundFile(str(stage)) as src, sf.SoundFile(
                str(final), "w", samplerate=meta.sample_rate, channels=meta.channels, format=out_format,
                subtype=out_subtype,
            ) as dst:
                for blk in src.blocks(blocksize=1 << 17, dtype="float32", always_2d=True):
                    if gain != 1.0:
                        blk = blk * np.float32(gain)
                    if action == "clipped":
                        n_clipped += int(np.count_nonzero(np.abs(blk) > 1.0))
                        blk = np.clip(blk, -1.0, 1.0)
                    dst.write(blk)
        if action == "clipped":
            message = f"{meta.path}: {n_clipped} samples clipped at full scale"
    finally:
        stage.unlink(missing_ok=True)
    if message and warn:
        warnings.warn(message, stacklevel=2)
    return FileResult(meta.path, output, peak, action, message)


# ----------------------------------------------------------------------------------------------------------------
# Exports


EXPORT_FORMATS = ("csv", "wav", "equalizerapo", "parametric")


def export_csv(correction: Correction, path: str | os.PathLike) -> Path:
    """CSV with columns ``frequency_hz,gain_db`` on the profile's bin grid (written atomically)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["frequency_hz", "gain_db"])
    for f, g in zip(correction.frequencies, correction.gain_db):
        w.writerow([f"{f:.3f}", f"{g:.4f}"])
    return _write_text(path, buf.getvalue())


def export_ir_wav(correction: Correction, path: str | os.PathLike, *, n_taps: int = DEFAULT_N_TAPS,
                  design: str = "firls", phase: str = "linear", sample_rate: int | None = None) -> Path:
    """The correction as an impulse response (32-bit float WAV) for convolution plug-ins.

    A linear-phase IR has its peak at sample ``(n_taps - 1) / 2``: convolution plug-ins that do not compensate
    latency delay the signal by that much; use ``phase="minimum"`` for no bulk delay. ``sample_rate`` redesigns
    the filter for another rate (:func:`resample_correction`, same ``n_taps``).
    """
    if sample_rate is not None:
        correction = resample_correction(correction, sample_rate)
    taps = design_fir(correction, n_taps=n_taps, design=design, phase=phase)
    return audio_io.save(path, taps.astype(np.float32), correction.sample_rate, subtype="FLOAT")


def graphic_eq_points(correction: Correction, *, per_octave: int = 12, f_min: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Log-spaced frequencies (``per_octave`` per octave from ``f_min`` to Nyquist) and the gain there (dB)."""
    nyq = correction.sample_rate / 2.0
    n = int(np.floor(np.log2(nyq / f_min) * per_octave)) + 1
    f = f_min * 2.0 ** (np.arange(n) / per_octave)
    f = f[f < nyq]
    return f, correction.interpolate_db(f)


def export_equalizerapo(correction: Correction, path: str | os.PathLike, *, per_octave: int = 12) -> Path:
    """An EqualizerAPO ``GraphicEQ:`` line (frequency and gain pairs separated by ``;``), plus a preamp line.

    The preamp is minus the largest boost, so the equalizer itself cannot clip.
    """
    f, g = graphic_eq_points(correction, per_octave=per_octave)
    preamp = -max(0.0, float(g.max()))
    pairs = "; ".join(f"{fi:.0f} {gi:.1f}" for fi, gi in zip(f, g))
    text = (f"# micmatch correction {correction.device} -> {correction.reference} at {correction.sample_rate} Hz\n"
            f"Preamp: {preamp:.1f} dB\nGraphicEQ: {pairs}\n")
    return _write_text(path, text)


def export_parametric(correction: Correction, path: str | os.PathLike, *, n_filters: int = 10,
                      band_hz: tuple[float, float] | None = None) -> Path:
    """Peaking and shelving biquads fitted to the correction (:func:`micmatch.parametric.fit_parametric`):
    a CamillaDSP YAML when ``path`` ends in ``.yml``/``.yaml``, else EqualizerAPO ``Preamp:``/``Filter`` lines."""
    from micmatch.parametric import camilladsp_yaml, equalizerapo_text, fit_parametric

    eq = fit_parametric(correction, n_filters=n_filters, band_hz=band_hz)
    title = f"micmatch correction {correction.device} -> {correction.reference} at {correction.sample_rate} Hz"
    path = Path(path)
    text = camilladsp_yaml(eq, title=title) if path.suffix.lower() in (".yml", ".yaml") else \
        equalizerapo_text(eq, title=title)
    return _write_text(path, text)


def export(correction: Correction, path: str | os.PathLike, fmt: str, **options) -> Path:
    """Export in one of :data:`EXPORT_FORMATS`."""
    if fmt == "parametric":
        return export_parametric(correction, path, **options)
    if fmt == "csv":
        return export_csv(correction, path)
    if fmt == "wav":
        return export_ir_wav(correction, path, **options)
    if fmt == "equalizerapo":
        return export_equalizerapo(correction, path)
    raise ParameterError(f"format={fmt!r} must be one of {EXPORT_FORMATS}")


def _write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path

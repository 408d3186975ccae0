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
  minimum phase) by FFT overlap-save (:mod:`micmatch.fir`; benchmarks/bench_correct.py: about 10x
  scipy.signal.lfilter).

Files are written through :func:`micmatch.render.render_file`; exports for other tools are :mod:`micmatch.exports`.

Reference-free forms (section 2.5 of "Spectrum Correction: Acoustic Scene Classification with Mismatched Recording Devices"): reference ``":mean"`` is the average response of all devices in the
set, ``":flat"`` removes the device's own long-term spectrum (mean-subtraction form), level-normalised so the mean
gain over the analysis band is 0 dB.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft

from micmatch import audio as audio_io
from micmatch.errors import AudioError, ConfigMismatchError, ParameterError
from micmatch.fir import DEFAULT_N_TAPS, design_fir, fir_processor
from micmatch.render import BLOCK_FRAMES, FileResult, Processor, process_array, render_file, resolve_overs
from micmatch.response import DeviceResponse, ResponseSet
from micmatch.spectral import db_to_gain, frequencies, hann, overlap_add_processor, smooth_fractional_octave

DEFAULT_MAX_BOOST_DB = 20.0
DEFAULT_MAX_CUT_DB = 30.0
DEFAULT_DYNAMIC_RANGE_DB = 80.0
REFERENCE_FREE = (":mean", ":flat")
METHODS = ("stft", "fir")
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
# Applying a correction


def stft_processor(gain: np.ndarray, n_fft: int, hop_length: int) -> Processor:
    """A gain per STFT bin as a :class:`~micmatch.render.Processor`: Hann frames every ``hop_length``, gain,
    overlap-add; exact reconstruction at unity gain, output sample-aligned with the input."""
    if n_fft % hop_length or n_fft // hop_length < 4:
        raise ParameterError(f"hop_length={hop_length} must divide n_fft={n_fft} at least 4 times")
    window = hann(n_fft).astype(np.float32)
    # Periodic Hann at hops dividing n_fft/4: the sum of squared windows over overlapping frames is the constant
    # sum(w^2)/hop, folded into the synthesis window.
    synthesis = (window / np.float32(np.sum(window * window) / hop_length)).astype(np.float32)
    g = np.asarray(gain).astype(np.float32)

    def process(frames: np.ndarray) -> np.ndarray:
        spec = scipy.fft.rfft(frames * window, axis=-1, overwrite_x=True)
        spec *= g
        return scipy.fft.irfft(spec, n=n_fft, axis=-1, overwrite_x=True)

    ctx = n_fft - hop_length
    return Processor(overlap_add_processor(process, n_fft, hop_length, synthesis), ctx, ctx,
                     hop_length * max(1, BLOCK_FRAMES // hop_length))


def correction_processor(correction: Correction, method: str = "stft", *, n_taps: int = DEFAULT_N_TAPS,
                         design: str = "firls", phase: str = "linear", hop_length: int | None = None,
                         taps: np.ndarray | None = None) -> Processor:
    """The :class:`~micmatch.render.Processor` that applies ``correction`` by ``method`` (see
    :func:`apply_correction`); ``taps`` passes an FIR designed beforehand."""
    if method == "stft":
        return stft_processor(correction.gain, correction.n_fft, hop_length or correction.n_fft // 4)
    if method == "fir":
        if taps is None:
            taps = design_fir(correction, n_taps=n_taps, design=design, phase=phase)
        return fir_processor(taps, compensate_delay=phase == "linear")
    raise ParameterError(f"method={method!r} must be one of {METHODS}")


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
    return process_array(x, correction_processor(correction, method, n_taps=n_taps, design=design, phase=phase,
                                                 hop_length=hop_length))


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
    reports how many samples (``reduce`` is accepted as ``scale`` for one release); the returned
    :class:`~micmatch.render.FileResult` says which (a warning too unless ``warn=False``).
    A file at another rate than the correction is refused unless ``resample`` (then the correction is
    re-sampled to the file's rate, :func:`resample_correction`; the audio keeps its rate). ``taps`` passes an FIR
    designed beforehand (method ``fir``), so a batch in several processes designs it once.
    The input is only read; nothing is written under ``output`` until the file is complete.
    """
    resolve_overs(overs)
    meta = audio_io.info(path)
    if resample and meta.sample_rate != correction.sample_rate:
        correction = resample_correction(correction, meta.sample_rate)
        taps = None
    correction.check_sample_rate(meta.sample_rate, what=str(meta.path))
    if Path(output).resolve() == meta.path.resolve():
        raise AudioError(f"{meta.path}: output would overwrite the input; choose another output folder")
    processor = correction_processor(correction, method, n_taps=n_taps, design=design, phase=phase, taps=taps)
    result = render_file(meta.path, output, processor, subtype=subtype, overs=overs, verb="corrected", warn=False)
    if result.message and warn:
        warnings.warn(result.message, stacklevel=2)
    return result



"""Measure a device directly: exponential sine sweeps and recorded impulses (clicks).

Sweep method (Farina's exponential sine sweep, METHODS.md section 7):

1. :func:`micmatch.sweep.exponential_sweep` makes the test signal; play it through the device and record it.
2. :func:`micmatch.sweep.deconvolve` turns the recording into an impulse response by dividing, in the frequency domain, by the
   spectrum of the sweep that was played (a regularised inverse filter, computed with one FFT of
   ``len(recording) + len(sweep)`` points, so any recording length is O(n log n)). The recording may start late
   and run longer than the sweep: the linear response simply appears at the lag where the sweep starts.
3. The harmonic distortion of a nonlinear device lands *before* the linear response, at
   ``duration_s * ln(k) / ln(f_end / f_start)`` seconds ahead for the k-th harmonic
   (:func:`micmatch.sweep.harmonic_advance_s`), so a window that starts a few milliseconds before the main peak keeps the
   linear response and discards the distortion.
4. The windowed response's magnitude on the ``n_fft`` grid gives a ``DeviceResponse(method="sweep")``.

Impulse method: :func:`measure_impulses` finds one or several clicks in a recording, windows ``n_fft`` samples
around each, and averages their power spectra.

Scale: a sweep measurement is absolute relative to the played test signal (a device that passes it unchanged
reads 0 dB everywhere). An impulse measurement includes the click's own spectrum and level, so only its shape
is meaningful unless the click is a calibrated impulse.

Both measurements are stored with :class:`~micmatch.response.LogSpectrumStats` of one frame (the response
itself), so repeated measurements of the same device merge into the mean of their dB responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import scipy.signal

from micmatch.audio import to_mono
from micmatch.errors import MeasurementError
from micmatch.response import DeviceResponse, LogSpectrumStats, ResponseSet, SpectralConfig
from micmatch.spectral import DEFAULT_FLOOR_DB, frequencies, hann
from micmatch.sweep import REGULARIZATION_DB, deconvolve

#: Recordings whose RMS is below this (dB re full scale) are called silent. -120 dBFS is below the noise of
#: any real converter (24-bit converters reach about -115 dBFS), so only digital silence falls under it.
SILENCE_DB = -120.0
#: Default time kept before the main peak of a response: 5 ms covers the pre-peak part of measured responses
#: (MicIRP files peak 3 to 116 samples, at most 2.6 ms, after their start) and stays far from the second
#: harmonic's response, which lands 0.1 s or more earlier for any sweep of 1 s or more over 20 Hz-20 kHz.
PRE_S = 0.005
#: A response peak must stand this far (dB) above the RMS of the deconvolution away from it to be accepted as a
#: sweep. Recordings without the sweep (noise, speech) reach 15-25 dB (the largest of millions of samples); a
#: 10 s sweep recorded at 40 dB SNR gives about 90 dB.
MIN_SWEEP_PEAK_DB = 30.0
#: A click must stand this far (dB) above the RMS of the recording outside the click windows.
MIN_CLICK_PEAK_DB = 25.0


# ----------------------------------------------------------------------------------------------------------------
# Result


@dataclass
class Measurement:
    """A measured impulse and magnitude response.

    Attributes
    ----------
    method : {"sweep", "impulse"}
    impulse_response : np.ndarray [shape=(n_fft,)]
        The windowed response (for impulses: the first click's).
    response_db : np.ndarray [shape=(n_fft // 2 + 1,)]
        Magnitude response in dB (floored at ``floor_db``).
    sample_rate, n_fft : int
    onset_samples : list[int]
        Where the response (sweep start, or each click's peak) was found in the recording, in samples.
    peak_to_noise_db : float
        How far the response peak stands above the noise of the measurement.
    """

    method: str
    impulse_response: np.ndarray
    response_db: np.ndarray
    sample_rate: int
    n_fft: int
    onset_samples: list[int]
    peak_to_noise_db: float
    meta: dict = field(default_factory=dict)

    @property
    def frequencies(self) -> np.ndarray:
        return frequencies(self.sample_rate, self.n_fft)

    def device_response(self, name: str) -> DeviceResponse:
        """The measurement as a :class:`DeviceResponse` with one-frame statistics (so repeats merge)."""
        stats = LogSpectrumStats(self.response_db, self.response_db**2, 1, 1)
        meta = {**self.meta, "peak_to_noise_db": round(float(self.peak_to_noise_db), 2),
                "onset_s": [round(o / self.sample_rate, 6) for o in self.onset_samples]}
        return DeviceResponse(name, self.response_db, method=self.method, stats=stats, meta=meta)

    def to_response_set(self, name: str, *, hop_length: int | None = None) -> ResponseSet:
        """A :class:`ResponseSet` holding this device, on ``SpectralConfig(sample_rate, n_fft, hop_length)``."""
        config = SpectralConfig(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=hop_length or self.n_fft // 4)
        return ResponseSet(config, [self.device_response(name)])


def _response_window(n_fft: int, pre: int) -> np.ndarray:
    """Window for a response that starts ``pre`` samples before its peak: half-Hann fade-in over the first
    ``pre // 2`` samples, flat, half-Hann fade-out over the last ``n_fft // 8`` (the tail, where only decay and
    noise remain)."""
    w = np.ones(n_fft)
    n_in, n_out = pre // 2, n_fft // 8
    if n_in:
        w[:n_in] = hann(2 * n_in)[:n_in]
    if n_out:
        w[n_fft - n_out :] = hann(2 * n_out)[n_out:]
    return w


#: Default frequency-dependent window: at frequency f the response window spans about this many periods
#: (between :data:`MIN_WINDOW` samples and ``n_fft``), a resolution of about 1/44 octave. Short windows at high
#: frequencies keep far less noise (noise energy grows with window length) while the response of a microphone
#: has long since decayed there; on MicIRP responses at 40 dB SNR this cut the error 2-3x against one
#: ``n_fft`` window.
RESOLUTION_CYCLES = 64.0
#: Shortest window of the frequency-dependent windowing, samples.
MIN_WINDOW = 512


def windowed_power(
    response: np.ndarray,
    peak: int,
    sample_rate: int,
    *,
    n_fft: int,
    pre: int,
    resolution_cycles: float | None = RESOLUTION_CYCLES,
) -> np.ndarray:
    """Power spectrum of a response around its peak, with a frequency-dependent window.

    Windows of ``n_fft, n_fft / 2, ...`` samples down to ``max(MIN_WINDOW, 2 * pre)`` all start ``pre`` samples
    before ``peak`` (:func:`_response_window` shape) and are zero-padded to ``n_fft``. At frequency ``f`` the
    power is interpolated (linearly in log2 of the length) between the two windows closest to
    ``resolution_cycles * sample_rate / f`` samples; ``resolution_cycles=None`` uses the ``n_fft`` window only.
    Samples outside ``response`` count as zeros.

    Returns
    -------
    np.ndarray [shape=(n_fft // 2 + 1,)]
    """
    lengths = [n_fft]
    shortest = max(MIN_WINDOW, 2 * pre)
    while resolution_cycles is not None and lengths[-1] // 2 >= shortest:
        lengths.append(lengths[-1] // 2)
    segment = _segment(response, peak - pre, n_fft)
    powers = np.stack([np.abs(scipy.fft.rfft(segment[:n] * _response_window(n, pre), n=n_fft)) ** 2
                       for n in lengths])
    if len(lengths) == 1:
        return powers[0]
    freqs = frequencies(sample_rate, n_fft)
    wanted = np.clip(resolution_cycles * sample_rate / np.maximum(freqs, 1e-9), lengths[-1], n_fft)
    position = np.log2(n_fft / wanted)  # 0 at the n_fft window, 1 at n_fft / 2, ...
    lower = np.minimum(np.floor(position).astype(int), len(lengths) - 1)
    upper = np.minimum(lower + 1, len(lengths) - 1)
    frac = np.clip(position - lower, 0.0, 1.0)
    bins = np.arange(freqs.shape[0])
    return (1.0 - frac) * powers[lower, bins] + frac * powers[upper, bins]


def _check_not_silent(x: np.ndarray, name: str, expected: str) -> None:
    rms = np.sqrt(np.mean(x * x))
    level = 20.0 * np.log10(max(rms, 1e-30))
    if level < SILENCE_DB:
        raise MeasurementError(
            f"{name} is silent (RMS {level:.0f} dBFS, below {SILENCE_DB:.0f} dBFS); expected {expected}. "
            f"Check the input channel and the recording level"
        )


def _check_n_fft(n_fft: int, pre: int) -> None:
    if isinstance(n_fft, bool) or not isinstance(n_fft, (int, np.integer)) or n_fft < 16 or n_fft % 2:
        raise MeasurementError(f"n_fft={n_fft!r} must be an even integer >= 16")
    if not 0 <= pre < n_fft // 2:
        raise MeasurementError(f"pre_s gives {pre} samples; it must be non-negative and below n_fft / 2 = {n_fft // 2}")


def _segment(x: np.ndarray, start: int, n: int) -> np.ndarray:
    """``x[start : start + n]`` with zeros where the range leaves ``x``."""
    out = np.zeros(n)
    avail = x[max(start, 0) : max(start + n, 0)]
    out[max(-start, 0) : max(-start, 0) + avail.shape[0]] = avail
    return out


# ----------------------------------------------------------------------------------------------------------------
# Sweep measurement


def measure_sweep(
    recording: np.ndarray,
    sweep: np.ndarray,
    sample_rate: int,
    *,
    n_fft: int = 2048,
    pre_s: float = PRE_S,
    regularization_db: float = REGULARIZATION_DB,
    resolution_cycles: float | None = RESOLUTION_CYCLES,
    floor_db: float = DEFAULT_FLOOR_DB,
    min_peak_db: float = MIN_SWEEP_PEAK_DB,
) -> Measurement:
    """Impulse and magnitude response of a device from a recording of a sweep played through it.

    Parameters
    ----------
    recording : np.ndarray [shape=(..., n_rec)]
        The device's recording (channels are averaged). It may start before the sweep and run past its end.
    sweep : np.ndarray [shape=(n_sweep,)]
        The test signal exactly as played (e.g. from :func:`micmatch.sweep.exponential_sweep` or the WAV written by
        ``micmatch sweep``), at ``sample_rate``.
    sample_rate : int
        Hz, of both.
    n_fft : int
        Longest response window and FFT size of the result: the response has ``n_fft // 2 + 1`` bins of
        ``sample_rate / n_fft`` Hz. Use the ``n_fft`` of the responses you will combine it with.
    pre_s : float
        Time kept before the main peak (see :data:`PRE_S`); everything earlier, including every harmonic
        distortion product, is discarded.
    regularization_db : float
        Regularisation of the inverse filter (:func:`micmatch.sweep.inverse_filter_spectrum`).
    resolution_cycles : float or None
        Frequency-dependent window (:func:`windowed_power`, :data:`RESOLUTION_CYCLES`); None: one window of
        ``n_fft`` samples at every frequency.
    floor_db : float
        Floor of the dB response.
    min_peak_db : float
        Minimum peak-to-noise ratio of the deconvolved response (:data:`MIN_SWEEP_PEAK_DB`).

    Returns
    -------
    Measurement
        ``onset_samples[0]`` is the lag of the response peak in the recording relative to the sweep's first
        sample; ``impulse_response`` the ``n_fft``-sample window around it.

    Raises
    ------
    MeasurementError
        Silent recording; no sweep found; the recording misses the sweep's start or end.
    """
    rec = to_mono(recording, sample_rate, name="recording")
    sw = to_mono(sweep, sample_rate, name="sweep", min_samples=16)
    pre = int(round(pre_s * sample_rate))
    _check_n_fft(n_fft, pre)
    _check_not_silent(sw, "sweep", "the test signal that was played")
    _check_not_silent(rec, "recording", "a recording of the sweep")
    active = np.flatnonzero(np.abs(sw) > np.abs(sw).max() * 1e-3)
    sweep_start, sweep_end = int(active[0]), int(active[-1]) + 1

    response, zero_lag = deconvolve(rec, sw, regularization_db=regularization_db)
    peak = int(np.argmax(np.abs(response)))
    # Noise: RMS of the deconvolution away from the response (and from where harmonics of a short sweep land).
    away = np.ones(response.shape[-1], dtype=bool)
    away[max(peak - 2 * n_fft, 0) : peak + 2 * n_fft] = False
    rest = response[away] if away.sum() >= n_fft else response
    noise = float(np.sqrt(np.mean(rest * rest)))
    peak_db = 20.0 * np.log10(np.abs(response[peak]) / max(noise, 1e-300))
    if peak_db < min_peak_db:
        raise MeasurementError(
            f"no sweep found in the recording: the deconvolved response peaks only {peak_db:.1f} dB above its noise "
            f"(min_peak_db={min_peak_db}); expected a recording of the sweep that was played "
            f"({sw.shape[-1] / sample_rate:.2f} s). Check that the right sweep file and recording were given"
        )
    lag = peak - zero_lag
    if lag + sweep_start < -pre:
        raise MeasurementError(
            f"the recording starts {-(lag + sweep_start) / sample_rate:.3f} s after the sweep began; "
            f"expected the whole sweep: start recording before playing it"
        )
    missing = lag + sweep_end - rec.shape[-1]
    if missing > 0:
        raise MeasurementError(
            f"the recording ends {missing / sample_rate:.3f} s before the sweep does; expected the whole sweep: "
            f"record longer (leave at least {n_fft / sample_rate:.2f} s after it for the response to decay)"
        )
    power = windowed_power(response, peak, sample_rate, n_fft=n_fft, pre=pre, resolution_cycles=resolution_cycles)
    ir = _segment(response, peak - pre, n_fft) * _response_window(n_fft, pre)
    response_db = np.maximum(10.0 * np.log10(np.maximum(power, 10.0 ** (floor_db / 10.0))), floor_db)
    meta = {"n_fft": n_fft, "pre_s": pre_s, "regularization_db": regularization_db,
            "resolution_cycles": resolution_cycles,
            "sweep_duration_s": round((sweep_end - sweep_start) / sample_rate, 6)}
    return Measurement("sweep", ir, response_db, int(sample_rate), n_fft, [int(lag)], float(peak_db), meta)


# ----------------------------------------------------------------------------------------------------------------
# Impulse (click) measurement


def find_clicks(
    recording: np.ndarray,
    sample_rate: int,
    *,
    min_separation_s: float,
    threshold_db: float = -12.0,
) -> np.ndarray:
    """Sample indices of the click peaks in a 1-D recording: local maxima of ``|x|`` within ``threshold_db`` of
    the loudest, at least ``min_separation_s`` apart."""
    x = np.abs(np.asarray(recording, dtype=np.float64))
    height = x.max() * 10.0 ** (threshold_db / 20.0)
    distance = max(1, int(round(min_separation_s * sample_rate)))
    peaks, _ = scipy.signal.find_peaks(x, height=height, distance=distance)
    return peaks


def measure_impulses(
    recording: np.ndarray,
    sample_rate: int,
    *,
    n_fft: int = 2048,
    pre_s: float = PRE_S,
    min_separation_s: float | None = None,
    threshold_db: float = -12.0,
    resolution_cycles: float | None = RESOLUTION_CYCLES,
    floor_db: float = DEFAULT_FLOOR_DB,
    min_peak_db: float = MIN_CLICK_PEAK_DB,
) -> Measurement:
    """Magnitude response from a recording of one or several clicks (impulses), averaged in the power domain.

    Each click within ``threshold_db`` of the loudest one is windowed from ``pre_s`` before its peak over
    ``n_fft`` samples (the same frequency-dependent window as sweeps, :func:`windowed_power`); the power spectra of all clicks are averaged and converted
    to dB. Clicks must be at least ``min_separation_s`` apart (default: the window length) so that one window
    never holds two clicks.

    Parameters
    ----------
    recording : np.ndarray [shape=(..., n_samples)]
        Channels are averaged.
    sample_rate : int
    n_fft : int
        Window length and FFT size.

    Raises
    ------
    MeasurementError
        Silent recording, or nothing that stands ``min_peak_db`` above the rest of the recording (no click).
    """
    x = to_mono(recording, sample_rate, name="recording")
    pre = int(round(pre_s * sample_rate))
    _check_n_fft(n_fft, pre)
    _check_not_silent(x, "recording", "one or more recorded clicks or impulses")
    separation = n_fft / sample_rate if min_separation_s is None else float(min_separation_s)
    peaks = find_clicks(x, sample_rate, min_separation_s=separation, threshold_db=threshold_db)
    usable = [int(p) for p in peaks if p - pre >= 0 and p - pre + n_fft <= x.shape[-1]]
    outside = np.ones(x.shape[-1], dtype=bool)
    for p in peaks:
        outside[max(p - pre, 0) : p - pre + n_fft] = False
    background = x[outside]
    if background.size < n_fft:  # clicks everywhere: use the quietest part of each window instead
        background = np.concatenate([x[p - pre + n_fft // 2 : p - pre + n_fft] for p in usable] or [x])
    noise = np.sqrt(np.mean(background * background))
    peak_db = 20.0 * np.log10(np.abs(x[peaks]).mean() / max(noise, 1e-300)) if peaks.size else -np.inf
    if peak_db < min_peak_db or not usable:
        why = (f"the loudest peaks stand only {peak_db:.1f} dB above the rest of the recording "
               f"(min_peak_db={min_peak_db})") if peak_db < min_peak_db else (
            f"every click is closer than {pre_s} s to the start or {n_fft} samples to the end")
        raise MeasurementError(
            f"no impulse found in the recording: {why}; expected one or more short clicks (hand clap, spark, "
            f"balloon pop, electrical impulse) separated by at least {separation:.3f} s of quieter background"
        )
    power = np.mean([windowed_power(x, p, sample_rate, n_fft=n_fft, pre=pre, resolution_cycles=resolution_cycles)
                     for p in usable], axis=0)
    first = _segment(x, usable[0] - pre, n_fft) * _response_window(n_fft, pre)
    response_db = np.maximum(10.0 * np.log10(np.maximum(power, 10.0 ** (floor_db / 10.0))), floor_db)
    meta = {"n_fft": n_fft, "pre_s": pre_s, "n_clicks": len(usable), "resolution_cycles": resolution_cycles}
    return Measurement("impulse", first, response_db, int(sample_rate), n_fft, usable, float(peak_db), meta)


__all__ = ["Measurement", "find_clicks", "measure_impulses", "measure_sweep", "windowed_power"]

"""The sweep test signal: Farina's exponential sine sweep, its regularised inverse filter, and deconvolution.

:func:`exponential_sweep` makes the signal to play through a device; :func:`deconvolve` turns its recording into
an impulse response (:func:`micmatch.measure.measure_sweep` measures a device from it); the k-th harmonic's
response lands :func:`harmonic_advance_s` ahead of the linear one (METHODS.md section 7).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from micmatch.errors import MeasurementError
from micmatch.spectral import hann

#: Default Tikhonov regularisation of the inverse filter, in dB re the sweep's peak power spectrum. At -60 dB
#: the in-band gain error is below 0.005 dB wherever the sweep is within 30 dB of its peak (a 20 Hz-20 kHz
#: exponential sweep spans 30 dB), while out-of-band noise is amplified at most 1 / (2 sqrt(eps)).
REGULARIZATION_DB = -60.0


def exponential_sweep(
    sample_rate: int,
    *,
    duration_s: float = 5.0,
    f_start_hz: float = 20.0,
    f_end_hz: float | None = None,
    level_db: float = -6.0,
    fade_in_s: float = 0.05,
    fade_out_s: float = 0.01,
    silence_before_s: float = 0.0,
    silence_after_s: float = 1.0,
) -> np.ndarray:
    """Exponential (logarithmic) sine sweep: instantaneous frequency rises from ``f_start_hz`` to ``f_end_hz``.

    ``x(t) = A sin(2 pi f1 T / L (exp(t L / T) - 1))`` with ``L = ln(f2 / f1)``: equal time per octave, so its
    spectrum falls 3 dB per octave (pink) and each harmonic's response lands at a fixed time before the linear
    one (:func:`harmonic_advance_s`).

    Parameters
    ----------
    sample_rate : int
        Hz.
    duration_s : float
        Length of the sweep itself (without the silences), seconds. At least 0.1 s.
    f_start_hz, f_end_hz : float
        Band of the sweep. ``f_end_hz`` defaults to 0.48 x ``sample_rate``.
    level_db : float
        Peak amplitude in dB re full scale (at most 0).
    fade_in_s, fade_out_s : float
        Half-Hann fades at both ends (avoid the clicks of an abrupt start and stop).
    silence_before_s, silence_after_s : float
        Zeros added before and after; the silence after the sweep lets the device's response decay in the
        recording.

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float64]
    """
    f_end_hz = 0.48 * sample_rate if f_end_hz is None else float(f_end_hz)
    _check_sweep_args(sample_rate, duration_s, f_start_hz, f_end_hz, level_db, fade_in_s, fade_out_s,
                      silence_before_s, silence_after_s)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    rate = np.log(f_end_hz / f_start_hz)
    phase = 2.0 * np.pi * f_start_hz * duration_s / rate * np.expm1(t * rate / duration_s)
    x = np.sin(phase) * 10.0 ** (level_db / 20.0)
    n_in, n_out = int(round(fade_in_s * sample_rate)), int(round(fade_out_s * sample_rate))
    envelope = np.ones(n)
    if n_in:
        envelope[:n_in] = hann(2 * n_in)[:n_in]
    if n_out:
        envelope[n - n_out :] = hann(2 * n_out)[n_out:]
    x = x * envelope
    before = np.zeros(int(round(silence_before_s * sample_rate)))
    after = np.zeros(int(round(silence_after_s * sample_rate)))
    return np.concatenate([before, x, after])


def _check_sweep_args(sample_rate, duration_s, f_start_hz, f_end_hz, level_db, fade_in_s, fade_out_s,
                      silence_before_s, silence_after_s) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise MeasurementError(f"sample_rate={sample_rate!r} must be a positive integer (Hz)")
    if not duration_s >= 0.1:
        raise MeasurementError(f"duration_s={duration_s} must be at least 0.1 s; sweeps of 2-10 s are typical")
    if not 0 < f_start_hz < f_end_hz <= sample_rate / 2:
        raise MeasurementError(
            f"f_start_hz={f_start_hz}, f_end_hz={f_end_hz}: need 0 < f_start_hz < f_end_hz <= sample_rate / 2 "
            f"= {sample_rate / 2}"
        )
    if not level_db <= 0:
        raise MeasurementError(f"level_db={level_db} must be at most 0 dB re full scale")
    if fade_in_s < 0 or fade_out_s < 0 or fade_in_s + fade_out_s > duration_s:
        raise MeasurementError(
            f"fade_in_s={fade_in_s}, fade_out_s={fade_out_s} must be non-negative and fit in duration_s={duration_s}"
        )
    if silence_before_s < 0 or silence_after_s < 0:
        raise MeasurementError("silence_before_s and silence_after_s must be non-negative")


def harmonic_advance_s(order: int, *, duration_s: float, f_start_hz: float, f_end_hz: float) -> float:
    """How far (seconds) before the linear response the ``order``-th harmonic's response lands after deconvolution.

    ``duration_s * ln(order) / ln(f_end_hz / f_start_hz)``; 0 for ``order=1`` (the linear response).
    """
    if order < 1:
        raise MeasurementError(f"order={order} must be a positive integer (1 is the linear response)")
    return duration_s * np.log(order) / np.log(f_end_hz / f_start_hz)


def inverse_filter_spectrum(
    sweep: np.ndarray,
    n: int,
    *,
    regularization_db: float = REGULARIZATION_DB,
) -> np.ndarray:
    """Regularised inverse of the test signal on an ``n``-point real FFT grid.

    ``conj(X) / (|X|^2 + eps)`` with ``eps = max |X|^2 * 10 ** (regularization_db / 10)``. In the sweep's band
    this is the exact inverse of what was played (fades included); outside it the gain falls to zero instead of
    amplifying noise without bound. Farina's time-reversed, amplitude-tilted sweep is the same filter up to the
    in-band equalisation this one gets exactly.

    Returns
    -------
    np.ndarray [shape=(n // 2 + 1,), dtype=complex128]
    """
    spec = scipy.fft.rfft(np.asarray(sweep, dtype=np.float64), n=n)
    power = spec.real**2 + spec.imag**2
    eps = power.max() * 10.0 ** (regularization_db / 10.0)
    return np.conj(spec) / (power + eps)


def deconvolve(
    recording: np.ndarray,
    sweep: np.ndarray,
    *,
    regularization_db: float = REGULARIZATION_DB,
) -> tuple[np.ndarray, int]:
    """Impulse response of a recorded sweep at every lag: ``recording`` divided by ``sweep`` via one FFT.

    Parameters
    ----------
    recording : np.ndarray [shape=(n_rec,)]
    sweep : np.ndarray [shape=(n_sweep,)]
        The test signal exactly as played.

    Returns
    -------
    response : np.ndarray [shape=(n_rec + n_sweep - 1,), dtype=float64]
        ``response[k + n_sweep - 1]`` is the response at lag ``k`` (``k`` from ``-(n_sweep - 1)`` to
        ``n_rec - 1``): a device that delays the sweep by ``d`` samples gives its linear response at lag ``d``
        and its harmonic distortion at negative offsets from it.
    zero_lag : int
        Index of lag 0 in ``response`` (``n_sweep - 1``).
    """
    rec = np.asarray(recording, dtype=np.float64)
    sw = np.asarray(sweep, dtype=np.float64)
    n_out = rec.shape[-1] + sw.shape[-1] - 1
    n = scipy.fft.next_fast_len(n_out, real=True)
    inv = inverse_filter_spectrum(sw, n, regularization_db=regularization_db)
    h = scipy.fft.irfft(scipy.fft.rfft(rec, n=n) * inv, n=n)
    # Circular layout: lags 0..n_rec-1 at the start, negative lags wrapped to the end.
    zero_lag = sw.shape[-1] - 1
    response = np.concatenate([h[n - zero_lag :] if zero_lag else h[:0], h[: rec.shape[-1]]])
    return response, zero_lag


__all__ = ["REGULARIZATION_DB", "deconvolve", "exponential_sweep", "harmonic_advance_s", "inverse_filter_spectrum"]

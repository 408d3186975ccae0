"""Log-mel features and the feature-domain normalizations used against device mismatch (numpy only).

Every function here is pure: it takes a batch of spectrograms and returns a new array, never touching its input.
Spectrogram batches are ``(..., n_mels, n_frames)`` (time last); values are log power in dB unless a function says
otherwise (:func:`pcen` takes linear mel power).

* :func:`mel_filterbank` / :func:`log_mel`: librosa-compatible mel filterbank (Slaney or HTK mel scale, Slaney
  area normalisation) and log-mel spectrogram; :class:`LogMelConfig` holds the settings and travels with fitted
  statistics.
* Normalizations: spectrum correction as a per-band log offset (:func:`correction_offset_db`,
  :func:`apply_band_offset`), per-device standardization (:class:`PerDeviceStandardizer`), spectrogram-wise mean
  subtraction, cepstral mean subtraction, median-filter residual, PCEN (:data:`PCEN_PRESETS` holds two
  settings), RASTA filtering, global normalization GMS / GMSVN (:class:`GlobalNormalizer`). The per-device
  standardization, the PCEN settings and RASTA's pole follow "Spectrum Correction: Acoustic Scene
  Classification with Mismatched Recording Devices" (Interspeech 2020); the mean subtraction, median filter and
  global normalization follow the DCASE 2019 task 1B technical report that models device distortion as an
  additive constant in log-mel features.

The :mod:`micmatch.registry` lists each of them under one name with its torch twin.

Fitted normalizers keep the feature configuration they were fitted on (sample rate included) and refuse features
of another configuration with :class:`~micmatch.errors.ConfigMismatchError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal

from micmatch.audio import validate_audio
from micmatch.outputs import atomic_path
from micmatch import validate
from micmatch.errors import ConfigMismatchError, FeatureError, ProfileError, UnknownDeviceError
from micmatch.spectral import frequencies, stft

#: Smallest power (linear) that enters a log: ``10 * log10(max(S, amin))``. librosa's ``power_to_db`` default,
#: 100 dB below a full-scale bin-centred sine's power (which reads about ``(n_fft / 4) ** 2``).
DEFAULT_AMIN = 1e-10
#: Floor of every standard deviation we divide by, in dB. Far below any real spread of log-mel values, so it only
#: guards constant bands (digital silence, a band above a device's cut-off) against division by zero.
MIN_STD_DB = 1e-3
#: Bytes of float64 work per step of :func:`pcen` (it filters a few bands at a time).
_PCEN_CHUNK = 1 << 24
#: Floor of the summed filterbank weights when averaging a gain through a mel band (only empty bands reach it).
_MIN_WEIGHT = 1e-12

FORMAT = "micmatch.normalizer"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------------------------
# Mel scale and filterbank (librosa compatible)

_F_SP = 200.0 / 3.0  # Slaney scale: Hz per mel below the break frequency
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(freqs_hz: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Frequencies (Hz) to mels: the Slaney scale (linear below 1 kHz, log above; librosa's default) or HTK's."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    linear = f / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mels: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    linear = _F_SP * m
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log, linear)


def mel_frequencies(n_mels: int, *, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False) -> np.ndarray:
    """``n_mels`` frequencies (Hz) equally spaced on the mel scale from ``fmin`` to ``fmax`` inclusive."""
    lo, hi = hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk)
    return mel_to_hz(np.linspace(lo, hi, n_mels), htk=htk)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    *,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filterbank, the same matrix as ``librosa.filters.mel`` with the same options.

    Parameters
    ----------
    sample_rate : int
        Hz.
    n_fft : int
        FFT size; the filterbank acts on its ``n_fft // 2 + 1`` bins.
    n_mels : int
        Number of bands.
    fmin, fmax : float
        Edges of the lowest and highest triangle (Hz); ``fmax`` defaults to ``sample_rate / 2``.
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : {"slaney", None}
        ``"slaney"`` scales each triangle to unit area per Hz (constant energy per band); ``None`` keeps peaks at 1.

    Returns
    -------
    np.ndarray [shape=(n_mels, n_fft // 2 + 1), dtype=float64]
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    _check_mel_options(sample_rate, n_fft, n_mels, fmin, fmax, norm)
    fft_hz = frequencies(sample_rate, n_fft)
    edges_hz = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    widths = np.diff(edges_hz)
    # Distance of each FFT bin from each edge; the rising and falling slopes of triangle m meet at edge m + 1.
    offsets = edges_hz[:, np.newaxis] - fft_hz[np.newaxis, :]
    rising = -offsets[:-2] / widths[:-1, np.newaxis]
    falling = offsets[2:] / widths[1:, np.newaxis]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, np.newaxis]
    return weights


def _check_mel_options(sample_rate, n_fft, n_mels, fmin, fmax, norm) -> None:
    for name, value in (("sample_rate", sample_rate), ("n_fft", n_fft), ("n_mels", n_mels)):
        validate.positive_int(value, name, error=FeatureError)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0 + 1e-9:
        raise FeatureError(
            f"fmin={fmin}, fmax={fmax} must satisfy 0 <= fmin < fmax <= sample_rate / 2 = {sample_rate / 2}")
    if norm not in ("slaney", None):
        raise FeatureError(f"norm={norm!r} must be 'slaney' or None")


# ----------------------------------------------------------------------------------------------------------------
# Log-mel spectrogram


@dataclass(frozen=True)
class LogMelConfig:
    """Settings of a log-mel spectrogram. Stored with fitted statistics and feature files.

    ``fmax=None`` means ``sample_rate / 2``. Values are ``(20 / power) * log10(max(mel, amin))``: dB of power for
    ``power=2`` (librosa's ``power_to_db``), dB of amplitude for ``power=1`` (``amplitude_to_db``), both with
    ``ref=1`` and no ``top_db`` clipping.
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: str | None = "slaney"
    power: float = 2.0
    amin: float = DEFAULT_AMIN

    def __post_init__(self) -> None:
        fmax = self.sample_rate / 2.0 if self.fmax is None else self.fmax
        _check_mel_options(self.sample_rate, self.n_fft, self.n_mels, self.fmin, fmax, self.norm)
        validate.int_in_range(self.hop_length, "hop_length", low=1, high=self.n_fft, error=FeatureError)
        if self.power not in (1.0, 2.0):
            raise FeatureError(f"power={self.power!r} must be 1 (magnitude) or 2 (power)")
        validate.positive_float(self.amin, "amin", error=FeatureError)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def filterbank(self) -> np.ndarray:
        """The mel filterbank ``(n_mels, n_bins)`` of this configuration."""
        return mel_filterbank(self.sample_rate, self.n_fft, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax,
                              htk=self.htk, norm=self.norm)

    def band_frequencies(self) -> np.ndarray:
        """Centre frequency (Hz) of each mel band, ``(n_mels,)``."""
        fmax = self.sample_rate / 2.0 if self.fmax is None else self.fmax
        return mel_frequencies(self.n_mels + 2, fmin=self.fmin, fmax=fmax, htk=self.htk)[1:-1]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping) -> LogMelConfig:
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        return cls(**known)


def mel_spectrogram(audio: np.ndarray, sample_rate: int, *, config: LogMelConfig | None = None,
                    **options) -> np.ndarray:
    """Mel spectrogram (linear power or magnitude), ``(..., n_mels, n_frames)``.

    The STFT is centred with zero padding (``librosa.feature.melspectrogram(..., pad_mode="constant")``), periodic
    Hann window, unnormalised. Pass a :class:`LogMelConfig` or its fields as keyword options.
    """
    cfg = _resolve_config(sample_rate, config, options)
    x = validate_audio(audio, sample_rate, min_samples=1)
    spec = stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    mag = np.abs(spec) if cfg.power == 1.0 else spec.real**2 + spec.imag**2
    return np.einsum("mk,...kt->...mt", cfg.filterbank().astype(mag.dtype), mag)


def power_to_db(mel: np.ndarray, *, power: float = 2.0, amin: float = DEFAULT_AMIN) -> np.ndarray:
    """``(20 / power) * log10(max(mel, amin))``: the log step of :func:`log_mel` (``amin`` is the floor)."""
    return (20.0 / power) * np.log10(np.maximum(mel, amin))


def log_mel(audio: np.ndarray, sample_rate: int, *, config: LogMelConfig | None = None, **options) -> np.ndarray:
    """Log-mel spectrogram in dB, ``(..., n_mels, n_frames)``; librosa-compatible (see :class:`LogMelConfig`).

    Parameters
    ----------
    audio : np.ndarray [shape=(..., n_samples)]
        Float waveform(s).
    sample_rate : int
        Hz; must equal ``config.sample_rate`` when a config is given.
    config : LogMelConfig, optional
        All settings; alternatively pass ``n_fft=..., hop_length=..., n_mels=...`` etc. as keywords.

    Returns
    -------
    np.ndarray [shape=(..., n_mels, 1 + n_samples // hop_length)]
        float32 for float32 audio, float64 for float64 audio.
    """
    cfg = _resolve_config(sample_rate, config, options)
    mel = mel_spectrogram(audio, sample_rate, config=cfg)
    return power_to_db(mel, power=cfg.power, amin=cfg.amin).astype(mel.dtype, copy=False)


def _resolve_config(sample_rate: int, config: LogMelConfig | None, options: dict) -> LogMelConfig:
    if config is None:
        return LogMelConfig(sample_rate=sample_rate, **options)
    if options:
        raise FeatureError(f"pass either config= or keyword options, not both (got {sorted(options)})")
    if config.sample_rate != sample_rate:
        raise ConfigMismatchError(
            f"sample_rate={sample_rate} but config.sample_rate={config.sample_rate}; resample the audio or use a "
            f"config for {sample_rate} Hz")
    return config


# ----------------------------------------------------------------------------------------------------------------
# Spectrum correction as a per-band offset


def band_gain_db(gain_db: np.ndarray, sample_rate: int, n_fft: int, *, config: LogMelConfig) -> np.ndarray:
    """Average a gain curve on the linear FFT grid through each mel band: the band's additive log offset (dB).

    The power gain ``10 ** (gain_db / 10)`` is averaged with the band's filterbank weights, then converted back to
    dB, so a flat gain stays exactly that gain. The filterbank is built on the curve's own grid
    (``sample_rate``, ``n_fft``) with the feature configuration's mel options.

    Returns
    -------
    np.ndarray [shape=(n_mels,)]
    """
    g = np.asarray(gain_db, dtype=np.float64)
    if g.shape != (n_fft // 2 + 1,):
        raise FeatureError(f"gain_db.shape={g.shape} must be (n_fft // 2 + 1,) = ({n_fft // 2 + 1},)")
    if sample_rate != config.sample_rate:
        raise ConfigMismatchError(
            f"the correction is at sample_rate={sample_rate} but the features at {config.sample_rate}; estimate "
            f"the responses at {config.sample_rate} Hz")
    fb = mel_filterbank(sample_rate, n_fft, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
                        htk=config.htk, norm=config.norm)
    total = np.maximum(fb.sum(axis=1), _MIN_WEIGHT)
    power_gain = fb @ np.power(10.0, g / 10.0) / total
    # Empty bands (too narrow for the grid) have zero weight: they get 0 dB.
    power_gain = np.where(fb.sum(axis=1) > _MIN_WEIGHT, power_gain, 1.0)
    return 10.0 * np.log10(power_gain)


def correction_offset_db(correction=None, *, config: LogMelConfig, responses=None, device: str | None = None,
                         reference: str | None = None, **curve_options) -> np.ndarray:
    """The per-mel-band log offset (dB) that spectrum-corrects features of ``device`` towards ``reference``.

    Give either a correction (a :class:`micmatch.correct.Correction`, or anything with ``gain_db``,
    ``sample_rate`` and ``n_fft``) or ``responses`` (:class:`~micmatch.response.ResponseSet`) with ``device`` and
    ``reference``; the curve is then :func:`micmatch.correct.correction_curve` (regularised: floored, clamped,
    optionally smoothed), and ``curve_options`` (``max_boost_db``, ``max_cut_db``, ``smoothing_octaves``, ...)
    go to it.

    Returns
    -------
    np.ndarray [shape=(n_mels,)]
        Add it to a log-mel spectrogram with :func:`apply_band_offset`.
    """
    if correction is None:
        if responses is None or device is None or reference is None:
            raise FeatureError("pass a correction, or responses= with device= and reference=")
        from micmatch.correct import correction_curve

        correction = correction_curve(responses, device, reference, **curve_options)
    return band_gain_db(correction.gain_db, correction.sample_rate, correction.n_fft, config=config)


def apply_band_offset(features: np.ndarray, offset_db: np.ndarray) -> np.ndarray:
    """``features + offset_db[:, None]``: add one value per mel band to ``(..., n_mels, n_frames)`` features.

    ``offset_db`` may also be ``(..., n_mels)`` with leading axes matching the batch (one offset per item).
    """
    x = _features(features)
    off = np.asarray(offset_db, dtype=x.dtype)
    if off.shape[-1] != x.shape[-2]:
        raise FeatureError(f"offset has {off.shape[-1]} bands but the features have n_mels={x.shape[-2]}")
    return x + off[..., np.newaxis]


# ----------------------------------------------------------------------------------------------------------------
# Per-recording normalizations


def _features(features, *, min_frames: int = 1, name: str = "features") -> np.ndarray:
    x = np.asarray(features)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim < 2:
        raise FeatureError(f"{name}.shape={x.shape} must be (..., n_mels, n_frames)")
    if x.shape[-1] < min_frames:
        raise FeatureError(f"{name} has n_frames={x.shape[-1]}; at least {min_frames} are needed")
    if not np.isfinite(x).all():
        raise FeatureError(f"{name} contain NaN or infinite values; floor the log (amin) before normalizing")
    return x


def spectrogram_mean_subtraction(features: np.ndarray) -> np.ndarray:
    """Subtract each band's mean over time, per spectrogram (eq. 5 of the DCASE 2019 task 1B report
    on device distortion in log-mel features).

    Removes any per-band constant (a device's response) and with it the recording's own long-term spectrum and
    room response.
    """
    x = _features(features)
    return x - x.mean(axis=-1, keepdims=True)


def dct_matrix(n_mels: int, n_ceps: int | None = None) -> np.ndarray:
    """Orthonormal DCT-II matrix ``(n_ceps, n_mels)`` (``scipy.fft.dct(..., norm="ortho")``, as MFCCs use)."""
    n_ceps = n_mels if n_ceps is None else n_ceps
    return scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_ceps]


def cepstral_mean_subtraction(features: np.ndarray, *, n_ceps: int | None = None) -> np.ndarray:
    """Cepstral mean subtraction: cepstra (orthonormal DCT-II of the log-mel bands) minus their mean over time.

    Parameters
    ----------
    features : np.ndarray [shape=(..., n_mels, n_frames)]
        Log-mel spectrograms.
    n_ceps : int, optional
        Cepstral coefficients kept (MFCC-style truncation); all ``n_mels`` by default.

    Returns
    -------
    np.ndarray [shape=(..., n_ceps, n_frames)]
        Mean-free cepstra. With all coefficients, the inverse DCT of the result is exactly
        :func:`spectrogram_mean_subtraction` of the input (the DCT is linear and orthonormal; eq. 18 of the
        Spectrum Correction paper, Interspeech 2020).
    """
    x = _features(features)
    n_ceps = x.shape[-2] if n_ceps is None else n_ceps
    validate.int_in_range(n_ceps, "n_ceps", low=1, high=x.shape[-2], error=FeatureError)
    ceps = scipy.fft.dct(x, type=2, norm="ortho", axis=-2)[..., :n_ceps, :]
    return ceps - ceps.mean(axis=-1, keepdims=True)


def median_filter_residual(features: np.ndarray, *, size: tuple[int, int] = (7, 21)) -> np.ndarray:
    """``x - medfilt2d(x, size)`` per spectrogram (7 mel bands x 21 frames, as in the DCASE 2019
    task 1B report on device distortion in log-mel features).

    Matches ``scipy.signal.medfilt2d``: the window is zero padded at the edges.
    """
    x = _features(features)
    size = median_size(size)
    flat = x.reshape(-1, *x.shape[-2:])
    work = flat.astype(np.float64, copy=False)
    med = np.stack([scipy.signal.medfilt2d(s, size) for s in work]).astype(x.dtype, copy=False)
    return (flat - med).reshape(x.shape)


def median_size(size) -> tuple[int, int]:
    """Check a median-filter window ``(mel bands, frames)``: two odd positive integers."""
    size = tuple(size)
    if len(size) != 2:
        raise FeatureError(f"size={size} must be two odd positive integers (mel bands, frames)")
    return (validate.odd_size(size[0], "size[0] (mel bands)", error=FeatureError),
            validate.odd_size(size[1], "size[1] (frames)", error=FeatureError))


#: PCEN settings of "Spectrum Correction: Acoustic Scene Classification with Mismatched Recording Devices"
#: (Table 4): (a) T = 0.01 s, eps = 1e-6, alpha = 0.95, delta = 2, r = 0.5;
#: (b) T = 0.2 s, alpha = 1.0, the rest at librosa's defaults (eps = 1e-6, delta = 2, r = 0.5).
PCEN_PRESETS: dict[str, dict[str, float]] = {
    "a": {"time_constant": 0.01, "eps": 1e-6, "gain": 0.95, "bias": 2.0, "power": 0.5},
    "b": {"time_constant": 0.2, "eps": 1e-6, "gain": 1.0, "bias": 2.0, "power": 0.5},
}


def check_pcen_options(*, time_constant: float, eps: float, gain: float, bias: float, power: float) -> None:
    """Refuse PCEN settings outside their ranges: ``time_constant, eps, bias, power > 0`` and ``gain >= 0``."""
    for name, value in (("time_constant", time_constant), ("eps", eps), ("bias", bias), ("power", power)):
        validate.positive_float(value, name, error=FeatureError)
    validate.float_in_range(gain, "gain", low=0.0, error=FeatureError)


def check_rasta_pole(pole: float) -> float:
    """The RASTA pole, in [0, 1) for a stable filter."""
    return validate.float_in_range(pole, "pole", low=0.0, high=1.0, high_inclusive=False, error=FeatureError)


def pcen_smoothing_coefficient(sample_rate: int, hop_length: int, time_constant: float) -> float:
    """The one-pole smoother's coefficient ``b`` for a time constant (s), as librosa derives it."""
    t_frames = time_constant * sample_rate / float(hop_length)
    return float((np.sqrt(1.0 + 4.0 * t_frames**2) - 1.0) / (2.0 * t_frames**2))


def pcen(mel: np.ndarray, sample_rate: int, *, hop_length: int = 512, time_constant: float = 0.4,
         eps: float = 1e-6, gain: float = 0.98, bias: float = 2.0, power: float = 0.5) -> np.ndarray:
    """Per-channel energy normalization of a **linear** mel spectrogram (same result as ``librosa.pcen``).

    ``M[t] = (1 - b) M[t-1] + b E[t]`` with ``M[-1] = 1`` (librosa's initial state), then
    ``(E / (eps + M) ** gain + bias) ** power - bias ** power``. ``eps`` floors the divisor.

    Parameters
    ----------
    mel : np.ndarray [shape=(..., n_mels, n_frames)]
        Non-negative mel energies (e.g. :func:`mel_spectrogram`, often scaled by ``2 ** 31`` for 16-bit-like
        ranges as librosa recommends).
    sample_rate, hop_length : int
        Give the frame rate that turns ``time_constant`` (s) into the smoother coefficient.
    """
    e = _features(mel, name="mel")
    if np.any(e < 0):
        raise FeatureError("mel contains negative values; pcen takes linear energies, not dB")
    check_pcen_options(time_constant=time_constant, eps=eps, gain=gain, bias=bias, power=power)
    b = pcen_smoothing_coefficient(sample_rate, hop_length, time_constant)
    rows = e.reshape(-1, e.shape[-1])
    out = np.empty(rows.shape, dtype=e.dtype)
    # Rows (bands) are independent: a few at a time bounds the float64 temporaries of long spectrograms.
    step = max(1, _PCEN_CHUNK // (8 * rows.shape[-1]))
    for i in range(0, rows.shape[0], step):
        part = rows[i : i + step]
        zi = np.full((part.shape[0], 1), 1.0 - b)
        smooth, _ = scipy.signal.lfilter([b], [1.0, b - 1.0], part, axis=-1, zi=zi)
        agc = np.exp(-gain * (np.log(eps) + np.log1p(smooth / eps)))
        out[i : i + step] = bias**power * np.expm1(power * np.log1p(part * agc / bias))
    return out.reshape(e.shape)


#: RASTA numerator: a 5-frame slope (regression) filter, ``-(-2..2) / sum(k**2)``.
RASTA_NUMERATOR = np.array([0.2, 0.1, 0.0, -0.1, -0.2])


def rasta(features: np.ndarray, *, pole: float = 0.98) -> np.ndarray:
    """RASTA band-pass filtering of log features along time (pole 0.98 as in the Spectrum
    Correction paper, Interspeech 2020; the classic value is 0.94).

    ``y[t] = sum_k num[k] x[t-k] + pole * y[t-1]`` for ``t >= 4``; the first four frames only fill the filter's
    memory and are output as 0 (the MATLAB rastamat convention). Needs at least 5 frames.
    """
    x = _features(features, min_frames=5)
    pole = check_rasta_pole(pole)
    work = x.astype(np.float64, copy=False)
    # FIR part on full windows only (frames 4..T-1), then the one-pole recursion starting from y[3] = 0.
    fir = sum(RASTA_NUMERATOR[k] * work[..., 4 - k : work.shape[-1] - k] for k in range(5))
    y = scipy.signal.lfilter([1.0], [1.0, -pole], fir, axis=-1)
    out = np.zeros_like(work)
    out[..., 4:] = y
    return out.astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# Fitted normalizers


@dataclass
class BandStats:
    """Per-band sums over frames: ``sum``, ``sum_sq`` (float64, ``(n_mels,)``) and ``count``; add to merge."""

    sum: np.ndarray
    sum_sq: np.ndarray
    count: int

    @classmethod
    def of(cls, features: np.ndarray | Sequence[np.ndarray]) -> BandStats:
        """Statistics of a ``(n, n_mels, n_frames)`` batch or a list of ``(n_mels, n_frames_i)`` spectrograms."""
        items = [features] if isinstance(features, np.ndarray) else list(features)
        if not items:
            raise FeatureError("no features to fit on")
        total = None
        for item in items:
            x = _features(item).astype(np.float64, copy=False)
            bands = np.moveaxis(x, -2, 0).reshape(x.shape[-2], -1)
            s = cls(bands.sum(axis=1), np.einsum("ij,ij->i", bands, bands), bands.shape[1])
            total = s if total is None else total + s
        return total

    def __add__(self, other: BandStats) -> BandStats:
        if self.sum.shape != other.sum.shape:
            raise ConfigMismatchError(f"cannot merge statistics of n_mels={self.sum.size} and {other.sum.size}")
        return BandStats(self.sum + other.sum, self.sum_sq + other.sum_sq, self.count + other.count)

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.count

    @property
    def std(self) -> np.ndarray:
        """Standard deviation over frames, floored at :data:`MIN_STD_DB`."""
        var = self.sum_sq / self.count - self.mean**2
        return np.maximum(np.sqrt(np.maximum(var, 0.0)), MIN_STD_DB)

    def to_json(self) -> dict:
        return {"sum": self.sum.tolist(), "sum_sq": self.sum_sq.tolist(), "count": int(self.count)}

    @classmethod
    def from_json(cls, doc: Mapping) -> BandStats:
        from micmatch.jsoncheck import as_float_array, as_int

        total = as_float_array(doc["sum"], "sum", lo=-np.inf, hi=np.inf)
        squares = as_float_array(doc["sum_sq"], "sum_sq", size=total.size, lo=0.0, hi=np.inf)
        return cls(total, squares, as_int(doc["count"], "count", lo=1, hi=10**15))


def _config_dict(config: LogMelConfig | Mapping) -> dict:
    doc = config.to_json() if isinstance(config, LogMelConfig) else dict(config)
    if "sample_rate" not in doc:
        raise FeatureError("the feature config must include sample_rate")
    return json.loads(json.dumps(doc))  # plain JSON types, so saved and loaded configs compare equal


class _Fitted:
    """Shared plumbing of fitted normalizers: configuration check and JSON persistence."""

    kind = ""
    config: dict | None = None

    def _check(self, config: LogMelConfig | Mapping, features: np.ndarray | None = None) -> None:
        if self.config is None:
            raise FeatureError(f"this {type(self).__name__} is not fitted; call fit(features, config=...) first")
        given = _config_dict(config)
        for key in sorted(set(given) | set(self.config)):
            if given.get(key) != self.config.get(key):
                raise ConfigMismatchError(
                    f"{key}={given.get(key)!r} but the {type(self).__name__} was fitted on {key}="
                    f"{self.config.get(key)!r}; extract features with the fitted configuration or refit")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted statistics and feature configuration as JSON, atomically."""
        if self.config is None:
            raise FeatureError(f"this {type(self).__name__} is not fitted; nothing to save")
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind, "config": self.config,
               **self._state()}
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a normalizer saved by :meth:`save`; a file of another kind or version raises ProfileError."""
        doc = _read_normalizer(path)
        if doc.get("kind") != cls.kind:
            raise ProfileError(f"{path}: holds a {doc.get('kind')!r} normalizer, not {cls.kind!r}")
        return cls._from_state(doc, str(path))


def _read_normalizer(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read normalizer ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ProfileError(f"{path}: not a micmatch normalizer file (expected \"format\": \"{FORMAT}\")")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ProfileError(f"{path}: format_version={doc.get('format_version')!r} is not supported "
                           f"(this micmatch reads version {FORMAT_VERSION})")
    from micmatch.jsoncheck import first_non_finite

    where = first_non_finite(doc)
    if where is not None:  # NaN statistics would silently turn every feature into NaN
        raise ProfileError(f"{path}: {where} is NaN, infinite or too large; refit the normalizer")
    return doc


def load_normalizer(path: str | os.PathLike) -> PerDeviceStandardizer | GlobalNormalizer:
    """Read any fitted normalizer saved by micmatch."""
    doc = _read_normalizer(path)
    for cls in (PerDeviceStandardizer, GlobalNormalizer):
        if doc.get("kind") == cls.kind:
            return cls._from_state(doc, str(path))
    raise ProfileError(f"{path}: unknown normalizer kind {doc.get('kind')!r}")


class PerDeviceStandardizer(_Fitted):
    """Per-device, per-band standardization over each device's whole set (section 2.5, eq. 16 of
    "Spectrum Correction: Acoustic Scene Classification with Mismatched Recording Devices").

    ``fit`` collects, for every device, the mean (and spread) of each band over all its recordings and frames;
    ``transform`` subtracts the device's mean (and divides by its std when ``scale``). A per-band constant that a
    device adds to all its recordings cancels exactly, while differences between recordings of the same device
    (their rooms) remain: unlike :func:`spectrogram_mean_subtraction`.
    """

    kind = "per_device"

    def __init__(self, *, scale: bool = True) -> None:
        self.scale = bool(scale)
        self.stats: dict[str, BandStats] = {}
        self.config: dict | None = None

    def fit(self, features, devices: Sequence[str], *, config: LogMelConfig | Mapping) -> PerDeviceStandardizer:
        """Fit on ``(n, n_mels, n_frames)`` features (or a list of ``(n_mels, n_frames_i)``) with one device each.

        Fitting again adds to the statistics (the configuration must match).
        """
        items = _as_items(features)
        devices = [str(d) for d in devices]
        if len(devices) != len(items):
            raise FeatureError(f"got {len(items)} spectrograms but {len(devices)} device labels; give one per item")
        if self.config is not None:
            self._check(config)
        for name in sorted(set(devices)):
            s = BandStats.of([x for x, d in zip(items, devices) if d == name])
            self.stats[name] = self.stats[name] + s if name in self.stats else s
        self.config = _config_dict(config)
        return self

    @property
    def devices(self) -> list[str]:
        return sorted(self.stats)

    def mean(self, device: str) -> np.ndarray:
        return self._stats(device).mean

    def std(self, device: str) -> np.ndarray:
        return self._stats(device).std if self.scale else np.ones_like(self._stats(device).sum)

    def _stats(self, device: str) -> BandStats:
        try:
            return self.stats[device]
        except KeyError:
            known = ", ".join(self.devices) or "none"
            raise UnknownDeviceError(
                f"device {device!r} was not in the fitting set; known devices: {known}; fit on some of its "
                "recordings first") from None

    def transform(self, features, devices: Sequence[str], *, config: LogMelConfig | Mapping):
        """Standardize each item with its device's statistics; same shape (list in, list out)."""
        self._check(config)
        items = _as_items(features)
        devices = [str(d) for d in devices]
        if len(devices) != len(items):
            raise FeatureError(f"got {len(items)} spectrograms but {len(devices)} device labels; give one per item")
        out = []
        for x, d in zip(items, devices):
            x = _features(x)
            if x.shape[-2] != self.stats[self.devices[0]].sum.size:
                raise ConfigMismatchError(f"features have n_mels={x.shape[-2]} but the standardizer was fitted on "
                                          f"{self.stats[self.devices[0]].sum.size}")
            m, s = self.mean(d), self.std(d)
            out.append(((x - m[:, None]) / s[:, None]).astype(x.dtype, copy=False))
        return np.stack(out) if isinstance(features, np.ndarray) else out

    def _state(self) -> dict:
        return {"scale": self.scale, "devices": {d: s.to_json() for d, s in self.stats.items()}}

    @classmethod
    def _from_state(cls, doc: dict, source: str) -> PerDeviceStandardizer:
        try:
            out = cls(scale=bool(doc["scale"]))
            out.stats = {str(d): BandStats.from_json(s) for d, s in doc["devices"].items()}
            out.config = _config_dict(doc["config"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"{source}: invalid per-device normalizer ({exc})") from None
        return out


class GlobalNormalizer(_Fitted):
    """Global normalization with statistics of a training set (section 4.2 of the DCASE 2019
    task 1B report on device distortion in log-mel features), one value per band.

    ``mode="gmsvn"`` subtracts the mean and divides by the std; ``mode="gms"`` only subtracts the mean.
    """

    kind = "global"

    def __init__(self, mode: str = "gmsvn") -> None:
        validate.one_of(mode, "mode", ("gms", "gmsvn"), error=FeatureError)
        self.mode = mode
        self.stats: BandStats | None = None
        self.config: dict | None = None

    def fit(self, features, *, config: LogMelConfig | Mapping) -> GlobalNormalizer:
        """Fit on a batch or a list of spectrograms; fitting again adds to the statistics."""
        if self.config is not None:
            self._check(config)
        s = BandStats.of(_as_items(features))
        self.stats = s if self.stats is None else self.stats + s
        self.config = _config_dict(config)
        return self

    @property
    def mean(self) -> np.ndarray:
        self._check_fitted()
        return self.stats.mean

    @property
    def std(self) -> np.ndarray:
        self._check_fitted()
        return self.stats.std if self.mode == "gmsvn" else np.ones_like(self.stats.sum)

    def _check_fitted(self) -> None:
        if self.stats is None:
            raise FeatureError("this GlobalNormalizer is not fitted; call fit(features, config=...) first")

    def transform(self, features, *, config: LogMelConfig | Mapping):
        """Normalize a batch ``(..., n_mels, n_frames)`` or a list of spectrograms."""
        self._check(config)
        if isinstance(features, np.ndarray):
            return self._apply(features)
        return [self._apply(x) for x in features]

    def _apply(self, features) -> np.ndarray:
        x = _features(features)
        if x.shape[-2] != self.stats.sum.size:
            raise ConfigMismatchError(
                f"features have n_mels={x.shape[-2]} but the normalizer was fitted on {self.stats.sum.size}")
        return ((x - self.mean[:, None]) / self.std[:, None]).astype(x.dtype, copy=False)

    def _state(self) -> dict:
        return {"mode": self.mode, "stats": self.stats.to_json()}

    @classmethod
    def _from_state(cls, doc: dict, source: str) -> GlobalNormalizer:
        try:
            out = cls(str(doc["mode"]))
            out.stats = BandStats.from_json(doc["stats"])
            out.config = _config_dict(doc["config"])
        except (KeyError, TypeError, ValueError, AttributeError, FeatureError) as exc:
            raise ProfileError(f"{source}: invalid global normalizer ({exc})") from None
        return out


def _as_items(features) -> list[np.ndarray]:
    if isinstance(features, np.ndarray):
        x = _features(features)
        if x.ndim != 3:
            raise FeatureError(f"features.shape={x.shape} must be (n_recordings, n_mels, n_frames), or pass a list")
        return list(x)
    return [_features(x) for x in features]


__all__ = [
    "BandStats", "DEFAULT_AMIN", "FeatureError", "GlobalNormalizer", "LogMelConfig", "MIN_STD_DB", "PCEN_PRESETS",
    "PerDeviceStandardizer", "RASTA_NUMERATOR", "apply_band_offset", "band_gain_db", "cepstral_mean_subtraction",
    "correction_offset_db", "dct_matrix", "hz_to_mel", "load_normalizer", "log_mel", "median_filter_residual",
    "mel_filterbank", "mel_frequencies", "mel_spectrogram", "mel_to_hz", "pcen", "pcen_smoothing_coefficient",
    "power_to_db", "rasta", "spectrogram_mean_subtraction",
]

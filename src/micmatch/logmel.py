"""The log-mel front end: mel scale, librosa-compatible mel filterbank, mel and log-mel spectrograms (numpy only).

:class:`LogMelConfig` holds the settings of a log-mel spectrogram; it travels with fitted feature statistics and
features files, so features of another configuration are refused (:class:`~micmatch.errors.ConfigMismatchError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from micmatch import validate
from micmatch.audio import validate_audio
from micmatch.errors import ConfigMismatchError, FeatureError
from micmatch.spectral import frequencies, stft

#: Smallest power (linear) that enters a log: ``10 * log10(max(S, amin))``. librosa's ``power_to_db`` default,
#: 100 dB below a full-scale bin-centred sine's power (which reads about ``(n_fft / 4) ** 2``).
DEFAULT_AMIN = 1e-10

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


#: Longest analysis window of the default settings (s): the FFT size is the largest power of two within it.
DEFAULT_WINDOW_S = 0.064


def default_settings(sample_rate: int) -> dict[str, int]:
    """The default ``n_fft``, ``hop_length`` and ``n_mels`` for a sample rate: the one rule of every default.

    ``n_fft`` is the largest power of two within 64 ms (512 at 8 kHz, 1024 at 16 and 22.05 kHz, 2048 from 32 to
    48 kHz), ``hop_length = n_fft // 4`` (75 % overlap) and ``n_mels``
    is 40 below 16 kHz, 64 below 32 kHz and 128 from 32 kHz, so the lowest mel bands stay wider than an FFT bin.
    At 44.1 kHz this gives librosa's 2048 / 512 / 128.
    """
    rate = validate.positive_int(sample_rate, "sample_rate", error=FeatureError)
    n_fft = 1 << max(4, int(np.floor(np.log2(rate * DEFAULT_WINDOW_S))))
    n_mels = 40 if rate < 16000 else 64 if rate < 32000 else 128
    return {"n_fft": n_fft, "hop_length": n_fft // 4, "n_mels": n_mels}


@dataclass(frozen=True)
class LogMelConfig:
    """Settings of a log-mel spectrogram. Stored with fitted statistics and feature files.

    ``n_fft``, ``hop_length`` and ``n_mels`` left at None follow :func:`default_settings` for the rate
    (``hop_length`` is ``n_fft // 4`` of the given ``n_fft``). ``fmax=None`` means ``sample_rate / 2``. Values are ``(20 / power) * log10(max(mel, amin))``: dB of power for
    ``power=2`` (librosa's ``power_to_db``), dB of amplitude for ``power=1`` (``amplitude_to_db``), both with
    ``ref=1`` and no ``top_db`` clipping.
    """

    sample_rate: int = 44100
    n_fft: int | None = None
    hop_length: int | None = None
    n_mels: int | None = None
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: str | None = "slaney"
    power: float = 2.0
    amin: float = DEFAULT_AMIN

    def __post_init__(self) -> None:
        defaults = default_settings(self.sample_rate)
        if self.n_fft is not None:
            defaults["hop_length"] = max(1, int(self.n_fft) // 4)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
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


__all__ = ["DEFAULT_AMIN", "DEFAULT_WINDOW_S", "LogMelConfig", "default_settings", "hz_to_mel", "log_mel", "mel_filterbank", "mel_frequencies",
           "mel_spectrogram", "mel_to_hz", "power_to_db"]

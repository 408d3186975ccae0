"""Feature-domain normalizations against device mismatch, one pure function each (numpy only).

Spectrogram batches are ``(..., n_mels, n_frames)`` (time last); values are log power in dB unless a function says
otherwise (:func:`pcen` takes linear mel power). No function touches its input.

* Spectrum correction as one dB value per mel band, the *band dB* vector (:func:`curve_band_db`,
  :func:`correction_band_db`, :func:`apply_band_db`).
* Spectrogram-wise mean subtraction, cepstral mean subtraction, median-filter residual, PCEN
  (:data:`PCEN_PRESETS` holds two settings) and RASTA filtering. The PCEN settings and RASTA's pole follow
  "Spectrum Correction: Acoustic Scene Classification with Mismatched Recording Devices" (Interspeech 2020); the
  mean subtraction and median filter follow the DCASE 2019 task 1B technical report that models device
  distortion as an additive constant in log-mel features.

Normalizations fitted on a set of recordings live in :mod:`micmatch.feature_stats`.
"""

from __future__ import annotations

import numpy as np

from micmatch import validate
from micmatch.errors import ConfigMismatchError, FeatureError
from micmatch.logmel import LogMelConfig, mel_filterbank

#: Bytes of float64 work per step of :func:`pcen` (it filters a few bands at a time).
_PCEN_CHUNK = 1 << 24
#: Floor of the summed filterbank weights when averaging a gain through a mel band (only empty bands reach it).
_MIN_WEIGHT = 1e-12

# ----------------------------------------------------------------------------------------------------------------
# Spectrum correction as one dB value per mel band (the band dB vector)


def curve_band_db(gain_db: np.ndarray, sample_rate: int, n_fft: int, *, config: LogMelConfig) -> np.ndarray:
    """Average a gain curve on the linear FFT grid through each mel band: the band dB vector of the curve.

    The power gain ``10 ** (gain_db / 10)`` is averaged with the band's filterbank weights, then converted back to
    dB, so a flat gain stays exactly that gain. The filterbank is built on the curve's own grid
    (``sample_rate``, ``n_fft``) with the feature configuration's mel options.

    Returns
    -------
    np.ndarray [shape=(n_mels,)]
        dB per mel band; adding it to log-mel features applies the curve (:func:`apply_band_db`).
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


def correction_band_db(correction=None, *, config: LogMelConfig, responses=None, device: str | None = None,
                       reference: str | None = None, **curve_options) -> np.ndarray:
    """The band dB vector that spectrum-corrects features of ``device`` towards ``reference``.

    Give either a correction (a :class:`micmatch.correct.Correction`, or anything with ``gain_db``,
    ``sample_rate`` and ``n_fft``) or ``responses`` (:class:`~micmatch.response.ResponseSet`) with ``device`` and
    ``reference``; the curve is then :func:`micmatch.correct.correction_curve` (regularised: floored, clamped,
    optionally smoothed), and ``curve_options`` (``max_boost_db``, ``max_cut_db``, ``smoothing_octaves``, ...)
    go to it.

    Returns
    -------
    np.ndarray [shape=(n_mels,)]
        Add it to a log-mel spectrogram with :func:`apply_band_db`.
    """
    if correction is None:
        if responses is None or device is None or reference is None:
            raise FeatureError("pass a correction, or responses= with device= and reference=")
        from micmatch.correct import correction_curve

        correction = correction_curve(responses, device, reference, **curve_options)
    return curve_band_db(correction.gain_db, correction.sample_rate, correction.n_fft, config=config)


def apply_band_db(features: np.ndarray, band_db: np.ndarray) -> np.ndarray:
    """``features + band_db[:, None]``: add one value per mel band to ``(..., n_mels, n_frames)`` features.

    ``band_db`` may also be ``(..., n_mels)`` with leading axes matching the batch (one vector per item).
    """
    x = as_features(features)
    off = np.asarray(band_db, dtype=x.dtype)
    if off.shape[-1] != x.shape[-2]:
        # "offset" in the message: the word users of the previous release match on.
        raise FeatureError(f"offset has {off.shape[-1]} bands but the features have n_mels={x.shape[-2]}")
    return x + off[..., np.newaxis]


# ----------------------------------------------------------------------------------------------------------------
# Per-recording normalizations


def as_features(features, *, min_frames: int = 1, name: str = "features") -> np.ndarray:
    """``features`` as a float array ``(..., n_mels, n_frames)`` with ``min_frames`` frames, all finite."""
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
    x = as_features(features)
    return x - x.mean(axis=-1, keepdims=True)


def dct_matrix(n_mels: int, n_ceps: int | None = None) -> np.ndarray:
    """Orthonormal DCT-II matrix ``(n_ceps, n_mels)`` (``scipy.fft.dct(..., norm="ortho")``, as MFCCs use)."""
    import scipy.fft

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
    import scipy.fft

    x = as_features(features)
    n_ceps = x.shape[-2] if n_ceps is None else n_ceps
    validate.int_in_range(n_ceps, "n_ceps", low=1, high=x.shape[-2], error=FeatureError)
    ceps = scipy.fft.dct(x, type=2, norm="ortho", axis=-2)[..., :n_ceps, :]
    return ceps - ceps.mean(axis=-1, keepdims=True)


def median_filter_residual(features: np.ndarray, *, size: tuple[int, int] = (7, 21)) -> np.ndarray:
    """``x - medfilt2d(x, size)`` per spectrogram (7 mel bands x 21 frames, as in the DCASE 2019
    task 1B report on device distortion in log-mel features).

    Matches ``scipy.signal.medfilt2d``: the window is zero padded at the edges.
    """
    import scipy.signal

    x = as_features(features)
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
#: Scale applied to linear mel power before PCEN by the registry and :class:`micmatch.learn.transforms.PCEN`
#: (librosa advises integer-like magnitudes: full scale -> ``2 ** 31``).
PCEN_INPUT_SCALE = float(2**31)

PCEN_PRESETS: dict[str, dict[str, float]] = {
    "a": {"time_constant": 0.01, "eps": 1e-6, "gain": 0.95, "bias": 2.0, "power": 0.5},
    "b": {"time_constant": 0.2, "eps": 1e-6, "gain": 1.0, "bias": 2.0, "power": 0.5},
}


def linear_input_error(name: str, minimum: float) -> FeatureError:
    """The one error for dB features given to a normalization that takes linear mel energies (PCEN)."""
    return FeatureError(f"{name} takes linear mel energies (>= 0) but the input has negative values "
                        f"(min={minimum:.4g}): it looks like log-mel in dB; use the linear mel front end "
                        f"(micmatch.learn.transforms.MelSpectrogram, registry 'mel') instead of log-mel")


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
    import scipy.signal

    e = as_features(mel, name="mel")
    if e.size and e.min() < 0:
        raise linear_input_error("pcen", float(e.min()))
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
    import scipy.signal

    x = as_features(features, min_frames=5)
    pole = check_rasta_pole(pole)
    work = x.astype(np.float64, copy=False)
    # FIR part on full windows only (frames 4..T-1), then the one-pole recursion starting from y[3] = 0.
    fir = sum(RASTA_NUMERATOR[k] * work[..., 4 - k : work.shape[-1] - k] for k in range(5))
    y = scipy.signal.lfilter([1.0], [1.0, -pole], fir, axis=-1)
    out = np.zeros_like(work)
    out[..., 4:] = y
    return out.astype(x.dtype, copy=False)


__all__ = ["PCEN_INPUT_SCALE", "PCEN_PRESETS", "RASTA_NUMERATOR", "apply_band_db", "as_features", "cepstral_mean_subtraction",
           "check_pcen_options", "check_rasta_pole", "linear_input_error", "correction_band_db", "curve_band_db", "dct_matrix",
           "median_filter_residual", "median_size", "pcen", "pcen_smoothing_coefficient", "rasta",
           "spectrogram_mean_subtraction"]

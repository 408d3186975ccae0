"""Augmentations against device mismatch, each split into *draw* (parameters, from an explicit generator) and
*apply* (a pure function of the data and the parameters).

Parameters are plain dicts of JSON types (lists of floats, ints, bools, strings), one entry per batch item, so a
logged parameter set replays a batch exactly: ``apply_x(batch, json.loads(json.dumps(draw_x(rng, ...))))`` gives
the same result as applying the drawn dict. Batches are ``(batch, ..., n_samples)`` waveforms or
``(batch, ..., n_mels, n_frames)`` log-mel spectrograms in dB.

* mixup (:func:`draw_mixup`, :func:`apply_mixup`, :func:`mix_labels`), in the log or the linear domain;
* device impulse responses from a folder (:class:`DeviceIRAugment`);
* synthetic frequency-response differences (section 3.3 of "Unified Microphone Conversion: Many-to-Many Device
  Mapping via Feature-wise Linear Modulation"; :func:`draw_synthetic_response`), applied to
  waveforms as a zero-phase filter or to spectrograms as a log offset;
* FilterAugment (random per-band dB gains on mel features) and a random parametric EQ on waveforms;
* Freq-MixStyle (frequency-wise statistics mixed within a batch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from micmatch import validate
from micmatch.audio import validate_audio
from micmatch.errors import AudioError, AugmentError
from micmatch.logmel import DEFAULT_AMIN, LogMelConfig, hz_to_mel
from micmatch.device_models import DeviceModel, Section, apply_ir, list_irs, load_ir

#: Zero padding (samples) added before a waveform is filtered in the frequency domain, so the short impulse
#: response of a smooth gain curve does not wrap around the ends of the clip.
FILTER_PAD = 4096
#: Largest level correction (amplitude ratio, 40 dB) applied when an augmented clip is brought back to its input
#: level; near-silent outputs are not amplified beyond it.
MAX_LEVEL_GAIN = 100.0
#: Floor of the RMS that level matching divides by.
MIN_RMS = 1e-12
#: Variance floor in Freq-MixStyle (as in the published implementation of the method).
MIXSTYLE_EPS = 1e-6


# ----------------------------------------------------------------------------------------------------------------
# Validation helpers


def _batch_size(batch_size) -> int:
    return validate.positive_int(batch_size, "batch_size", error=AugmentError)


def _probability(p, name: str = "p") -> float:
    return validate.probability(p, name, error=AugmentError)


def _positive(value, name: str) -> float:
    return validate.positive_float(value, name, error=AugmentError)


def _int_range(value, name: str) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if isinstance(lo, bool) or not isinstance(lo, (int, np.integer)) or not isinstance(hi, (int, np.integer)) \
            or not 1 <= lo <= hi:
        raise AugmentError(f"{name}={value!r} must be a positive integer or a range (low, high) with 1 <= low <= high")
    return int(lo), int(hi)


def _float_range(value, name: str, *, min_value: float = 0.0) -> tuple[float, float]:
    lo, hi = tuple(value)
    if not min_value <= lo <= hi:
        raise AugmentError(f"{name}={value!r} must be a range (low, high) with {min_value} <= low <= high")
    return float(lo), float(hi)


def _check_batch(x: np.ndarray, params: Mapping, key: str, name: str) -> int:
    try:
        n = len(params[key])
    except (KeyError, TypeError):
        raise AugmentError(f"params lack {key!r}; pass the dict returned by the matching draw function") from None
    if x.ndim < 2 or x.shape[0] != n:
        raise AugmentError(f"{name}.shape={x.shape}: the first axis must be the batch of {n} items the params were "
                           "drawn for")
    return n


# ----------------------------------------------------------------------------------------------------------------
# mixup


def _kept(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    """Which of ``n`` items an augmentation changes (probability ``p`` each). With ``p = 1`` nothing is drawn, so
    the generator's stream is the same as without the option."""
    p = _probability(p)
    return np.ones(n, dtype=bool) if p >= 1.0 else rng.random(n) < p


def draw_mixup(rng: np.random.Generator, batch_size: int, *, alpha: float = 0.4, p: float = 1.0) -> dict:
    """Mixing weights ``lam ~ Beta(alpha, alpha)`` (one per item) and a partner permutation.

    Each item is mixed with probability ``p``; the others get ``lam = 1`` (unchanged).

    Returns
    -------
    dict
        ``{"lam": [float] * batch, "perm": [int] * batch}``: item ``i`` becomes
        ``lam[i] x[i] + (1 - lam[i]) x[perm[i]]``.
    """
    n = _batch_size(batch_size)
    alpha = _positive(alpha, "alpha")
    lam = rng.beta(alpha, alpha, size=n)
    perm = rng.permutation(n)
    lam = np.where(_kept(rng, n, p), lam, 1.0)
    return {"lam": [float(v) for v in lam], "perm": [int(v) for v in perm]}


def apply_mixup(batch: np.ndarray, params: Mapping, *, domain: str = "log", amin: float = DEFAULT_AMIN) -> np.ndarray:
    """Mix items of a batch with the drawn partners.

    Parameters
    ----------
    batch : np.ndarray [shape=(batch, ...)]
        Waveforms or log-mel spectrograms (dB).
    params : dict
        From :func:`draw_mixup`.
    domain : {"log", "linear"}
        ``"log"`` mixes the values as given (right for waveforms and for mixing log features directly);
        ``"linear"`` treats the values as dB of power, mixes ``10 ** (x / 10)`` and returns dB again, floored at
        ``amin`` (the Spectrum Correction paper, Interspeech 2020, mixes this way, before the log).
    """
    x = np.asarray(batch)
    n = _check_batch(x, params, "lam", "batch")
    lam = np.asarray(params["lam"], dtype=np.float64).reshape((n,) + (1,) * (x.ndim - 1))
    perm = np.asarray(params["perm"], dtype=np.int64)
    if domain == "log":
        out = lam * x + (1.0 - lam) * x[perm]
    elif domain == "linear":
        p = np.power(10.0, x.astype(np.float64) / 10.0)
        out = 10.0 * np.log10(np.maximum(lam * p + (1.0 - lam) * p[perm], amin))
    else:
        raise AugmentError(f"domain={domain!r} must be 'log' or 'linear'")
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64, copy=False)


def mix_labels(labels: np.ndarray, params: Mapping, *, n_classes: int | None = None) -> np.ndarray:
    """Mixed soft labels ``lam y + (1 - lam) y[perm]``, ``(batch, n_classes)`` float64.

    ``labels`` are class indices ``(batch,)`` (then ``n_classes`` is needed) or one-hot / soft ``(batch, n_classes)``.
    """
    y = np.asarray(labels)
    if y.ndim == 1:
        if n_classes is None:
            raise AugmentError("labels are class indices: pass n_classes= to build one-hot targets")
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise AugmentError(f"labels must lie in 0..n_classes-1 = 0..{n_classes - 1}")
        y = np.eye(n_classes)[y.astype(np.int64)]
    n = _check_batch(y, params, "lam", "labels")
    lam = np.asarray(params["lam"], dtype=np.float64).reshape(n, 1)
    perm = np.asarray(params["perm"], dtype=np.int64)
    return lam * y + (1.0 - lam) * y[perm]


# ----------------------------------------------------------------------------------------------------------------
# Frequency-domain filtering of waveforms (shared by the synthetic response and the parametric EQ)


def filter_grid(n_samples: int, sample_rate: int) -> tuple[int, np.ndarray]:
    """FFT length and bin frequencies (Hz) used to filter a clip of ``n_samples``: ``n + FILTER_PAD``, fast size."""
    import scipy.fft

    n_fft = scipy.fft.next_fast_len(int(n_samples) + FILTER_PAD, real=True)
    return n_fft, np.fft.rfftfreq(n_fft, 1.0 / sample_rate)


def apply_gain_curve(audio: np.ndarray, gain_db: np.ndarray, n_fft: int) -> np.ndarray:
    """Zero-phase filter: multiply the zero-padded spectrum by ``10 ** (gain_db / 20)``; same length and dtype.

    Parameters
    ----------
    audio : np.ndarray [shape=(batch, ..., n_samples)]
    gain_db : np.ndarray [shape=(batch, n_fft // 2 + 1)]
        One curve per batch item, on the grid of :func:`filter_grid`.
    """
    import scipy.fft

    x = np.asarray(audio)
    g = np.power(10.0, np.asarray(gain_db, dtype=np.float64) / 20.0)
    g = g.reshape(g.shape[:1] + (1,) * (x.ndim - 2) + g.shape[1:])
    spec = scipy.fft.rfft(x.astype(np.float64), n=n_fft, axis=-1)
    y = scipy.fft.irfft(spec * g, n=n_fft, axis=-1)[..., : x.shape[-1]]
    return y.astype(x.dtype, copy=False)


def mel_position(freqs_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Position of frequencies on the (Slaney) mel axis as a fraction of Nyquist's mel: 0 at DC, 1 at Nyquist.

    Synthetic responses are defined on this axis, so the same parameters give the same curve for waveforms (on the
    FFT grid) and for log-mel features (at each band's centre frequency).
    """
    return np.clip(hz_to_mel(freqs_hz) / hz_to_mel(sample_rate / 2.0), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Synthetic frequency-response differences (section 3.3 of the Unified Microphone Conversion paper)


def draw_synthetic_response(rng: np.random.Generator, batch_size: int, *, n_bands: int | tuple[int, int] = (4, 8),
                            range_db: tuple[float, float] = (0.0, 10.0), p: float = 1.0) -> dict:
    """Draw random response-difference curves as section 3.3 of "Unified Microphone Conversion: Many-to-Many
    Device Mapping via Feature-wise Linear Modulation" describes.

    The frequency range (on the mel axis of :func:`mel_position`) is split into ``n_bands`` equal bands; each of the
    ``n_bands + 1`` boundaries gets a magnitude drawn uniformly from ``range_db`` and a random sign; the curve
    interpolates linearly between boundaries.

    Parameters
    ----------
    n_bands : int or (low, high)
        Bands per curve, fixed or drawn uniformly from ``low..high`` inclusive.
    range_db : (low, high)
        Range of the boundary magnitudes in dB (``0 <= low <= high``).
    p : float
        Probability that an item is changed; the others get a flat 0 dB curve.

    Returns
    -------
    dict
        ``{"positions": [[float]] , "values_db": [[float]]}``, one list of ``n_bands + 1`` per item.
    """
    n = _batch_size(batch_size)
    lo_b, hi_b = _int_range(n_bands, "n_bands")
    lo_db, hi_db = _float_range(range_db, "range_db")
    positions, values = [], []
    for _ in range(n):
        k = int(rng.integers(lo_b, hi_b + 1))
        magnitude = rng.uniform(lo_db, hi_db, size=k + 1)
        sign = np.where(rng.random(k + 1) < 0.5, -1.0, 1.0)
        positions.append([float(v) for v in np.linspace(0.0, 1.0, k + 1)])
        values.append([float(v) for v in sign * magnitude])
    for i in np.flatnonzero(~_kept(rng, n, p)):
        values[i] = [0.0] * len(values[i])
    return {"positions": positions, "values_db": values}


def synthetic_response_db(params: Mapping, positions: np.ndarray) -> np.ndarray:
    """Evaluate the drawn curves at ``positions`` (0..1 on the mel axis): ``(batch, len(positions))`` dB."""
    try:
        pairs = list(zip(params["positions"], params["values_db"], strict=True))
    except (KeyError, TypeError, ValueError):
        raise AugmentError("params need equal-length 'positions' and 'values_db' lists; pass the dict returned "
                           "by draw_synthetic_response") from None
    return np.stack([np.interp(positions, np.asarray(p, float), np.asarray(v, float)) for p, v in pairs])


def apply_synthetic_response(audio: np.ndarray, sample_rate: int, params: Mapping) -> np.ndarray:
    """Filter waveforms ``(batch, ..., n_samples)`` by the drawn curves (zero phase, same length and dtype)."""
    x = validate_audio(audio, sample_rate)
    _check_batch(x, params, "values_db", "audio")
    n_fft, freqs = filter_grid(x.shape[-1], sample_rate)
    return apply_gain_curve(x, synthetic_response_db(params, mel_position(freqs, sample_rate)), n_fft)


def synthetic_band_db(params: Mapping, config: LogMelConfig) -> np.ndarray:
    """The drawn curves at the mel bands' centre frequencies: one band dB vector per item, ``(batch, n_mels)``."""
    return synthetic_response_db(params, mel_position(config.band_frequencies(), config.sample_rate))




def apply_synthetic_response_features(features: np.ndarray, params: Mapping, *, config: LogMelConfig) -> np.ndarray:
    """Add the drawn curves to log-mel features ``(batch, ..., n_mels, n_frames)`` as band dB vectors."""
    x = np.asarray(features)
    _check_batch(x, params, "values_db", "features")
    if x.shape[-2] != config.n_mels:
        raise AugmentError(f"features have {x.shape[-2]} bands but config.n_mels={config.n_mels}")
    off = synthetic_band_db(params, config)
    off = off.reshape(off.shape[:1] + (1,) * (x.ndim - 3) + off.shape[1:] + (1,))
    return (x + off).astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# FilterAugment


def draw_filter_augment(rng: np.random.Generator, batch_size: int, *, n_bands: int | tuple[int, int] = (3, 5),
                        gain_db: float = 6.0, mode: str = "step", p: float = 1.0) -> dict:
    """Random per-band dB gains on the mel axis (FilterAugment).

    Band edges are drawn uniformly on the normalised band axis (0 = lowest mel band, 1 = highest), gains uniformly
    from ``[-gain_db, gain_db]``. ``mode="step"`` holds one gain per band; ``"linear"`` puts a gain on every edge and
    interpolates. Each item is changed with probability ``p``; the others get 0 dB gains.

    Returns
    -------
    dict
        ``{"mode": str, "edges": [[float]], "gains_db": [[float]]}``: ``n + 1`` edges (first 0, last 1) and ``n``
        gains (step) or ``n + 1`` gains (linear) per item.
    """
    n = _batch_size(batch_size)
    lo, hi = _int_range(n_bands, "n_bands")
    gain_db = _positive(gain_db, "gain_db")
    if mode not in ("step", "linear"):
        raise AugmentError(f"mode={mode!r} must be 'step' or 'linear'")
    edges, gains = [], []
    for _ in range(n):
        k = int(rng.integers(lo, hi + 1))
        inner = np.sort(rng.random(k - 1))
        edges.append([0.0, *(float(v) for v in inner), 1.0])
        gains.append([float(v) for v in rng.uniform(-gain_db, gain_db, size=k + (mode == "linear"))])
    for i in np.flatnonzero(~_kept(rng, n, p)):
        gains[i] = [0.0] * len(gains[i])
    return {"mode": mode, "edges": edges, "gains_db": gains}


def filter_augment_band_db(params: Mapping, n_mels: int) -> np.ndarray:
    """The drawn gains on ``n_mels`` bands: one band dB vector per item, ``(batch, n_mels)``."""
    pos = np.linspace(0.0, 1.0, n_mels)
    out = []
    for e, g in zip(params["edges"], params["gains_db"], strict=True):
        e, g = np.asarray(e, float), np.asarray(g, float)
        if params["mode"] == "linear":
            out.append(np.interp(pos, e, g))
        else:
            band = np.clip(np.searchsorted(e, pos, side="right") - 1, 0, g.size - 1)
            out.append(g[band])
    return np.stack(out)


def apply_filter_augment(features: np.ndarray, params: Mapping) -> np.ndarray:
    """Add the drawn gains to log-mel features ``(batch, ..., n_mels, n_frames)`` (dB)."""
    x = np.asarray(features)
    _check_batch(x, params, "gains_db", "features")
    off = filter_augment_band_db(params, x.shape[-2])
    off = off.reshape(off.shape[:1] + (1,) * (x.ndim - 3) + off.shape[1:] + (1,))
    return (x + off).astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# Random parametric EQ on waveforms


def draw_parametric_eq(rng: np.random.Generator, batch_size: int, sample_rate: int, *,
                       n_filters: int | tuple[int, int] = (1, 3), gain_db: float = 6.0,
                       freq_range_hz: tuple[float, float] = (100.0, 8000.0),
                       q_range: tuple[float, float] = (0.5, 3.0), p: float = 1.0) -> dict:
    """Random peaking-EQ sections: centre log-uniform in ``freq_range_hz`` (capped at 0.45 x the rate), gain
    uniform in ``[-gain_db, gain_db]``, Q log-uniform in ``q_range``. Each item is filtered with probability
    ``p``; the others get no section.

    Returns
    -------
    dict
        ``{"sample_rate": int, "sections": [[{"freq_hz", "gain_db", "q"}, ...], ...]}``.
    """
    n = _batch_size(batch_size)
    lo, hi = _int_range(n_filters, "n_filters")
    gain_db = _positive(gain_db, "gain_db")
    f_lo, f_hi = _float_range(freq_range_hz, "freq_range_hz", min_value=1e-3)
    f_hi = min(f_hi, 0.45 * sample_rate)
    if f_lo >= f_hi:
        raise AugmentError(f"freq_range_hz={freq_range_hz} lies above 0.45 x sample_rate={sample_rate}")
    q_lo, q_hi = _float_range(q_range, "q_range", min_value=1e-3)
    items = []
    for _ in range(n):
        k = int(rng.integers(lo, hi + 1))
        freq = np.exp(rng.uniform(np.log(f_lo), np.log(f_hi), size=k))
        gain = rng.uniform(-gain_db, gain_db, size=k)
        q = np.exp(rng.uniform(np.log(q_lo), np.log(q_hi), size=k))
        items.append([{"freq_hz": float(f), "gain_db": float(g), "q": float(v)} for f, g, v in zip(freq, gain, q)])
    for i in np.flatnonzero(~_kept(rng, n, p)):
        items[i] = []
    return {"sample_rate": int(sample_rate), "sections": items}


def parametric_eq_db(params: Mapping, freqs_hz: np.ndarray) -> np.ndarray:
    """Magnitude (dB) of each item's EQ at ``freqs_hz``: ``(batch, len(freqs_hz))`` (RBJ peaking biquads)."""
    sr = int(params["sample_rate"])
    out = []
    for sections in params["sections"]:
        model = DeviceModel("eq", tuple(Section("peak", s["freq_hz"], s["gain_db"], s["q"]) for s in sections))
        out.append(model.magnitude_db(freqs_hz, sr))
    return np.stack(out)


def apply_parametric_eq(audio: np.ndarray, sample_rate: int, params: Mapping) -> np.ndarray:
    """Filter waveforms ``(batch, ..., n_samples)`` by the drawn EQs' magnitudes (zero phase, same length)."""
    x = validate_audio(audio, sample_rate)
    _check_batch(x, params, "sections", "audio")
    if int(params["sample_rate"]) != sample_rate:
        raise AugmentError(f"the EQ was drawn for sample_rate={params['sample_rate']} but the audio is at "
                           f"{sample_rate}; draw it again for this rate")
    n_fft, freqs = filter_grid(x.shape[-1], sample_rate)
    return apply_gain_curve(x, parametric_eq_db(params, freqs), n_fft)


# ----------------------------------------------------------------------------------------------------------------
# Device impulse responses


def draw_device_ir(rng: np.random.Generator, batch_size: int, irs: Sequence[str | os.PathLike], *,
                   p: float = 0.5) -> dict:
    """For each item, with probability ``p``, one impulse-response file drawn uniformly from ``irs``.

    Returns
    -------
    dict
        ``{"ir": [str | None] * batch}`` (``None``: leave the item as it is).
    """
    n = _batch_size(batch_size)
    p = _probability(p)
    if not irs:
        raise AugmentError("irs is empty: give at least one impulse-response file")
    use = rng.random(n) < p
    pick = rng.integers(0, len(irs), size=n)
    return {"ir": [str(irs[j]) if u else None for u, j in zip(use, pick)]}


def match_level(augmented: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Scale each item (first axis) of ``augmented`` to the RMS of ``original``; gain clamped to ``MAX_LEVEL_GAIN``."""
    axes = tuple(range(1, original.ndim))
    rms_in = np.sqrt(np.mean(np.square(original, dtype=np.float64), axis=axes, keepdims=True))
    rms_out = np.sqrt(np.mean(np.square(augmented, dtype=np.float64), axis=axes, keepdims=True))
    gain = np.minimum(rms_in / np.maximum(rms_out, MIN_RMS), MAX_LEVEL_GAIN)
    return (augmented * gain).astype(augmented.dtype, copy=False)


def apply_device_ir(audio: np.ndarray, sample_rate: int, params: Mapping) -> np.ndarray:
    """Convolve each item with its drawn IR (resampled to ``sample_rate`` once and cached by
    :func:`micmatch.simulate.load_ir`), delay compensated; each item keeps its length and RMS level."""
    x = validate_audio(audio, sample_rate)
    _check_batch(x, params, "ir", "audio")
    out = x.copy()
    for i, path in enumerate(params["ir"]):
        if path is None:
            continue
        ir = load_ir(path, sample_rate)
        out[i] = match_level(apply_ir(x[i : i + 1], ir, sample_rate), x[i : i + 1])[0]
    return out


class DeviceIRAugment:
    """Device impulse-response augmentation from a folder of IR files (e.g. MicIRP): probability ``p`` per item.

    The IR list is read once; each IR is resampled to the audio's rate on first use and cached.
    """

    def __init__(self, irs: str | os.PathLike | Sequence[str | os.PathLike], *, p: float = 0.5) -> None:
        if isinstance(irs, (str, os.PathLike)):
            self.irs = [str(f) for f in list_irs(irs)]
        else:
            self.irs = [str(f) for f in irs]
            missing = [f for f in self.irs if not Path(f).is_file()]
            if missing:
                raise AudioError(f"{missing[0]}: impulse response file not found")
        self.p = _probability(p)

    def draw(self, rng: np.random.Generator, batch_size: int) -> dict:
        return draw_device_ir(rng, batch_size, self.irs, p=self.p)

    def apply(self, audio: np.ndarray, sample_rate: int, params: Mapping) -> np.ndarray:
        return apply_device_ir(audio, sample_rate, params)

    def __call__(self, audio: np.ndarray, sample_rate: int, *, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Draw and apply in one step; returns the augmented batch and the parameters (log them to replay)."""
        params = self.draw(rng, np.asarray(audio).shape[0])
        return self.apply(audio, sample_rate, params), params


# ----------------------------------------------------------------------------------------------------------------
# Freq-MixStyle


def draw_freq_mixstyle(rng: np.random.Generator, batch_size: int, *, p: float = 0.5, alpha: float = 0.3) -> dict:
    """Whether to mix this batch (probability ``p``), ``lam ~ Beta(alpha, alpha)`` per item, and partners.

    Returns
    -------
    dict
        ``{"apply": bool, "lam": [float] * batch, "perm": [int] * batch}``.
    """
    n = _batch_size(batch_size)
    p = _probability(p)
    alpha = _positive(alpha, "alpha")
    apply = bool(rng.random() < p)
    lam = rng.beta(alpha, alpha, size=n)
    perm = rng.permutation(n)
    return {"apply": apply, "lam": [float(v) for v in lam], "perm": [int(v) for v in perm]}


def apply_freq_mixstyle(features: np.ndarray, params: Mapping, *, eps: float = MIXSTYLE_EPS) -> np.ndarray:
    """Freq-MixStyle on ``(batch, ..., n_mels, n_frames)``: per item and band, the mean and std over every other
    axis (channels, frames) are replaced by a ``lam`` mix with the partner's; ``eps`` floors the variance."""
    x = np.asarray(features)
    n = _check_batch(x, params, "lam", "features")
    if x.ndim < 3:
        raise AugmentError(f"features.shape={x.shape} must be (batch, ..., n_mels, n_frames)")
    if not params["apply"]:
        return x.copy()
    axes = tuple(a for a in range(1, x.ndim) if a != x.ndim - 2)
    work = x.astype(np.float64)
    mu = work.mean(axis=axes, keepdims=True)
    sig = np.sqrt(work.var(axis=axes, keepdims=True) + eps)
    lam = np.asarray(params["lam"], dtype=np.float64).reshape((n,) + (1,) * (x.ndim - 1))
    perm = np.asarray(params["perm"], dtype=np.int64)
    mu_mix = lam * mu + (1.0 - lam) * mu[perm]
    sig_mix = lam * sig + (1.0 - lam) * sig[perm]
    return ((work - mu) / sig * sig_mix + mu_mix).astype(x.dtype, copy=False)


# Old names of the band dB functions, kept for one release (they go in the next one).
synthetic_response_offsets, filter_augment_offsets = synthetic_band_db, filter_augment_band_db

__all__ = [
    "AugmentError", "DeviceIRAugment", "FILTER_PAD", "MAX_LEVEL_GAIN", "MIN_RMS", "MIXSTYLE_EPS", "apply_device_ir",
    "apply_filter_augment", "apply_freq_mixstyle", "apply_gain_curve", "apply_mixup", "apply_parametric_eq",
    "apply_synthetic_response", "apply_synthetic_response_features", "draw_device_ir", "draw_filter_augment",
    "draw_freq_mixstyle", "draw_mixup", "draw_parametric_eq", "draw_synthetic_response", "filter_augment_band_db",
    "filter_augment_offsets", "filter_grid", "match_level", "mel_position", "mix_labels", "parametric_eq_db",
    "synthetic_band_db", "synthetic_response_db", "synthetic_response_offsets",
]

"""Make audio sound as if a given device recorded it: measured impulse responses, parametric responses,
noise floors and band limits.

Two kinds of device are supported:

* **Measured devices**: an impulse-response file (e.g. a folder such as MicIRP's). :func:`load_ir` reads it,
  resamples it to the audio's rate (once; cached) and finds its delay; :func:`apply_ir` convolves with the delay
  compensated, so the output stays sample-aligned with the input and keeps its length.
* **Parametric devices** (:class:`DeviceModel`): a magnitude response built from a few filter sections (high-pass,
  low-pass, shelves, peaks), a noise floor and an optional soft clipper. :data:`BUILTIN_DEVICES` holds documented,
  plausible phone/laptop/headset/studio models used by ``micmatch demo``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal

from micmatch.audio import _check_rate, find_audio_files, load, resample, validate_audio
from micmatch.errors import AudioError, ParameterError

# ----------------------------------------------------------------------------------------------------------------
# Measured impulse responses


@dataclass(frozen=True)
class ImpulseResponse:
    """A device impulse response at a given sample rate.

    ``delay`` is the index of the largest absolute sample: the bulk delay removed by :func:`apply_ir`.
    ``ir`` is normalised to unit energy (sum of squares 1) unless loaded with ``normalize=False``, so white
    noise keeps its level and devices differ only in the shape of their response.
    """

    name: str
    ir: np.ndarray
    sample_rate: int
    delay: int
    path: Path | None = None

    def magnitude_db(self, n_fft: int) -> np.ndarray:
        """Magnitude response in dB on the ``n_fft // 2 + 1`` bin grid (the IR is truncated/padded to ``n_fft``)."""
        h = np.zeros(n_fft)
        n = min(n_fft, self.ir.shape[-1])
        # Centre the window on the peak so truncation keeps the main part of the response.
        start = max(0, min(self.delay - n // 8, self.ir.shape[-1] - n))
        h[:n] = self.ir[start : start + n]
        return 20.0 * np.log10(np.maximum(np.abs(np.fft.rfft(h)), 1e-12))


@functools.lru_cache(maxsize=256)
def _load_ir_cached(path: str, sample_rate: int | None, normalize: bool, mtime: float) -> ImpulseResponse:
    audio, sr = load(path, channels="first", dtype="float64")
    h = audio[0]
    if not np.any(h):
        raise AudioError(f"{path}: impulse response is all zeros")
    if sample_rate is not None and sample_rate != sr:
        h = resample(h, sr, sample_rate)
        sr = sample_rate
    if normalize:
        h = h / np.sqrt(np.sum(h * h))
    h.setflags(write=False)
    return ImpulseResponse(Path(path).stem, h, int(sr), int(np.argmax(np.abs(h))), Path(path))


def load_ir(path: str | os.PathLike, sample_rate: int | None = None, *, normalize: bool = True) -> ImpulseResponse:
    """Read an impulse-response file (first channel), resampled to ``sample_rate`` if given.

    Results are cached per (path, rate, normalize, modification time), so augmentation loops pay the
    resampling once.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"{p}: impulse response file not found")
    return _load_ir_cached(str(p), sample_rate, normalize, p.stat().st_mtime)


def list_irs(folder: str | os.PathLike) -> list[Path]:
    """Impulse-response files in a folder (recursively), sorted by path. Errors when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError(f"{folder}: impulse-response folder not found")
    files = find_audio_files([folder])
    if not files:
        raise AudioError(f"{folder}: no audio files (impulse responses) found")
    return files


def apply_ir(audio: np.ndarray, ir: ImpulseResponse | np.ndarray, sample_rate: int | None = None, *,
             delay: int | None = None) -> np.ndarray:
    """Convolve ``(..., n_samples)`` audio with an impulse response, delay compensated, same length as the input.

    Parameters
    ----------
    audio : np.ndarray [shape=(..., n_samples)]
    ir : ImpulseResponse or np.ndarray [shape=(n_taps,)]
        An :class:`ImpulseResponse` must have the audio's ``sample_rate`` (when given); a raw array is used as is.
    delay : int, optional
        Samples of bulk delay to remove; defaults to the IR's peak index.
    """
    x = validate_audio(audio, sample_rate)
    if isinstance(ir, ImpulseResponse):
        if sample_rate is not None and ir.sample_rate != sample_rate:
            raise AudioError(
                f"impulse response {ir.name!r} is at {ir.sample_rate} Hz but the audio at {sample_rate} Hz; "
                f"load it with load_ir(path, sample_rate={sample_rate})"
            )
        h, d = ir.ir, ir.delay if delay is None else delay
    else:
        h = np.asarray(ir, dtype=np.float64)
        d = int(np.argmax(np.abs(h))) if delay is None else delay
    n = x.shape[-1]
    y = scipy.signal.oaconvolve(x, h.astype(x.dtype, copy=False).reshape((1,) * (x.ndim - 1) + (-1,)), axes=-1)
    return np.ascontiguousarray(y[..., d : d + n]).astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# Parametric device models


@dataclass(frozen=True)
class Section:
    """One filter section of a parametric response.

    kind: ``highpass`` / ``lowpass`` (Butterworth of ``order``), ``peak`` (RBJ peaking EQ), ``lowshelf`` /
    ``highshelf`` (RBJ shelves, slope 1).
    """

    kind: str
    freq_hz: float
    gain_db: float = 0.0
    q: float = 0.707
    order: int = 2


@dataclass(frozen=True)
class DeviceModel:
    """A plausible recording device: response sections, a noise floor and an optional soft clipper."""

    name: str
    sections: tuple[Section, ...] = ()
    noise_floor_db: float | None = None
    drive_db: float | None = None
    description: str = ""
    gain_db: float = 0.0

    def sos(self, sample_rate: int) -> np.ndarray:
        """The response as second-order sections at ``sample_rate`` (sections above Nyquist are skipped)."""
        return _sections_to_sos(self.sections, sample_rate)

    def magnitude_db(self, freqs: np.ndarray, sample_rate: int) -> np.ndarray:
        """The true magnitude response (dB) at ``freqs`` (Hz), noise and clipping excluded."""
        sos = self.sos(sample_rate)
        if sos.shape[0] == 0:
            return np.full(np.shape(freqs), self.gain_db)
        _, h = scipy.signal.sosfreqz(sos, worN=np.asarray(freqs, dtype=np.float64), fs=sample_rate)
        return 20.0 * np.log10(np.maximum(np.abs(h), 1e-12)) + self.gain_db

    def record(self, audio: np.ndarray, sample_rate: int, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """Pass audio through the device: response filter (zero phase), soft clipping, then noise floor."""
        x = validate_audio(audio, sample_rate).astype(np.float64)
        sos = self.sos(sample_rate)
        y = _zero_phase(sos, x)
        y = y * 10.0 ** (self.gain_db / 20.0)
        if self.drive_db is not None:
            g = 10.0 ** (self.drive_db / 20.0)
            y = np.tanh(g * y) / g
        if self.noise_floor_db is not None:
            if rng is None:
                raise ParameterError(f"device {self.name!r} has a noise floor: pass rng=np.random.default_rng(seed)")
            y = y + rng.standard_normal(y.shape) * 10.0 ** (self.noise_floor_db / 20.0)
        return y.astype(np.asarray(audio).dtype, copy=False)


def _zero_phase(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Filter with the magnitude response |H| (not |H|^2) and zero phase: FFT-domain, circular padding avoided."""
    if sos.shape[0] == 0:
        return x.copy()
    n = x.shape[-1]
    n_fft = scipy.fft.next_fast_len(n + 8192, real=True)
    _, h = scipy.signal.sosfreqz(sos, worN=n_fft // 2 + 1, whole=False)
    X = scipy.fft.rfft(x, n=n_fft, axis=-1)
    y = scipy.fft.irfft(X * np.abs(h), n=n_fft, axis=-1)[..., :n]
    return y


def _sections_to_sos(sections: Sequence[Section], sample_rate: int) -> np.ndarray:
    nyq = sample_rate / 2.0
    out = []
    for s in sections:
        if not 0 < s.freq_hz < nyq * 0.98:
            continue
        if s.kind in ("highpass", "lowpass"):
            out.append(scipy.signal.butter(s.order, s.freq_hz, btype=s.kind, fs=sample_rate, output="sos"))
        elif s.kind in ("peak", "lowshelf", "highshelf"):
            out.append(_rbj_sos(s.kind, s.freq_hz, s.gain_db, s.q, sample_rate))
        else:
            raise ParameterError(f"unknown section kind {s.kind!r}")
    return np.concatenate(out, axis=0) if out else np.zeros((0, 6))


def _rbj_sos(kind: str, f0: float, gain_db: float, q: float, fs: float) -> np.ndarray:
    """RBJ audio-EQ-cookbook biquads (peaking, shelves) as one second-order section."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * f0 / fs
    cw, sw = np.cos(w0), np.sin(w0)
    if kind == "peak":
        alpha = sw / (2.0 * q)
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    else:
        alpha = sw / 2.0 * np.sqrt(2.0)  # shelf slope S = 1
        sa = 2.0 * np.sqrt(a) * alpha
        if kind == "lowshelf":
            b = [a * ((a + 1) - (a - 1) * cw + sa), 2 * a * ((a - 1) - (a + 1) * cw), a * ((a + 1) - (a - 1) * cw - sa)]
            den = [(a + 1) + (a - 1) * cw + sa, -2 * ((a - 1) + (a + 1) * cw), (a + 1) + (a - 1) * cw - sa]
        else:
            b = [a * ((a + 1) + (a - 1) * cw + sa), -2 * a * ((a - 1) + (a + 1) * cw), a * ((a + 1) + (a - 1) * cw - sa)]
            den = [(a + 1) - (a - 1) * cw + sa, 2 * ((a - 1) - (a + 1) * cw), (a + 1) - (a - 1) * cw - sa]
    b = np.asarray(b) / den[0]
    den = np.asarray(den) / den[0]
    return np.concatenate([b, den])[np.newaxis, :]


#: Built-in device models used by ``micmatch demo`` and the synthetic tests. Shapes follow typical published
#: measurements of each device class: small phone MEMS capsules behind a port (low cut near 150-300 Hz, a port
#: resonance/presence rise of a few dB at 2-4 kHz, roll-off above 7-10 kHz), laptop arrays (stronger low cut,
#: noise-suppression notch in the midrange), headsets (narrow band) and a flat studio reference.
BUILTIN_DEVICES: dict[str, DeviceModel] = {
    "studio": DeviceModel(
        "studio", (Section("highpass", 30.0, order=2),), noise_floor_db=-96.0,
        description="flat measurement microphone: 30 Hz high-pass, -96 dBFS noise floor (the reference)"),
    "phone": DeviceModel(
        "phone",
        (Section("highpass", 220.0, order=2), Section("peak", 2800.0, 5.0, 1.2), Section("lowpass", 9000.0, order=4),
         Section("lowshelf", 600.0, -3.0)),
        noise_floor_db=-84.0, gain_db=-2.0,
        description="smartphone: 220 Hz high-pass, +5 dB at 2.8 kHz, -3 dB low shelf at 600 Hz, 9 kHz low-pass, "
                    "-84 dBFS noise"),
    "laptop": DeviceModel(
        "laptop",
        (Section("highpass", 350.0, order=3), Section("peak", 1200.0, -6.0, 2.0), Section("peak", 5000.0, 4.0, 1.5),
         Section("lowpass", 7000.0, order=4)),
        noise_floor_db=-80.0, gain_db=3.0,
        description="laptop array: 350 Hz high-pass (3rd order), -6 dB at 1.2 kHz, +4 dB at 5 kHz, 7 kHz low-pass, "
                    "-80 dBFS noise"),
    "headset": DeviceModel(
        "headset",
        (Section("highpass", 150.0, order=2), Section("highshelf", 3000.0, -6.0), Section("peak", 900.0, 3.0, 0.9),
         Section("lowpass", 11000.0, order=2)),
        noise_floor_db=-86.0, gain_db=-4.0,
        description="USB headset: 150 Hz high-pass, +3 dB at 900 Hz, -6 dB high shelf from 3 kHz, 11 kHz low-pass, "
                    "-86 dBFS noise"),
}


def builtin_device(name: str) -> DeviceModel:
    """A built-in device model by name; unknown names raise ``KeyError`` listing the known ones."""
    try:
        return BUILTIN_DEVICES[name]
    except KeyError:
        raise KeyError(f"unknown built-in device {name!r}; known: {', '.join(BUILTIN_DEVICES)}") from None


def add_noise_floor(audio: np.ndarray, level_db: float, *, rng: np.random.Generator) -> np.ndarray:
    """Add white noise of RMS ``level_db`` (dB re full scale). Returns a new array."""
    x = np.asarray(audio)
    return x + (rng.standard_normal(x.shape) * 10.0 ** (level_db / 20.0)).astype(x.dtype, copy=False)


def band_limit(audio: np.ndarray, sample_rate: int, *, low_hz: float | None = None, high_hz: float | None = None,
               order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band limit (high-pass at ``low_hz``, low-pass at ``high_hz``)."""
    x = validate_audio(audio, sample_rate)
    sections = []
    if low_hz:
        sections.append(Section("highpass", low_hz, order=order))
    if high_hz:
        sections.append(Section("lowpass", high_hz, order=order))
    sos = _sections_to_sos(sections, sample_rate)
    return _zero_phase(sos, x.astype(np.float64)).astype(x.dtype, copy=False)


__all__ = [
    "BUILTIN_DEVICES", "DeviceModel", "ImpulseResponse", "Section", "add_noise_floor", "apply_ir", "band_limit",
    "builtin_device", "list_irs", "load_ir",
]


# ----------------------------------------------------------------------------------------------------------------
# Simulated recordings for benchmarks


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes: tells two impulse-response files with the same content apart from names."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_with_ir(audio: np.ndarray, sample_rate: int, ir: ImpulseResponse, *, noise_floor_db: float | None = None,
                   low_hz: float | None = None, high_hz: float | None = None,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """``audio`` as if recorded by the device of ``ir``: convolution (delay compensated), band limit, noise floor.

    Parameters
    ----------
    audio : np.ndarray [shape=(..., n_samples)]
        Float waveforms at ``sample_rate``; not modified.
    ir : ImpulseResponse
        Loaded at ``sample_rate`` (``load_ir(path, sample_rate)``).
    noise_floor_db : float, optional
        RMS of added white noise in dB re full scale; needs ``rng``.
    low_hz, high_hz : float, optional
        Band limit (zero-phase Butterworth, see :func:`band_limit`).

    Returns
    -------
    np.ndarray [shape=(..., n_samples)], same dtype as ``audio``.
    """
    y = apply_ir(audio, ir, sample_rate)
    if low_hz or high_hz:
        y = band_limit(y, sample_rate, low_hz=low_hz, high_hz=high_hz)
    if noise_floor_db is not None:
        if rng is None:
            raise AudioError(f"noise_floor_db={noise_floor_db} needs a generator: pass rng=np.random.default_rng(seed)")
        y = add_noise_floor(y, noise_floor_db, rng=rng)
    return y


__all__ += ["file_sha256", "record_with_ir"]


# ----------------------------------------------------------------------------------------------------------------
# Random phone/laptop recording chains: draw the parameters, then apply them (replays exactly)
#
# A chain runs, in order: the device's impulse response (its microphone and acoustics), band limits (the port's
# low cut and the anti-aliasing low-pass), a coloured noise floor (capsule and preamplifier self-noise), a
# feed-forward compressor or automatic gain control (the platform's voice processing), the recording level (the
# gain before the converter) and a soft clipper at the converter's ceiling.

#: Version of the parameter dictionaries written by :func:`draw_device_chain`.
DEVICE_CHAIN_VERSION = 1
#: Length (ms) of the blocks over which the compressor/AGC measures the level; gains are interpolated between
#: block centres, so the gain never steps.
DYNAMICS_BLOCK_MS = 1.0
#: Floor of the mean power (linear, full scale 1) that enters the dynamics' level detector: -120 dBFS.
_MIN_POWER = 1e-12
#: Frequency (Hz) at which a coloured noise floor's spectral slope pivots; below 20 Hz its shape is held flat.
NOISE_PIVOT_HZ = 1000.0
_NOISE_MIN_HZ = 20.0


def _uniform(rng: np.random.Generator, bounds, name: str) -> float:
    lo, hi = (float(v) for v in bounds)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ParameterError(f"{name}={tuple(bounds)!r} must be a finite (low, high) range with low <= high")
    return float(rng.uniform(lo, hi))


def _log_uniform(rng: np.random.Generator, bounds, name: str) -> float:
    lo, hi = (float(v) for v in bounds)
    if not 0 < lo <= hi:
        raise ParameterError(f"{name}={tuple(bounds)!r} must be a (low, high) range with 0 < low <= high")
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_device_chain(rng: np.random.Generator, sample_rate: int, *, ir: str | os.PathLike | None = None,
                      high_pass_hz: tuple[float, float] = (60.0, 400.0), high_pass_order: tuple[int, int] = (1, 3),
                      low_pass_hz: tuple[float, float] = (3400.0, 16000.0), low_pass_order: tuple[int, int] = (4, 8),
                      noise_floor_db: tuple[float, float] = (-78.0, -54.0),
                      noise_slope_db: tuple[float, float] = (-4.5, 0.0), agc_probability: float = 0.5,
                      threshold_db: tuple[float, float] = (-32.0, -16.0), ratio: tuple[float, float] = (2.0, 6.0),
                      agc_target_db: tuple[float, float] = (-26.0, -16.0), agc_max_gain_db: float = 24.0,
                      level_db: tuple[float, float] = (-6.0, 6.0),
                      clip_ceiling_db: tuple[float, float] = (-3.0, 0.0)) -> dict:
    """Draw the parameters of a realistic phone/laptop recording chain (apply them with :func:`apply_device_chain`).

    Every value is drawn from ``rng`` and stored, so the returned dict (plain JSON types) replays the same
    recording bit for bit, also after a round trip through JSON.

    Parameters
    ----------
    rng : np.random.Generator
        The only source of randomness (the noise floor's own seed is drawn from it too).
    sample_rate : int
        Hz; the low-pass corner is kept below ``0.9 * sample_rate / 2`` (skipped when the whole range is above).
    ir : str or path, optional
        The device's impulse-response file, recorded in the parameters (``None``: no impulse response, or pass
        one to :func:`apply_device_chain` directly).
    high_pass_hz, low_pass_hz : (low, high)
        Ranges of the band-limit corners (Hz), drawn log-uniformly; the filters are zero-phase Butterworth
        magnitudes of an order drawn from ``high_pass_order`` / ``low_pass_order`` (inclusive).
    noise_floor_db : (low, high)
        RMS of the noise floor in dB re full scale (uniform).
    noise_slope_db : (low, high)
        Spectral slope of the noise in dB per octave (0 white, -3 pink), pivoting at :data:`NOISE_PIVOT_HZ`.
    agc_probability : float
        Probability of an automatic gain control (slow, towards ``agc_target_db``, at most ``agc_max_gain_db`` of
        boost) instead of a compressor (fast, ``threshold_db`` and ``ratio``, no make-up gain).
    level_db : (low, high)
        Recording level: gain (dB) before the converter.
    clip_ceiling_db : (low, high)
        The soft clipper's ceiling in dB re full scale: output peaks stay below it.

    Returns
    -------
    dict
        ``{"version", "sample_rate", "ir", "high_pass": {"freq_hz", "order"}, "low_pass": {...} | None,
        "noise": {"level_db", "slope_db_per_octave", "seed"}, "dynamics": {"mode", ...}, "level_db",
        "clip_ceiling_db"}``.
    """
    _check_rate(sample_rate)
    nyquist = sample_rate / 2.0
    if not 0.0 <= agc_probability <= 1.0:
        raise ParameterError(f"agc_probability={agc_probability!r} must be in [0, 1]")
    hp = {"freq_hz": _log_uniform(rng, high_pass_hz, "high_pass_hz"),
          "order": int(rng.integers(high_pass_order[0], high_pass_order[1] + 1))}
    lp_lo, lp_hi = (float(v) for v in low_pass_hz)
    top = 0.9 * nyquist
    lp_corner = _log_uniform(rng, (min(lp_lo, top), min(lp_hi, top)), "low_pass_hz")
    lp_order = int(rng.integers(low_pass_order[0], low_pass_order[1] + 1))
    lp = {"freq_hz": lp_corner, "order": lp_order} if lp_lo < top else None
    noise = {"level_db": _uniform(rng, noise_floor_db, "noise_floor_db"),
             "slope_db_per_octave": _uniform(rng, noise_slope_db, "noise_slope_db"),
             "seed": int(rng.integers(0, 2**31 - 1))}
    if rng.random() < agc_probability:
        dynamics = {"mode": "agc", "target_db": _uniform(rng, agc_target_db, "agc_target_db"),
                    "max_gain_db": float(agc_max_gain_db), "attack_ms": _log_uniform(rng, (20.0, 80.0), "attack"),
                    "release_ms": _log_uniform(rng, (300.0, 1500.0), "release"),
                    "gate_db": -60.0}
    else:
        dynamics = {"mode": "compressor", "threshold_db": _uniform(rng, threshold_db, "threshold_db"),
                    "ratio": _uniform(rng, ratio, "ratio"), "attack_ms": _log_uniform(rng, (1.0, 10.0), "attack"),
                    "release_ms": _log_uniform(rng, (50.0, 300.0), "release")}
    return {
        "version": DEVICE_CHAIN_VERSION,
        "sample_rate": int(sample_rate),
        "ir": None if ir is None else str(ir),
        "high_pass": hp,
        "low_pass": lp,
        "noise": noise,
        "dynamics": dynamics,
        "level_db": _uniform(rng, level_db, "level_db"),
        "clip_ceiling_db": _uniform(rng, clip_ceiling_db, "clip_ceiling_db"),
    }


def butterworth_band_limit(audio: np.ndarray, sample_rate: int, *, high_pass: Mapping | None = None,
                           low_pass: Mapping | None = None) -> np.ndarray:
    """Zero-phase band limit with separate corner and order per side (magnitude of a Butterworth response).

    Parameters
    ----------
    audio : np.ndarray [shape=(..., n_samples)]
    high_pass, low_pass : mapping, optional
        ``{"freq_hz": float, "order": int}``: a digital Butterworth magnitude (``scipy.signal.butter``), applied
        once (not squared). Outside the band it attenuates at least as much as the analog prototype,
        ``10 * log10(1 + (fc / f) ** (2 * order))`` dB (high-pass; ``f / fc`` for the low-pass), about
        ``6 * order`` dB per octave; corners at or above ``0.98 * sample_rate / 2`` are skipped.

    Returns
    -------
    np.ndarray [shape=(..., n_samples)], float64.
    """
    x = validate_audio(audio, sample_rate).astype(np.float64)
    sections = []
    for kind, spec in (("highpass", high_pass), ("lowpass", low_pass)):
        if spec is not None:
            order = int(spec["order"])
            if order < 1:
                raise ParameterError(f"{kind} order={order} must be a positive integer")
            sections.append(Section(kind, float(spec["freq_hz"]), order=order))
    return _zero_phase(_sections_to_sos(sections, sample_rate), x)


def coloured_noise(shape: tuple[int, ...], sample_rate: int, *, level_db: float, slope_db_per_octave: float = 0.0,
                   seed: int) -> np.ndarray:
    """Gaussian noise whose power spectrum falls ``slope_db_per_octave`` per octave, at an exact RMS of ``level_db``.

    The slope pivots at :data:`NOISE_PIVOT_HZ` and is held flat below 20 Hz (so a falling slope does not blow up
    at DC). Each row along the last axis is scaled to RMS ``10 ** (level_db / 20)`` (full scale 1).

    Returns
    -------
    np.ndarray [shape=shape], float64.
    """
    _check_rate(sample_rate)
    n = int(shape[-1])
    white_noise = np.random.default_rng(seed).standard_normal(shape)
    if slope_db_per_octave != 0.0 and n > 1:
        f = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), _NOISE_MIN_HZ)
        amplitude = 10.0 ** (slope_db_per_octave * np.log2(f / NOISE_PIVOT_HZ) / 20.0)
        white_noise = np.fft.irfft(np.fft.rfft(white_noise, axis=-1) * amplitude, n=n, axis=-1)
    rms = np.sqrt(np.mean(white_noise**2, axis=-1, keepdims=True))
    return white_noise / np.maximum(rms, 1e-300) * 10.0 ** (level_db / 20.0)


def dynamics_gain_db(audio: np.ndarray, sample_rate: int, params: Mapping) -> np.ndarray:
    """Gain (dB per sample) of a feed-forward compressor or automatic gain control driven by ``audio``.

    The detector measures the mean power over :data:`DYNAMICS_BLOCK_MS` blocks (channels pooled). The static
    curve gives a target gain per block: ``-(1 - 1 / ratio) * (level - threshold_db)`` above the threshold for a
    compressor (no make-up gain), ``target_db - level`` clamped to ``[-40, max_gain_db]`` for an AGC, which holds
    its gain while the level is below ``gate_db`` (so it never pumps up the noise in pauses). The gain follows its
    target with one-pole smoothing, ``attack_ms`` when the gain falls and ``release_ms`` when it rises, and is
    interpolated linearly between block centres.

    Returns
    -------
    np.ndarray [shape=(n_samples,)], dB.
    """
    x = np.asarray(audio, dtype=np.float64)
    n = x.shape[-1]
    block = max(1, round(sample_rate * DYNAMICS_BLOCK_MS / 1000.0))
    n_blocks = -(-n // block)
    padded = np.zeros(x.shape[:-1] + (n_blocks * block,))
    padded[..., :n] = x
    power = np.mean(padded.reshape(-1, n_blocks, block) ** 2, axis=(0, 2))
    level = 10.0 * np.log10(np.maximum(power, _MIN_POWER))
    mode = params.get("mode")
    if mode == "compressor":
        ratio = float(params["ratio"])
        if ratio < 1.0:
            raise ParameterError(f"compressor ratio={ratio} must be >= 1")
        target = -(1.0 - 1.0 / ratio) * np.maximum(level - float(params["threshold_db"]), 0.0)
        gate = np.zeros(n_blocks, dtype=bool)
    elif mode == "agc":
        target = np.clip(float(params["target_db"]) - level, -40.0, float(params["max_gain_db"]))
        gate = level < float(params["gate_db"])
    else:
        raise ParameterError(f"dynamics mode={mode!r} must be 'compressor' or 'agc'")
    block_s = block / sample_rate
    attack = np.exp(-block_s / (float(params["attack_ms"]) / 1000.0))
    release = np.exp(-block_s / (float(params["release_ms"]) / 1000.0))
    gain = np.empty(n_blocks)
    g = 0.0 if mode == "agc" else target[0]
    for i in range(n_blocks):  # one step per millisecond: cheap, and attack/release need the recursion
        if not gate[i]:
            coef = attack if target[i] < g else release
            g = coef * g + (1.0 - coef) * target[i]
        gain[i] = g
    centres = (np.arange(n_blocks) + 0.5) * block
    return np.interp(np.arange(n), centres, gain)


def soft_clip(audio: np.ndarray, *, ceiling_db: float = 0.0) -> np.ndarray:
    """``c * tanh(audio / c)`` with ``c = 10 ** (ceiling_db / 20)``: peaks stay below ``c``; small values pass
    nearly unchanged (relative error about ``(x / c) ** 2 / 3``)."""
    c = 10.0 ** (float(ceiling_db) / 20.0)
    return c * np.tanh(np.asarray(audio, dtype=np.float64) / c)


def apply_device_chain(audio: np.ndarray, sample_rate: int, params: Mapping, *,
                       ir: ImpulseResponse | np.ndarray | None = None) -> np.ndarray:
    """Record ``audio`` through a chain drawn by :func:`draw_device_chain` (deterministic given ``params``).

    Parameters
    ----------
    audio : np.ndarray [shape=(..., n_samples)]
        Float waveforms at ``sample_rate``, full scale 1; not modified.
    params : mapping
        From :func:`draw_device_chain` (or its JSON). Stages set to ``None`` are skipped (``"ir"``,
        ``"high_pass"``, ``"low_pass"``, ``"noise"``, ``"dynamics"``, ``"clip_ceiling_db"``).
    ir : ImpulseResponse or np.ndarray, optional
        The device's impulse response; when omitted and ``params["ir"]`` names a file, that file is loaded (at
        ``sample_rate``). Convolution is delay compensated (:func:`apply_ir`).

    Returns
    -------
    np.ndarray [shape=(..., n_samples)], same dtype as ``audio``.
    """
    x = validate_audio(audio, sample_rate)
    if params.get("version") != DEVICE_CHAIN_VERSION:
        raise ParameterError(f"device chain version={params.get('version')!r} is not {DEVICE_CHAIN_VERSION}; "
                             "draw the chain with draw_device_chain")
    if int(params.get("sample_rate", sample_rate)) != sample_rate:
        raise ParameterError(f"the chain was drawn for sample_rate={params['sample_rate']} but the audio is at "
                             f"{sample_rate} Hz; draw it again for this rate")
    y = x.astype(np.float64)
    if ir is None and params.get("ir"):
        ir = load_ir(params["ir"], sample_rate)
    if ir is not None:
        y = apply_ir(y, ir, sample_rate)
    if params.get("high_pass") is not None or params.get("low_pass") is not None:
        y = butterworth_band_limit(y, sample_rate, high_pass=params.get("high_pass"), low_pass=params.get("low_pass"))
    noise = params.get("noise")
    if noise is not None:
        y = y + coloured_noise(y.shape, sample_rate, level_db=float(noise["level_db"]),
                               slope_db_per_octave=float(noise["slope_db_per_octave"]), seed=int(noise["seed"]))
    if params.get("dynamics") is not None:
        y = y * 10.0 ** (dynamics_gain_db(y, sample_rate, params["dynamics"]) / 20.0)
    y = y * 10.0 ** (float(params.get("level_db") or 0.0) / 20.0)
    if params.get("clip_ceiling_db") is not None:
        y = soft_clip(y, ceiling_db=float(params["clip_ceiling_db"]))
    return y.astype(x.dtype, copy=False)


__all__ += ["DEVICE_CHAIN_VERSION", "apply_device_chain", "butterworth_band_limit", "coloured_noise",
            "draw_device_chain", "dynamics_gain_db", "soft_clip"]

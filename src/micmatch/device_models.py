"""Recording devices as data: measured impulse responses and parametric responses, and applying them to audio.

Two kinds of device are supported:

* **Measured devices**: an impulse-response file (e.g. a folder such as MicIRP's). :func:`load_ir` reads it,
  resamples it to the audio's rate (once; cached) and finds its delay; :func:`apply_ir` convolves with the delay
  compensated, so the output stays sample-aligned with the input and keeps its length.
* **Parametric devices** (:class:`DeviceModel`): a magnitude response built from a few filter sections (high-pass,
  low-pass, shelves, peaks), a noise floor and an optional soft clipper. :data:`BUILTIN_DEVICES` holds documented,
  plausible phone/laptop/headset/studio models used by ``micmatch demo``.

:mod:`micmatch.simulate` builds simulated recordings and random recording chains on top of these.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micmatch.audio import find_audio_files, load, resample, validate_audio
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


def exclude_named(files: Sequence[Path], names: Sequence[str], *, option: str = "exclude") -> list[Path]:
    """``files`` less those whose stem is in ``names`` (e.g. the IRs of the devices kept for testing); a name
    that matches no file raises :class:`~micmatch.errors.AudioError` (a typo would otherwise leak a test device)."""
    names = [str(n) for n in names]
    stems = {Path(f).stem for f in files}
    unknown = [n for n in names if n not in stems]
    if unknown:
        raise AudioError(f"{option} {', '.join(unknown)}: no such impulse response; known: {', '.join(sorted(stems))}")
    kept = [Path(f) for f in files if Path(f).stem not in set(names)]
    if not kept:
        raise AudioError(f"{option} leaves no impulse response")
    return kept


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
    import scipy.signal

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
        import scipy.signal

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
    import scipy.fft
    import scipy.signal

    if sos.shape[0] == 0:
        return x.copy()
    n = x.shape[-1]
    n_fft = scipy.fft.next_fast_len(n + 8192, real=True)
    _, h = scipy.signal.sosfreqz(sos, worN=n_fft // 2 + 1, whole=False)
    X = scipy.fft.rfft(x, n=n_fft, axis=-1)
    y = scipy.fft.irfft(X * np.abs(h), n=n_fft, axis=-1)[..., :n]
    return y


def _sections_to_sos(sections: Sequence[Section], sample_rate: int) -> np.ndarray:
    import scipy.signal

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

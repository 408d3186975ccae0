"""Training pairs for learned device normalizers: aligned (reference, device) recordings of the same sound.

Two sources:

* **Recorded pairs**: a reference recording and a device recording of one sound. :func:`align_pair` finds the
  offset and clock drift with :mod:`micmatch.align` (GCC-PHAT per chunk and a line fit), puts the device
  recording on the reference's clock and keeps the part both cover. Recordings of different sounds and pairs too
  short to train on raise :class:`~micmatch.errors.MeasurementError` with one line.
* **Simulated pairs**: a clean clip (any corpus, or synthetic audio) as the reference, and the same clip through a
  device (a measured impulse response or a built-in :class:`~micmatch.simulate.DeviceModel`), optionally a room
  (a shoebox impulse response from pyroomacoustics with drawn size, RT60 and positions), additive noise at a
  drawn SNR and mild soft clipping. :func:`draw_simulation` draws every parameter from an explicit generator into
  a JSON-able dict; :func:`simulate_device` applies a dict, so a logged dict replays the pair exactly.

:func:`split_pair` holds the last part of every pair out for validation (contiguous, so no validation frame
overlaps a training frame).

This module needs numpy and scipy only (pyroomacoustics for rooms, behind the ``room`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from micmatch.align import align, estimate_alignment
from micmatch.audio import find_audio_files, load, resample
from micmatch.corpus import read_csv_table
from micmatch.errors import (
    AudioError,
    ConfigMismatchError,
    CorpusError,
    MeasurementError,
    ParameterError,
)

#: Shortest aligned overlap (seconds) accepted as a training pair: below this there is too little material for a
#: training part and a held-out part (a few hundred frames).
MIN_PAIR_S = 2.0
#: Fraction of every pair held out (its end) for validation and early stopping.
VALIDATION_FRACTION = 0.2
#: Samples kept before the direct path of a simulated room impulse response.
ROOM_PRE_SAMPLES = 40


@dataclass(frozen=True)
class AlignedPair:
    """Two sample-aligned recordings of one sound.

    Attributes
    ----------
    reference, device : np.ndarray [shape=(n_samples,), dtype=float32]
    sample_rate : int
    name : str
    info : dict
        JSON-able: the alignment (offset, drift) or the simulation parameters.
    """

    reference: np.ndarray
    device: np.ndarray
    sample_rate: int
    name: str = "pair"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reference.shape != self.device.shape or self.reference.ndim != 1:
            raise ConfigMismatchError(f"pair {self.name!r}: reference {self.reference.shape} and device "
                                      f"{self.device.shape} must be 1-D of equal length")

    @property
    def duration_s(self) -> float:
        return self.reference.shape[-1] / self.sample_rate


def _mono(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(-1, a.shape[-1]).mean(axis=0) if a.ndim > 1 else a


def _check_long_enough(n_samples: int, sample_rate: int, what: str, min_s: float) -> None:
    if n_samples < min_s * sample_rate:
        raise MeasurementError(
            f"{what} is {n_samples / sample_rate:.2f} s long; training needs at least {min_s:g} s of the same sound "
            f"by both devices (record a longer calibration pair)")


def align_pair(reference: np.ndarray, device: np.ndarray, sample_rate: int, *, name: str = "pair",
               min_duration_s: float = MIN_PAIR_S, max_offset_s: float | None = None) -> AlignedPair:
    """Align a device recording to a reference recording of the same sound (offset and clock drift).

    Parameters
    ----------
    reference, device : np.ndarray [shape=(..., n)]
        The two recordings at ``sample_rate`` (channels averaged).
    min_duration_s : float
        Shortest usable overlap; shorter pairs raise :class:`MeasurementError`.

    Returns
    -------
    AlignedPair
        The overlap covered by both recordings, the device on the reference's clock.

    Raises
    ------
    MeasurementError
        The recordings do not hold the same sound, are silent, or overlap for less than ``min_duration_s``.
    """
    ref, dev = _mono(reference), _mono(device)
    _check_long_enough(ref.shape[-1], sample_rate, f"{name}: the reference recording", min_duration_s)
    _check_long_enough(dev.shape[-1], sample_rate, f"{name}: the device recording", min_duration_s)
    try:
        alignment = estimate_alignment(ref, dev, sample_rate, max_offset_s=max_offset_s)
    except MeasurementError as exc:
        raise MeasurementError(f"{name}: {exc}") from None
    aligned = align(dev, alignment, ref.shape[-1])
    rate = 1.0 + alignment.drift_ppm * 1e-6
    first = max(0, int(np.ceil(-alignment.offset_samples / rate)))
    last = min(ref.shape[-1], int(np.floor((dev.shape[-1] - 1 - alignment.offset_samples) / rate)) + 1)
    _check_long_enough(max(last - first, 0), sample_rate, f"{name}: the overlap of the two recordings",
                       min_duration_s)
    info = {"alignment": alignment.to_json(), "overlap_s": round((last - first) / sample_rate, 4)}
    return AlignedPair(ref[first:last].astype(np.float32), aligned[first:last].astype(np.float32), int(sample_rate),
                       name, info)


def load_pair(reference: str | os.PathLike, device: str | os.PathLike, *, sample_rate: int | None = None,
              resample_to_reference: bool = False, min_duration_s: float = MIN_PAIR_S) -> AlignedPair:
    """:func:`align_pair` on two files. Different rates are refused unless ``resample_to_reference``; with
    ``sample_rate`` both are resampled to it."""
    ref, sr = load(reference, channels="mix", dtype="float64", sample_rate=sample_rate)
    dev, sr_dev = load(device, channels="mix", dtype="float64", sample_rate=sample_rate)
    if sr_dev != sr:
        if not resample_to_reference:
            raise ConfigMismatchError(f"{reference} is at {sr} Hz but {device} at {sr_dev} Hz; a pair must share one "
                                      f"sample rate (pass --resample to convert the device recording)")
        dev = resample(dev, sr_dev, sr)
    return align_pair(ref[0], dev[0], sr, name=f"{Path(reference).name} / {Path(device).name}",
                      min_duration_s=min_duration_s)


def read_pairs_csv(path: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Pairs from a CSV with columns ``reference`` and ``device`` (paths relative to the CSV's folder)."""
    p = Path(path)
    columns, rows = read_csv_table(p, what="pairs CSV")
    if not rows or not {"reference", "device"} <= set(columns):
        raise CorpusError(f"{p}: expected a header with columns 'reference' and 'device' and at least one row")
    out = []
    for i, row in enumerate(rows, start=2):
        if not row["reference"] or not row["device"]:
            raise CorpusError(f"{p}:{i}: empty reference or device path")
        out.append(((p.parent / row["reference"]), (p.parent / row["device"])))
    return out


def split_pair(pair: AlignedPair, *, validation_fraction: float = VALIDATION_FRACTION
               ) -> tuple[AlignedPair, AlignedPair]:
    """The first ``1 - validation_fraction`` of a pair for training and the rest for validation."""
    if not 0.0 < validation_fraction < 1.0:
        raise ParameterError(f"validation_fraction={validation_fraction} must lie strictly between 0 and 1")
    n = pair.reference.shape[-1]
    cut = int(round(n * (1.0 - validation_fraction)))
    train = AlignedPair(pair.reference[:cut], pair.device[:cut], pair.sample_rate, pair.name, pair.info)
    val = AlignedPair(pair.reference[cut:], pair.device[cut:], pair.sample_rate, pair.name, pair.info)
    return train, val


def check_pairs(pairs: Sequence[AlignedPair]) -> int:
    """One sample rate for all pairs; returns it. Empty lists and mixed rates raise."""
    if not pairs:
        raise MeasurementError("no training pair was given; expected at least one (reference, device) pair")
    rates = {p.sample_rate for p in pairs}
    if len(rates) > 1:
        raise ConfigMismatchError(f"training pairs have different sample rates {sorted(rates)}; resample them to one")
    return rates.pop()


# ----------------------------------------------------------------------------------------------------------------
# Simulated pairs


def concatenate_clips(paths: Sequence[str | os.PathLike], sample_rate: int, *, duration_s: float,
                      rng: np.random.Generator, gap_s: float = 0.1) -> tuple[np.ndarray, list[str]]:
    """Clips drawn (without replacement, cycling) from ``paths`` and joined with short gaps until ``duration_s``.

    Returns the signal ``(n_samples,)`` (float64, each clip at its own level) and the clip names used.
    """
    if not paths:
        raise CorpusError("no clips to draw from")
    order = rng.permutation(len(paths))
    n_total = int(round(duration_s * sample_rate))
    gap = np.zeros(int(round(gap_s * sample_rate)))
    parts, names, n, i = [], [], 0, 0
    while n < n_total:
        path = Path(paths[order[i % len(order)]])
        x, _ = load(path, channels="mix", dtype="float64", sample_rate=sample_rate)
        parts += [x[0], gap]
        names.append(path.name)
        n += x.shape[-1] + gap.size
        i += 1
    return np.concatenate(parts)[:n_total], names


def corpus_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files under a folder (sorted); an error when there are none."""
    files = find_audio_files([folder])
    if not files:
        raise CorpusError(f"{folder}: no audio files found")
    return files


def draw_simulation(rng: np.random.Generator, *, devices: Sequence[str], room: bool = False,
                    noise: bool = False, clipping: bool = False, rt60_s: tuple[float, float] = (0.2, 0.7),
                    snr_db: tuple[float, float] = (15.0, 30.0), drive_db: tuple[float, float] = (3.0, 9.0),
                    gain_db: tuple[float, float] = (-6.0, 6.0)) -> dict:
    """Draw the parameters of one simulated device recording into a JSON-able dict.

    Parameters
    ----------
    rng : np.random.Generator
        The only source of randomness.
    devices : sequence of str
        Device choices: impulse-response file paths or built-in device names (``phone``, ``laptop``...).
    room, noise, clipping : bool
        Which stages to draw (the device and a level change are always drawn).
    rt60_s, snr_db, drive_db, gain_db : (low, high)
        Uniform ranges of the room's reverberation time, the signal-to-noise ratio, the soft clipper's drive and
        the level change.

    Returns
    -------
    dict
        ``{"device", "gain_db", "room", "snr_db", "drive_db", "noise_seed"}``; stages not drawn are None.
    """
    if not devices:
        raise ParameterError("devices must name at least one impulse-response file or built-in device")
    params: dict = {"device": str(devices[int(rng.integers(len(devices)))]),
                    "gain_db": round(float(rng.uniform(*gain_db)), 3), "room": None, "snr_db": None,
                    "drive_db": None, "noise_seed": int(rng.integers(2**31))}
    if room:
        size = [float(rng.uniform(3.0, 9.0)), float(rng.uniform(3.0, 7.0)), float(rng.uniform(2.4, 3.5))]
        margin = 0.5
        source = [float(rng.uniform(margin, s - margin)) for s in size]
        # The device sits 0.5-3 m from the source, in a random direction, inside the room.
        while True:
            direction = rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            mic = np.asarray(source) + direction * rng.uniform(0.5, 3.0)
            if np.all(mic > margin) and np.all(mic < np.asarray(size) - margin):
                break
        params["room"] = {"size_m": [round(v, 3) for v in size], "rt60_s": round(float(rng.uniform(*rt60_s)), 3),
                          "source_m": [round(v, 3) for v in source], "mic_m": [round(float(v), 3) for v in mic]}
    if noise:
        params["snr_db"] = round(float(rng.uniform(*snr_db)), 2)
    if clipping:
        params["drive_db"] = round(float(rng.uniform(*drive_db)), 2)
    return params


def room_impulse_response(room: dict, sample_rate: int) -> np.ndarray:
    """Shoebox room impulse response (image source method, pyroomacoustics) from a ``room`` dict of
    :func:`draw_simulation`, scaled so the direct path's peak is 1.

    Returns ``(n_taps,)`` float64; the direct path's peak is at index :data:`ROOM_PRE_SAMPLES` (the samples before
    it hold the leading half of pyroomacoustics' fractional-delay filter)."""
    from micmatch.errors import require

    pra = require("pyroomacoustics", "room")
    size = room["size_m"]
    absorption, max_order = pra.inverse_sabine(room["rt60_s"], size)
    shoebox = pra.ShoeBox(size, fs=sample_rate, materials=pra.Material(absorption), max_order=int(max_order))
    shoebox.add_source(room["source_m"])
    shoebox.add_microphone(np.asarray(room["mic_m"], dtype=np.float64)[:, None])
    shoebox.compute_rir()
    h = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    peak = int(np.argmax(np.abs(h)))
    if peak < ROOM_PRE_SAMPLES:
        h = np.concatenate([np.zeros(ROOM_PRE_SAMPLES - peak), h])
        peak = ROOM_PRE_SAMPLES
    h = h[peak - ROOM_PRE_SAMPLES :]
    return h / np.abs(h[ROOM_PRE_SAMPLES])


def _device_response(name: str, sample_rate: int):
    from micmatch.simulate import BUILTIN_DEVICES, load_ir

    if name in BUILTIN_DEVICES:
        return BUILTIN_DEVICES[name]
    return load_ir(name, sample_rate)


def simulate_device(audio: np.ndarray, sample_rate: int, params: dict) -> np.ndarray:
    """``audio`` as the device of ``params`` (from :func:`draw_simulation`) records it, sample-aligned.

    Stages in order: room (convolution with the shoebox impulse response, direct path at time 0), device response
    (measured impulse response with its delay removed, or a built-in model's filter without its noise), level
    change, additive white noise at ``snr_db`` below the signal's RMS, soft clipping ``tanh(g x) / g`` with the
    drive ``g`` relative to the signal's peak. Returns float64 of the input's length; the input is not modified.
    """
    from micmatch.simulate import DeviceModel, apply_ir

    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise AudioError(f"audio.shape={x.shape}: simulated pairs are mono (1-D)")
    y = x.copy()
    if params.get("room"):
        import scipy.signal

        h = room_impulse_response(params["room"], sample_rate)
        y = scipy.signal.oaconvolve(y, h)[ROOM_PRE_SAMPLES : ROOM_PRE_SAMPLES + x.shape[-1]]
    device = _device_response(params["device"], sample_rate)
    if isinstance(device, DeviceModel):
        y = DeviceModel(device.name, device.sections, gain_db=device.gain_db).record(y, sample_rate)
    else:
        y = apply_ir(y, device, sample_rate)
    y = y * 10.0 ** (params.get("gain_db", 0.0) / 20.0)
    if params.get("snr_db") is not None:
        rms = float(np.sqrt(np.mean(y * y)))
        noise_rng = np.random.default_rng(params["noise_seed"])
        y = y + noise_rng.standard_normal(y.shape) * rms * 10.0 ** (-params["snr_db"] / 20.0)
    if params.get("drive_db") is not None:
        # Drive relative to the peak: a drive of d dB puts the peak d dB into the tanh's knee.
        peak = max(float(np.abs(y).max()), 1e-12)
        g = 10.0 ** (params["drive_db"] / 20.0) / peak
        y = np.tanh(g * y) / g
    return y


def simulate_pair(audio: np.ndarray, sample_rate: int, params: dict, *, name: str = "simulated") -> AlignedPair:
    """An :class:`AlignedPair`: ``audio`` as the reference and :func:`simulate_device` of it as the device."""
    ref = np.asarray(audio, dtype=np.float64)
    dev = simulate_device(ref, sample_rate, params)
    return AlignedPair(ref.astype(np.float32), dev.astype(np.float32), int(sample_rate), name, {"simulation": params})


__all__ = [
    "MIN_PAIR_S", "VALIDATION_FRACTION", "AlignedPair", "align_pair", "check_pairs", "concatenate_clips",
    "corpus_files", "draw_simulation", "load_pair", "read_pairs_csv", "room_impulse_response", "simulate_device",
    "simulate_pair", "split_pair",
]

"""Estimate device responses from recordings: the unaligned spectrum-correction estimate of
"Spectrum Correction: Acoustic Scene Classification with Mismatched Recording Devices" (Interspeech 2020).

For every device, the mean over all frames of all its recordings of the log power per frequency bin (the log of
the geometric-mean magnitude). Statistics are sums (:class:`~micmatch.response.LogSpectrumStats`), computed per
file in bounded memory (files are read in blocks) and added in input order, so the result is the same with one
worker, many processes or a dask cluster.

Silence handling: frames whose windowed RMS is below ``gate_db`` (default -80 dBFS) or more than
``relative_gate_db`` (default 30 dB) below the recording's loudest frame are skipped (gated), and every bin's power
is floored at ``floor_db`` (default -160 dB) before the log. The relative gate keeps pauses, which hold only the
device's noise floor, out of the estimate; set it to None to count every frame above the absolute gate. A file with no frame above the gate is an
error (an all-zero or digitally silent file), as is a file shorter than one frame.

Device labels come from :func:`label_devices`: the name of the folder holding each file (``dir``), a regular
expression on the path (``regex:PATTERN``, first group or the group named ``device``), or a CSV
(``csv:FILE`` with columns ``filename`` or ``path``, and ``device``).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from micmatch import audio as audio_io
from micmatch.audio import file_fingerprint
from micmatch.errors import AudioError, ConfigMismatchError, DCOffsetWarning, ParameterError
from micmatch.parallel import FileFailure, map_files
from micmatch.response import DeviceResponse, LogSpectrumStats, ResponseSet, SpectralConfig
from micmatch.logstats import LogPowerAccumulator
from micmatch.spectral import DEFAULT_FLOOR_DB, DEFAULT_GATE_DB, DEFAULT_RELATIVE_GATE_DB

#: How channels of a multichannel file enter the statistics: averaged into one signal (``mix``), only the first
#: (``first``), or every channel's frames counted as frames of the device (``each``).
CHANNEL_POLICIES = ("mix", "first", "each")
#: Frames per block read from disk: bounds memory (about 2048 * hop samples per block) whatever the file length.
BLOCK_FRAMES = 2048


def _accumulator(config: SpectralConfig, scale: float) -> LogPowerAccumulator:
    return LogPowerAccumulator(n_fft=config.n_fft, hop_length=config.hop_length, floor_db=config.floor_db,
                               gate_db=config.gate_db, relative_gate_db=config.relative_gate_db, scale=scale)


def _finish(accs: Sequence[LogPowerAccumulator], name: str, n_samples: int, config: SpectralConfig) -> LogSpectrumStats:
    results = [a.result() for a in accs]
    n_frames = sum(r[2] for r in results)
    n_seen = n_frames + sum(r[3] for r in results)
    if n_seen == 0:
        raise AudioError(f"{name}: {n_samples} samples is shorter than one analysis frame (n_fft={config.n_fft})")
    n_dc = sum(a.n_dc for a in accs)
    if n_frames == 0 and n_dc:
        raise AudioError(f"{name}: DC only: {n_dc} of {n_seen} frames are a constant offset (0 Hz) and the rest "
                         f"is below the silence gate; nothing to estimate from")
    if n_frames == 0:
        raise AudioError(f"{name}: silent: no frame is above the silence gate ({config.gate_db} dBFS)")
    n_masked = sum(a.n_dc_masked for a in accs)  # the other DC frames are pauses the gates leave out anyway
    if n_masked:
        warnings.warn(f"{name}: {n_masked} of {n_seen} frames are dominated by a DC offset (0 Hz) and were not "
                      f"counted; remove the offset (high-pass) to use them", DCOffsetWarning, stacklevel=3)
    return LogSpectrumStats(sum(r[0] for r in results), sum(r[1] for r in results), n_frames, 1,
                            sum_power=sum(a.sum_power for a in accs))


def array_stats(audio: np.ndarray, config: SpectralConfig, *, channels: str = "mix",
                name: str = "audio") -> LogSpectrumStats:
    """Statistics of one in-memory recording ``(..., n_samples)`` at ``config.sample_rate``.

    Raises :class:`AudioError` when the recording is shorter than one frame or entirely below the silence gate.
    """
    if channels not in CHANNEL_POLICIES:
        raise ParameterError(f"channels={channels!r} must be one of {CHANNEL_POLICIES}")
    x = audio_io.validate_audio(audio, config.sample_rate, name=name)
    x2 = x.reshape(-1, x.shape[-1])
    if channels == "mix":
        x2 = x2.mean(axis=0, keepdims=True)
    elif channels == "first":
        x2 = x2[:1]
    accs = []
    for row in x2:
        acc = _accumulator(config, 1.0)
        acc.update(row.astype(np.float32, copy=False))
        accs.append(acc)
    return _finish(accs, name, x.shape[-1], config)


def file_stats(path: str | os.PathLike, config: SpectralConfig, *, channels: str = "mix",
               resample: bool = False) -> LogSpectrumStats:
    """Statistics of one file, read in blocks (memory does not grow with the file's length).

    16-bit PCM files are decoded as raw integers with the 1/32768 scale folded into the window (about 4x faster
    than float decoding). A file at another sample rate than ``config.sample_rate`` raises
    :class:`ConfigMismatchError`, unless ``resample=True`` (then it is resampled block-wise with soxr).
    """
    if channels not in CHANNEL_POLICIES:
        raise ParameterError(f"channels={channels!r} must be one of {CHANNEL_POLICIES}")
    meta = audio_io.info(path)
    needs_resample = meta.sample_rate != config.sample_rate
    if needs_resample and not resample:
        raise ConfigMismatchError(
            f"{meta.path}: sample rate {meta.sample_rate} Hz differs from the analysis rate {config.sample_rate} Hz; "
            f"pass --resample (resample=True) or analyse at {meta.sample_rate} Hz"
        )
    raw_int16 = meta.is_pcm16 and not needs_resample
    dtype = "int16" if raw_int16 else "float32"
    scale = 1.0 / 32768.0 if raw_int16 else 1.0
    read_mode = "keep" if channels == "each" else ("first" if channels == "first" else "mix")
    n_rows = meta.channels if channels == "each" else 1
    accs = [_accumulator(config, scale) for _ in range(n_rows)]
    resamplers = None
    if needs_resample:
        import soxr

        resamplers = [soxr.ResampleStream(meta.sample_rate, config.sample_rate, 1, dtype="float32")
                      for _ in range(n_rows)]
    block = BLOCK_FRAMES * config.hop_length
    for chunk in audio_io.iter_blocks(meta.path, block_frames=block, channels=read_mode, dtype=dtype,
                                       meta=meta):
        if raw_int16 and channels == "mix" and chunk.dtype != np.int16:
            chunk = chunk.astype(np.float32, copy=False)  # the mix of int16 channels is float in int16 units
        for i, acc in enumerate(accs):
            row = chunk[i]
            if resamplers is not None:
                row = resamplers[i].resample_chunk(np.ascontiguousarray(row, dtype=np.float32))
            acc.update(row)
    if resamplers is not None:
        for i, acc in enumerate(accs):
            acc.update(resamplers[i].resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    try:
        return _finish(accs, str(meta.path), meta.frames, config)
    except AudioError:
        # A mix with nothing in it, from channels that hold sound: they cancel (antiphase).
        if channels != "mix" or meta.channels < 2 or not _usable(path, config, resample):
            raise
        raise AudioError(f"{meta.path}: its channels cancel when mixed to mono (antiphase): the mix holds no signal; "
                         f"use --channels first or --channels each") from None


def _usable(path, config: SpectralConfig, resample: bool) -> bool:
    """Whether the first channel of ``path`` alone gives statistics."""
    try:
        file_stats(path, config, channels="first", resample=resample)
    except AudioError:
        return False
    return True


def _profile_one(path: str, config: SpectralConfig, channels: str, resample: bool) -> tuple[LogSpectrumStats, dict]:
    """Statistics and fingerprint of one file, both in the worker: hashing a file costs about as much as decoding
    it, and would otherwise run file after file in the main process."""
    return file_stats(path, config, channels=channels, resample=resample), file_fingerprint(path)


def _source_stats(item, config: SpectralConfig, channels: str, resample: bool) -> LogSpectrumStats:
    if isinstance(item, (str, os.PathLike)):
        return file_stats(item, config, channels=channels, resample=resample)
    return array_stats(np.asarray(item), config, channels=channels)


def estimate_responses(
    sources: Mapping[str, Iterable],
    sample_rate: int,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    channels: str = "mix",
    gate_db: float | None = DEFAULT_GATE_DB,
    relative_gate_db: float | None = DEFAULT_RELATIVE_GATE_DB,
    floor_db: float = DEFAULT_FLOOR_DB,
    resample: bool = False,
) -> ResponseSet:
    """Estimate every device's response from its recordings (unaligned spectrum correction).

    Parameters
    ----------
    sources : mapping of str to iterable
        Device name -> recordings, each a file path or an array ``(..., n_samples)`` at ``sample_rate``.
    sample_rate : int
        Analysis rate (Hz). Files at other rates are refused unless ``resample=True``.
    n_fft, hop_length : int
        Frame size and hop of the Hann STFT (samples).
    channels : {"mix", "first", "each"}
        How multichannel recordings enter the statistics (see :data:`CHANNEL_POLICIES`).
    gate_db, relative_gate_db, floor_db : float
        Absolute and relative silence gates and log floor (module docstring).

    Returns
    -------
    ResponseSet
        One :class:`~micmatch.response.DeviceResponse` per device, with its statistics.

    Raises
    ------
    AudioError, ConfigMismatchError
        On the first recording that cannot be used (use :func:`profile_files` to keep going past bad files).
    """
    config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, gate_db=gate_db,
                            relative_gate_db=relative_gate_db, floor_db=floor_db, channels=channels, resample=resample)
    out = ResponseSet(config)
    for device, items in sources.items():
        total = LogSpectrumStats.empty(config.n_bins)
        for item in items:
            total = total + _source_stats(item, config, channels, resample)
            if isinstance(item, (str, os.PathLike)):
                out.files.append(file_fingerprint(item, device=device))
        if total.n_frames == 0:
            raise AudioError(f"device {device!r}: no recordings were given")
        out.add(DeviceResponse.from_stats(device, total))
    return out


def profile_files(
    paths: Sequence[str | os.PathLike],
    devices: Sequence[str],
    config: SpectralConfig,
    *,
    channels: str = "mix",
    resample: bool = False,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: bool = False,
) -> tuple[ResponseSet, list[FileFailure]]:
    """Estimate responses from many files in parallel, keeping going past bad files.

    Per-file statistics are computed by ``jobs`` local processes or a dask cluster (``scheduler``) and added in
    input order, so the result does not depend on how the work was split. The result's configuration records
    ``channels`` and ``resample``, and its ``files`` the fingerprint of every file counted.

    Returns
    -------
    responses : ResponseSet
        Devices with at least one usable file.
    failures : list of FileFailure
        Files that could not be used, with the reason.
    """
    if len(paths) != len(devices):
        raise ParameterError(f"{len(paths)} paths but {len(devices)} device labels")
    config = replace(config, channels=channels, resample=resample)
    work = functools.partial(_profile_one, config=config, channels=channels, resample=resample)
    per_device: dict[str, LogSpectrumStats] = {}
    failures: list[FileFailure] = []
    files: list[dict] = []
    label = dict(zip(map(str, paths), devices))
    for item, result in map_files(work, [str(p) for p in paths], jobs=jobs, scheduler=scheduler,
                                  progress=progress, desc="profiling"):
        if isinstance(result, FileFailure):
            failures.append(result)
            continue
        stats, fingerprint = result
        dev = label[item]
        per_device[dev] = per_device[dev] + stats if dev in per_device else stats
        files.append({**fingerprint, "device": dev})
    out = ResponseSet(config, files=files)
    for dev in sorted(per_device):
        out.add(DeviceResponse.from_stats(dev, per_device[dev]))
    return out, failures


def label_devices(paths: Sequence[str | os.PathLike], device_from: str) -> tuple[list[str | None], list[str]]:
    """Device label for each path, from ``dir``, ``regex:PATTERN``, ``csv:FILE`` or ``name:DEVICE``.

    The same rules as :func:`micmatch.corpus.label_files` with ``what="device"``.

    Returns
    -------
    labels : list of str or None
        None where no label could be found (the reason is in ``problems``).
    problems : list of str
        One line per unlabeled path.
    """
    from micmatch.corpus import label_files

    return label_files(paths, device_from, what="device")



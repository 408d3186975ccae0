"""Aligned spectrum correction: a device's response relative to the reference from time-aligned pairs.

:func:`estimate_pair` aligns a pair (:mod:`micmatch.align`) and applies equation 8 of "Spectrum Correction:
Acoustic Scene Classification with Mismatched Recording Devices" (Interspeech 2020), aligned spectrum correction:
the geometric mean over aligned frames of ``|X_dev| / |X_ref|``, frames gated where either recording is silent or
where the two disagree.

Sign convention (the same as :meth:`ResponseSet.relative_db`): the device's ``response_db`` is
``mean over frames of 20 log10 |X_dev / X_ref|``, the device relative to the reference, and the reference's is 0.
The correction that makes the device sound like the reference is its negative. Both carry
:class:`LogSpectrumStats` (sums over counted frames, with per-bin counts because bins are gated separately), so
the results of several pairs merge exactly in every bin.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.fft

from micmatch.align import MAX_DRIFT_PPM, Alignment, align, check_audible, estimate_alignment
from micmatch.audio import load, resample, to_mono
from micmatch.errors import ConfigMismatchError, MeasurementError
from micmatch.response import DeviceResponse, LogSpectrumStats, ResponseSet, SpectralConfig
from micmatch.spectral import DEFAULT_FLOOR_DB, DEFAULT_GATE_DB, analysis_window, frame_view

#: Frames quieter than this, relative to the recording's loud frames (95th percentile of frame level), are not
#: counted: there the independent noise of each device, not the devices' responses, decides the ratio.
RELATIVE_GATE_DB = -40.0
#: Frames whose log ratio deviates from the first-pass mean by more than this many robust standard deviations
#: (RMS over bins) are dropped as disagreeing (a sound heard by one device only, a glitch, a dropout).
DISAGREEMENT_SIGMAS = 3.0
#: Per-bin signal gate: a (frame, bin) cell counts only where both recordings are this far (dB) above their
#: own noise floor in that bin.
SNR_DB = 10.0
#: Bins with fewer counted cells than this fall back to the mean over all counted frames (flagged in meta).
MIN_CELLS = 10


@dataclass
class PairResult:
    """The outcome of one aligned pair.

    Attributes
    ----------
    responses : ResponseSet
        The reference (``response_db`` 0) and the device (mean log ratio), method ``"aligned"``.
    alignment : Alignment
    coherence : np.ndarray [shape=(n_bins,)]
        Magnitude-squared coherence of the two over the counted frames: near 1 where the device's recording is
        explained by the reference's through a filter, low where noise or non-linearity dominate.
    n_frames_total, n_frames_used : int
    """

    responses: ResponseSet
    alignment: Alignment
    coherence: np.ndarray
    n_frames_total: int
    n_frames_used: int


def _frame_spectra(x: np.ndarray, n_fft: int, hop_length: int, window: np.ndarray) -> np.ndarray:
    return scipy.fft.rfft(frame_view(x, n_fft, hop_length) * window, axis=-1)


def estimate_pair(
    reference: np.ndarray,
    device: np.ndarray,
    sample_rate: int,
    *,
    device_sample_rate: int | None = None,
    reference_name: str = "reference",
    device_name: str = "device",
    n_fft: int = 2048,
    hop_length: int = 512,
    floor_db: float = DEFAULT_FLOOR_DB,
    gate_db: float | None = DEFAULT_GATE_DB,
    relative_gate_db: float = RELATIVE_GATE_DB,
    disagreement_sigmas: float = DISAGREEMENT_SIGMAS,
    snr_db: float = SNR_DB,
    alignment: Alignment | None = None,
    max_offset_s: float | None = None,
    max_drift_ppm: float = MAX_DRIFT_PPM,
) -> PairResult:
    """Aligned spectrum correction from one pair of recordings of the same sound (eq. 8 of the Spectrum
    Correction paper, Interspeech 2020).

    Parameters
    ----------
    reference, device : np.ndarray [shape=(..., n)]
        Recordings of the same sound by the reference and by the device (channels averaged).
    sample_rate : int
        Of the reference (and of the device unless ``device_sample_rate`` says otherwise).
    device_sample_rate : int, optional
        The device recording's rate; a different rate raises :class:`ConfigMismatchError`.
    n_fft, hop_length : int
        Analysis frames (Hann), as for unaligned estimation.
    floor_db : float
        Floor of every log power (so empty bins give a finite ratio).
    gate_db : float or None
        Absolute silence gate: a frame counts only if both frames are at least this loud (dB re full scale).
    relative_gate_db : float
        Relative gate (:data:`RELATIVE_GATE_DB`).
    disagreement_sigmas : float
        Disagreement gate (:data:`DISAGREEMENT_SIGMAS`); ``inf`` disables it.
    snr_db : float
        Per-bin signal gate (:data:`SNR_DB`); ``-inf`` counts every cell of the counted frames.
    alignment : Alignment, optional
        Use this alignment instead of estimating one.

    Returns
    -------
    PairResult

    Raises
    ------
    ConfigMismatchError
        Different sample rates.
    MeasurementError
        Silence, recordings of different sounds, or no frame where both carry the sound.
    """
    if device_sample_rate is not None and device_sample_rate != sample_rate:
        raise ConfigMismatchError(
            f"the pair has different sample rates: reference at {sample_rate} Hz, device at {device_sample_rate} Hz; "
            f"resample one to the other's rate first (micmatch pair --resample)"
        )
    config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, floor_db=floor_db,
                            gate_db=gate_db)
    ref = to_mono(reference, sample_rate, name="reference", min_samples=n_fft)
    dev = to_mono(device, sample_rate, name="device", min_samples=n_fft)
    check_audible(ref, "reference")
    check_audible(dev, "device")
    if alignment is None:
        alignment = estimate_alignment(ref, dev, sample_rate, max_offset_s=max_offset_s, max_drift_ppm=max_drift_ppm)
    aligned = align(dev, alignment, ref.shape[-1])
    covered = np.zeros(ref.shape[-1], dtype=bool)
    first = int(np.ceil(-alignment.offset_samples / (1.0 + alignment.drift_ppm * 1e-6)))
    last = int(np.floor((dev.shape[-1] - 1 - alignment.offset_samples) / (1.0 + alignment.drift_ppm * 1e-6)))
    covered[max(first, 0) : max(last + 1, 0)] = True

    window = analysis_window(n_fft, dtype=np.float64)
    floor = 10.0 ** (floor_db / 10.0)
    n_total = 1 + (ref.shape[-1] - n_fft) // hop_length
    lp_r, lp_d, level_r, level_d, ok = [], [], [], [], []
    block = 256  # frames per FFT call
    for f0 in range(0, n_total, block):
        f1 = min(f0 + block, n_total)
        lo, hi = f0 * hop_length, (f1 - 1) * hop_length + n_fft
        pr = np.abs(_frame_spectra(ref[lo:hi], n_fft, hop_length, window)) ** 2
        pd = np.abs(_frame_spectra(aligned[lo:hi], n_fft, hop_length, window)) ** 2
        lp_r.append((10.0 * np.log10(np.maximum(pr, floor))).astype(np.float32))
        lp_d.append((10.0 * np.log10(np.maximum(pd, floor))).astype(np.float32))
        level_r.append(_level_db(pr, n_fft, window))
        level_d.append(_level_db(pd, n_fft, window))
        starts = lo + hop_length * np.arange(f1 - f0)
        ok.append(covered[starts] & covered[np.minimum(starts + n_fft - 1, covered.shape[0] - 1)])
    lr_db, ld_db = np.concatenate(lp_r), np.concatenate(lp_d)
    lr, ld, keep = np.concatenate(level_r), np.concatenate(level_d), np.concatenate(ok)
    # Silence gates on whole frames: absolute, and relative to each recording's loud frames.
    for lev in (lr, ld):
        if gate_db is not None:
            keep &= lev >= gate_db
        loud = np.percentile(lev[keep], 95) if keep.any() else -np.inf
        keep &= lev >= loud + relative_gate_db
    if not keep.any():
        raise MeasurementError(
            f"no frame where both recordings carry the sound (all {n_total} frames are silent, below the gate, or "
            f"outside the overlap); expected two overlapping recordings of the same sound"
        )
    # Per-bin signal gate: a (frame, bin) cell counts only where both recordings stand snr_db above their own
    # noise floor in that bin (the 10th percentile over frames: speech and most sounds pause in every bin).
    # Elsewhere each device's independent noise, not its response, decides the ratio and pulls it towards the
    # ratio of the noise floors.
    covered_frames = np.concatenate(ok)
    cells = keep[:, None].copy()
    for lp in (lr_db, ld_db):
        noise = np.percentile(lp[covered_frames], 10, axis=0)
        cells = cells & (lp >= noise + snr_db)
    ratio = (ld_db - lr_db).astype(np.float64)
    # Disagreement gate on frames: log ratio far (RMS over counted cells) from the first-pass mean.
    mean = _masked_mean(ratio, cells, fallback=ratio[keep].mean(axis=0))
    dev2 = np.where(cells, (ratio - mean) ** 2, 0.0).sum(axis=1)
    n_cells = cells.sum(axis=1)
    deviation = np.sqrt(dev2 / np.maximum(n_cells, 1))
    judged = keep & (n_cells > 0)
    if np.isfinite(disagreement_sigmas) and judged.sum() > 2:
        med = float(np.median(deviation[judged]))
        sigma = float(np.median(np.abs(deviation[judged] - med))) / 0.6745
        keep &= ~judged | (deviation <= med + disagreement_sigmas * max(sigma, 1e-9))
        cells &= keep[:, None]
    n_used = int(keep.sum())
    counts = cells.sum(axis=0)
    # Bins where the sound never rose above the noise in both recordings keep the ungated sums (flagged in meta).
    # Per-bin counts make merges of several pairs exact in every bin.
    sparse = counts < max(MIN_CELLS, 1)
    cells = cells | (sparse[None, :] & keep[:, None])
    sums = np.where(cells, ratio, 0.0).sum(axis=0)
    sums_sq = np.where(cells, ratio * ratio, 0.0).sum(axis=0)
    stats = LogSpectrumStats(sums, sums_sq, n_used, 1, bin_counts=cells.sum(axis=0))
    zeros = LogSpectrumStats(np.zeros(config.n_bins), np.zeros(config.n_bins), n_used, 1)
    coherence = _coherence(ref, aligned, keep, n_fft, hop_length, window)
    meta = {"reference": reference_name, "alignment": alignment.to_json(),
            "frames_used": n_used, "frames_total": int(n_total), "snr_db": snr_db,
            "bins_without_signal": int(sparse.sum()),
            "median_coherence": round(float(np.median(coherence[1:])), 4)}
    devices = [DeviceResponse.from_stats(reference_name, zeros, method="aligned", meta={"role": "reference"}),
               DeviceResponse.from_stats(device_name, stats, method="aligned", meta=meta)]
    return PairResult(ResponseSet(config, devices), alignment, coherence, int(n_total), n_used)


def _masked_mean(values: np.ndarray, mask: np.ndarray, *, fallback: np.ndarray) -> np.ndarray:
    """Per-column mean of ``values`` over ``mask``; ``fallback`` where a column has no cell."""
    count = mask.sum(axis=0)
    total = np.where(mask, values, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), fallback)


def _level_db(power: np.ndarray, n_fft: int, window: np.ndarray) -> np.ndarray:
    """RMS level (dB re full scale) of each windowed frame from its one-sided power spectrum (Parseval), floored
    at -300 dB."""
    two_sided = 2.0 * power.sum(axis=-1) - power[..., 0] - power[..., -1]
    mean_square = two_sided / n_fft / np.sum(window * window)
    return 10.0 * np.log10(np.maximum(mean_square, 1e-30))


def _coherence(ref: np.ndarray, dev: np.ndarray, keep: np.ndarray, n_fft: int, hop_length: int,
               window: np.ndarray) -> np.ndarray:
    """Magnitude-squared coherence over the counted frames (floored denominators)."""
    sxy = np.zeros(n_fft // 2 + 1, dtype=np.complex128)
    sxx = np.zeros(n_fft // 2 + 1)
    syy = np.zeros(n_fft // 2 + 1)
    frames = np.flatnonzero(keep)
    for i in range(0, frames.shape[0], 256):
        idx = frames[i : i + 256]
        cols = np.arange(n_fft)[None, :] + hop_length * idx[:, None]
        xr = scipy.fft.rfft(ref[cols] * window, axis=-1)
        xd = scipy.fft.rfft(dev[cols] * window, axis=-1)
        sxy += np.sum(xd * np.conj(xr), axis=0)
        sxx += np.sum(np.abs(xr) ** 2, axis=0)
        syy += np.sum(np.abs(xd) ** 2, axis=0)
    return np.abs(sxy) ** 2 / np.maximum(sxx * syy, 1e-300)


def estimate_pair_files(
    reference: str | os.PathLike,
    device: str | os.PathLike,
    *,
    resample_device: bool = False,
    **options,
) -> PairResult:
    """:func:`estimate_pair` on two audio files (channels mixed). Different sample rates raise
    :class:`ConfigMismatchError` unless ``resample_device`` (then the device file is resampled to the
    reference's rate)."""
    ref, sr = load(reference, channels="mix", dtype="float64")
    dev, sr_dev = load(device, channels="mix", dtype="float64")
    if sr_dev != sr:
        if not resample_device:
            raise ConfigMismatchError(
                f"{reference} is at {sr} Hz but {device} at {sr_dev} Hz; a pair must share one sample rate: "
                f"resample one of them first, or pass --resample to convert the device recording"
            )
        dev = resample(dev, sr_dev, sr)
        sr_dev = sr
    return estimate_pair(ref[0], dev[0], sr, device_sample_rate=sr_dev, **options)


def merge_pairs(results: Iterable[PairResult]) -> ResponseSet:
    """One :class:`ResponseSet` from several pairs (same configuration): statistics of equal names are added."""
    out = None
    for r in results:
        out = r.responses if out is None else out.merge(r.responses)
    if out is None:
        raise MeasurementError("no pair was given; expected at least one (reference, device) pair")
    return out


__all__ = ["PairResult", "estimate_pair", "estimate_pair_files", "merge_pairs"]

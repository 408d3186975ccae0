"""Time-aligned pairs: offset and clock-drift estimation, alignment, and aligned spectrum correction.

Two recordings of the same sound, one by the reference device and one by another device, are related by
``device[offset + (1 + drift) * n] ~ reference[n]`` (filtered by the devices' responses): the device recording
started ``offset`` samples earlier (negative: later) and its clock runs ``drift`` faster (real devices differ by
tens of ppm). :func:`estimate_alignment` finds both:

1. a coarse offset: GCC-PHAT cross-correlation (FFT, any offset, positive or negative) of the loudest few seconds
   of the reference against the whole device recording;
2. the offset of every chunk along the file (local GCC-PHAT around the coarse offset, sub-sample peak by
   parabolic interpolation), chunks without a clear peak (silence) left out;
3. a robust straight-line fit ``offset(n) = offset + drift * n`` through the chunk offsets.

:func:`align` resamples the device recording onto the reference's clock (soxr, with the drift as rate ratio, then
a fractional shift), so the two agree to a fraction of a sample along the whole file.

:func:`estimate_pair` then applies equation 8 of "Spectrum Correction: Acoustic Scene Classification with
Mismatched Recording Devices" (Interspeech 2020), aligned spectrum correction: the geometric mean over
aligned frames of ``|X_dev| / |X_ref|``, frames gated where either recording is silent or where the two disagree.

Sign convention (the same as :meth:`ResponseSet.relative_db`): the device's ``response_db`` is
``mean over frames of 20 log10 |X_dev / X_ref|``, the device relative to the reference, and the reference's is 0.
The correction that makes the device sound like the reference is its negative. Both carry
:class:`LogSpectrumStats` (sums over counted frames, with per-bin counts because bins are gated separately), so
the results of several pairs merge exactly in every bin.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from micmatch.audio import load, resample, to_mono
from micmatch.errors import ConfigMismatchError, MeasurementError
from micmatch.response import DeviceResponse, LogSpectrumStats, ResponseSet, SpectralConfig
from micmatch.spectral import DEFAULT_FLOOR_DB, DEFAULT_GATE_DB, analysis_window, frame_view

#: A correlation peak must stand this many robust standard deviations above the rest of the GCC-PHAT
#: correlation. Unrelated signals give about 5-6 (the largest of millions of near-Gaussian values); the same
#: speech through two different microphones gives hundreds.
MIN_PEAK_SCORE = 12.0
#: Fraction of the chunks with sound whose offsets must lie on the fitted line. Recordings of the same sound
#: line up almost everywhere (over 95% of chunks with speech); unrelated material gives a clear peak in a
#: few percent of the chunks, at random offsets.
MIN_CONSISTENT = 0.3
#: Largest clock drift searched for, in ppm. 100 ppm is beyond consumer devices (tens of ppm).
MAX_DRIFT_PPM = 200.0
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
#: Floor of the PHAT weighting, relative to the mean cross-spectrum magnitude, so empty bins do not divide by 0.
PHAT_FLOOR = 1e-3


@dataclass(frozen=True)
class Alignment:
    """Where the reference's samples lie in the device recording: ``m = offset + (1 + drift) * n``.

    Attributes
    ----------
    offset_samples : float
        Device sample index of reference sample 0 (negative when the device recording started later).
    drift_ppm : float
        Device clock rate relative to the reference's, minus one, in parts per million.
    sample_rate : int
    chunk_positions : np.ndarray [shape=(n_chunks,)]
        Reference sample index of each chunk's centre.
    chunk_offsets : np.ndarray [shape=(n_chunks,)]
        Measured ``m - n`` at each chunk centre, samples (NaN where no peak was found).
    chunk_used : np.ndarray [shape=(n_chunks,), dtype=bool]
        Chunks kept by the line fit.
    peak_score : float
        Strength of the coarse correlation peak (robust standard deviations).
    """

    offset_samples: float
    drift_ppm: float
    sample_rate: int
    chunk_positions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chunk_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chunk_used: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    peak_score: float = float("nan")

    def device_position(self, n: np.ndarray | float) -> np.ndarray:
        """Device sample index (fractional) of reference sample(s) ``n``."""
        return self.offset_samples + (1.0 + self.drift_ppm * 1e-6) * np.asarray(n, dtype=np.float64)

    @property
    def residuals(self) -> np.ndarray:
        """Chunk offsets minus the fitted line, samples (NaN where no peak was found)."""
        return self.chunk_offsets - (self.device_position(self.chunk_positions) - self.chunk_positions)

    def to_json(self) -> dict:
        return {"offset_s": round(self.offset_samples / self.sample_rate, 9), "drift_ppm": round(self.drift_ppm, 4),
                "chunks_used": int(self.chunk_used.sum()), "chunks": int(self.chunk_used.size),
                "peak_score": round(float(self.peak_score), 2)}


def _check_audible(x: np.ndarray, name: str) -> None:
    rms = float(np.sqrt(np.mean(x * x)))
    if rms < 1e-6:  # -120 dBFS: below any real converter's noise, so only digital silence
        raise MeasurementError(
            f"{name} is silent (RMS {20 * np.log10(max(rms, 1e-30)):.0f} dBFS); expected a recording of the same "
            f"sound as the other recording of the pair"
        )


def gcc_phat(reference: np.ndarray, device: np.ndarray) -> tuple[np.ndarray, int]:
    """Generalised cross-correlation with phase transform (PHAT) of two 1-D signals, via one FFT.

    Returns
    -------
    correlation : np.ndarray [shape=(n_ref + n_dev - 1,)]
        ``correlation[k + n_ref - 1]`` peaks at the lag ``k`` where ``device[n + k] ~ reference[n]``.
    zero_lag : int
        Index of lag 0 (``n_ref - 1``).

    Notes
    -----
    The cross-spectrum is divided by its magnitude (floored at :data:`PHAT_FLOOR` times its mean), so the peak is
    sharp whatever the two devices' responses are.
    """
    n_ref, n_dev = reference.shape[-1], device.shape[-1]
    n = scipy.fft.next_fast_len(n_ref + n_dev - 1, real=True)
    cross = scipy.fft.rfft(device, n=n) * np.conj(scipy.fft.rfft(reference, n=n))
    mag = np.abs(cross)
    cross = cross / np.maximum(mag, PHAT_FLOOR * max(float(mag.mean()), 1e-300))
    c = scipy.fft.irfft(cross, n=n)
    zero_lag = n_ref - 1
    return np.concatenate([c[n - zero_lag :] if zero_lag else c[:0], c[:n_dev]]), zero_lag


def _peak(c: np.ndarray) -> tuple[float, float]:
    """Sub-sample index of the largest value of ``c`` (parabolic interpolation) and its robust score."""
    i = int(np.argmax(c))
    frac = 0.0
    if 0 < i < c.shape[-1] - 1:
        a, b, d = c[i - 1], c[i], c[i + 1]
        den = a - 2.0 * b + d
        if den < 0:
            frac = float(np.clip(0.5 * (a - d) / den, -0.5, 0.5))
    sigma = float(np.median(np.abs(c - np.median(c)))) / 0.6745
    return i + frac, float((c[i] - np.median(c)) / max(sigma, 1e-300))


def estimate_offset(
    reference: np.ndarray,
    device: np.ndarray,
    sample_rate: int,
    *,
    max_offset_s: float | None = None,
    excerpt_s: float = 4.0,
    min_peak_score: float = MIN_PEAK_SCORE,
) -> tuple[float, float]:
    """Coarse offset ``m - n`` (samples) of the device recording relative to the reference, and its peak score.

    The loudest ``excerpt_s`` seconds of the reference are located in the whole device recording (GCC-PHAT);
    a short excerpt keeps the peak sharp even when the clocks drift. Raises :class:`MeasurementError` when no
    clear peak exists (the two recordings are not of the same sound).
    """
    ref = to_mono(reference, sample_rate, name="reference")
    dev = to_mono(device, sample_rate, name="device")
    n_ex = min(ref.shape[-1], int(round(excerpt_s * sample_rate)))
    if n_ex < ref.shape[-1]:
        hop = max(1, n_ex // 4)
        csum = np.concatenate([[0.0], np.cumsum(ref * ref)])
        starts = np.arange(0, ref.shape[-1] - n_ex + 1, hop)
        start = int(starts[int(np.argmax(csum[starts + n_ex] - csum[starts]))])
    else:
        start = 0
    c, zero = gcc_phat(ref[start : start + n_ex], dev)
    if max_offset_s is not None:
        offsets = np.arange(c.shape[-1]) - zero - start
        c = np.where(np.abs(offsets) <= max_offset_s * sample_rate, c, np.median(c))
    position, score = _peak(c)
    if score < min_peak_score:
        raise MeasurementError(
            f"the two recordings do not seem to hold the same sound: the cross-correlation peak scores {score:.1f} "
            f"(min_peak_score={min_peak_score}); expected two recordings of one sound, by the reference and by the "
            f"device, overlapping by at least {excerpt_s} s"
        )
    return position - zero - start, score


def estimate_alignment(
    reference: np.ndarray,
    device: np.ndarray,
    sample_rate: int,
    *,
    chunk_s: float = 0.5,
    max_offset_s: float | None = None,
    max_drift_ppm: float = MAX_DRIFT_PPM,
    min_peak_score: float = MIN_PEAK_SCORE,
) -> Alignment:
    """Offset and clock drift of a device recording relative to a reference recording of the same sound.

    Parameters
    ----------
    reference, device : np.ndarray [shape=(..., n)]
        The two recordings (channels averaged), at the same ``sample_rate``.
    sample_rate : int
    chunk_s : float
        Chunk length for the local offsets. Within a chunk a drift of ``d`` ppm moves the offset by
        ``d * 1e-6 * chunk_s * sample_rate`` samples (2.2 samples for 100 ppm, 0.5 s, 44.1 kHz); the chunk's
        offset is that of its centre.
    max_offset_s : float, optional
        Largest offset searched for (default: any).
    max_drift_ppm : float
        Largest drift searched for; bounds the local search around the coarse offset.

    Returns
    -------
    Alignment
    """
    ref = to_mono(reference, sample_rate, name="reference")
    dev = to_mono(device, sample_rate, name="device")
    _check_audible(ref, "reference")
    _check_audible(dev, "device")
    coarse, score = estimate_offset(ref, dev, sample_rate, max_offset_s=max_offset_s, min_peak_score=min_peak_score)
    n_chunk = max(64, int(round(chunk_s * sample_rate)))
    search = int(np.ceil(max_drift_ppm * 1e-6 * ref.shape[-1])) + 64
    positions, offsets = [], []
    for start in range(0, ref.shape[-1] - n_chunk + 1, n_chunk):
        chunk = ref[start : start + n_chunk]
        centre = start + n_chunk / 2.0
        lo = int(np.floor(start + coarse)) - search
        hi = lo + n_chunk + 2 * search
        positions.append(centre)
        if lo < 0 or hi > dev.shape[-1] or np.sqrt(np.mean(chunk * chunk)) < 1e-6:
            offsets.append(np.nan)
            continue
        c, zero = gcc_phat(chunk, dev[lo:hi])
        c = c[zero : zero + 2 * search + 1]  # lags 0 .. 2 * search inside the device segment
        pos, chunk_score = _peak(c)
        offsets.append(lo + pos - start if chunk_score >= min_peak_score else np.nan)
    positions_a, offsets_a = np.asarray(positions), np.asarray(offsets)
    used = np.isfinite(offsets_a)
    if used.sum() >= 2:
        slope, intercept, used = _robust_line(positions_a, offsets_a, used)
    else:  # too short or too few clear chunks for a drift: keep the coarse offset
        slope, intercept = 0.0, coarse
        used = np.zeros_like(used)
    audible = _audible_chunks(ref, n_chunk, len(positions))
    if audible >= 4 and used.sum() < MIN_CONSISTENT * audible:
        raise MeasurementError(
            f"the two recordings do not seem to hold the same sound: only {int(used.sum())} of {audible} chunks "
            f"with sound line up on one offset and drift (at least {MIN_CONSISTENT:.0%} needed); expected two "
            f"recordings of one sound, by the reference and by the device"
        )
    return Alignment(float(intercept), float(slope * 1e6), int(sample_rate), positions_a, offsets_a, used, score)


def _audible_chunks(x: np.ndarray, n_chunk: int, count: int) -> int:
    """Chunks whose level is within 40 dB of the loud chunks (95th percentile): the ones that should line up."""
    if count == 0:
        return 0
    ms = np.mean(x[: count * n_chunk].reshape(count, n_chunk) ** 2, axis=1)
    level = 10.0 * np.log10(np.maximum(ms, 1e-30))
    return int(np.sum(level >= np.percentile(level, 95) - 40.0))


def _robust_line(x: np.ndarray, y: np.ndarray, used: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares line through ``(x, y)[used]``, refitted without points beyond 4 robust sigmas (and 0.5
    samples) of it until nothing changes."""
    keep = used.copy()
    for _ in range(10):
        if keep.sum() < 2:
            keep = used.copy()
            break
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        resid = np.abs(y - (intercept + slope * x))
        sigma = float(np.median(resid[keep])) / 0.6745
        new = used & (resid <= max(4.0 * sigma, 0.5))
        if np.array_equal(new, keep):
            break
        keep = new
    slope, intercept = np.polyfit(x[keep], y[keep], 1)
    return float(slope), float(intercept), keep


def align(device: np.ndarray, alignment: Alignment, n_samples: int) -> np.ndarray:
    """The device recording on the reference's clock: ``out[n] = device(offset + (1 + drift) n)``.

    Resamples with soxr (rate ratio ``1 + drift``; skipped when the drift moves the device by less than 0.1
    sample over ``n_samples``), then shifts by the remaining fraction of a sample in the frequency domain. The
    resampler's anti-aliasing filter attenuates the top 3-4% of the band below Nyquist. Samples that the device
    recording does not cover are zero.

    Parameters
    ----------
    device : np.ndarray [shape=(n_dev,)]
    alignment : Alignment
    n_samples : int
        Length of the output (normally the reference's length).

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float64]
    """
    import soxr

    x = np.asarray(device, dtype=np.float64)
    ratio = 1.0 + alignment.drift_ppm * 1e-6
    sr = alignment.sample_rate
    # Resample only when the drift moves the device by a tenth of a sample or more over the output: soxr's
    # anti-aliasing filter takes the top few percent of the band below Nyquist away.
    drifts = abs(alignment.drift_ppm) * 1e-6 * max(n_samples, 1) >= 0.1
    y = soxr.resample(x, sr * ratio, sr, quality="VHQ") if drifts else x.copy()
    if not drifts:
        ratio = 1.0
    # y[k] = device(ratio * k), so out[n] = y(n + offset / ratio).
    shift = alignment.offset_samples / ratio
    whole = int(np.floor(shift))
    frac = shift - whole
    if frac > 1e-6:
        n = scipy.fft.next_fast_len(y.shape[-1] + 64, real=True)
        spec = scipy.fft.rfft(y, n=n) * np.exp(2j * np.pi * np.fft.rfftfreq(n) * frac)
        y = scipy.fft.irfft(spec, n=n)[: y.shape[-1]]
    out = np.zeros(n_samples)
    src_lo, src_hi = max(whole, 0), min(whole + n_samples, y.shape[-1])
    if src_hi > src_lo:
        out[src_lo - whole : src_hi - whole] = y[src_lo:src_hi]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Aligned spectrum correction


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
    _check_audible(ref, "reference")
    _check_audible(dev, "device")
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


__all__ = [
    "Alignment", "PairResult", "align", "estimate_alignment", "estimate_offset", "estimate_pair",
    "estimate_pair_files", "gcc_phat", "merge_pairs",
]

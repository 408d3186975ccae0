"""Time-aligned pairs: offset and clock-drift estimation between two recordings, and alignment.

Two recordings of the same sound, one by the reference device and one by another device, are related by
``device[offset + (1 + drift) * n] ~ reference[n]`` (filtered by the devices' responses): the device recording
started ``offset`` samples earlier (negative: later) and its clock runs ``drift`` faster (real devices differ by
tens of ppm). :func:`estimate_alignment` finds both:

1. a coarse offset: GCC-PHAT cross-correlation (FFT, any offset, positive or negative) of the loudest few seconds
   of the reference against the whole device recording;
2. the offset of every chunk along the file (local GCC-PHAT around the coarse offset, sub-sample peak by
   parabolic interpolation), chunks without a clear peak (silence) left out; a peak must stand out of the
   correlation over a second of lags around it, not only over the few milliseconds searched, which a room's
   reflections fill; longer chunks are tried when too few line up (reverberant rooms);
3. a robust straight-line fit ``offset(n) = offset + drift * n`` through the chunk offsets, started from the line
   that most chunks agree on (chunks locked on a strong reflection do not pull it);
4. where too few chunks have a peak of their own (far from the source in a reverberant room, where the direct
   sound is a small part of what each microphone hears), the chunks' correlations are stacked: summed along every
   line of drift up to the bound, so the direct sound adds up over the whole overlap while the reverberation does
   not (:func:`_stacked_line`).

Peaks are looked for on both signs of the correlation: a device whose chain inverts the signal (a microphone wired
the other way round, an inverting preamplifier) correlates negatively with the reference, and its largest positive
value lies on a side lobe, a fraction of a millisecond off. The sign found is kept as :attr:`Alignment.polarity`.

:func:`align` resamples the device recording onto the reference's clock (soxr, with the drift as rate ratio, then
a fractional shift), so the two agree to a fraction of a sample along the whole file.

The aligned spectrum correction of a pair is :mod:`micmatch.aligned`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from micmatch.audio import to_mono
from micmatch.errors import MeasurementError
from micmatch.gcc import gcc_phat, gcc_phat_long, overlapping_lags, signed_peak
from micmatch.gcc import peak as _peak

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
#: The correlation's noise level (median and robust spread, which a chunk's peak is scored against) is measured
#: over this many seconds of lags each side of the searched window: in a room, reflections fill the few
#: milliseconds searched around a chunk's offset, so a spread measured there only compares the peak with its own
#: echoes (scores of 3-11 at RT60 0.2-0.6 s instead of hundreds).
SPREAD_S = 1.0
#: The chunks are searched this much (seconds) further each side of the coarse offset than the drift needs: in a
#: reverberant room the coarse excerpt's peak can lie on a strong reflection, tens of milliseconds off the direct
#: sound that most chunks find.
REFLECTION_S = 0.03
#: When fewer than :data:`MIN_CONSISTENT` of the chunks line up, the chunks are tried again this many times longer
#: (in a reverberant room a longer chunk carries more direct sound against the same reflections).
LONG_CHUNK_FACTOR = 4
#: A stacked line's peak must also stand this many robust standard deviations out of the lags searched around it
#: (:func:`_stacked_line`). Far from the source the reverberation raises the whole search window above the
#: correlation's noise: a peak that only scores against the noise may be any of them. On simulated rooms
#: (RT60 0.65 s) peaks on the direct sound scored 4.1-4.9 here, peaks in a diffuse tail 2.9.
MIN_STACK_DISTINCT = 3.5


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
    polarity : int
        1, or -1 where the device recording is inverted against the reference (its correlation peak is negative).
    method : str
        ``"chunks"`` (a line through the chunks' own offsets) or ``"stacked"`` (the chunks' correlations summed
        along the best line; :attr:`chunk_offsets` are then NaN and :attr:`chunk_used` marks the chunks summed).
    """

    offset_samples: float
    drift_ppm: float
    sample_rate: int
    chunk_positions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chunk_offsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chunk_used: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    peak_score: float = float("nan")
    polarity: int = 1
    method: str = "chunks"

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
                "peak_score": round(float(self.peak_score), 2), "polarity": int(self.polarity), "method": self.method}


def check_audible(x: np.ndarray, name: str) -> None:
    """Refuse digital silence (RMS below -120 dBFS): nothing to align or compare."""
    rms = float(np.sqrt(np.mean(x * x)))
    if rms < 1e-6:  # -120 dBFS: below any real converter's noise, so only digital silence
        raise MeasurementError(
            f"{name} is silent (RMS {20 * np.log10(max(rms, 1e-30)):.0f} dBFS); expected a recording of the same "
            f"sound as the other recording of the pair"
        )


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
    a short excerpt keeps the peak sharp even when the clocks drift. The peak is looked for on both signs (an
    inverted device correlates negatively). Raises :class:`MeasurementError` when no clear peak exists (the two
    recordings are not of the same sound).
    """
    offset, score, _ = _coarse_offset(reference, device, sample_rate, max_offset_s=max_offset_s,
                                      excerpt_s=excerpt_s, min_peak_score=min_peak_score)
    return offset, score


def _coarse_offset(reference: np.ndarray, device: np.ndarray, sample_rate: int, *, max_offset_s: float | None,
                   excerpt_s: float, min_peak_score: float) -> tuple[float, float, int]:
    """:func:`estimate_offset` and the polarity of its peak."""
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
    c, zero = gcc_phat_long(ref[start : start + n_ex], dev)
    c = overlapping_lags(c, zero, n_ex, dev.shape[-1])
    if max_offset_s is not None:
        offsets = np.arange(c.shape[-1]) - zero - start
        c = np.where(np.abs(offsets) <= max_offset_s * sample_rate, c, np.median(c))
    position, score, polarity = signed_peak(c)
    if score < min_peak_score:
        raise MeasurementError(
            f"the two recordings do not seem to hold the same sound: the cross-correlation peak scores {score:.1f} "
            f"(min_peak_score={min_peak_score}); expected two recordings of one sound, by the reference and by the "
            f"device, overlapping by at least {excerpt_s} s"
        )
    return position - zero - start, score, polarity


def estimate_alignment(
    reference: np.ndarray,
    device: np.ndarray,
    sample_rate: int,
    *,
    chunk_s: float = 0.5,
    max_offset_s: float | None = None,
    max_drift_ppm: float = MAX_DRIFT_PPM,
    min_peak_score: float = MIN_PEAK_SCORE,
    coarse_offset: tuple[float, float] | tuple[float, float, int] | None = None,
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
    coarse_offset : (offset_samples, peak_score[, polarity]), optional
        A coarse offset ``m - n`` already found (for instance from several excerpts), and the sign of its peak
        (default 1); default found here (:func:`estimate_offset`).

    Returns
    -------
    Alignment

    Notes
    -----
    Each chunk's peak is scored against the correlation over :data:`SPREAD_S` seconds of lags around its search
    window, so the reflections of a room do not count as the noise the peak must stand out of. When fewer than
    :data:`MIN_CONSISTENT` of the chunks with sound line up (reverberant rooms, RT60 of 0.4 s and more), the
    chunks are tried again :data:`LONG_CHUNK_FACTOR` times longer, and when those do not line up either, the chunks'
    correlations are stacked along the best line of offset and drift (:func:`_stacked_line`); that line must
    score :data:`MIN_PEAK_SCORE` too.
    """
    ref = to_mono(reference, sample_rate, name="reference")
    dev = to_mono(device, sample_rate, name="device")
    check_audible(ref, "reference")
    check_audible(dev, "device")
    if coarse_offset is None:
        coarse, score, polarity = _coarse_offset(ref, dev, sample_rate, max_offset_s=max_offset_s, excerpt_s=4.0,
                                                 min_peak_score=min_peak_score)
    else:
        coarse, score = float(coarse_offset[0]), float(coarse_offset[1])
        polarity = int(coarse_offset[2]) if len(coarse_offset) > 2 else 1
    max_slope = max_drift_ppm * 1e-6
    search = int(np.ceil(max_slope * ref.shape[-1] + REFLECTION_S * sample_rate)) + 64
    n_chunk = max(64, int(round(chunk_s * sample_rate)))
    positions_a, offsets_a = _chunk_offsets(ref, dev, coarse, n_chunk, search, sample_rate, min_peak_score, polarity)
    slope, intercept, used = _fit(positions_a, offsets_a, coarse, max_slope)
    audible = _audible_chunks(ref, n_chunk, len(positions_a))
    long_chunk = LONG_CHUNK_FACTOR * n_chunk
    if audible >= 4 and used.sum() < MIN_CONSISTENT * audible and ref.shape[-1] >= 3 * long_chunk:
        # Reverberant rooms: the same search with longer chunks before giving up.
        positions_l, offsets_l = _chunk_offsets(ref, dev, coarse, long_chunk, search, sample_rate, min_peak_score,
                                                polarity)
        slope_l, intercept_l, used_l = _fit(positions_l, offsets_l, coarse, max_slope)
        audible_l = _audible_chunks(ref, long_chunk, len(positions_l))
        if used_l.sum() >= MIN_CONSISTENT * audible_l:
            positions_a, offsets_a, slope, intercept, used, audible = (positions_l, offsets_l, slope_l, intercept_l,
                                                                       used_l, audible_l)
    if audible >= 4 and used.sum() < MIN_CONSISTENT * audible:
        stacked = _stacked_line(ref, dev, coarse, n_chunk, search - int(np.ceil(max_slope * ref.shape[-1])),
                                sample_rate, max_slope)
        if stacked is not None and stacked[2] >= min_peak_score:
            slope, intercept, stack_score, positions_s, used_s, sign = stacked
            return Alignment(float(intercept), float(slope * 1e6), int(sample_rate), positions_s,
                             np.full(positions_s.shape, np.nan), used_s, stack_score, sign, "stacked")
        raise MeasurementError(
            f"the two recordings do not seem to hold the same sound: only {int(used.sum())} of {audible} chunks "
            f"with sound line up on one offset and drift (at least {MIN_CONSISTENT:.0%} needed); expected two "
            f"recordings of one sound, by the reference and by the device"
        )
    return Alignment(float(intercept), float(slope * 1e6), int(sample_rate), positions_a, offsets_a, used, score,
                     polarity)


def _chunk_offsets(ref: np.ndarray, dev: np.ndarray, coarse: float, n_chunk: int, search: int, sample_rate: int,
                   min_peak_score: float, polarity: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Centre (reference samples) and measured offset ``m - n`` of every chunk of ``n_chunk`` samples, searched
    ``search`` samples each side of the coarse offset for a peak of sign ``polarity`` (NaN where no peak stands
    out or the device does not cover the search)."""
    margin = int(round(SPREAD_S * sample_rate))
    positions, offsets = [], []
    for start in range(0, ref.shape[-1] - n_chunk + 1, n_chunk):
        chunk = ref[start : start + n_chunk]
        positions.append(start + n_chunk / 2.0)
        lo = int(np.floor(start + coarse)) - search
        hi = lo + n_chunk + 2 * search
        if lo < 0 or hi > dev.shape[-1] or np.sqrt(np.mean(chunk * chunk)) < 1e-6:
            offsets.append(np.nan)
            continue
        wlo, whi = max(0, lo - margin), min(dev.shape[-1], hi + margin)
        c, zero = gcc_phat(chunk, dev[wlo:whi])
        c = polarity * c[zero : zero + whi - wlo - n_chunk + 1]  # lags where the chunk lies inside the segment
        window = c[lo - wlo : lo - wlo + 2 * search + 1]
        pos, chunk_score = _peak(window, c)
        offsets.append(lo + pos - start if chunk_score >= min_peak_score else np.nan)
    return np.asarray(positions), np.asarray(offsets)


def _stacked_sum(rows: np.ndarray, shifts: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``sum_k rows[k, centre + shifts[k]]``, the fractional part of each shift by linear interpolation."""
    whole = np.floor(shifts).astype(int)
    frac = (shifts - whole)[:, None]
    k = np.arange(rows.shape[0])[:, None]
    at = centre[None, :] + whole[:, None]
    return ((1.0 - frac) * rows[k, at] + frac * rows[k, at + 1]).sum(axis=0)


def _stacked_line(ref: np.ndarray, dev: np.ndarray, coarse: float, n_chunk: int, search: int, sample_rate: int,
                  max_slope: float) -> tuple[float, float, float, np.ndarray, np.ndarray, int] | None:
    """The line ``offset(n) = intercept + slope * n`` along which the chunks' correlations add up best, for
    recordings whose chunks are too weak to have peaks of their own; ``(slope, intercept, score, chunk centres,
    chunks summed, polarity)``, or None with fewer than 4 chunks with sound inside the device recording.

    Each chunk with sound is correlated (GCC-PHAT) with the device around the coarse offset (``search`` samples
    for reflections plus what ``max_slope`` can move over the recording). For every drift on a grid fine enough
    that no chunk lies more than half a sample off the line (found coarse to fine), the chunks' correlations are
    summed along the line: the direct sound's peak grows with the number of chunks, the reverberation's and the
    noise's values only with its square root. The score is that of the best sum against the same sum over
    :data:`SPREAD_S` seconds of lags; both signs are looked at, so the polarity is what the chunks agree on,
    whatever the coarse excerpt found.
    """
    count = ref.shape[-1] // n_chunk
    if count < 4:
        return None
    ms = np.mean(ref[: count * n_chunk].reshape(count, n_chunk) ** 2, axis=1)
    level = 10.0 * np.log10(np.maximum(ms, 1e-30))
    loud = level >= np.percentile(level, 95) - 40.0
    drift_room = int(np.ceil(max_slope * ref.shape[-1])) + 2
    reach = search + 2 * drift_room  # lags each side of the coarse offset kept per chunk
    margin = int(round(SPREAD_S * sample_rate))
    base = int(np.floor(coarse))
    starts = [k * n_chunk for k in range(count)
              if loud[k] and k * n_chunk + base - reach - margin >= 0
              and k * n_chunk + base + reach + margin + n_chunk <= dev.shape[-1]]
    if len(starts) < 4:
        return None
    wide = np.empty((len(starts), 2 * (reach + margin) + 1), dtype=np.float32)
    for r, start in enumerate(starts):
        lo = start + base - reach - margin
        c, zero = gcc_phat(ref[start : start + n_chunk], dev[lo : lo + n_chunk + 2 * (reach + margin)])
        wide[r] = c[zero : zero + 2 * (reach + margin) + 1]  # offset m - n = base - reach - margin + index
    positions = np.asarray(starts, dtype=np.float64) + n_chunk / 2.0
    mid = float(positions.mean())
    rel = positions - mid
    half = max(float(np.abs(rel).max()), 1.0)
    centre = np.arange(margin + reach - search - drift_room, margin + reach + search + drift_room + 1)

    def best_on(grid: np.ndarray) -> tuple[float, float]:
        top, slope = -np.inf, 0.0
        for g in grid:
            total = np.abs(_stacked_sum(wide, g * rel, centre))
            if total.max() > top:
                top, slope = float(total.max()), float(g)
        return slope, top

    step = 0.5 / half  # the farthest chunk at most half a sample off the line
    coarse_grid = np.arange(-max_slope, max_slope + 4 * step, 8 * step) if max_slope > 0 else np.zeros(1)
    slope, _ = best_on(coarse_grid)
    fine = np.arange(slope - 8 * step, slope + 8.5 * step, step) if max_slope > 0 else np.zeros(1)
    slope, _ = best_on(fine[np.abs(fine) <= max_slope + step])
    everywhere = np.arange(drift_room + 1, wide.shape[1] - drift_room - 2)
    total = _stacked_sum(wide, slope * rel, everywhere)
    window = (everywhere >= centre[0]) & (everywhere <= centre[-1])
    pos, score, sign = signed_peak(total[window], total)
    if signed_peak(total[window], None, sign)[1] < MIN_STACK_DISTINCT:
        return None
    offset_mid = base - reach - margin + everywhere[window][0] + pos  # m - n at the chunks' mean centre
    used = np.zeros(count, dtype=bool)
    used[np.asarray(starts) // n_chunk] = True
    all_positions = np.arange(count) * n_chunk + n_chunk / 2.0
    return slope, offset_mid - slope * mid, score, all_positions, used, sign


def _fit(positions: np.ndarray, offsets: np.ndarray, coarse: float,
         max_slope: float) -> tuple[float, float, np.ndarray]:
    """Robust line through the chunk offsets; the coarse offset, no drift and no chunk used when fewer than two
    chunks have one or the line's drift is beyond ``max_slope``."""
    used = np.isfinite(offsets)
    if used.sum() >= 2:
        slope, intercept, keep = _robust_line(positions, offsets, used, max_slope)
        if abs(slope) <= max_slope:
            return slope, intercept, keep
    return 0.0, coarse, np.zeros_like(used)  # no line, or a drift beyond the bound: no chunk agrees


def _audible_chunks(x: np.ndarray, n_chunk: int, count: int) -> int:
    """Chunks whose level is within 40 dB of the loud chunks (95th percentile): the ones that should line up."""
    if count == 0:
        return 0
    ms = np.mean(x[: count * n_chunk].reshape(count, n_chunk) ** 2, axis=1)
    level = 10.0 * np.log10(np.maximum(ms, 1e-30))
    return int(np.sum(level >= np.percentile(level, 95) - 40.0))


def _consensus(x: np.ndarray, y: np.ndarray, used: np.ndarray, max_slope: float) -> np.ndarray:
    """The points within one sample of the line (through two of them, slope at most ``max_slope``) that most points
    lie on. In a room some chunks lock onto a strong reflection instead of the direct sound; a least-squares start
    would be pulled towards them, the line that most chunks agree on is not."""
    idx = np.flatnonzero(used)
    if idx.size < 3:
        return used.copy()
    if idx.size <= 60:
        a, b = np.triu_indices(idx.size, 1)
    else:  # a fixed sample of pairs: the same answer on every run
        rng = np.random.default_rng(0)
        a, b = rng.integers(0, idx.size, 600), rng.integers(0, idx.size, 600)
        a, b = a[a != b], b[a != b]
    a, b = idx[a], idx[b]
    slope = (y[b] - y[a]) / (x[b] - x[a])
    ok = np.abs(slope) <= max_slope
    if not ok.any():
        return used.copy()
    a, b, slope = a[ok], b[ok], slope[ok]
    resid = np.abs(y[idx][None, :] - (y[a][:, None] + slope[:, None] * (x[idx][None, :] - x[a][:, None])))
    best = int(np.argmax(np.sum(resid <= 1.0, axis=1)))
    keep = np.zeros_like(used)
    keep[idx[resid[best] <= 1.0]] = True
    return keep if keep.sum() >= 2 else used.copy()


def _robust_line(x: np.ndarray, y: np.ndarray, used: np.ndarray,
                 max_slope: float = MAX_DRIFT_PPM * 1e-6) -> tuple[float, float, np.ndarray]:
    """Least-squares line through the points of ``(x, y)[used]`` that most agree on one line
    (:func:`_consensus`), refitted on the used points within 4 robust sigmas (and 0.5 samples) of it until nothing
    changes."""
    keep = _consensus(x, y, used, max_slope)
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


__all__ = ["Alignment", "align", "check_audible", "estimate_alignment", "estimate_offset", "gcc_phat",
           "overlapping_lags"]

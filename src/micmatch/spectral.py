"""Spectral building blocks: the fast log-power statistics path, STFT/iSTFT, fractional-octave smoothing, dB.

Magnitude scale: spectra from :func:`log_power_frames` and :class:`LogPowerAccumulator` are scaled so that a
full-scale sinusoid centred on a bin reads 0 dB (the window is normalised by ``2 / sum(window)``). Every log has
a floor: ``floor_db`` is added (as power) before the log, which changes nothing measurable above it; frames quieter than ``gate_db`` (RMS of the windowed frame re full scale) are skipped, so
digital silence and fades cannot drag a geometric mean towards minus infinity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from micmatch.errors import ParameterError

try:  # the fused C kernel of the statistics path; without a C compiler at install time, numpy does the work
    from micmatch import _logpower
except ImportError:  # pragma: no cover - depends on the build
    _logpower = None
import scipy.fft
from numpy.lib.stride_tricks import as_strided

#: Default floor of every log-power value, in dB re full scale. -160 dB is below 24-bit quantisation noise.
DEFAULT_FLOOR_DB = -160.0
#: Default silence gate: frames whose windowed RMS is below this (dB re full scale) are not counted.
#: -80 dBFS lies below the noise floor of real recordings but above digital silence and 16-bit dither.
DEFAULT_GATE_DB = -80.0
#: Frames per FFT call in the statistics path. 64-128 keeps a chunk in cache on the project's machines
#: (benchmarks/bench_profile.py measured 64-128 as the fastest range).
CHUNK_FRAMES = 96
#: Default relative gate: frames more than this many dB below a recording's loudest frame are not counted.
#: Pauses between sounds then hold only the device's noise floor, which would otherwise bias the estimate.
DEFAULT_RELATIVE_GATE_DB = 30.0
#: Resolution of the frame-level bins used by the relative gate (dB).
LEVEL_STEP_DB = 0.5
#: A frame with less than this share of its power outside 0 Hz and the first bin (where the Hann window spreads a
#: constant offset) is a constant offset (DC), not sound: it is not counted. Counting it would put every other bin
#: at the floor and drag the device's estimate down by tens of dB. 1e-3: sound 30 dB below an offset still counts.
DC_REST_SHARE = 1e-3
#: 10 / ln(10): dB of power per neper of power.
_DB_PER_NEPER_POWER = np.float32(10.0 / np.log(10.0))


def hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window of length ``n_fft`` (float64), as librosa and scipy use for STFTs."""
    n = np.arange(n_fft)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)


def frequencies(sample_rate: int, n_fft: int) -> np.ndarray:
    """Centre frequencies (Hz) of the ``n_fft // 2 + 1`` bins of a real FFT."""
    return np.fft.rfftfreq(n_fft, 1.0 / sample_rate)


def n_frames(n_samples: int, n_fft: int, hop_length: int) -> int:
    """Frames of an uncentred framing (no padding): 0 when the signal is shorter than one frame."""
    if n_samples < n_fft:
        return 0
    return 1 + (n_samples - n_fft) // hop_length


def db_to_gain(db: np.ndarray | float) -> np.ndarray:
    """Amplitude gain from dB: ``10 ** (db / 20)``."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 20.0)


def gain_to_db(gain: np.ndarray | float, *, floor_db: float = DEFAULT_FLOOR_DB) -> np.ndarray:
    """Amplitude gain to dB with a floor: ``max(20 log10 |gain|, floor_db)``."""
    g = np.abs(np.asarray(gain, dtype=np.float64))
    return np.maximum(20.0 * np.log10(np.maximum(g, 10.0 ** (floor_db / 20.0))), floor_db)


def _frames_view(x: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """:func:`frame_view` under the name the statistics path uses."""
    return frame_view(x, n_fft, hop_length)


def analysis_window(n_fft: int, *, scale: float = 1.0, dtype=np.float32) -> np.ndarray:
    """Hann window scaled so that a full-scale bin-centred sinusoid reads 0 dB, times ``scale``.

    ``scale`` folds a sample format's scale into the window, e.g. ``1 / 32768`` for raw int16 samples.
    """
    w = hann(n_fft)
    return (w * (2.0 / w.sum()) * scale).astype(dtype)


def log_power_frames(
    audio: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    floor_db: float = DEFAULT_FLOOR_DB,
) -> np.ndarray:
    """Log power (dB) of every uncentred Hann frame of a 1-D signal, shape ``(n_bins, n_frames)``.

    The reference implementation of the statistics path: straightforward and float64, used by tests to check
    :class:`LogPowerAccumulator`.
    """
    x = np.ascontiguousarray(audio, dtype=np.float64)
    frames = _frames_view(x, n_fft, hop_length) * analysis_window(n_fft, dtype=np.float64)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    return (10.0 * np.log10(power + 10.0 ** (floor_db / 10.0))).T


@dataclass
class LogPowerAccumulator:
    """Streaming per-bin sums of log power over frames: the hot path of device estimation.

    Feed consecutive chunks of one signal, of any lengths, with :meth:`update`; the samples after the last full
    frame are kept and prefixed to the next chunk. Use one accumulator per signal (file). Sums are float64;
    per-chunk work is float32.

    Two gates decide which frames count: the absolute gate (``gate_db``: windowed RMS re full scale) and, when
    ``relative_gate_db`` is set, a relative gate (frames more than that many dB below the signal's loudest frame
    are skipped, which keeps pauses filled with a device's noise floor out of the estimate). The relative gate
    needs the whole signal's maximum, so frames are summed per frame-level bin of :data:`LEVEL_STEP_DB` and the
    bins above the final threshold are added at the end: one pass, memory independent of the signal's length.

    Speed (benchmarks/bench_profile.py): frames are strided views (no copy), the int16 scale is folded into the
    window, ``scipy.fft.rfft`` runs on chunks of :data:`CHUNK_FRAMES` frames so each chunk stays in cache, and
    power, floor, log and sums run in one pass of a small C kernel (``micmatch._logpower``). Where the package
    was built without it (no C compiler), or with ``use_kernel=False``, numpy does the same arithmetic.

    Attributes (after the last update)
    ----------------------------------
    sum_db, sum_sq_db : np.ndarray [shape=(n_bins,)]
        Sum over counted frames of the log power in dB and of its square.
    sum_power : np.ndarray [shape=(n_bins,)]
        Sum over counted frames of the power (linear, unfloored): the long-term average spectrum's numerator.
    n_frames : int
        Frames counted.
    n_gated : int
        Frames skipped by either gate.
    """

    n_fft: int = 2048
    hop_length: int = 512
    floor_db: float = DEFAULT_FLOOR_DB
    gate_db: float | None = DEFAULT_GATE_DB
    relative_gate_db: float | None = None
    scale: float = 1.0
    use_kernel: bool = True

    def __post_init__(self) -> None:
        if self.gate_db is not None and not np.isfinite(self.gate_db):
            raise ParameterError(f"gate_db={self.gate_db} must be a finite level in dB (or None to disable it)")
        if self.relative_gate_db is not None and not (np.isfinite(self.relative_gate_db)
                                                      and self.relative_gate_db >= 0):
            raise ParameterError(f"relative_gate_db={self.relative_gate_db} must be a finite number of dB >= 0 "
                                 f"(or None to disable it)")
        n_bins = self.n_fft // 2 + 1
        self._window = analysis_window(self.n_fft, scale=self.scale)
        self._tail: np.ndarray | None = None
        self._floor_power = float(np.float32(10.0 ** (self.floor_db / 10.0)))
        # Level of a frame from its power sum: level_db = 10 log10(two_sided * self._level_k). The spectrum is
        # already in full-scale units (the sample format's scale is folded into the window), so the level constant
        # uses the normalised window alone: dividing by scale**2 again would put a 16-bit file's gate ~90 dB off.
        w = self._window.astype(np.float64) / self.scale
        self._level_k = 1.0 / (self.n_fft * np.sum(w * w))
        self._gate_sum = None if self.gate_db is None else 10.0 ** (self.gate_db / 10.0) / self._level_k
        self._n_seen = 0
        self._n_dc = 0
        if self.relative_gate_db is None:
            self._sum = np.zeros(n_bins)
            self._sq = np.zeros(n_bins)
            self._count = 0
        else:
            self._levels: dict[int, list] = {}  # level bin -> [sum_db, sum_sq_db, count]
        # Power sums (linear) per level bin, beside the log sums: the arithmetic-mean (power) statistic.
        self._psum: dict[int, np.ndarray] = {}

    # Results --------------------------------------------------------------------------------------------------
    def _selected(self):
        if self.relative_gate_db is None:
            return self._sum, self._sq, self._count
        n_bins = self.n_fft // 2 + 1
        total, sq, count = np.zeros(n_bins), np.zeros(n_bins), 0
        if self._levels:
            top = max(self._levels)
            lowest = top - int(np.floor(self.relative_gate_db / LEVEL_STEP_DB))
            for lvl, (s, q, c) in self._levels.items():
                if lvl >= lowest:
                    total += s
                    sq += q
                    count += c
        return total, sq, count

    @property
    def sum_db(self) -> np.ndarray:
        return self._selected()[0]

    @property
    def sum_power(self) -> np.ndarray:
        """Sum of linear power over the counted frames (the same frames as :attr:`sum_db`)."""
        total = np.zeros(self.n_fft // 2 + 1)
        if self.relative_gate_db is None:
            for p in self._psum.values():
                total += p
            return total
        if self._levels:
            lowest = max(self._levels) - int(np.floor(self.relative_gate_db / LEVEL_STEP_DB))
            for lvl, p in self._psum.items():
                if lvl >= lowest:
                    total += p
        return total

    @property
    def sum_sq_db(self) -> np.ndarray:
        return self._selected()[1]

    @property
    def n_frames(self) -> int:
        return int(self._selected()[2])

    @property
    def n_gated(self) -> int:
        return self._n_seen - self.n_frames

    @property
    def n_dc(self) -> int:
        """Frames not counted because a constant offset (0 Hz) held most of their power."""
        return self._n_dc

    def result(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        """``(sum_db, sum_sq_db, n_frames, n_gated)`` in one call."""
        total, sq, count = self._selected()
        return total, sq, int(count), self._n_seen - int(count)

    # Accumulation ---------------------------------------------------------------------------------------------
    def update(self, block: np.ndarray) -> int:
        """Accumulate every full frame available after appending a 1-D chunk; returns the number of frames."""
        x = np.asarray(block)
        if self._tail is not None and self._tail.size:
            x = np.concatenate([self._tail, x.astype(self._tail.dtype, copy=False)])
        x = np.ascontiguousarray(x)
        frames = _frames_view(x, self.n_fft, self.hop_length)
        total = frames.shape[0]
        self._tail = x[total * self.hop_length :].copy()
        self._n_seen += total
        for start in range(0, total, CHUNK_FRAMES):
            chunk = frames[start : start + CHUNK_FRAMES]
            spec = scipy.fft.rfft(chunk * self._window, axis=-1)
            if _logpower is not None and self.use_kernel:
                self._chunk_kernel(spec)
            else:
                self._chunk_numpy(spec)
        return total

    def _level_bins(self, two_sided: np.ndarray) -> np.ndarray:
        level = 10.0 * np.log10(np.maximum(two_sided * self._level_k, 1e-30))
        return np.floor(level / LEVEL_STEP_DB).astype(np.int64)

    def _keep(self, two_sided: np.ndarray, low_power: np.ndarray) -> np.ndarray | None:
        """Frames to count: above the absolute gate and not a constant offset (None: all of them).

        ``low_power``: two-sided power of bins 0 and 1 of each frame."""
        dc = (two_sided - low_power < DC_REST_SHARE * two_sided) & (two_sided > 0)
        n_dc = int(dc.sum())
        self._n_dc += n_dc
        if self._gate_sum is None:
            return ~dc if n_dc else None
        return (two_sided >= self._gate_sum) & ~dc

    def _chunk_kernel(self, spec: np.ndarray) -> None:
        """One chunk through the C kernel (micmatch._logpower): power, floor, log and sums in one pass."""
        spec = np.ascontiguousarray(spec, dtype=np.complex64)
        n, n_bins = spec.shape
        two_sided = np.empty(n)
        _logpower.frame_power(spec, n, n_bins, two_sided)
        low = np.abs(spec[:, :2].astype(np.complex128)) ** 2
        keep = self._keep(two_sided, low[:, 0] + 2.0 * low[:, 1])
        if keep is not None and not keep.any():
            return
        bins = None if self.relative_gate_db is None else self._level_bins(two_sided)
        self._add_power(spec, keep, bins)
        if self.relative_gate_db is None:
            groups = None if keep is None or keep.all() else np.where(keep, 0, -1).astype(np.int32)
            _logpower.accumulate(spec, n, n_bins, groups, 1, self._sum.reshape(1, -1), self._sq.reshape(1, -1),
                                 self._floor_power)
            self._count += n if keep is None else int(keep.sum())
            return
        kept = np.ones(n, dtype=bool) if keep is None else keep
        levels, inverse = np.unique(bins[kept], return_inverse=True)
        groups = np.full(n, -1, dtype=np.int32)
        groups[kept] = inverse
        sums = np.zeros((levels.size, n_bins))
        sqs = np.zeros((levels.size, n_bins))
        _logpower.accumulate(spec, n, n_bins, groups, levels.size, sums, sqs, self._floor_power)
        self._merge_levels(levels, sums, sqs, np.bincount(inverse, minlength=levels.size))

    def _chunk_numpy(self, spec: np.ndarray) -> None:
        """One chunk in numpy: the reference and fallback of :meth:`_chunk_kernel` (same floor, same log)."""
        power = spec.real * spec.real
        power += spec.imag * spec.imag
        two_sided = 2.0 * power.sum(axis=-1, dtype=np.float64) - power[:, 0] - power[:, -1]
        keep = self._keep(two_sided, power[:, 0].astype(np.float64) + 2.0 * power[:, 1])
        if keep is not None:
            n_keep = int(keep.sum())
            if n_keep == 0:
                return
            if n_keep < power.shape[0]:
                power = power[keep]
                two_sided = two_sided[keep]
        self._add_power_sums(power, None if self.relative_gate_db is None else self._level_bins(two_sided))
        power += self._floor_power
        logp = np.log(power)  # natural log: vectorised in numpy where log10 is not
        logp *= _DB_PER_NEPER_POWER
        if self.relative_gate_db is None:
            self._sum += logp.sum(axis=0, dtype=np.float64)
            self._sq += np.einsum("ij,ij->j", logp, logp, dtype=np.float64)
            self._count += logp.shape[0]
            return
        bins = self._level_bins(two_sided)
        # Group frames by level bin with a sort and reduceat (no BLAS call: BLAS thread pools cost more than
        # they save on these small blocks; benchmarks/bench_profile.py).
        order = np.argsort(bins, kind="stable")
        sorted_bins = bins[order]
        starts = np.flatnonzero(np.r_[True, sorted_bins[1:] != sorted_bins[:-1]])
        lp = logp[order]
        # Sums of at most CHUNK_FRAMES values in float32 (relative error ~1e-6, i.e. ~1e-5 dB on a mean), added
        # to float64 totals.
        sums = np.add.reduceat(lp, starts, axis=0)
        lp *= lp
        sqs = np.add.reduceat(lp, starts, axis=0)
        self._merge_levels(sorted_bins[starts], sums, sqs, np.diff(np.r_[starts, lp.shape[0]]))

    def _add_power(self, spec: np.ndarray, keep: np.ndarray | None, bins: np.ndarray | None) -> None:
        """Power sums of the kept frames of a complex chunk (the C kernel sums logs only)."""
        if keep is not None:
            spec = spec[keep]
            bins = None if bins is None else bins[keep]
        power = spec.real * spec.real
        power += spec.imag * spec.imag
        self._add_power_sums(power, bins)

    def _add_power_sums(self, power: np.ndarray, bins: np.ndarray | None) -> None:
        """Add per-frame power ``(n_frames, n_bins)`` to the sums of each frame's level bin (one bin without the
        relative gate). Frames are grouped with one sort and ``reduceat``, as the log sums are."""
        if power.shape[0] == 0:
            return
        if bins is None:
            self._psum[0] = self._psum.get(0, 0.0) + power.sum(axis=0, dtype=np.float64)
            return
        order = np.argsort(bins, kind="stable")
        sorted_bins = bins[order]
        starts = np.flatnonzero(np.r_[True, sorted_bins[1:] != sorted_bins[:-1]])
        sums = np.add.reduceat(power[order], starts, axis=0)
        for lvl, part in zip(sorted_bins[starts].tolist(), sums):
            if lvl in self._psum:
                self._psum[lvl] += part
            else:
                self._psum[lvl] = part.astype(np.float64)

    def _merge_levels(self, levels: np.ndarray, sums: np.ndarray, sqs: np.ndarray, counts: np.ndarray) -> None:
        for j, lvl in enumerate(levels.tolist()):
            entry = self._levels.get(lvl)
            if entry is None:
                self._levels[lvl] = [sums[j].astype(np.float64), sqs[j].astype(np.float64), int(counts[j])]
            else:
                entry[0] += sums[j]
                entry[1] += sqs[j]
                entry[2] += int(counts[j])

def stft(
    audio: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
) -> np.ndarray:
    """Centred Hann STFT with zero padding of ``n_fft // 2`` at both ends.

    Returns complex ``(..., n_bins, n_frames)``. Zero (not reflect) padding makes block-wise processing with
    context margins identical to whole-signal processing. Window: periodic Hann, unnormalised (librosa's
    ``stft(..., center=True, pad_mode="constant")`` gives the same values).
    """
    hop = hop_length or n_fft // 4
    x = np.asarray(audio)
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
    xp = np.pad(x.astype(dtype, copy=False), pad)
    count = 1 + (xp.shape[-1] - n_fft) // hop
    lead = xp.shape[:-1]
    flat = np.ascontiguousarray(xp.reshape(-1, xp.shape[-1]))
    out = np.empty((flat.shape[0], n_fft // 2 + 1, count), dtype=np.complex128 if dtype == np.float64 else np.complex64)
    window = hann(n_fft).astype(dtype)
    for i, row in enumerate(flat):
        out[i] = scipy.fft.rfft(frame_view(row, n_fft, hop) * window, axis=-1).T
    return out.reshape(*lead, n_fft // 2 + 1, count)


def istft(
    spec: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    length: int | None = None,
) -> np.ndarray:
    """Inverse of :func:`stft`: weighted overlap-add with Hann synthesis window, normalised by the window-square sum.

    ``istft(stft(x), length=len(x))`` reconstructs ``x`` to float precision (the window-square sum never
    vanishes inside the padded signal for hops up to ``n_fft // 2``).
    """
    hop = hop_length or n_fft // 4
    s = np.asarray(spec)
    real_dtype = np.float64 if s.dtype == np.complex128 else np.float32
    lead = s.shape[:-2]
    count = s.shape[-1]
    flat = s.reshape(-1, s.shape[-2], count)
    window = hann(n_fft).astype(real_dtype)
    total = n_fft + hop * (count - 1)
    wss = _window_square_sum(window, hop, count, total)
    out = np.empty((flat.shape[0], total), dtype=real_dtype)
    for i, m in enumerate(flat):
        frames = scipy.fft.irfft(m.T, n=n_fft, axis=-1).astype(real_dtype, copy=False) * window
        out[i] = overlap_add(frames, hop, total)
    out /= wss
    start = n_fft // 2
    end = total - n_fft // 2 if length is None else start + length
    y = out[:, start:end]
    if length is not None and y.shape[-1] < length:
        y = np.pad(y, ((0, 0), (0, length - y.shape[-1])))
    return y.reshape(*lead, -1)


# ----------------------------------------------------------------------------------------------------------------
# Framing and overlap-add: the one implementation that the STFT above, STFT processing, FIR filtering, alignment
# and feature extraction share.


def frame_view(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Frames of a 1-D signal at offsets 0, hop, ... (no padding), as a read-only strided view (no copy).

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples,)]
    frame_length, hop_length : int

    Returns
    -------
    frames : np.ndarray [shape=(n_frames, frame_length)]
        ``n_frames`` as :func:`n_frames` (0 when ``x`` is shorter than one frame). Copy it before writing to it.
    """
    count = n_frames(x.shape[-1], frame_length, hop_length)
    stride = x.strides[-1]
    return as_strided(x, shape=(count, frame_length), strides=(hop_length * stride, stride), writeable=False)


def overlap_add(frames: np.ndarray, hop_length: int, total: int) -> np.ndarray:
    """Sum ``frames[k]`` into ``out[k * hop : k * hop + frame_length]`` of a zero signal of ``total`` samples.

    Vectorised per hop-sized segment when ``hop_length`` divides the frame length and ``total``.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_frames, frame_length)]
    hop_length, total : int

    Returns
    -------
    out : np.ndarray [shape=(total,)], the dtype of ``frames``
    """
    count, length = frames.shape
    out = np.zeros(total, dtype=frames.dtype)
    if length % hop_length == 0 and total % hop_length == 0:
        seg = frames.reshape(count, length // hop_length, hop_length)
        blocks = out.reshape(-1, hop_length)
        for j in range(length // hop_length):
            blocks[j : j + count] += seg[:, j, :]
        return out
    for k in range(count):
        out[k * hop_length : k * hop_length + length] += frames[k]
    return out


def overlap_add_processor(process, frame_length: int, hop_length: int, synthesis: np.ndarray, *,
                          trim: int | None = None):
    """A segment function for :func:`micmatch.render.stream_with_context`: frame-wise processing by overlap-add.

    Each row of a segment is cut into frames (:func:`frame_view`), ``process`` maps the frames to new frames,
    which are multiplied by ``synthesis`` and overlap-added; the segment minus ``trim`` samples at both ends is
    returned (default ``frame_length - hop_length``: the samples every frame covering them contributed to).

    Parameters
    ----------
    process : callable
        ``(n_frames, frame_length)`` float32 frames (a read-only view: copy before writing) ->
        ``(n_frames, frame_length)`` frames.
    frame_length, hop_length : int
        ``hop_length`` must divide ``frame_length``.
    synthesis : np.ndarray [shape=(frame_length,)]
        Synthesis window, with the overlap normalisation folded in.
    trim : int, optional
        Samples dropped at each end of a segment: the context the streaming engine adds on both sides.

    Returns
    -------
    func : callable
        ``(..., n_samples)`` -> ``(..., n_samples - 2 trim)`` float32.
    """
    if frame_length % hop_length:
        raise ParameterError(f"hop_length={hop_length} must divide frame_length={frame_length}")
    cut = frame_length - hop_length if trim is None else trim
    synthesis = np.asarray(synthesis, dtype=np.float32)

    def func(seg: np.ndarray) -> np.ndarray:
        lead = seg.shape[:-1]
        flat = np.ascontiguousarray(seg.reshape(-1, seg.shape[-1]), dtype=np.float32)
        length = seg.shape[-1]
        outs = []
        for row in flat:
            frames = frame_view(row, frame_length, hop_length)
            y = np.asarray(process(frames), dtype=np.float32) * synthesis
            total = frame_length + hop_length * (frames.shape[0] - 1)
            outs.append(overlap_add(y, hop_length, total)[cut : length - cut])
        return np.stack(outs).reshape(*lead, -1)

    return func


def _window_square_sum(window: np.ndarray, hop: int, count: int, total: int) -> np.ndarray:
    wss = overlap_add(np.broadcast_to(window * window, (count, window.shape[0])).copy(), hop, total)
    tiny = np.finfo(wss.dtype).tiny
    return np.where(wss > tiny, wss, 1.0)


def smooth_fractional_octave(values: np.ndarray, freqs: np.ndarray, fraction: float) -> np.ndarray:
    """Smooth a curve (e.g. dB) over a band of ``fraction`` octave centred on each frequency.

    Each output value is the mean of the input over bins within ``[f * 2**(-fraction/2), f * 2**(fraction/2)]``;
    bins at 0 Hz are kept as they are. ``fraction=1/3`` gives third-octave smoothing. O(n) via a cumulative sum.
    """
    if fraction is None or fraction <= 0:
        return np.array(values, dtype=np.float64, copy=True)
    v = np.asarray(values, dtype=np.float64)
    f = np.asarray(freqs, dtype=np.float64)
    if v.shape[-1] != f.shape[0]:
        raise ParameterError(f"values have {v.shape[-1]} bins but freqs has {f.shape[0]}")
    half = 2.0 ** (fraction / 2.0)
    lo = np.searchsorted(f, f / half, side="left")
    hi = np.searchsorted(f, f * half, side="right")
    csum = np.concatenate([np.zeros(v.shape[:-1] + (1,)), np.cumsum(v, axis=-1)], axis=-1)
    hi = np.maximum(hi, lo + 1)
    out = (csum[..., hi] - csum[..., lo]) / (hi - lo)
    out[..., f <= 0] = v[..., f <= 0]
    return out


def windowed_power_response_db(ir: np.ndarray, n_fft: int, *, floor_db: float = DEFAULT_FLOOR_DB) -> np.ndarray:
    """Expected STFT-bin power (dB) of white noise filtered by ``ir``, relative to the unfiltered noise.

    This is the device response as a Hann-windowed STFT of ``n_fft`` samples sees it: ``|H|^2`` smoothed by the
    window's power kernel, sampled on the ``n_fft // 2 + 1`` bin grid. It is the truth that an estimate from
    recordings converges to, for IRs of any length (no truncation to ``n_fft``). Computed exactly as the DFT of
    the product of the IR's and the window's autocorrelations, folded modulo ``n_fft``.
    """
    h = np.asarray(ir, dtype=np.float64)
    w = hann(n_fft)
    m = h.size + n_fft
    size = scipy.fft.next_fast_len(2 * m)
    hf = scipy.fft.rfft(h, size)
    r_h = scipy.fft.irfft(np.abs(hf) ** 2, size)  # circular autocorrelation; lags wrap at the end
    wf = scipy.fft.rfft(w, size)
    r_w = scipy.fft.irfft(np.abs(wf) ** 2, size) / np.sum(w * w)
    lags = np.concatenate([np.arange(0, n_fft), np.arange(-n_fft + 1, 0)])
    prod = r_h[lags] * r_w[lags]
    folded = np.zeros(n_fft)
    np.add.at(folded, lags % n_fft, prod)
    power = np.real(np.fft.rfft(folded))
    return 10.0 * np.log10(np.maximum(power, 10.0 ** (floor_db / 10.0)))

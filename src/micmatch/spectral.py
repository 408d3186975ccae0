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
if _logpower is not None and not hasattr(_logpower, "add_chunk"):  # pragma: no cover - a stale build of the kernel
    _logpower = None  # older than this file: numpy does the work until `python setup.py build_ext` is rerun
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


def _floor_power(floor_db: float) -> float:
    """The floor added to every power before the log, as the float32 value both paths use."""
    return float(np.float32(10.0 ** (floor_db / 10.0)))


def _power(spec: np.ndarray) -> np.ndarray:
    """Power ``|X|^2`` of a complex64 spectrum, float32 (as the C kernel computes it)."""
    power = spec.real * spec.real
    power += spec.imag * spec.imag
    return power


def _frame_power_numpy(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's two-sided power sum and the two-sided power of bins 0 and 1, float64 ``(n_frames,)`` each.

    ``power``: float32 ``(n_frames, n_bins)`` from :func:`_power`, a one-sided spectrum of even ``n_fft``."""
    two_sided = 2.0 * power.sum(axis=-1, dtype=np.float64) - power[:, 0] - power[:, -1]
    low = power[:, 0].astype(np.float64)
    if power.shape[1] > 1:
        low += 2.0 * power[:, 1]
    return two_sided, low


def _frame_power_kernel(spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_frame_power_numpy` of ``_power(spec)`` in the C kernel (float32 squares, float32 partial sums, float64 total)."""
    n, n_bins = spec.shape
    two_sided, low = np.empty(n), np.empty(n)
    _logpower.frame_power(spec, n, n_bins, two_sided, low)
    return two_sided, low


def _accumulate_numpy(power: np.ndarray, slots: np.ndarray | None, sums: np.ndarray, squares: np.ndarray,
                      powers: np.ndarray, floor_power: float) -> None:
    """Add each frame's log power (dB), its square and its linear power to row ``slots[f]`` of ``sums``,
    ``squares`` and ``powers`` (float64 ``(n_slots, n_bins)``, updated in place; ``slots`` None: row 0; slot -1:
    skipped). ``power``: float32 ``(n_frames, n_bins)`` from :func:`_power`. The reference and fallback of the C
    kernel: the same float32 value per bin; frames of one row are summed in float32 within a chunk (at most
    :data:`CHUNK_FRAMES` values: ~1e-6 relative), then added to the float64 rows."""
    if slots is not None:
        kept = np.flatnonzero(slots >= 0)
        if kept.size == 0:
            return
        order = kept[np.argsort(slots[kept], kind="stable")]
        power = power[order]
        sorted_slots = slots[order]
        starts = np.flatnonzero(np.r_[True, sorted_slots[1:] != sorted_slots[:-1]])
        rows = sorted_slots[starts]
    logp = power + np.float32(floor_power)
    np.log(logp, out=logp)  # natural log: vectorised in numpy where log10 is not
    logp *= _DB_PER_NEPER_POWER
    if slots is None:
        powers[0] += power.sum(axis=0, dtype=np.float64)
        sums[0] += logp.sum(axis=0, dtype=np.float64)
        logp *= logp
        squares[0] += logp.sum(axis=0, dtype=np.float64)
        return
    # Rows are distinct, so fancy-indexed += adds each group once. reduceat in float32: in float64 it costs
    # half as much again as everything else in this function.
    powers[rows] += np.add.reduceat(power, starts, axis=0)
    sums[rows] += np.add.reduceat(logp, starts, axis=0)
    logp *= logp
    squares[rows] += np.add.reduceat(logp, starts, axis=0)


def _accumulate_kernel(spec: np.ndarray, slots: np.ndarray | None, sums: np.ndarray, squares: np.ndarray,
                       powers: np.ndarray, floor_power: float) -> None:
    """:func:`_accumulate_numpy` of ``_power(spec)`` in one pass of the C kernel (polynomial log, within 2e-7 dB
    of libm's; float64 sums)."""
    n, n_bins = spec.shape
    _logpower.accumulate(spec, n, n_bins, slots, sums.shape[0], sums, squares, powers, floor_power)


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
    bins within the gate of the final maximum are added at the end: one pass, memory independent of the signal's
    length. Only the ``floor(relative_gate_db / LEVEL_STEP_DB) + 1`` level bins at and below the loudest so far
    can still count (the maximum never falls), so they are kept in that many rows used as a ring (a level's row
    is its bin modulo the row count); a row is cleared when a louder frame pushes its level below the gate.

    Speed (benchmarks/bench_profile.py): frames are windowed straight from the int16 (or float32) samples into one
    reused buffer, with the int16 scale folded into the window; ``scipy.fft.rfft`` runs on chunks of
    :data:`CHUNK_FRAMES` frames so each chunk stays in cache; then one call of a small C kernel
    (``micmatch._logpower``) gates each frame (DC rule, absolute gate, level ring) and adds its log power, square
    and linear power in one pass. Where the package was built without it (no C compiler), or with
    ``use_kernel=False``, numpy does the same arithmetic.

    Attributes (after the last update)
    ----------------------------------
    sum_db, sum_sq_db : np.ndarray [shape=(n_bins,)]
        Sum over counted frames of the log power in dB and of its square.
    sum_power : np.ndarray [shape=(n_bins,)]
        Sum over counted frames of the power (linear, unfloored): the long-term average spectrum's numerator.
    n_frames : int
        Frames counted.
    n_gated : int
        Frames skipped by either gate or the DC rule.
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
        self._floor_power = _floor_power(self.floor_db)
        # Level of a frame from its power sum: level_db = 10 log10(two_sided * self._level_k). The spectrum is
        # already in full-scale units (the sample format's scale is folded into the window), so the level constant
        # uses the normalised window alone: dividing by scale**2 again would put a 16-bit file's gate ~90 dB off.
        w = self._window.astype(np.float64) / self.scale
        self._level_k = 1.0 / (self.n_fft * np.sum(w * w))
        self._gate_sum = None if self.gate_db is None else 10.0 ** (self.gate_db / 10.0) / self._level_k
        self._n_seen = 0
        # One row per level bin that can still count (one row without the relative gate); see the class notes.
        n_rows = 1 if self.relative_gate_db is None else int(np.floor(self.relative_gate_db / LEVEL_STEP_DB)) + 1
        self._sums = np.zeros((n_rows, n_bins))
        self._squares = np.zeros((n_rows, n_bins))
        self._powers = np.zeros((n_rows, n_bins))
        self._counts = np.zeros(n_rows, dtype=np.int64)
        # [has_top, top, n_dc]: whether a frame has counted yet, the loudest level bin so far (relative gate only)
        # and the frames dominated by a constant offset. An array so that the C kernel updates it in place.
        self._state = np.zeros(3, dtype=np.int64)
        self._gates = (self._level_k, -1.0 if self._gate_sum is None else self._gate_sum, DC_REST_SHARE,
                       LEVEL_STEP_DB, n_rows, self.relative_gate_db is not None)
        self._buffer = np.empty((CHUNK_FRAMES, self.n_fft), dtype=np.float32)  # windowed frames of one chunk

    # Results --------------------------------------------------------------------------------------------------
    @property
    def sum_db(self) -> np.ndarray:
        return self._sums.sum(axis=0)

    @property
    def sum_power(self) -> np.ndarray:
        """Sum of linear power over the counted frames (the same frames as :attr:`sum_db`)."""
        return self._powers.sum(axis=0)

    @property
    def sum_sq_db(self) -> np.ndarray:
        return self._squares.sum(axis=0)

    @property
    def n_frames(self) -> int:
        return int(self._counts.sum())

    @property
    def n_gated(self) -> int:
        return self._n_seen - self.n_frames

    @property
    def n_dc(self) -> int:
        """Frames not counted because a constant offset (0 Hz) held most of their power."""
        return int(self._state[2])

    def result(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        """``(sum_db, sum_sq_db, n_frames, n_gated)`` in one call."""
        count = self.n_frames
        return self.sum_db, self.sum_sq_db, count, self._n_seen - count

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
        kernel = _logpower is not None and self.use_kernel
        fused = kernel and x.dtype in (np.int16, np.float32)
        step = self._buffer.shape[0]
        for start in range(0, total, step):
            m = min(step, total - start)
            # Windowing writes into one reused float32 buffer (int16 samples convert on the fly), which the FFT
            # may then overwrite: no allocation but the spectrum's.
            windowed = self._buffer[:m]
            if fused:
                _logpower.window_frames(x[start * self.hop_length :], m, self.n_fft, self.hop_length, self._window,
                                        windowed)
            else:
                np.multiply(frames[start : start + m], self._window, out=windowed, casting="unsafe")
            spec = scipy.fft.rfft(windowed, axis=-1, overwrite_x=True)
            self._add_chunk(np.ascontiguousarray(spec, dtype=np.complex64), kernel)
        return total

    def _add_chunk(self, spec: np.ndarray, kernel: bool) -> None:
        """Gate the frames of one complex64 chunk ``(n_frames, n_bins)`` and add the rest to their level's row:
        one call of the C kernel, or the same steps in numpy."""
        if kernel:
            _logpower.add_chunk(spec, spec.shape[0], spec.shape[1], self._gates, self._state, self._counts,
                                self._sums, self._squares, self._powers, self._floor_power)
            return
        power = _power(spec)
        slots = self._slots(*_frame_power_numpy(power))
        if slots is not False:
            _accumulate_numpy(power, slots, self._sums, self._squares, self._powers, self._floor_power)

    def _slots(self, two_sided: np.ndarray, low: np.ndarray) -> np.ndarray | None | bool:
        """Row of each frame (int32, -1: not counted), None when every frame goes to row 0, False when none counts.

        Counts the DC-dominated frames and the frames of each row on the way."""
        n = two_sided.shape[0]
        # Not counted: frames whose power lies almost all in 0 Hz and the first bin, where the Hann window spreads
        # a constant offset, and frames below the absolute gate.
        dc = (two_sided - low < DC_REST_SHARE * two_sided) & (two_sided > 0)
        n_dc = int(np.count_nonzero(dc))
        self._state[2] += n_dc
        keep = ~dc if n_dc else None
        if self._gate_sum is not None:
            above = two_sided >= self._gate_sum
            keep = above if keep is None else keep & above
        if self.relative_gate_db is None:
            n_keep = n if keep is None else int(np.count_nonzero(keep))
            self._counts[0] += n_keep
            if n_keep == n:
                return None
            return np.where(keep, 0, -1).astype(np.int32) if n_keep else False
        if keep is None:
            keep = np.ones(n, dtype=bool)
        if not keep.any():
            return False
        levels = np.floor(10.0 * np.log10(np.maximum(two_sided * self._level_k, 1e-30)) / LEVEL_STEP_DB)
        levels = levels.astype(np.int64)
        top = int(levels[keep].max())
        if not self._state[0] or top > self._state[1]:
            self._raise_top(top)
        n_rows = self._counts.shape[0]
        keep &= levels > self._state[1] - n_rows
        slots = np.where(keep, levels % n_rows, -1).astype(np.int32)
        self._counts += np.bincount(slots[keep], minlength=n_rows)
        return slots

    def _raise_top(self, top: int) -> None:
        """A louder frame: clear the rows of the level bins that fall below the relative gate."""
        n_rows = self._counts.shape[0]
        if self._state[0]:
            old = int(self._state[1])
            cleared = slice(None) if top - old >= n_rows else np.arange(old + 1, top + 1) % n_rows
            for arr in (self._sums, self._squares, self._powers, self._counts):
                arr[cleared] = 0  # the rows the new top levels reuse
        self._state[:2] = (1, top)


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

"""Streaming log-power statistics of STFT frames: the profiling hot path (sums that merge exactly across files).

:class:`LogPowerAccumulator` adds, per bin, the log power, its square and the linear power of every counted frame,
chunk by chunk, in one pass of the C kernel ``micmatch._logpower`` (numpy does the same arithmetic where the kernel
was not built; tests hold the two equal). Gates: absolute (``gate_db``), relative to the loudest frame
(``relative_gate_db``) and the DC rule; scale and floors as in :mod:`micmatch.spectral`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft  # at import (not in update): worker processes forked for profiling then find it loaded

from micmatch.errors import ParameterError
from micmatch.spectral import (
    DEFAULT_FLOOR_DB,
    DEFAULT_GATE_DB,
    frame_view,
    analysis_window,
)

try:  # the fused C kernel of the statistics path; without a C compiler at install time, numpy does the work
    from micmatch import _logpower
except ImportError:  # pragma: no cover - depends on the build
    _logpower = None
if _logpower is not None and not hasattr(_logpower, "DC_LEVELS"):  # pragma: no cover - a stale build of the kernel
    _logpower = None  # older than this file: numpy does the work until `python setup.py build_ext` is rerun

try:  # pocketfft's own entry point (what scipy.fft.rfft calls), into a reused output: scipy.fft's dispatch layer
    # and the output allocation cost about 11 us a call, 7% of the profiling path (benchmarks/bench_profile.py).
    from scipy.fft._pocketfft.pypocketfft import r2c as _pocketfft_r2c
except ImportError:  # pragma: no cover - another scipy layout: scipy.fft.rfft does the same
    _pocketfft_r2c = None


def rfft_rows(frames: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Real FFT of each row of a float32 ``(n, n_fft)`` array into ``out`` (complex64 ``(n, n_fft // 2 + 1)``).

    Equal to ``scipy.fft.rfft(frames, axis=-1)``; ``frames`` may be overwritten."""
    global _pocketfft_r2c
    if _pocketfft_r2c is not None:
        try:
            return _pocketfft_r2c(frames, (1,), True, 0, out, 1)
        except TypeError:  # pragma: no cover - a scipy whose private signature changed: use the public one
            _pocketfft_r2c = None
    out[...] = scipy.fft.rfft(frames, axis=-1, overwrite_x=True)
    return out

#: Frames per FFT call in the statistics path: a chunk's frames and spectra stay in cache. Once the FFT is called
#: without scipy.fft's dispatch layer, 24-32 was the fastest on the project's machines (profiling 60 clips of 15 s
#: at n_fft 2048: 32 frames 12% faster than 96, 16 slower again; benchmarks/bench_profile.py).
CHUNK_FRAMES = 32
#: Resolution of the frame-level bins used by the relative gate (dB).
LEVEL_STEP_DB = 0.5
#: A frame with less than this share of its power outside 0 Hz and the first bin (where the Hann window spreads a
#: constant offset) is a constant offset (DC), not sound: it is not counted. Counting it would put every other bin
#: at the floor and drag the device's estimate down by tens of dB. 1e-3: sound 30 dB below an offset still counts.
DC_REST_SHARE = 1e-3
#: Level bins (of ``LEVEL_STEP_DB``) of the histogram of DC-dominated frames by the level of their other power:
#: ``DC_LEVEL_LOW`` up to ``DC_LEVEL_LOW + DC_LEVELS - 1`` (-400 dB to +99.5 dB; the ends take what lies beyond).
#: The C kernel holds the same values.
DC_LEVEL_LOW = -800
DC_LEVELS = 1000
#: No level yet (the state's initial top level outside the offset's bins).
_NO_LEVEL = -(1 << 62)
#: 10 / ln(10): dB of power per neper of power.
_DB_PER_NEPER_POWER = np.float32(10.0 / np.log(10.0))


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
        # [has_top, top, n_dc, top_rest, DC histogram]: whether a frame has counted yet, the loudest level bin so
        # far (relative gate only), the frames dominated by a constant offset, the loudest level bin of the power
        # outside 0 Hz and bin 1 of the frames past the DC rule and the absolute gate (relative gate only), and
        # the DC-dominated frames above the absolute gate by the level bin of that power (see n_dc_masked).
        # An array so that the C kernel updates it in place.
        self._state = np.zeros(4 + DC_LEVELS, dtype=np.int64)
        self._state[3] = _NO_LEVEL
        self._gates = (self._level_k, -1.0 if self._gate_sum is None else self._gate_sum, DC_REST_SHARE,
                       LEVEL_STEP_DB, n_rows, self.relative_gate_db is not None)
        self._buffer = np.empty((CHUNK_FRAMES, self.n_fft), dtype=np.float32)  # windowed frames of one chunk
        self._spectrum = np.empty((CHUNK_FRAMES, n_bins), dtype=np.complex64)  # their spectra

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

    @property
    def n_dc_masked(self) -> int:
        """DC-dominated frames whose other power (the sound beside the offset) would have counted: above the
        absolute gate and, with the relative gate, within it of the loudest counted frame. The frames the offset
        hid; the rest of :attr:`n_dc` are pauses that the gates would have left out anyway."""
        hist = self._state[4:]
        if self.relative_gate_db is None or self._state[3] == _NO_LEVEL:
            return int(hist.sum())
        # Compared with the loudest frame's power outside the offset's bins too: a recording whose every frame
        # carries the offset would otherwise put the relative gate's top at the offset's level.
        first = int(self._state[3]) - self._counts.shape[0] + 1 - DC_LEVEL_LOW  # levels > top - n_rows count
        return int(hist[min(max(first, 0), DC_LEVELS):].sum())

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
        frames = frame_view(x, self.n_fft, self.hop_length)
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
            self._add_chunk(rfft_rows(windowed, self._spectrum[:m]), kernel)
        return total

    def _add_chunk(self, spec: np.ndarray, kernel: bool) -> None:
        """Gate the frames of one complex64 chunk ``(n_frames, n_bins)`` and add the rest to their level's row:
        one call of the C kernel, or the same steps in numpy."""
        if kernel:
            _logpower.add_chunk(spec, spec.shape[0], spec.shape[1], self._gates, self._state, self._counts,
                                self._sums, self._squares, self._powers, self._floor_power)
            return
        power = _power(spec)
        slots = self._slots(*_frame_power_numpy(power), power)
        if slots is not False:
            _accumulate_numpy(power, slots, self._sums, self._squares, self._powers, self._floor_power)

    def _slots(self, two_sided: np.ndarray, low: np.ndarray, power: np.ndarray) -> np.ndarray | None | bool:
        """Row of each frame (int32, -1: not counted), None when every frame goes to row 0, False when none counts.

        Counts the DC-dominated frames and the frames of each row on the way."""
        n = two_sided.shape[0]
        # Not counted: frames whose power lies almost all in 0 Hz and the first bin, where the Hann window spreads
        # a constant offset, and frames below the absolute gate.
        dc = (two_sided - low < DC_REST_SHARE * two_sided) & (two_sided > 0)
        n_dc = int(np.count_nonzero(dc))
        self._state[2] += n_dc
        if n_dc:
            # The power beside the offset, summed again in float64 (a small difference of the sums above).
            part = power[dc].astype(np.float64)
            rest = 2.0 * part[:, 2:-1].sum(axis=-1) + (part[:, -1] if part.shape[1] > 2 else 0.0)
            if self._gate_sum is not None:
                rest = rest[rest >= self._gate_sum]
            bins = np.floor(10.0 * np.log10(np.maximum(rest * self._level_k, 1e-30)) / LEVEL_STEP_DB)
            np.add.at(self._state, 4 + np.clip(bins.astype(np.int64) - DC_LEVEL_LOW, 0, DC_LEVELS - 1), 1)
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
        rest_levels = np.floor(10.0 * np.log10(np.maximum((two_sided - low)[keep] * self._level_k, 1e-30))
                               / LEVEL_STEP_DB)
        self._state[3] = max(int(self._state[3]), int(rest_levels.max()))
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

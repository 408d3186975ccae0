"""Event mode in blocks: reading recordings, placing them on the timeline and holding the placed audio on disk.

Nothing here holds a whole recording in memory:

* :func:`read_pass` reads each file once in blocks of :data:`BLOCK_S` seconds and keeps a low-rate mono copy for
  the synchronisation (at most :data:`MONO_RATE` Hz, float32: about 115 MB per hour of recording at 8 kHz), with
  the clipping figures that rule a recording out as the automatic reference;
* :class:`Placer` puts a recording on the timeline: one streaming soxr conversion from the file's rate to the
  timeline's rate times the clock's rate (resampling and clock drift in one step), then a constant fractional
  shift by a windowed-sinc filter of :data:`FRAC_TAPS` taps, then a whole-sample shift. The soxr stream gives the
  same samples however the input is cut into blocks, and the shift filter runs through
  :func:`micmatch.render.stream_with_context`, so the placed audio is the same block by block as in one piece
  (:func:`place_array` is the one-piece form);
* :class:`PlacedStore` keeps a placed recording in a raw float32 staging file in the output folder and reads any
  stretch of the timeline back (zeros where the recording did not record).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micmatch import audio as audio_io
from micmatch.render import stream_with_context

#: Seconds per block read from a file and per block placed or written.
BLOCK_S = 10.0
#: Highest rate of the low-rate mono copies used for the synchronisation (Hz).
MONO_RATE = 8000
#: A shift within this fraction of a sample of the output grid moves by whole samples only (at most 0.23 us at
#: 44.1 kHz, a phase error of 0.03 rad at Nyquist): the shift filter, flat only up to 0.85 x Nyquist, would change a
#: recording's top band for a shift that measurement noise alone produces (an identical copy measured 0.002
#: sample off).
GRID_TOLERANCE = 0.01
#: Taps of the fractional-shift filter (Kaiser-windowed sinc): flat within 0.01 dB up to 0.85 x Nyquist.
FRAC_TAPS = 64
FRAC_BETA = 8.0
#: A sample counts as near the peak within this fraction of it; a recording with more than
#: :data:`CLIPPED_FRACTION` of its samples there counts as clipped.
NEAR_PEAK = 0.01
CLIPPED_FRACTION = 1e-4


def block_frames(sample_rate: int) -> int:
    """Samples per block at ``sample_rate``."""
    return max(1, int(round(BLOCK_S * sample_rate)))


@dataclass
class ReadFigures:
    """What one pass over a file gave: its low-rate mono copy and its clipping figures."""

    mono: np.ndarray
    frames: int
    peak: float
    near_peak: int
    samples: int

    @property
    def clipped_fraction(self) -> float:
        """Share of the samples (all channels) within :data:`NEAR_PEAK` of the file's peak."""
        return self.near_peak / max(self.samples, 1)


def read_pass(path, mono_rate: int, *, progress=None) -> ReadFigures:
    """Read ``path`` in blocks: its mono mix resampled to ``mono_rate`` (float32) and its clipping figures.

    Samples near the peak are counted per block against the block's own peak; blocks whose peak lies within
    :data:`NEAR_PEAK` of the file's count fully (for a block below the file's peak that is an upper bound).
    ``progress(fraction)`` is called after each block.
    """
    import soxr

    meta = audio_io.info(path)
    sr = meta.sample_rate
    stream = None if sr == mono_rate else soxr.ResampleStream(sr, mono_rate, 1, dtype="float32", quality="HQ")
    parts, peaks, counts, frames = [], [], [], 0
    for block in audio_io.iter_blocks(meta.path, block_frames=block_frames(sr), channels="keep", dtype="float32",
                                      meta=meta):
        frames += block.shape[-1]
        mag = np.abs(block)
        peak = float(mag.max(initial=0.0))
        peaks.append(peak)
        counts.append(int(np.count_nonzero(mag >= (1.0 - NEAR_PEAK) * peak)) if peak > 0 else 0)
        mono = block.mean(axis=0)
        parts.append(mono if stream is None else stream.resample_chunk(mono, last=frames >= meta.frames))
        if progress is not None:
            progress(min(1.0, frames / max(meta.frames, 1)))
    if stream is not None and frames < meta.frames:  # pragma: no cover - iter_blocks raises on truncation
        parts.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    top = max(peaks, default=0.0)
    near = sum(c for p, c in zip(peaks, counts) if top > 0 and p >= (1.0 - NEAR_PEAK) * top)
    mono = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)
    return ReadFigures(mono, frames, top, near, frames * meta.channels)


# ----------------------------------------------------------------------------------------------------------------
# Placing on the timeline


def frac_filter(frac: float) -> np.ndarray:
    """Taps ``h[m]``, ``m = -K+1 .. K`` (``K = FRAC_TAPS / 2``), with ``sum h[m] y[k+m] ~ y(k + frac)``."""
    half = FRAC_TAPS // 2
    m = np.arange(-half + 1, half + 1, dtype=np.float64)
    t = m - frac
    window = np.i0(FRAC_BETA * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None))) / np.i0(FRAC_BETA)
    h = np.sinc(t) * window
    return (h / h.sum()).astype(np.float64)


class Placer:
    """Where a recording's samples go on the timeline, and the streaming steps that put them there.

    ``out[n] = y(n + shift)`` where ``y`` is the recording resampled to ``out_rate * clock.rate`` (one soxr
    stream; skipped when the rates agree and the drift moves the recording by less than 0.1 sample over the
    timeline, as :func:`micmatch.align.align` does) and ``shift = (start_s - clock.start_s) * out_rate`` (divided by
    the clock's rate when not resampled), rounded to a millionth of a sample and to whole samples within
    :data:`GRID_TOLERANCE` of the grid. ``polarity`` -1 inverts the recording (its chain inverted it against the
    reference's).
    """

    def __init__(self, sample_rate: int, clock, *, out_rate: int, start_s: float, n_samples: int, channels: int,
                 polarity: int = 1):
        self.sample_rate, self.out_rate, self.n_samples, self.channels = sample_rate, out_rate, n_samples, channels
        self.polarity = -1 if polarity < 0 else 1
        drifts = abs(clock.rate - 1.0) * max(n_samples, 1) >= 0.1
        self.resampled = sample_rate != out_rate or drifts
        self.target_rate = out_rate * clock.rate if drifts else float(out_rate)
        shift = (start_s - clock.start_s) * out_rate / (1.0 if drifts else clock.rate)
        shift = round(shift, 6)
        if abs(shift - round(shift)) < GRID_TOLERANCE:  # on the grid: moved by whole samples, not filtered
            shift = float(round(shift))
        self.whole = int(np.floor(shift))
        self.frac = shift - self.whole
        self.taps = frac_filter(self.frac) if self.frac > 1e-6 else None

    def _shifted(self, chunks):
        """The resampled and fractionally shifted recording ``z[k] = y(k + frac)``, chunk by chunk."""
        if self.resampled:
            import soxr

            stream = soxr.ResampleStream(self.sample_rate, self.target_rate, self.channels, dtype="float32",
                                         quality="VHQ")

            def converted():
                pending = None
                for c in chunks:
                    if pending is not None:
                        yield stream.resample_chunk(np.ascontiguousarray(pending.T), last=False).T
                    pending = c
                if pending is not None:
                    yield stream.resample_chunk(np.ascontiguousarray(pending.T), last=True).T

            source = converted()
        else:
            source = chunks
        if self.taps is None:
            yield from (np.asarray(c, dtype=np.float32) for c in source)
            return
        import scipy.signal

        h = self.taps[::-1][np.newaxis, :]
        half = FRAC_TAPS // 2

        def shift(seg: np.ndarray) -> np.ndarray:
            return scipy.signal.oaconvolve(seg.astype(np.float64), h, mode="valid", axes=-1).astype(np.float32)

        yield from stream_with_context(source, shift, left=half - 1, right=half, block=block_frames(self.out_rate))

    def blocks(self, chunks):
        """``(n0, block)`` pieces of the placed recording: timeline samples ``n0 ..`` in order, only where it lies
        inside ``0 .. n_samples`` (zeros elsewhere are left to the reader)."""
        k = 0  # index into z of the next sample
        for z in self._shifted(chunks):
            m = z.shape[-1]
            n0 = k - self.whole
            lo, hi = max(0, -n0), min(m, self.n_samples - n0)
            if hi > lo:
                yield n0 + lo, (z[:, lo:hi] if self.polarity == 1 else -z[:, lo:hi])
            k += m


def place_array(audio: np.ndarray, sample_rate: int, clock, *, out_rate: int, start_s: float,
                n_samples: int) -> np.ndarray:
    """A whole recording ``(channels, n)`` placed on the timeline in one piece (the same steps as the blocks)."""
    x = np.asarray(audio, dtype=np.float32)
    x = x[np.newaxis] if x.ndim == 1 else x
    placer = Placer(sample_rate, clock, out_rate=out_rate, start_s=start_s, n_samples=n_samples, channels=x.shape[0])
    out = np.zeros((x.shape[0], n_samples), dtype=np.float32)
    for n0, b in placer.blocks([x]):
        out[:, n0 : n0 + b.shape[-1]] = b
    return out


# ----------------------------------------------------------------------------------------------------------------
# Placed audio on disk


class PlacedStore:
    """A recording placed on the timeline, held in a raw float32 staging file (frames interleaved); reads give
    zeros outside ``cover`` (the samples the recording covers)."""

    def __init__(self, path: Path, channels: int, cover: tuple[int, int]):
        self.path, self.channels, self.cover = Path(path), channels, cover
        self.lo = self.hi = 0

    def write(self, placer: Placer, source_path, *, progress=None) -> None:
        """Place the file ``source_path`` block by block into the store."""
        meta = audio_io.info(source_path)
        chunks = audio_io.iter_blocks(meta.path, block_frames=block_frames(meta.sample_rate), channels="keep",
                                      dtype="float32", meta=meta)
        self.write_blocks(placer.blocks(chunks), progress=progress)

    def write_blocks(self, blocks, *, progress=None) -> None:
        first = None
        with open(self.path, "wb") as fh:
            for n0, b in blocks:
                if first is None:
                    first = self.hi = n0
                if n0 != self.hi:  # pragma: no cover - the placer yields consecutive blocks
                    raise RuntimeError("placed blocks out of order")
                np.ascontiguousarray(b.T, dtype=np.float32).tofile(fh)
                self.hi = n0 + b.shape[-1]
                if progress is not None:
                    progress(self.hi)
        self.lo = first if first is not None else 0
        self.hi = max(self.hi, self.lo)

    def read(self, a: int, b: int) -> np.ndarray:
        """Timeline samples ``a .. b`` as ``(channels, b - a)`` float32 (zeros outside the cover)."""
        out = np.zeros((self.channels, max(b - a, 0)), dtype=np.float32)
        lo, hi = max(a, self.lo, self.cover[0]), min(b, self.hi, self.cover[1])
        if hi > lo:
            count = (hi - lo) * self.channels
            with open(self.path, "rb") as fh:
                data = np.fromfile(fh, dtype=np.float32, count=count, offset=(lo - self.lo) * self.channels * 4)
            out[:, lo - a : hi - a] = data.reshape(-1, self.channels).T
        return out

    def blocks(self, a: int, b: int, size: int):
        """Consecutive reads of ``a .. b`` in pieces of at most ``size`` samples."""
        for s in range(a, b, size):
            yield self.read(s, min(s + size, b))

    def remove(self) -> None:
        with _suppress():
            os.unlink(self.path)


def _suppress():
    import contextlib

    return contextlib.suppress(OSError)




# ----------------------------------------------------------------------------------------------------------------
# Stems


def apply_with_context(chunks, apply, context: int, block: int, hop: int = 1):
    """Run a frame-local ``apply(x) -> y`` (1-D float32, same length) over ``(channels, n)`` chunks, each block of
    ``block`` samples with ``context`` samples of the neighbouring audio on each side (zeros beyond the ends), the
    result cropped to the block.

    A ``hop`` > 1 is the frame step of ``apply`` (its frames start every ``hop`` samples from the start of what it
    is given): block and context are rounded up to multiples of it, so every segment starts on the frame grid of
    the whole signal and blocks give the samples of one piece."""
    hop = max(1, int(hop))
    context = -(-int(context) // hop) * hop
    block = -(-int(block) // hop) * hop

    def func(seg: np.ndarray) -> np.ndarray:
        out = np.stack([np.asarray(apply(np.ascontiguousarray(ch, dtype=np.float32)), dtype=np.float32)
                        for ch in seg])
        return out[:, context : seg.shape[-1] - context]

    return stream_with_context(chunks, func, left=context, right=context, block=block)


def true_peak_tracker(sample_rate: int):
    """``(add, peak)``: feed ``(channels, n)`` blocks to ``add``; ``peak()`` gives the true peak so far (dBTP, 4x
    oversampled as :func:`micmatch.loudness.true_peak_db`, each block with 32 samples of the one before)."""
    import scipy.signal

    factor = 4 if sample_rate < 96000 else 2
    state = {"tail": None, "peak": 0.0}

    def add(block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float64)
        ctx = 0 if state["tail"] is None else state["tail"].shape[-1]
        y = x if ctx == 0 else np.concatenate([state["tail"], x], axis=-1)
        up = scipy.signal.resample_poly(y, factor, 1, axis=-1)[:, ctx * factor :]
        state["peak"] = max(state["peak"], float(np.abs(up).max(initial=0.0)), float(np.abs(x).max(initial=0.0)))
        state["tail"] = y[:, -32:]

    def peak() -> float:
        return 20.0 * np.log10(max(state["peak"], 1e-15))

    return add, peak


def write_stem(store: PlacedStore, stage: Path, n_samples: int, sample_rate: int, *, processor=None, fit=None,
               meter=None, progress=None) -> float:
    """The corrected stem of one device (static correction ``processor``, then ``fit.apply`` with its context,
    zeros outside the device's cover), written block by block to the float WAV ``stage``; the loudness ``meter``
    is fed on the way. Returns the stem's true peak (dBTP)."""
    import soundfile as sf

    size = block_frames(sample_rate)
    chunks = store.blocks(0, n_samples, size)
    if processor is not None:
        chunks = stream_with_context(chunks, processor.func, left=processor.left, right=processor.right,
                                     block=processor.block)
    if fit is not None and fit.kept:
        chunks = apply_with_context(chunks, fit.apply, int(fit.context), size, int(getattr(fit, "hop", 1)))
    add, peak = true_peak_tracker(sample_rate)
    lo, hi = store.cover
    n = 0
    with sf.SoundFile(str(stage), "w", samplerate=sample_rate, channels=store.channels, format="WAV",
                      subtype="FLOAT") as fh:
        for y in chunks:
            y = np.array(y, dtype=np.float32)
            m = y.shape[-1]
            y[:, : max(0, min(lo - n, m))] = 0.0
            y[:, max(0, hi - n) :] = 0.0
            if meter is not None:
                meter.add(y)
            add(y)
            fh.write(y.T)
            n += m
            if progress is not None:
                progress(n / max(n_samples, 1))
    return peak()


__all__ = ["BLOCK_S", "MONO_RATE", "PlacedStore", "Placer", "ReadFigures", "apply_with_context", "block_frames",
           "place_array", "read_pass", "true_peak_tracker", "write_stem"]

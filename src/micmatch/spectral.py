"""Spectral building blocks: framing, STFT/iSTFT, overlap-add, the analysis window, fractional-octave smoothing, dB.

The streaming statistics of many frames (the profiling hot path) are in :mod:`micmatch.logstats`.

Magnitude scale: spectra from :func:`log_power_frames` and :class:`micmatch.logstats.LogPowerAccumulator` are scaled so that a
full-scale sinusoid centred on a bin reads 0 dB (the window is normalised by ``2 / sum(window)``). Every log has
a floor: ``floor_db`` is added (as power) before the log, which changes nothing measurable above it; frames quieter than ``gate_db`` (RMS of the windowed frame re full scale) are skipped, so
digital silence and fades cannot drag a geometric mean towards minus infinity.
"""

from __future__ import annotations

import numpy as np

from micmatch.errors import ParameterError

from numpy.lib.stride_tricks import as_strided

#: Default floor of every log-power value, in dB re full scale. -160 dB is below 24-bit quantisation noise.
DEFAULT_FLOOR_DB = -160.0
#: Default silence gate: frames whose windowed RMS is below this (dB re full scale) are not counted.
#: -80 dBFS lies below the noise floor of real recordings but above digital silence and 16-bit dither.
DEFAULT_GATE_DB = -80.0
#: Default relative gate: frames more than this many dB below a recording's loudest frame are not counted.
#: Pauses between sounds then hold only the device's noise floor, which would otherwise bias the estimate.
DEFAULT_RELATIVE_GATE_DB = 30.0


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
    :class:`micmatch.logstats.LogPowerAccumulator`.
    """
    x = np.ascontiguousarray(audio, dtype=np.float64)
    frames = frame_view(x, n_fft, hop_length) * analysis_window(n_fft, dtype=np.float64)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    return (10.0 * np.log10(power + 10.0 ** (floor_db / 10.0))).T


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
    import scipy.fft

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
    import scipy.fft

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
    import scipy.fft

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

"""GCC-PHAT cross-correlation and its peaks: how far apart two recordings of one sound are.

:func:`gcc_phat` correlates two signals with the phase transform (every frequency counts the same, whatever the
devices' responses); :func:`peak` finds the largest value to a fraction of a sample and scores it against the
correlation's noise; :func:`signed_peak` looks on both signs (an inverted device correlates negatively);
:func:`onset_emphasis` keeps what rises above the sound just before it (the direct sound of each onset) and takes
out the reverberant tails that follow, before correlating recordings made in a room.
:mod:`micmatch.align` and :mod:`micmatch.eventsync` measure offsets and drift with them.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

#: Floor of the PHAT weighting, relative to the mean cross-spectrum magnitude, so empty bins do not divide by 0.
PHAT_FLOOR = 1e-3


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


#: Device samples correlated at once by :func:`gcc_phat_long` (2^20: 131 s at the 8 kHz of event synchronisation).
LONG_BLOCK = 1 << 20


def gcc_phat_long(reference: np.ndarray, device: np.ndarray, *,
                  block: int = LONG_BLOCK) -> tuple[np.ndarray, int]:
    """:func:`gcc_phat` of a short ``reference`` against a long ``device``, ``block`` lags at a time (float32).

    One FFT over an hour at 8 kHz holds about 1 GB of temporary arrays; block by block it holds the correlation
    itself (4 bytes a lag) and one block's FFTs. Each block's cross-spectrum is whitened on its own, so values
    differ slightly from one whole-length :func:`gcc_phat`; peaks stay where they are.
    """
    n_ref, n_dev = reference.shape[-1], device.shape[-1]
    if n_dev <= block:
        c, zero = gcc_phat(reference, device)
        return c.astype(np.float32), zero
    out = np.empty(n_ref + n_dev - 1, dtype=np.float32)
    for k0 in range(-(n_ref - 1), n_dev, block):
        s0, s1 = max(k0, 0), min(k0 + block + n_ref - 1, n_dev)
        c, zero = gcc_phat(reference, device[s0:s1])
        k1 = min(k0 + block, n_dev)
        out[k0 + n_ref - 1 : k1 + n_ref - 1] = c[k0 - s0 + zero : k1 - s0 + zero]
    return out, n_ref - 1


def overlapping_lags(c: np.ndarray, zero: int, n_excerpt: int, n_device: int) -> np.ndarray:
    """``c`` (a :func:`gcc_phat` of an excerpt against a recording) with the lags where less than half the excerpt
    lies inside the recording set to the median: there a few samples of overlap (the recording's abrupt first or
    last samples) can make a spurious peak."""
    first = max(0, zero - n_excerpt // 2)  # index of lag -(n_excerpt // 2)
    last = zero + n_device - (n_excerpt + 1) // 2  # index of the last lag kept
    out = c.copy()
    centre = np.median(c)
    out[:first] = centre
    out[max(last + 1, first) :] = centre
    return out


def peak(c: np.ndarray, spread: np.ndarray | None = None) -> tuple[float, float]:
    """Sub-sample index of the largest value of ``c`` (parabolic interpolation) and its robust score: how many
    robust standard deviations it stands above the median of ``spread`` (default ``c`` itself)."""
    i = int(np.argmax(c))
    frac = 0.0
    if 0 < i < c.shape[-1] - 1:
        a, b, d = c[i - 1], c[i], c[i + 1]
        den = a - 2.0 * b + d
        if den < 0:
            frac = float(np.clip(0.5 * (a - d) / den, -0.5, 0.5))
    rest = c if spread is None else spread
    centre = float(np.median(rest))
    sigma = float(np.median(np.abs(rest - centre))) / 0.6745
    return i + frac, float((c[i] - centre) / max(sigma, 1e-300))


def signed_peak(c: np.ndarray, spread: np.ndarray | None = None, polarity: int = 0) -> tuple[float, float, int]:
    """:func:`peak` of ``polarity * c`` (and ``spread``), or with ``polarity`` 0 of whichever sign scores higher;
    the index, the score and the sign used."""
    if polarity:
        pos, score = peak(polarity * c, None if spread is None else polarity * spread)
        return pos, score, int(polarity)
    up, down = peak(c, spread), peak(-c, None if spread is None else -spread)
    return (*up, 1) if up[1] >= down[1] else (*down, -1)


#: Time constant (s) of the recent power an onset is measured against, and how far above it (as a power ratio) a
#: cell must rise to be kept whole (:func:`onset_emphasis`). Chosen on the rooms of ``benchmarks/bench_event.py``
#: (RT60 0.2-0.8 s) among 25-200 ms and ratios 1-4: the shortest memory kept the most pairs on the direct sound.
ONSET_TAU_S = 0.025
ONSET_RATIO = 2.0
#: Frame length (s) of :func:`onset_emphasis` (the next power of two in samples), hop a quarter of it.
ONSET_FRAME_S = 0.032


def onset_emphasis(x: np.ndarray, sample_rate: int, *, tau_s: float = ONSET_TAU_S, ratio: float = ONSET_RATIO,
                   block_frames: int = 1024) -> np.ndarray:
    """``x`` (1-D) with each short-time spectral cell scaled by how far it rises above the same frequency's recent
    power: gain ``clip(1 - ratio * recent / power, 0, 1)``, ``recent`` the power of the earlier frames smoothed over
    ``tau_s``. Returns float32 of ``x``'s length.

    In a room every onset reaches a microphone first by the direct path, and the reverberation that follows is what
    correlates between two microphones at the wrong lags. A cell that rises well above its recent past holds mostly
    the new sound's first arrival; a reverberant tail decays, so it never rises and is removed. Measured on the
    two speech events in ``benchmarks/bench_event.py``'s rooms at RT60 0.65-0.66 s: single 6 s excerpts of phone
    pairs landed within 1 ms of the direct-sound lag 17-29% of the time with plain GCC-PHAT, 60-67% after this.

    Hann frames of :data:`ONSET_FRAME_S`, hop a quarter, resynthesised by weighted overlap-add (with ``ratio=0`` the
    output is ``x`` within float32 rounding). ``block_frames`` frames are processed at a time, the smoothing carried
    over, so the output does not depend on it beyond float32 rounding; memory is the output (float32, accumulated
    in place) plus about 20 MB for any length.
    """
    import scipy.fft
    import scipy.signal

    x = np.asarray(x)
    n = x.shape[-1]
    n_fft = 1 << max(4, int(np.ceil(np.log2(ONSET_FRAME_S * sample_rate))))
    hop = n_fft // 4
    window = np.hanning(n_fft + 1)[:-1]
    lead = n_fft - hop  # frame f covers samples f * hop - lead .. f * hop - lead + n_fft
    n_frames = (n + lead) // hop + 1
    out = np.zeros((n_frames - 1) * hop + n_fft, dtype=np.float32)  # one float32 copy: 115 MB an hour at 8 kHz
    alpha = float(np.exp(-hop / (tau_s * sample_rate)))
    recent = None
    for f0 in range(0, n_frames, block_frames):
        f1 = min(n_frames, f0 + block_frames)
        idx = (np.arange(f0, f1) * hop - lead)[:, None] + np.arange(n_fft)[None, :]
        inside = (idx >= 0) & (idx < n)
        frames = np.where(inside, x[np.clip(idx, 0, max(n - 1, 0))], 0.0) * window if n else np.zeros(idx.shape)
        spec = scipy.fft.rfft(frames, axis=1)
        power = spec.real**2 + spec.imag**2
        if recent is None:
            recent = power[0].copy()
        smooth, _ = scipy.signal.lfilter([1.0 - alpha], [1.0, -alpha], power, axis=0, zi=alpha * recent[None, :])
        before = np.vstack([recent[None, :], smooth[:-1]])
        recent = smooth[-1]
        gain = np.clip(1.0 - ratio * before / np.maximum(power, 1e-30), 0.0, 1.0)
        frames = scipy.fft.irfft(spec * gain, n=n_fft, axis=1) * window
        # overlap-add: quarter k of frame f lands at (f + k) * hop, so each quarter of all frames is one stretch
        pieces = frames.reshape(f1 - f0, 4, hop)
        for k in range(4):
            start = (f0 + k) * hop
            out[start : start + (f1 - f0) * hop] += pieces[:, k, :].reshape(-1)
    # a periodic Hann window squared sums to 1.5 over frames a quarter apart
    out /= 1.5
    return out[lead : lead + n]


__all__ = ["LONG_BLOCK", "ONSET_RATIO", "ONSET_TAU_S", "PHAT_FLOOR", "gcc_phat", "gcc_phat_long", "onset_emphasis",
           "overlapping_lags", "peak", "signed_peak"]

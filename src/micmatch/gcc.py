"""GCC-PHAT cross-correlation and its peaks: how far apart two recordings of one sound are.

:func:`gcc_phat` correlates two signals with the phase transform (every frequency counts the same, whatever the
devices' responses); :func:`peak` finds the largest value to a fraction of a sample and scores it against the
correlation's noise; :func:`signed_peak` looks on both signs (an inverted device correlates negatively).
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


__all__ = ["LONG_BLOCK", "PHAT_FLOOR", "gcc_phat", "gcc_phat_long", "overlapping_lags", "peak", "signed_peak"]

"""One timeline for many recordings of one event: pairwise offsets and drift, solved together over all pairs.

Every recording ``k`` has its own clock. On the common timeline (seconds, the reference's clock, the reference's
first sample at 0) its local time ``t_k`` lies at ``T = a_k + b_k * t_k``. Each pair ``(i, j)`` that holds the same
sound gives one measurement (:func:`micmatch.align.estimate_alignment` on their overlap, at a common analysis
rate): ``t_j = o_ij + (1 + d_ij) t_i``, which means ``log b_i - log b_j = log(1 + d_ij)`` and
``a_i - a_j = o_ij b_j``. Both are linear in the unknowns and are solved by weighted least squares over the graph of
pairs (:func:`solve_timeline`; a pair that disagrees with the others by more than :data:`LINK_TOLERANCE_MS` is
dropped first, :func:`consistent_links`), with the reference fixed (``a = 0``, ``b = 1``): a recording then sits where all its
overlaps agree, not only where its overlap with the reference puts it, and a recording that never overlaps the
reference is placed through the others. Recordings outside the reference's connected part of the graph are left
out (they hold another event, or nothing that matches).

The pairs are measured on low-rate mono copies of the recordings (:mod:`micmatch.eventstream`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from micmatch.align import MIN_PEAK_SCORE, estimate_alignment
from micmatch.gcc import gcc_phat_long, overlapping_lags, signed_peak
from micmatch.errors import MeasurementError

#: Highest analysis rate of the synchronisation (Hz): speech and music carry their timing well below 8 kHz, and a
#: sub-sample peak at 16 kHz is far finer than the 1 ms an editor can hear.
SYNC_RATE = 16000
#: Two recordings must overlap by at least this much (seconds) to be compared.
MIN_OVERLAP_S = 3.0
#: Length of the excerpts tried for the coarse offset (seconds), and at most how many are tried per pair.
EXCERPT_S = 4.0
MAX_EXCERPTS = 8
#: At most this many different coarse offsets (best excerpt peaks first) are tried per pair.
MAX_COARSE_TRIES = 3
#: A link whose offset lies more than this (ms) off the timeline solved from all links is dropped where the others
#: still connect every recording (:func:`consistent_links`). Good links agree within a few tenths of a
#: millisecond; a link locked on a reflection is off by the reflection's extra path, 2 ms and more.
LINK_TOLERANCE_MS = 1.5


@dataclass(frozen=True)
class PairLink:
    """One measured pair: ``t_j = offset_s + (1 + drift_ppm 1e-6) t_i`` (local times in seconds).

    ``weight`` is the number of chunks whose offsets lay on the fitted line (how much the measurement is worth; 1
    for a stacked line, :attr:`micmatch.align.Alignment.method`); ``polarity`` is -1 where ``j`` is inverted against ``i``; ``mid_s`` and ``span_s`` are
    the middle and the extent (local time of ``i``) of the chunks measured: the offset is known best there, and
    the drift the better the longer the span.
    """

    i: int
    j: int
    offset_s: float
    drift_ppm: float
    weight: float
    peak_score: float
    polarity: int = 1
    method: str = "chunks"
    mid_s: float = 0.0
    span_s: float = 0.0

    def to_json(self, names: list[str]) -> dict:
        return {"from": names[self.i], "to": names[self.j], "offset_s": round(self.offset_s, 6),
                "drift_ppm": round(self.drift_ppm, 3), "chunks_agreeing": int(self.weight),
                "peak_score": round(self.peak_score, 1), "polarity": self.polarity, "method": self.method}


@dataclass(frozen=True)
class Clock:
    """Where a recording lies on the common timeline: ``T = start_s + rate * t`` (``t`` its local time)."""

    start_s: float
    rate: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.rate * self.duration_s

    @property
    def drift_ppm(self) -> float:
        """How fast the recording's clock runs against the reference's (ppm)."""
        return (1.0 / self.rate - 1.0) * 1e6


def sync_rate(rates: list[int]) -> int:
    """The analysis rate of the synchronisation: the lowest input rate, at most :data:`SYNC_RATE`."""
    return int(min(min(rates), SYNC_RATE))


def _excerpt_starts(x: np.ndarray, n_ex: int) -> list[int]:
    """Starts of up to :data:`MAX_EXCERPTS` loud excerpts spread over ``x`` (the loudest of each equal part)."""
    if x.shape[-1] <= n_ex:
        return [0]
    parts = min(MAX_EXCERPTS, max(1, x.shape[-1] // n_ex))
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    edges = np.linspace(0, x.shape[-1] - n_ex, parts + 1).astype(int)
    hop = max(1, n_ex // 4)
    starts = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        cand = np.arange(lo, max(hi, lo + 1), hop)
        starts.append(int(cand[int(np.argmax(csum[cand + n_ex] - csum[cand]))]))
    return starts


def _coarse_offsets(a: np.ndarray, b: np.ndarray, sr: int) -> list[tuple[float, float, int]]:
    """Offsets ``m - n`` (samples) of ``b`` against ``a`` found by the excerpts of ``a`` with a clear peak, their
    peak scores and signs, best first (one entry per offset: excerpts within a millisecond of a better one are
    dropped)."""

    n_ex = int(round(EXCERPT_S * sr))
    found = []
    for start in _excerpt_starts(a, n_ex):
        seg = a[start : start + n_ex]
        if np.sqrt(np.mean(seg * seg)) < 1e-6:
            continue
        c, zero = gcc_phat_long(seg, b)
        pos, score, sign = signed_peak(overlapping_lags(c, zero, seg.shape[-1], b.shape[-1]))
        if score >= MIN_PEAK_SCORE:
            found.append((pos - zero - start, score, sign))
    out = []
    for offset, score, sign in sorted(found, key=lambda f: -f[1]):
        if all(abs(offset - o) > 1e-3 * sr for o, _, _ in out):
            out.append((offset, score, sign))
    return out


def measure_pair(a: np.ndarray, b: np.ndarray, sr: int, i: int, j: int) -> PairLink | None:
    """The link between recordings ``i`` (``a``) and ``j`` (``b``), both mono at ``sr``; None when they do not hold
    the same sound or overlap by less than :data:`MIN_OVERLAP_S`.

    Coarse offsets from excerpts of ``a`` first, then :func:`micmatch.align.estimate_alignment` on the part of
    ``a`` that overlaps ``b`` (its chunks searched around that coarse offset, which is more robust in a
    reverberant room than the offset of one excerpt). When the chunks do not line up around the best excerpt's
    offset (a passage that sounds like another one, as repeated music does), the next offsets are tried, at most
    :data:`MAX_COARSE_TRIES`.
    """
    for coarse in _coarse_offsets(a, b, sr)[:MAX_COARSE_TRIES]:
        lo = max(0, int(np.floor(-coarse[0])))
        hi = min(a.shape[-1], int(np.ceil(b.shape[-1] - coarse[0])))
        if hi - lo < MIN_OVERLAP_S * sr:
            continue
        try:
            al = estimate_alignment(a[lo:hi], b, sr, coarse_offset=(coarse[0] + lo, coarse[1], coarse[2]))
        except MeasurementError:
            continue
        ratio = 1.0 + al.drift_ppm * 1e-6
        offset = al.offset_samples - ratio * lo  # device index of a's sample 0
        where = al.chunk_positions[al.chunk_used] + lo
        mid, span = ((float(where.mean()), float(where.max() - where.min())) if where.size else
                     ((lo + hi) / 2.0, float(hi - lo)))
        # A stacked line is one measurement however many chunks it sums; it counts as one agreeing chunk, so that
        # links whose chunks agree one by one outweigh it.
        weight = 1.0 if al.method == "stacked" else float(max(int(al.chunk_used.sum()), 1))
        return PairLink(i, j, offset / sr, al.drift_ppm, weight, al.peak_score, al.polarity, al.method, mid / sr,
                        span / sr)
    return None


def measure_links(monos: list[np.ndarray], sr: int, *, progress=None) -> list[PairLink]:
    """Every pair's link (mono recordings at ``sr``); pairs that do not match are left out.

    The excerpts for the coarse offset come from the shorter recording of each pair: its loud parts lie inside the
    overlap far more often than those of a long one.
    """
    links = []
    for i in range(len(monos)):
        for j in range(i + 1, len(monos)):
            a, b = (i, j) if monos[i].shape[-1] <= monos[j].shape[-1] else (j, i)
            link = measure_pair(monos[a], monos[b], sr, a, b)
            if link is not None:
                links.append(link)
            if progress is not None:
                progress()
    return links


def connected(n: int, links: list[PairLink], start: int) -> list[int]:
    """Recordings reachable from ``start`` through the links, ``start`` first (breadth-first order)."""
    seen, queue = [start], deque([start])
    while queue:
        u = queue.popleft()
        for link in links:
            for a, b in ((link.i, link.j), (link.j, link.i)):
                if a == u and b not in seen:
                    seen.append(b)
                    queue.append(b)
    return seen


def components(n: int, links: list[PairLink]) -> list[list[int]]:
    """The connected parts of the graph of links, largest first (ties: the one with the lowest index)."""
    left, parts = set(range(n)), []
    while left:
        part = connected(n, links, min(left))
        parts.append(part)
        left -= set(part)
    return sorted(parts, key=lambda p: (-len(p), min(p)))


def solve_timeline(durations_s: list[float], links: list[PairLink], reference: int) -> dict[int, Clock]:
    """Least-squares clocks of the recordings connected to ``reference`` (which gets ``start 0, rate 1``).

    Rates first (``log b_i - log b_j = log(1 + d_ij)``, each weighted by the pair's agreeing chunks and the span
    they cover: a drift measured over 10 s is worth far less than one measured over 10 minutes), then starts, each
    pair's offset taken in the middle of its measured chunks (``a_i + b_i m = a_j + b_j (o_ij + (1 + d_ij) m)``),
    where it is known best, weighted by its agreeing chunks.
    """
    members = connected(len(durations_s), links, reference)
    index = {k: n for n, k in enumerate(members)}
    used = [lk for lk in links if lk.i in index and lk.j in index]
    if not used:
        return {reference: Clock(0.0, 1.0, durations_s[reference])}
    w = np.sqrt(np.array([lk.weight for lk in used]))
    rows = np.zeros((len(used) + 1, len(members)))
    for r, lk in enumerate(used):
        rows[r, index[lk.i]], rows[r, index[lk.j]] = w[r], -w[r]
    rows[-1, index[reference]] = 1e3  # the reference's clock is the timeline's
    span = np.array([max(lk.span_s, 1.0) for lk in used])
    rate_rows = rows * np.r_[span / span.max(), 1.0][:, None]
    rhs = np.r_[w * span / span.max() * np.log1p(np.array([lk.drift_ppm for lk in used]) * 1e-6), 0.0]
    log_b = np.linalg.lstsq(rate_rows, rhs, rcond=None)[0]
    b = np.exp(log_b - log_b[index[reference]])
    rhs = np.r_[w * np.array([b[index[lk.j]] * (lk.offset_s + (1.0 + lk.drift_ppm * 1e-6) * lk.mid_s)
                              - b[index[lk.i]] * lk.mid_s for lk in used]), 0.0]
    a = np.linalg.lstsq(rows, rhs, rcond=None)[0]
    a -= a[index[reference]]
    return {k: Clock(float(a[index[k]]), float(b[index[k]]), durations_s[k]) for k in members}


def link_residuals(links: list[PairLink], clocks: dict[int, Clock]) -> list[float]:
    """How far each link's own offset is from the solved timeline (ms), in the middle of its measured chunks."""
    out = []
    for lk in links:
        if lk.i in clocks and lk.j in clocks:
            ci, cj = clocks[lk.i], clocks[lk.j]
            predicted = (ci.start_s + ci.rate * lk.mid_s - cj.start_s) / cj.rate
            measured = lk.offset_s + (1.0 + lk.drift_ppm * 1e-6) * lk.mid_s
            out.append(1e3 * (measured - predicted))
    return out


def consistent_links(durations_s: list[float], links: list[PairLink],
                     reference: int) -> tuple[list[PairLink], list[tuple[PairLink, float]]]:
    """The links that agree with the timeline solved from them, and the dropped ones with their residual (ms).

    A pair measured on a strong reflection instead of the direct sound (a reverberant room, far from the source)
    is several milliseconds off; where the recordings are linked in a loop, the other links show it. The link
    farthest from the solved timeline, beyond :data:`LINK_TOLERANCE_MS`, is dropped when the rest still connect
    every recording, and the timeline solved again, until all agree or no link can go.
    """
    kept, dropped = list(links), []
    members = set(connected(len(durations_s), kept, reference))
    while True:
        clocks = solve_timeline(durations_s, kept, reference)
        res = link_residuals(kept, clocks)
        for r in np.argsort(-np.abs(np.asarray(res))):
            if abs(res[r]) <= LINK_TOLERANCE_MS:
                return kept, dropped
            trial = kept[:r] + kept[r + 1 :]
            if set(connected(len(durations_s), trial, reference)) >= members:
                dropped.append((kept[r], float(res[r])))
                kept = trial
                break
        else:
            return kept, dropped


def polarity(links: list[PairLink], reference: int, device: int) -> int:
    """``device``'s polarity against ``reference``: the product of the links' polarities along its route (-1 where
    its chain inverts the signal relative to the reference's)."""
    chain = route(links, reference, device)
    sign = 1
    for u, v in zip(chain[:-1], chain[1:]):
        sign *= max((lk for lk in links if {lk.i, lk.j} == {u, v}), key=lambda lk: lk.weight).polarity
    return sign


def route(links: list[PairLink], reference: int, device: int) -> list[int]:
    """The shortest chain of recordings from ``device`` to ``reference`` (both included), through the links;
    among equally short chains, the first found with the strongest links."""
    order = sorted(links, key=lambda lk: -lk.weight)
    previous, queue = {device: None}, deque([device])
    while queue:
        u = queue.popleft()
        if u == reference:
            break
        for lk in order:
            for a, b in ((lk.i, lk.j), (lk.j, lk.i)):
                if a == u and b not in previous:
                    previous[b] = u
                    queue.append(b)
    if reference not in previous:
        raise MeasurementError("no chain of overlapping recordings links this device to the reference")
    chain, node = [], reference
    while node is not None:
        chain.append(node)
        node = previous[node]
    return chain[::-1]


def place(audio: np.ndarray, sample_rate: int, clock: Clock, *, out_rate: int, start_s: float,
          n_samples: int) -> np.ndarray:
    """A recording ``(channels, n)`` on the timeline: ``n_samples`` at ``out_rate`` from ``start_s``, zeros where it
    did not record; the same steps as the block-wise placing of :class:`micmatch.eventstream.Placer` (soxr for the
    rate and the drift, a windowed-sinc fractional shift, a whole-sample shift), in one piece."""
    from micmatch.eventstream import place_array

    return place_array(audio, sample_rate, clock, out_rate=out_rate, start_s=start_s, n_samples=n_samples)


def coverage(clock: Clock, *, out_rate: int, start_s: float, n_samples: int) -> tuple[int, int]:
    """First and one-past-last timeline sample (at ``out_rate`` from ``start_s``) that the recording covers."""
    lo = int(np.ceil((clock.start_s - start_s) * out_rate - 1e-2))  # the placement's grid tolerance (0.01 sample)
    hi = int(np.floor((clock.end_s - start_s) * out_rate + 1e-2))
    return max(lo, 0), min(max(hi, 0), n_samples)


__all__ = ["Clock", "PairLink", "components", "connected", "consistent_links", "coverage", "link_residuals",
           "measure_links", "measure_pair", "place", "polarity", "route", "solve_timeline", "sync_rate"]

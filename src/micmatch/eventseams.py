"""Seam figures of an event: how much the sound jumps where an edit cuts from one device to another.

At a cut at time ``t`` from device A to device B both recorded the same moment, so their audio over a short window
around ``t`` (:data:`SEAM_WINDOW_S` each side) can be compared directly:

* **spectral jump**: the frame log-spectral distance between A's and B's window (:func:`micmatch.metrics.
  log_spectral_distance`, 100 Hz to 0.45 x the lower of the two devices' own rates, frames within 40 dB of the
  loudest), with B's level matched to A's over that band so that it measures tone only;
* **loudness jump**: B's minus A's integrated loudness over the window (LU, ITU-R BS.1770).

Each is measured before correction (the recordings as placed on the timeline) and after (the stems written).
Where no cut list is given, the figures are taken for every pair of devices at regular cut points over the time
both recorded.
"""

from __future__ import annotations

import numpy as np

from micmatch.loudness import integrated_loudness
from micmatch.metrics import log_spectral_distance

#: Half-length of the window compared around a cut (seconds).
SEAM_WINDOW_S = 1.5
#: Spacing of the regular cut points when no cut list is given (seconds), and at most how many are used.
SEAM_EVERY_S = 10.0
MAX_POINTS = 50


def _mono(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).mean(axis=0)


def _band_energy(x: np.ndarray, sample_rate: int, top_hz: float) -> float:
    """Mean power of ``x`` between 100 Hz and ``top_hz`` (levels are matched over the band the jump compares)."""
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate)
    return float(np.sum(spec[(f >= 100.0) & (f <= top_hz)])) / max(x.shape[-1], 1) ** 2


def seam(before: dict[str, np.ndarray], after: dict[str, np.ndarray], a: str, b: str, centre: int,
         sample_rate: int, *, top_hz: float | None = None) -> dict | None:
    """The seam figures of a cut from ``a`` to ``b`` at timeline sample ``centre``, the spectral jump up to
    ``top_hz`` (default 0.45 x ``sample_rate``; give the lower device's band edge when one recorded at a lower
    rate); None where a window has no sound in one of them (one device silent or not recording there)."""
    half = int(SEAM_WINDOW_S * sample_rate)
    lo, hi = centre - half, centre + half
    if lo < 0 or hi > min(before[a].shape[-1], before[b].shape[-1]):
        return None
    out = {"from": a, "to": b, "time_s": round(centre / sample_rate, 3)}
    top = 0.45 * sample_rate if top_hz is None else min(top_hz, 0.45 * sample_rate)
    for key, stems in (("before", before), ("after", after)):
        xa, xb = stems[a][:, lo:hi], stems[b][:, lo:hi]
        ma, mb = _mono(xa), _mono(xb)
        ea, eb = _band_energy(ma, sample_rate, top), _band_energy(mb, sample_rate, top)
        if ea < 1e-12 or eb < 1e-12:
            return None
        la, lb = integrated_loudness(xa, sample_rate), integrated_loudness(xb, sample_rate)
        out[f"frame_lsd_db_{key}"] = round(log_spectral_distance(ma, mb * np.sqrt(ea / eb), sample_rate,
                                                                 band_hz=(100.0, top), active_db=40.0), 3)
        out[f"loudness_jump_lu_{key}"] = None if la is None or lb is None else round(lb - la, 3)
    return out


def regular_points(lo: int, hi: int, sample_rate: int) -> list[int]:
    """Cut points every :data:`SEAM_EVERY_S` seconds between timeline samples ``lo`` and ``hi`` (evenly spread, at
    most :data:`MAX_POINTS`; one in the middle when the span is shorter), each a window clear of the span's ends."""
    half = int(SEAM_WINDOW_S * sample_rate)
    if hi - lo < 2 * half + 1:
        return []
    count = min(MAX_POINTS, max(1, int((hi - lo - 2 * half) / (SEAM_EVERY_S * sample_rate))))
    return [int(p) for p in np.linspace(lo + half, hi - half, count + 2)[1:-1]]


def covers(cover: tuple[int, int], centre: int, sample_rate: int) -> bool:
    """Whether a recording covering timeline samples ``cover`` holds the whole window around ``centre``."""
    half = int(SEAM_WINDOW_S * sample_rate)
    return cover[0] <= centre - half and centre + half <= cover[1]


def pair_seams(before: dict[str, np.ndarray], after: dict[str, np.ndarray], covered: dict[str, tuple[int, int]],
               sample_rate: int, top_hz: dict[str, float]) -> list[dict]:
    """The figures of every pair of devices at regular cut points over the time both recorded, each up to the
    lower of the two devices' ``top_hz``."""
    names = list(before)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            lo, hi = max(covered[a][0], covered[b][0]), min(covered[a][1], covered[b][1])
            for p in regular_points(lo, hi, sample_rate):
                figures = seam(before, after, a, b, p, sample_rate, top_hz=min(top_hz[a], top_hz[b]))
                if figures is not None:
                    out.append(figures)
    return out


def summary(seams: list[dict]) -> dict:
    """Medians over the seams: frame LSD and absolute loudness jump, before and after."""
    def median(key: str, absolute: bool = False) -> float | None:
        values = [s[key] for s in seams if s.get(key) is not None]
        if not values:
            return None
        return round(float(np.median(np.abs(values) if absolute else values)), 3)

    return {"seams": len(seams),
            "median_frame_lsd_db": {"before": median("frame_lsd_db_before"), "after": median("frame_lsd_db_after")},
            "median_abs_loudness_jump_lu": {"before": median("loudness_jump_lu_before", True),
                                            "after": median("loudness_jump_lu_after", True)}}


def summary_line(figures: dict, what: str) -> str:
    """One line: ``seams (what): N, median frame LSD x -> y dB, median loudness jump x -> y LU``."""
    if not figures["seams"]:
        return f"seams ({what}): none where two devices both recorded {2 * SEAM_WINDOW_S:g} s"
    lsd, lu = figures["median_frame_lsd_db"], figures["median_abs_loudness_jump_lu"]

    def pair(d: dict) -> str:
        return " -> ".join("n/a" if d[k] is None else f"{d[k]:.2f}" for k in ("before", "after"))

    return (f"seams ({what}): {figures['seams']}, median frame LSD {pair(lsd)} dB, median loudness jump "
            f"{pair(lu)} LU")


__all__ = ["SEAM_WINDOW_S", "pair_seams", "regular_points", "seam", "summary", "summary_line"]

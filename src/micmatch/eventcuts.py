"""Event mode: the cut track and the seam figures, from stems read in blocks and short windows around each cut.

The stems are read back from their staging files (:class:`StemReader`, times the stem's final gain), the audio as
placed before correction from :class:`~micmatch.eventstream.PlacedStore`; only the :data:`~micmatch.eventseams.
SEAM_WINDOW_S` windows around a cut are ever held together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from micmatch import eventseams
from micmatch.errors import ParameterError
from micmatch.eventstream import block_frames


class StemReader:
    """Timeline stretches of a stem written to a float WAV staging file, times a linear ``gain``."""

    def __init__(self, path: Path, gain: float, channels: int):
        self.path, self.gain, self.channels = Path(path), float(gain), channels

    def read(self, a: int, b: int) -> np.ndarray:
        import soundfile as sf

        with sf.SoundFile(str(self.path)) as fh:
            fh.seek(a)
            x = fh.read(b - a, dtype="float32", always_2d=True).T
        return (x * np.float32(self.gain)).astype(np.float32)


def window_seam(before: dict, after: dict, a: str, b: str, centre: int, sample_rate: int, top_hz: float) -> dict | None:
    """:func:`micmatch.eventseams.seam` on the windows around timeline sample ``centre`` only."""
    half = int(eventseams.SEAM_WINDOW_S * sample_rate)
    lo, hi = centre - half, centre + half
    if lo < 0:
        return None
    win_before = {d: before[d].read(lo, hi) for d in (a, b)}
    win_after = {d: after[d].read(lo, hi) for d in (a, b)}
    if min(x.shape[-1] for x in (*win_before.values(), *win_after.values())) < hi - lo:
        return None
    figures = eventseams.seam(win_before, win_after, a, b, half, sample_rate, top_hz=top_hz)
    if figures is not None:
        figures["time_s"] = round(centre / sample_rate, 3)
    return figures


def pair_seams(before: dict, after: dict, covered: dict, sample_rate: int, tops: dict) -> list[dict]:
    """Every pair of devices at regular cut points over the time both recorded (as
    :func:`micmatch.eventseams.pair_seams`), window by window."""
    names = list(before)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            lo, hi = max(covered[a][0], covered[b][0]), min(covered[a][1], covered[b][1])
            for p in eventseams.regular_points(lo, hi, sample_rate):
                figures = window_seam(before, after, a, b, p, sample_rate, min(tops[a], tops[b]))
                if figures is not None:
                    out.append(figures)
    return out


def check_cut_times(rows, cuts_path, duration: float) -> None:
    """Refuse cut times outside the event's timeline (0 to its duration)."""
    outside = [t for t, _ in rows if not 0.0 <= t < duration]
    if outside:
        raise ParameterError(f"{cuts_path}: cut time {outside[0]:g} s lies outside the event (0 to {duration:.3f} s "
                             f"on its timeline); nothing was written")


def cut_track(rows, after: dict, before: dict, covered: dict, tops: dict, ref_name: str, out: Path, cuts_path: Path,
              sample_rate: int, n_samples: int, subtype: str, policy: str, notes: list):
    """Write the track that switches device at the cut list's times, block by block; returns its path and the
    seam figures at its cuts."""
    import soundfile as sf

    from micmatch.outputs import staging_path
    from micmatch.render import render_file

    check_cut_times(rows, cuts_path, n_samples / sample_rate)
    channels = after[ref_name].channels
    bounds = [int(round(t * sample_rate)) for t, _ in rows] + [n_samples]
    bounds[0] = 0  # before the first cut the first device plays
    seams = []
    for i, (_, name) in enumerate(rows):
        lo, hi = bounds[i], bounds[i + 1]
        if covered[name][0] > lo or covered[name][1] < hi:
            notes.append(f"cut track: {name} did not record all of {lo / sample_rate:.2f}-{hi / sample_rate:.2f} s; "
                         f"silence there")
        prev = rows[i - 1][1] if i else name
        if prev != name and all(eventseams.covers(covered[d], lo, sample_rate) for d in (prev, name)):
            figures = window_seam(before, after, prev, name, lo, sample_rate, min(tops[prev], tops[name]))
            if figures is not None:
                seams.append(figures)
    stage = staging_path(out / f"{cuts_path.stem}.wav.float")
    size = block_frames(sample_rate)
    try:
        with sf.SoundFile(str(stage), "w", samplerate=sample_rate, channels=channels, format="WAV",
                          subtype="FLOAT") as fh:
            for s in range(0, n_samples, size):
                e = min(s + size, n_samples)
                block = np.zeros((channels, e - s), dtype=np.float32)
                for i, (_, name) in enumerate(rows):
                    lo, hi = max(bounds[i], s), min(bounds[i + 1], e)
                    if hi > lo:
                        x = after[name].read(lo, hi)
                        block[:, lo - s : hi - s] = x if x.shape[0] == channels else x.mean(axis=0)
                fh.write(block.T)
        path = render_file(stage, out / f"{cuts_path.stem}.wav", format="WAV", subtype=subtype,
                           overs="clip" if policy == "scale" else policy, warn=False).output
    finally:
        stage.unlink(missing_ok=True)
    return path, seams


__all__ = ["StemReader", "check_cut_times", "cut_track", "pair_seams", "window_seam"]

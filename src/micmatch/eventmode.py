"""Event mode: many recordings of one event brought onto one timeline and one sound, one stem per recording.

:func:`event` takes 2 to 20 recordings (any rates, channel counts and lengths, overlapping in part) and:

1. **synchronises** them: every pair's offset and clock drift from its overlap, solved together over all pairs
   (:mod:`micmatch.eventsync`); a recording that matches none of the event is left out, with one line saying so;
2. picks the **reference**: the one given, or the recording with the widest band that stands
   :data:`~micmatch.matching.BAND_SNR_DB` above its own noise floor, then the best signal-to-noise ratio;
3. **corrects** each device towards the reference: the aligned spectrum correction of its overlap with the
   reference (:func:`micmatch.aligned.estimate_pair`), or, when it never overlaps the reference, the sum of the
   corrections along the shortest chain of overlapping devices (its route); the band, strength, smoothing and
   clamps of ``match`` (:func:`micmatch.correct.correction_from_levels`);
4. makes the **loudness** consistent: each stem's gain keeps its overlap with the next device of its route as loud
   as that device's stem (ITU-R BS.1770), all at the reference's level or at a given one;
5. **writes** ``OUT/NAME.wav`` per kept recording (one start, length and rate; silence where a device did not
   record), an optional cut track that switches device at given times, and ``event.json``; seam figures
   (:mod:`micmatch.eventseams`) before and after correction.

Whole files are loaded into memory.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from micmatch import audio as audio_io
from micmatch import eventseams, eventsync
from micmatch.correct import Correction, apply_correction, correction_from_levels, widest_band
from micmatch.errors import MeasurementError, ParameterError
from micmatch.loudness import integrated_loudness, parse_loudness, peak_reduction_db
from micmatch.matching import BAND_SNR_DB, MIN_BAND_OCTAVES, analysis_n_fft

MIN_RECORDINGS, MAX_RECORDINGS = 2, 20


@dataclass
class EventResult:
    """What :func:`event` did: the timeline, the reference, the corrections, the files and the seam figures.

    Attributes
    ----------
    names : list of str
        The recordings kept, in input order (each stem is ``OUT/NAME.wav``).
    reference, reference_reason : str
    left_out : dict
        ``{name: reason}`` of the recordings left out.
    clocks : dict
        ``{name: Clock}``: where each recording lies on the timeline (seconds on the reference's clock).
    start_s : float
        Timeline time of the stems' first sample (the earliest recording's start; the reference starts at 0).
    sample_rate, n_samples : int
    routes : dict
        ``{name: [name, ..., reference]}``: the devices whose overlaps make up each correction.
    corrections : dict
        ``{name: Correction}`` (the reference's is flat).
    gains_db : dict
        Whole-stem gain of each stem (loudness step and overs reduction together).
    seams, seam_summary : list, dict
        Seam figures (:mod:`micmatch.eventseams`): at the cuts of the cut list when given, else at regular points.
    """

    names: list[str]
    reference: str
    reference_reason: str
    left_out: dict
    clocks: dict
    start_s: float
    sample_rate: int
    n_samples: int
    routes: dict
    corrections: dict
    gains_db: dict
    links: list = field(default_factory=list)
    link_residuals_ms: list = field(default_factory=list)
    seams: list = field(default_factory=list)
    seam_summary: dict = field(default_factory=dict)
    stems: dict = field(default_factory=dict)
    cut_track: Path | None = None
    event_json: Path | None = None
    overs_reduction_db: float = 0.0
    notes: list = field(default_factory=list)

    def summary(self) -> dict:
        """Everything ``event.json`` holds."""
        def corr(c: Correction) -> dict:
            return {"frequencies_hz": np.round(np.fft.rfftfreq(c.n_fft, 1.0 / c.sample_rate), 2).tolist(),
                    "gain_db": np.round(c.gain_db, 3).tolist(), "settings": c.settings}

        return {
            "reference": self.reference, "reference_reason": self.reference_reason,
            "sample_rate": self.sample_rate, "start_s": round(self.start_s, 6),
            "duration_s": round(self.n_samples / self.sample_rate, 6),
            "recordings": {n: {"start_s": round(self.clocks[n].start_s, 6), "drift_ppm": round(self.clocks[n].drift_ppm,
                                                                                              3),
                               "duration_s": round(self.clocks[n].duration_s, 6), "route": self.routes[n],
                               "gain_db": round(self.gains_db[n], 3),
                               "stem": None if n not in self.stems else str(self.stems[n])} for n in self.names},
            "left_out": self.left_out,
            "pairs": self.links, "pair_residuals_ms": [round(r, 4) for r in self.link_residuals_ms],
            "corrections": {n: corr(self.corrections[n]) for n in self.names},
            "overs_reduction_db": round(self.overs_reduction_db, 3),
            "seams": self.seams, "seam_summary": self.seam_summary,
            "cut_track": None if self.cut_track is None else str(self.cut_track), "notes": self.notes,
        }


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def read_cuts(path: str | os.PathLike, names: list[str]) -> list[tuple[float, str]]:
    """A cut list: rows ``time_s,device`` (a header row is allowed), device the input's name with or without its
    suffix; from each time on the track plays that device. Times must increase."""
    rows = []
    try:
        with open(path, newline="") as fh:
            for n, row in enumerate(csv.reader(fh), start=1):
                if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
                    continue
                try:
                    t = float(row[0])
                except ValueError:
                    if not rows and n == 1:
                        continue  # a header
                    raise ParameterError(f"{path}: line {n}: {row[0]!r} is not a time in seconds") from None
                if len(row) < 2 or Path(row[1].strip()).stem not in names:
                    raise ParameterError(f"{path}: line {n}: device {row[1].strip() if len(row) > 1 else ''!r} is "
                                         f"not one of the recordings ({', '.join(names)})")
                if not np.isfinite(t) or (rows and t <= rows[-1][0]):
                    raise ParameterError(f"{path}: line {n}: time {row[0]} must be finite and after the one before")
                rows.append((t, Path(row[1].strip()).stem))
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read the cut list: {exc.strerror or exc}") from None
    if not rows:
        raise ParameterError(f"{path}: the cut list holds no cut (rows 'time_s,device')")
    return rows


def _names(recordings) -> list[str]:
    names = [Path(r).stem for r in recordings]
    seen = {}
    for r, n in zip(recordings, names):
        if n in seen:
            raise ParameterError(f"{seen[n]} and {r} would both be written as {n}.wav; rename one of them")
        seen[n] = r
    return names


def _band_and_snr(mono: np.ndarray, sample_rate: int) -> tuple[tuple[float, float] | None, float]:
    """Widest band (Hz) standing :data:`BAND_SNR_DB` above the noise floor, and the median SNR inside it (dB)."""
    from micmatch.estimate import array_stats
    from micmatch.longterm import snr_db
    from micmatch.response import SpectralConfig

    n_fft = analysis_n_fft(sample_rate, mono.shape[-1])
    config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4)
    snr = snr_db(mono, array_stats(mono, config), config)
    ok = snr >= BAND_SNR_DB
    if not ok[1:].any():
        return None, float(np.median(snr))
    band = widest_band(ok, config.frequencies)
    inside = (config.frequencies >= band[0]) & (config.frequencies <= band[1])
    return band, float(np.median(snr[inside]))


def _choose_reference(candidates: list[int], names: list[str], monos: list[np.ndarray],
                      rates: list[int]) -> tuple[int, str]:
    """The recording with the widest band above its noise floor (in 1/3 octaves), then the best median SNR."""
    scored = []
    for k in candidates:
        band, snr = _band_and_snr(monos[k], rates[k])
        octaves = 0.0 if band is None else float(np.log2(band[1] / band[0]))
        scored.append((round(3 * octaves) / 3, snr, -k, band))
    best = max(scored)
    k = -best[2]
    band = best[3]
    where = "no band above its noise floor" if band is None else f"{band[0]:.0f}-{band[1]:.0f} Hz ({best[0]:.1f} octaves)"
    others = len(candidates) - 1
    return k, (f"widest band above its noise floor, then best signal-to-noise ratio among {others + 1} recordings: "
               f"{where}, median SNR {best[1]:.1f} dB")


# ----------------------------------------------------------------------------------------------------------------
# Corrections and loudness


def _link_curve(dev: np.ndarray, ref: np.ndarray, sample_rate: int, n_fft: int) -> tuple[np.ndarray, tuple]:
    """Tone gain (dB per bin, level removed over the band) that makes ``dev`` sound like ``ref`` (two mono signals
    on the timeline over their overlap), and the band where both stand above their noise floors."""
    from micmatch.aligned import estimate_pair
    from micmatch.align import Alignment

    pair = estimate_pair(ref, dev, sample_rate, n_fft=n_fft, hop_length=n_fft // 4,
                         alignment=Alignment(0.0, 0.0, sample_rate))
    gain = -pair.responses["device"].response_db
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    bands = [_band_and_snr(x, sample_rate)[0] for x in (dev, ref)]
    if any(b is None for b in bands) or min(b[1] for b in bands) <= max(b[0] for b in bands):
        band = (float(freqs[1]), float(freqs[-1]))
    else:
        band = (max(b[0] for b in bands), min(b[1] for b in bands))
    inside = (freqs >= band[0]) & (freqs <= band[1])
    return gain - float(np.median(gain[inside])), band


def _corrections(kept, ref, names, placed, covered, links, rates, sample_rate, *, strength, smoothing_octaves,
                 max_boost_db, max_cut_db, band_hz):
    """Each kept device's route to the reference and its correction (sum of the link curves along the route)."""
    n_fft = analysis_n_fft(sample_rate, int(eventsync.MIN_OVERLAP_S * sample_rate))
    curves, routes, corrections, notes = {}, {}, {}, []
    for k in kept:
        chain = eventsync.route(links, ref, k)
        routes[k] = chain
        total = np.zeros(n_fft // 2 + 1)
        lo, hi = 0.0, sample_rate / 2.0
        for u, v in zip(chain[:-1], chain[1:]):
            if (u, v) not in curves:
                a, b = max(covered[u][0], covered[v][0]), min(covered[u][1], covered[v][1])
                curves[(u, v)] = _link_curve(placed[u][:, a:b].mean(axis=0), placed[v][:, a:b].mean(axis=0),
                                             sample_rate, n_fft)
            curve, band = curves[(u, v)]
            total += curve
            lo, hi = max(lo, band[0]), min(hi, band[1])
        band = band_hz
        if band is None:
            band = (lo, hi)
            if hi <= lo or np.log2(hi / max(lo, 1e-9)) < MIN_BAND_OCTAVES:
                band = (sample_rate / n_fft, sample_rate / 2.0)
                if k != ref:
                    notes.append(f"{names[k]}: no band of an octave stands above the noise floors along its route: "
                                 f"the whole band is corrected")
        recorded = min(rates[m] for m in chain) / 2.0
        corrections[k] = correction_from_levels(
            np.zeros_like(total), total, sample_rate, n_fft, device=names[k], reference=names[ref],
            max_boost_db=max_boost_db, max_cut_db=max_cut_db, smoothing_octaves=smoothing_octaves,
            band_hz=(float(band[0]), float(band[1])), strength=strength,
            recorded_band_hz=recorded if recorded < sample_rate / 2.0 else None,
            settings={"statistic": "log", "hop_length": n_fft // 4, "route": [names[m] for m in chain]})
    return routes, corrections, notes


def _loudness_gains(kept, ref, names, stems, covered, routes, sample_rate, level_mode) -> tuple[dict, list]:
    """Gain (dB) per stem: each as loud as the next device of its route over their overlap; then all moved so the
    reference stem has the wanted loudness (``match``: the reference's own; ``keep``: no change)."""
    gains, notes = {ref: 0.0}, []
    if level_mode == "keep":
        return {k: 0.0 for k in kept}, notes
    for k in sorted(kept, key=lambda m: len(routes[m])):
        if k == ref:
            continue
        v = routes[k][1]
        a, b = max(covered[k][0], covered[v][0]), min(covered[k][1], covered[v][1])
        lk = integrated_loudness(stems[k][:, a:b], sample_rate)
        lv = integrated_loudness(stems[v][:, a:b], sample_rate)
        if lk is None or lv is None:
            notes.append(f"{names[k]}: its overlap with {names[v]} is too short or too quiet to measure loudness; "
                         f"its level is left as it is")
            gains[k] = gains[v]
        else:
            gains[k] = gains[v] + lv - lk
    if isinstance(level_mode, float):
        lr = integrated_loudness(stems[ref], sample_rate)
        if lr is None:
            notes.append(f"{names[ref]}: too short or quiet to measure its loudness; levels left relative to it")
        else:
            shift = level_mode - lr
            gains = {k: g + shift for k, g in gains.items()}
    return gains, notes


# ----------------------------------------------------------------------------------------------------------------
# The pipeline


def event(recordings, output_dir: str | os.PathLike, *, reference: str | os.PathLike | None = None,
          sample_rate: int | None = None, loudness: str | float = "match", cuts: str | os.PathLike | None = None,
          strength: float = 1.0, smoothing_octaves: float | None = None, band_hz: tuple[float, float] | None = None,
          max_boost_db: float = 12.0, max_cut_db: float = 24.0, overs: str = "scale",
          progress=None) -> EventResult:
    """Bring recordings of one event onto one timeline and one sound (module docstring for the steps).

    Parameters
    ----------
    recordings : list of paths
        2 to 20 audio files of one event (any rates, channels, lengths; overlapping in part).
    output_dir : path
        Folder for ``NAME.wav`` per kept recording, ``event.json`` and the cut track (the output rule applies).
    reference : path, optional
        The recording whose sound and clock the others follow; default chosen (widest band, best SNR).
    sample_rate : int, optional
        Rate of the stems; default the reference's.
    loudness : "match", "keep" or a level such as "-23LUFS"
        Stems as loud as the reference (at the reference's level or at the given one), or levels left alone.
    cuts : path, optional
        CSV of ``time_s,device`` rows (time on the event's timeline, 0 at its first sample): writes
        ``OUT/CUTSNAME.wav`` that plays each device from its time on.
    strength, smoothing_octaves, band_hz, max_boost_db, max_cut_db
        As for ``match``; the clamps default to +12/-24 dB (large boosts ring and lift noise).
    overs : {"scale", "float", "clip"}
        Above -1 dBTP in an integer format: every stem lowered by one common gain (keeps the stems level with
        each other), a float file, or clipping.
    progress : callable, optional
        Called with no argument after each measured pair.

    Returns
    -------
    EventResult

    Raises
    ------
    ParameterError
        Fewer than 2 or more than 20 recordings, two with one name, a bad cut list or cuts outside the event.
    MeasurementError
        When the reference matches none of the other recordings.
    """
    from micmatch.outputs import atomic_path, prepare_output_dir
    from micmatch.render import render_file, resolve_overs

    recordings = [Path(r) for r in recordings]
    if not MIN_RECORDINGS <= len(recordings) <= MAX_RECORDINGS:
        raise ParameterError(f"{len(recordings)} recordings given; event mode takes {MIN_RECORDINGS} to "
                             f"{MAX_RECORDINGS}")
    names = _names(recordings)
    policy = resolve_overs(overs)
    level_mode = parse_loudness(loudness)
    cut_rows = read_cuts(cuts, names) if cuts is not None else None
    if cut_rows is not None and Path(cuts).stem in names:
        raise ParameterError(f"the cut track {Path(cuts).stem}.wav would replace a stem; rename {cuts}")
    ref_given = None
    if reference is not None:
        matches = [k for k, r in enumerate(recordings) if r.resolve() == Path(reference).resolve()
                   or names[k] == Path(reference).stem]
        if not matches:
            raise ParameterError(f"--reference {reference} is not one of the recordings")
        ref_given = matches[0]
    out = Path(output_dir)
    prepare_output_dir(out, recordings)

    loaded = [audio_io.load(r, channels="each", dtype="float32") for r in recordings]
    audio, rates = [x for x, _ in loaded], [sr for _, sr in loaded]
    sync_sr = eventsync.sync_rate(rates)
    monos = [audio_io.resample(x.mean(axis=0).astype(np.float64), sr, sync_sr) if sr != sync_sr
             else x.mean(axis=0).astype(np.float64) for x, sr in zip(audio, rates)]
    links = eventsync.measure_links(monos, sync_sr, progress=progress)
    parts = eventsync.components(len(recordings), links)
    part = next(p for p in parts if ref_given in p) if ref_given is not None else parts[0]
    if len(part) < 2:
        raise MeasurementError(f"{names[part[0]]} matches none of the other recordings: no two recordings hold the "
                               f"same sound over {eventsync.MIN_OVERLAP_S:g} s or more")
    if ref_given is not None:
        ref, reason = ref_given, "given"
    else:
        ref, reason = _choose_reference(sorted(part), names, [x.mean(axis=0) for x in audio], rates)
    left_out = {}
    for p in parts:
        if p is part:
            continue
        for k in p:
            left_out[names[k]] = ("matches none of the other recordings" if len(p) == 1 else
                                  f"matches only {', '.join(names[m] for m in p if m != k)}, not the event of "
                                  f"{names[ref]}") + "; left out"
    kept = sorted(part)
    durations = [x.shape[-1] / sr for x, sr in zip(audio, rates)]
    clocks = eventsync.solve_timeline(durations, links, ref)
    out_rate = int(sample_rate or rates[ref])
    start = min(clocks[k].start_s for k in kept)
    n_samples = int(round((max(clocks[k].end_s for k in kept) - start) * out_rate))
    if cut_rows is not None:
        _check_cut_times(cut_rows, cuts, n_samples / out_rate)
    placed, covered = {}, {}
    for k in kept:
        placed[k] = eventsync.place(audio[k], rates[k], clocks[k], out_rate=out_rate, start_s=start,
                                    n_samples=n_samples)
        covered[k] = eventsync.coverage(clocks[k], out_rate=out_rate, start_s=start, n_samples=n_samples)
    routes, corrections, notes = _corrections(kept, ref, names, placed, covered, links, rates, out_rate,
                                              strength=strength, smoothing_octaves=smoothing_octaves,
                                              max_boost_db=max_boost_db, max_cut_db=max_cut_db, band_hz=band_hz)
    stems = {}
    for k in kept:
        y = placed[k] if k == ref or not np.any(corrections[k].gain_db) else apply_correction(
            placed[k], out_rate, corrections[k])
        mask = np.zeros(n_samples, dtype=np.float32)
        mask[covered[k][0] : covered[k][1]] = 1.0
        stems[k] = (y * mask).astype(np.float32)
    gains, level_notes = _loudness_gains(kept, ref, names, stems, covered, routes, out_rate, level_mode)
    notes += level_notes
    for k in kept:
        if gains[k]:
            stems[k] = (stems[k] * np.float32(10 ** (gains[k] / 20))).astype(np.float32)
    subtypes = {k: audio_io.info(recordings[k]).subtype for k in kept}
    reduction = 0.0
    if policy == "scale" and any(not s.startswith(("FLOAT", "DOUBLE")) for s in subtypes.values()):
        reduction = max(peak_reduction_db(stems[k], out_rate) for k in kept)
        if reduction > 0:
            notes.append(f"every stem was lowered by {reduction:.1f} dB so the loudest keeps its true peak below "
                         f"-1 dBTP (one gain for all keeps them level with each other)")
            for k in kept:
                stems[k] = (stems[k] * np.float32(10 ** (-reduction / 20))).astype(np.float32)
    named = {names[k]: stems[k] for k in kept}
    result = EventResult(
        [names[k] for k in kept], names[ref], reason, left_out, {names[k]: clocks[k] for k in kept}, start, out_rate,
        n_samples, {names[k]: [names[m] for m in routes[k]] for k in kept},
        {names[k]: corrections[k] for k in kept}, {names[k]: gains[k] - reduction for k in kept},
        links=[lk.to_json(names) for lk in links],
        link_residuals_ms=eventsync.link_residuals(links, clocks), overs_reduction_db=reduction, notes=notes)
    before = {names[k]: placed[k] for k in kept}
    cover_named = {names[k]: covered[k] for k in kept}
    tops = {names[k]: 0.45 * rates[k] for k in kept}  # no spectral jump above a device's own band
    if cut_rows is not None:
        result.cut_track, result.seams = _cut_track(cut_rows, named, before, cover_named, tops, names[ref], out,
                                                    Path(cuts), out_rate, n_samples, subtypes[ref], policy, notes)
        what = "cut list"
    else:
        result.seams = eventseams.pair_seams(before, named, cover_named, out_rate, tops)
        what = "every pair at regular points"
    result.seam_summary = {**eventseams.summary(result.seams), "at": what}
    for k in kept:
        result.stems[names[k]] = render_file(stems[k], out / f"{names[k]}.wav", sample_rate=out_rate, format="WAV",
                                             subtype=subtypes[k], overs="clip" if policy == "scale" else policy,
                                             name=recordings[k], warn=False).output
    result.event_json = out / "event.json"
    with atomic_path(result.event_json) as tmp:
        tmp.write_text(json.dumps(result.summary(), indent=1))
    return result


def _check_cut_times(rows, cuts_path, duration: float) -> None:
    """Refuse cut times outside the event's timeline (0 to its duration)."""
    outside = [t for t, _ in rows if not 0.0 <= t < duration]
    if outside:
        raise ParameterError(f"{cuts_path}: cut time {outside[0]:g} s lies outside the event (0 to {duration:.3f} s "
                             f"on its timeline); nothing was written")


def _cut_track(rows, stems, before, covered, tops, ref_name, out, cuts_path, sample_rate, n_samples, subtype, policy,
               notes):
    """Write the track that switches device at the cut list's times; returns its path and the seam figures."""
    from micmatch.render import render_file

    _check_cut_times(rows, cuts_path, n_samples / sample_rate)
    channels = stems[ref_name].shape[0]
    track = np.zeros((channels, n_samples), dtype=np.float32)
    bounds = [int(round(t * sample_rate)) for t, _ in rows] + [n_samples]
    bounds[0] = 0  # before the first cut the first device plays
    seams = []
    for i, (_, name) in enumerate(rows):
        lo, hi = bounds[i], bounds[i + 1]
        x = stems[name]
        track[:, lo:hi] = x[:, lo:hi] if x.shape[0] == channels else x[:, lo:hi].mean(axis=0)
        if covered[name][0] > lo or covered[name][1] < hi:
            notes.append(f"cut track: {name} did not record all of {lo / sample_rate:.2f}-{hi / sample_rate:.2f} s; "
                         f"silence there")
        prev = rows[i - 1][1] if i else name
        if prev != name and all(eventseams.covers(covered[d], lo, sample_rate) for d in (prev, name)):
            figures = eventseams.seam(before, stems, prev, name, lo, sample_rate, top_hz=min(tops[prev], tops[name]))
            if figures is not None:
                seams.append(figures)
    path = render_file(track, out / f"{cuts_path.stem}.wav", sample_rate=sample_rate, format="WAV", subtype=subtype,
                       overs="clip" if policy == "scale" else policy, warn=False).output
    return path, seams


__all__ = ["EventResult", "event", "read_cuts"]

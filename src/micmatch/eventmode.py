"""Event mode: many recordings of one event brought onto one timeline and one sound, one stem per recording.

:func:`event` takes 2 to 20 recordings (any rates, channel counts and lengths, overlapping in part) and:

1. **synchronises** them: every pair's offset and clock drift from its overlap, solved together over all pairs
   (:mod:`micmatch.eventsync`), measured on copies that keep the onsets' direct sound and drop the reverberant
   tails (:func:`micmatch.gcc.onset_emphasis`); a recording that matches none of the event is left out, with one
   line saying so;
2. picks the **reference**: the one given, or the recording with the widest band that stands
   :data:`~micmatch.matching.BAND_SNR_DB` above its own noise floor, then the best signal-to-noise ratio, clipped
   recordings ruled out; or the **consensus** of all devices (the mean of their responses, in dB) as the target
   sound, on the clock of the recording chosen so;
3. **corrects** each device towards the reference: the aligned spectrum correction of its overlap with the
   reference (:func:`micmatch.aligned.estimate_pair`), or, when it never overlaps the reference, the sum of the
   corrections along the shortest chain of overlapping devices (its route); the band, strength, smoothing and
   clamps of ``match`` (:func:`micmatch.correct.correction_from_levels`);
4. makes the **loudness** consistent: each stem's gain keeps its overlap with the next device of its route as loud
   as that device's stem (ITU-R BS.1770), all at the reference's level or at a given one;
5. **writes** ``OUT/NAME.wav`` per kept recording (one start, length and rate; silence where a device did not
   record), an optional cut track that switches device at given times, and ``event.json``; seam figures
   (:mod:`micmatch.eventseams`) before and after correction.

Nothing holds a whole recording: each file is read in blocks once for a low-rate mono copy (the synchronisation),
then once more to be placed on the timeline into a staging file in the output folder (:mod:`micmatch.eventstream`);
corrections are measured on pieces of the overlaps and loudness from per-100 ms energies
(:mod:`micmatch.eventcorrect`); stems, the cut track and the seam windows are written and read block by block
(:mod:`micmatch.eventcuts`). An optional learned correction runs after the static one (:mod:`micmatch.eventlearn`).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from micmatch import audio as audio_io
from micmatch import eventcorrect, eventcuts, eventlearn, eventseams, eventstream, eventsync
from micmatch.correct import Correction, correction_processor
from micmatch.errors import AudioError, MeasurementError, OutputError, ParameterError
from micmatch.gcc import onset_emphasis
from micmatch.loudness import TRUE_PEAK_CEILING_DB, parse_loudness
from micmatch.outputs import atomic_path, staging_path

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
    learned : dict
        ``{name: {"kept", "reason", "figures"}}`` of the learned correction per device (empty without one).
    polarities : dict
        ``{name: 1 or -1}``: -1 where a recording was inverted against the reference (its stem is turned over, so
        that stems mixed together add up instead of cancelling).
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
    learned: dict = field(default_factory=dict)
    polarities: dict = field(default_factory=dict)

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
                               "gain_db": round(self.gains_db[n], 3), "learned": self.learned.get(n),
                               "polarity": self.polarities.get(n, 1),
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


# ----------------------------------------------------------------------------------------------------------------
# The pipeline

#: Share of the whole job's progress that each step takes.
PHASES = {"reading": 0.25, "synchronising": 0.10, "placing": 0.20, "correcting": 0.10, "stems": 0.20,
          "writing": 0.15}


class _Progress:
    """Calls ``progress(fraction_done, what)`` over the whole job, step by step (:data:`PHASES`)."""

    def __init__(self, progress):
        self.progress, self.done = progress, 0.0

    def part(self, what: str, share: float = 1.0):
        width = PHASES[what] * share
        base = self.done
        self.done += width

        def report(fraction: float) -> None:
            if self.progress is not None:
                self.progress(min(1.0, base + width * min(max(fraction, 0.0), 1.0)), what)

        return report


class _Float64:
    """The float32 mono copies, each handed out as float64 only while a pair is measured (half the memory)."""

    def __init__(self, arrays: list[np.ndarray]):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.arrays[i].astype(np.float64)


def existing_outputs(output_dir: str | os.PathLike) -> list[Path] | None:
    """The outputs of an earlier complete run into ``output_dir`` (``event.json`` and the files it lists), or None
    when any of them is missing or ``event.json`` cannot be read."""
    path = Path(output_dir) / "event.json"
    try:
        saved = json.loads(path.read_text())
        files = [path] + [Path(r["stem"]) for r in saved["recordings"].values() if r.get("stem")]
        files += [Path(saved["cut_track"])] if saved.get("cut_track") else []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return files if all(f.is_file() for f in files) else None


def event(recordings, output_dir: str | os.PathLike, *, reference: str | os.PathLike | None = None,
          sample_rate: int | None = None, loudness: str | float = "match", cuts: str | os.PathLike | None = None,
          strength: float = 1.0, smoothing_octaves: float | None = None, band_hz: tuple[float, float] | None = None,
          max_boost_db: float = 12.0, max_cut_db: float = 24.0, overs: str = "scale", statistic: str = "power",
          learned=None, progress=None) -> EventResult:
    """Bring recordings of one event onto one timeline and one sound (module docstring for the steps).

    Parameters
    ----------
    recordings : list of paths
        2 to 20 audio files of one event (any rates, channels, lengths; overlapping in part).
    output_dir : path
        Folder for ``NAME.wav`` per kept recording, ``event.json`` and the cut track (the output rule applies).
    reference : path or "consensus", optional
        The recording whose sound and clock the others follow; default chosen (widest band, best SNR, not
        clipped). ``"consensus"``: the clock of the chosen one, the sound of the mean (dB) of all devices' responses,
        towards which every device, the chosen one too, is corrected.
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
    statistic : {"power", "log"}
        What each link compares over the overlap, as for ``match``: the two long-term average spectra (the stems
        sound alike over time; the default) or the mean log ratio of the aligned frames (the aligned spectrum
        correction: lower frame-by-frame distance at cuts, further long-term distance on noisy devices).
    learned : callable, optional
        ``learned(pairs, sample_rate, progress=None) -> {name: fit}``: a learned correction on top of the static
        one (:mod:`micmatch.eventlearn` for the pairs and what a fit must have).
    progress : callable, optional
        Called as ``progress(fraction_done, what)`` over the whole job.

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
    from micmatch.outputs import prepare_output_dir
    from micmatch.render import resolve_overs

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
    consensus = reference is not None and str(reference) == "consensus"
    if statistic not in ("power", "log"):
        raise ParameterError(f"statistic={statistic!r} must be 'power' or 'log'")
    def is_reference(k: int) -> bool:
        return recordings[k].resolve() == Path(reference).resolve() or names[k] == Path(reference).stem

    if reference is not None and not consensus and not any(is_reference(k) for k in range(len(recordings))):
        raise ParameterError(f"--reference {reference} is not one of the recordings")
    out = Path(output_dir)
    prepare_output_dir(out, recordings)
    steps = _Progress(progress)
    metas, unreadable = {}, {}
    for k, r in enumerate(recordings):
        try:
            metas[k] = audio_io.info(r)
        except AudioError as exc:
            unreadable[k] = exc
    total = sum(m.frames / m.sample_rate for m in metas.values()) or 1.0
    mono_rate = min(eventsync.sync_rate([m.sample_rate for m in metas.values()] or [eventstream.MONO_RATE]),
                    eventstream.MONO_RATE)
    figures = {}
    for k, m in metas.items():
        try:
            figures[k] = eventstream.read_pass(recordings[k], mono_rate,
                                               progress=steps.part("reading", m.frames / m.sample_rate / total))
        except AudioError as exc:
            unreadable[k] = exc
    # A file that cannot be read is left out with its one line; the rest go on while two are left.
    bad = {names[k]: f"{exc}; left out" for k, exc in sorted(unreadable.items())}
    readable = [k for k in range(len(recordings)) if k not in unreadable]
    given = [k for k in readable if reference is not None and not consensus and is_reference(k)]
    if reference is not None and not consensus and not given:
        raise next(exc for k, exc in unreadable.items() if is_reference(k))
    if len(readable) < MIN_RECORDINGS:
        raise next(iter(unreadable.values()))
    recordings, names = [recordings[k] for k in readable], [names[k] for k in readable]
    metas, figures = [metas[k] for k in readable], [figures[k] for k in readable]
    ref_given = readable.index(given[0]) if given else None
    rates = [m.sample_rate for m in metas]
    report = steps.part("synchronising")
    n_pairs = max(1, len(recordings) * (len(recordings) - 1) // 2)
    measured = [0]

    def pair_done() -> None:
        measured[0] += 1
        report(measured[0] / n_pairs)

    for f in figures:  # in a room the reverberant tails correlate at the wrong lags; the onsets' direct sound does not
        f.mono = onset_emphasis(f.mono, mono_rate)
    links = eventsync.measure_links(_Float64([f.mono for f in figures]), mono_rate, progress=pair_done)
    durations = [f.frames / sr for f, sr in zip(figures, rates)]
    clipped = [f.clipped_fraction for f in figures]
    del figures[:]  # the low-rate copies are not needed any more
    parts = eventsync.components(len(recordings), links)
    part = next(p for p in parts if ref_given in p) if ref_given is not None else parts[0]
    if len(part) < 2:
        raise MeasurementError(f"{names[part[0]]} matches none of the other recordings: no two recordings hold the "
                               f"same sound over {eventsync.MIN_OVERLAP_S:g} s or more")
    if ref_given is not None:
        ref, reason = ref_given, "given"
    else:
        ref, reason = eventcorrect.choose_reference(sorted(part), names, metas, clipped)
        if consensus:
            reason = f"consensus of all kept devices' responses; the timeline follows {names[ref]}'s clock ({reason})"
    left_out = dict(bad)
    for p in parts:
        if p is part:
            continue
        for k in p:
            left_out[names[k]] = ("matches none of the other recordings" if len(p) == 1 else
                                  f"matches only {', '.join(names[m] for m in p if m != k)}, not the event of "
                                  f"{names[ref]}") + "; left out"
    kept = sorted(part)
    links, dropped = eventsync.consistent_links(durations, links, ref)
    clocks = eventsync.solve_timeline(durations, links, ref)
    polarities = {k: eventsync.polarity(links, ref, k) if k != ref else 1 for k in kept}
    out_rate = int(sample_rate or rates[ref])
    start = min(clocks[k].start_s for k in kept)
    n_samples = int(round((max(clocks[k].end_s for k in kept) - start) * out_rate))
    if cut_rows is not None:
        eventcuts.check_cut_times(cut_rows, cuts, n_samples / out_rate)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder: {exc.strerror or exc}") from None
    stores, covered, stages = {}, {}, []
    try:
        for k in kept:
            covered[k] = eventsync.coverage(clocks[k], out_rate=out_rate, start_s=start, n_samples=n_samples)
            stages.append(staging_path(out / f"{names[k]}.placed"))
            stores[k] = eventstream.PlacedStore(stages[-1], metas[k].channels, covered[k])
            placer = eventstream.Placer(rates[k], clocks[k], out_rate=out_rate, start_s=start, n_samples=n_samples,
                                        channels=metas[k].channels, polarity=polarities[k])
            report = steps.part("placing", 1.0 / len(kept))
            stores[k].write(placer, recordings[k], progress=lambda n, r=report: r(n / max(n_samples, 1)))
        routes, corrections, notes = eventcorrect.corrections(
            kept, ref, names, stores, covered, links, rates, out_rate, strength=strength,
            smoothing_octaves=smoothing_octaves, max_boost_db=max_boost_db, max_cut_db=max_cut_db, band_hz=band_hz,
            consensus=consensus, statistic=statistic, progress=steps.part("correcting"))
        processors = {k: correction_processor(corrections[k]) for k in kept if np.any(corrections[k].gain_db)}
        fits, paired = _learned_fits(learned, kept, ref, names, routes, stores, covered, processors, out_rate)
        meters, peaks, stems_stage = {}, {}, {}
        for k in kept:
            meters[k] = eventcorrect.LoudnessMeter(out_rate, metas[k].channels)
            stages.append(staging_path(out / f"{names[k]}.stem.wav"))
            stems_stage[k] = stages[-1]
            peaks[k] = eventstream.write_stem(stores[k], stems_stage[k], n_samples, out_rate,
                                              processor=processors.get(k), fit=fits.get(k), meter=meters[k],
                                              progress=steps.part("stems", 1.0 / len(kept)))
        gains, level_notes = eventcorrect.loudness_gains(kept, ref, names, meters, covered, routes, level_mode)
        notes += level_notes
        notes += [f"{names[k]}: its signal is inverted against {names[ref]}'s; its stem is turned over"
                  for k in kept if polarities[k] < 0]
        notes += [f"the pair {names[lk.i]}-{names[lk.j]} measured {res:+.1f} ms off the timeline the other pairs agree "
                  f"on (a reflection rather than the direct sound); left out of the timeline" for lk, res in dropped]
        subtypes = {k: metas[k].subtype for k in kept}
        reduction = 0.0
        if policy == "scale" and any(not s.startswith(("FLOAT", "DOUBLE")) for s in subtypes.values()):
            reduction = max(0.0, max(peaks[k] + gains[k] for k in kept) - TRUE_PEAK_CEILING_DB)
            if reduction > 0:
                notes.append(f"every stem was lowered by {reduction:.1f} dB so the loudest keeps its true peak below "
                             f"-1 dBTP (one gain for all keeps them level with each other)")
        final = {k: gains[k] - reduction for k in kept}
        result = EventResult(
            [names[k] for k in kept], names[ref], reason, left_out, {names[k]: clocks[k] for k in kept}, start,
            out_rate, n_samples, {names[k]: [names[m] for m in routes[k]] for k in kept},
            {names[k]: corrections[k] for k in kept}, {names[k]: final[k] for k in kept},
            links=[lk.to_json(names) for lk in links] + [dict(lk.to_json(names), dropped=True) for lk, _ in dropped],
            link_residuals_ms=eventsync.link_residuals(links + [lk for lk, _ in dropped], clocks),
            overs_reduction_db=reduction, notes=notes,
            learned={names[k]: eventlearn.summary(fits.get(k), names[k] in paired) for k in kept if k != ref}
            if learned else {}, polarities={names[k]: polarities[k] for k in kept})
        _write_outputs(result, cut_rows, cuts, kept, ref, names, stores, stems_stage, covered, final, rates, metas,
                       recordings, subtypes, policy, out, steps.part("writing"))
    finally:
        for p in stages:
            p.unlink(missing_ok=True)
    return result


def _learned_fits(learned, kept, ref, names, routes, stores, covered, processors, sample_rate) -> tuple[dict, set]:
    """``{device index: fit}`` from the learned correction (none without one), and the names it was given pairs
    of."""
    if learned is None:
        return {}, set()
    pairs = eventlearn.pairs_for(kept, ref, names, routes, stores, covered, processors, sample_rate)
    got = learned(pairs, sample_rate, progress=None) if pairs else {}
    index = {names[k]: k for k in kept}
    fits = {}
    for name, fit in (got or {}).items():
        if name in pairs:
            eventlearn.check_fit(name, fit)
            fits[index[name]] = fit
    return fits, set(pairs)


def _write_outputs(result, cut_rows, cuts, kept, ref, names, stores, stems_stage, covered, final, rates, metas,
                   recordings, subtypes, policy, out, report) -> None:
    """Seam figures, the cut track, the stems and ``event.json``."""
    from micmatch.render import Processor, render_file

    sr, n_samples = result.sample_rate, result.n_samples
    after = {names[k]: eventcuts.StemReader(stems_stage[k], 10 ** (final[k] / 20), metas[k].channels) for k in kept}
    before = {names[k]: stores[k] for k in kept}
    cover_named = {names[k]: covered[k] for k in kept}
    tops = {names[k]: 0.45 * rates[k] for k in kept}  # no spectral jump above a device's own band
    if cut_rows is not None:
        result.cut_track, result.seams = eventcuts.cut_track(cut_rows, after, before, cover_named, tops, names[ref],
                                                             out, Path(cuts), sr, n_samples, subtypes[ref], policy,
                                                             result.notes)
        what = "cut list"
    else:
        result.seams = eventcuts.pair_seams(before, after, cover_named, sr, tops)
        what = "every pair at regular points"
    result.seam_summary = {**eventseams.summary(result.seams), "at": what}
    for i, k in enumerate(kept):
        gain = np.float32(10 ** (final[k] / 20))
        result.stems[names[k]] = render_file(
            stems_stage[k], out / f"{names[k]}.wav", Processor(lambda seg, g=gain: seg * g), format="WAV",
            subtype=subtypes[k], overs="clip" if policy == "scale" else policy, warn=False).output
        report((i + 1) / len(kept))
    result.event_json = out / "event.json"
    with atomic_path(result.event_json) as tmp:
        tmp.write_text(json.dumps(result.summary(), indent=1))


__all__ = ["EventResult", "event", "existing_outputs", "read_cuts"]

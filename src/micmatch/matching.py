"""One call from recordings to a matched file: the matching pipeline for audio people.

:func:`match` makes a target recording sound as if made by the reference device (or like a target curve), in
small steps over arrays:

1. **load** the target and the references (mixed to mono, at the target's rate), or read a target curve.
2. **route**: with one reference recording it tries to align the pair (:func:`micmatch.align.estimate_alignment`:
   offset and clock drift). When the two hold the same sound the **aligned** route compares them frame by frame;
   when the alignment is not credible (different material, or several references) the **unaligned** route
   compares their long-term statistics. ``result.route`` and ``result.route_reason`` say which and why.
3. **level curves**: the target's and the reference's long-term level per bin under the chosen ``statistic``
   (``log``: geometric mean of magnitudes, on the aligned route the aligned spectrum correction
   :func:`micmatch.aligned.estimate_pair`; ``power``: long-term average spectrum).
4. **band**: where every recording stands above its own noise floor (unless given).
5. **correction**: :func:`micmatch.correct.correction_from_levels`: limited to the band (raised-cosine edges),
   scaled by ``strength``, smoothed, clamped; **apply** it as an STFT-domain gain (sample-aligned with the input).
6. **loudness**: ITU-R BS.1770 integrated loudness (:mod:`micmatch.loudness`), each signal measured once:
   ``match`` the reference, ``keep`` the target's, or a fixed ``-23LUFS``; then the **overs** policy of an
   integer output format (``scale``: one whole-file gain reduction to -1 dBTP; ``float``; ``clip``).
7. **output and figures**: long-term 1/3-octave distance to the reference before and after (level-independent),
   frame log spectral distance before and after (aligned route), loudness of target, reference and result,
   notes (:class:`micmatch.matchresult.Note`); the file and the report written.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micmatch import audio as audio_io
from micmatch.align import Alignment, align, estimate_alignment
from micmatch.aligned import estimate_pair
from micmatch.correct import (
    DEFAULT_DYNAMIC_RANGE_DB,
    DEFAULT_MAX_BOOST_DB,
    DEFAULT_MAX_CUT_DB,
    STATISTICS,
    Correction,
    apply_correction,
    correction_from_levels,
    widest_band,
)
from micmatch.errors import AudioError, MeasurementError, ParameterError
from micmatch.estimate import array_stats
from micmatch.loudness import (
    integrated_loudness,
    parse_loudness,
    peak_reduction_db,
)
from micmatch.longterm import frame_lsd_db
from micmatch.longterm import (  # long_term_spectrum_db and third_octave_levels_db: imported from here until
    DISTANCE_BAND_HZ,  # the next release (their home was micmatch.match)
    long_term_distance_db,
    long_term_spectrum_db,  # noqa: F401
    read_target_curve,
    snr_db,
    third_octave_levels_db,  # noqa: F401
)
from micmatch.matchresult import DISTANCE_TOLERANCE_DB, MatchResult, Note
from micmatch.render import OVERS_ALIASES, render_file, resolve_overs
from micmatch.response import LogSpectrumStats, SpectralConfig

ROUTES = ("auto", "aligned", "unaligned")
#: Default statistic of ``match``: the long-term average spectrum. On reverberant, noisy simulated pairs it brought
#: the long-term distance to the reference far lower than the log statistic, which often made it worse
#: (benchmarks/results/match.md); the log statistic gave the lower frame LSD.
MATCH_STATISTIC = "power"
#: FFT size of the analysis: 4096 at 44.1/48 kHz resolves about 11 Hz, enough for the lowest 1/3-octave bands.
DEFAULT_N_FFT = 4096
#: Shortest analysis window ``match`` falls back to for short inputs (samples).
MIN_N_FFT = 256


def analysis_n_fft(sample_rate: int, n_samples: int) -> int:
    """The FFT size ``match`` uses by default: about 93 ms (4096 samples at 44.1 kHz, 1024 at 8 kHz), halved until
    the shortest input holds at least four frames of it (never below :data:`MIN_N_FFT`)."""
    n_fft = 1 << max(round(np.log2(0.093 * sample_rate)), 8)
    while n_fft > MIN_N_FFT and 4 * n_fft > n_samples:
        n_fft //= 2
    return n_fft


#: A reference with one of these suffixes is a target curve (:func:`micmatch.longterm.read_target_curve`).
CURVE_SUFFIXES = (".csv", ".txt")
#: A found band narrower than this (octaves) is not credible: the whole band is corrected instead.
MIN_BAND_OCTAVES = 1.0
#: A bin "has signal" when the recording's long-term power stands this far above its noise floor there (dB,
#: after 1/3-octave smoothing, :func:`micmatch.longterm.snr_db`); the noise floor of a bin is the 10th percentile
#: of its frame powers (sounds pause in every bin, as in :func:`micmatch.aligned.estimate_pair`).
BAND_SNR_DB = 10.0


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def _is_curve(ref) -> bool:
    return isinstance(ref, (str, os.PathLike)) and Path(ref).suffix.lower() in CURVE_SUFFIXES


def _label(item, name: str) -> str:
    """How errors name an input: its path, or ``name`` for arrays."""
    return str(item) if isinstance(item, (str, os.PathLike)) else name


def _load_audio(item, sample_rate: int | None, name: str) -> tuple[np.ndarray, int]:
    if isinstance(item, (str, os.PathLike)):
        return audio_io.load(item, sample_rate=sample_rate)
    if isinstance(item, tuple) and len(item) == 2:
        x, sr = item
        x = audio_io.validate_audio(np.asarray(x, dtype=np.float32), int(sr), name=name)
        x = x[np.newaxis] if x.ndim == 1 else x
        if sample_rate is not None and sr != sample_rate:
            x, sr = audio_io.resample(x, int(sr), sample_rate), sample_rate
        return x.astype(np.float32, copy=False), int(sr)
    raise ParameterError(f"{name} must be a file path or an (audio, sample_rate) pair")


# ----------------------------------------------------------------------------------------------------------------
# The pipeline


def match(
    target,
    reference,
    output: str | os.PathLike | None = None,
    *,
    statistic: str = MATCH_STATISTIC,
    strength: float = 1.0,
    band_hz: tuple[float, float] | None = None,
    smoothing_octaves: float | None = None,
    loudness: str | float = "match",
    overs: str = "scale",
    route: str = "auto",
    reference_weights: list[float] | None = None,
    max_boost_db: float = DEFAULT_MAX_BOOST_DB,
    max_cut_db: float = DEFAULT_MAX_CUT_DB,
    n_fft: int | None = None,
    report: str | os.PathLike | None = None,
) -> MatchResult:
    """Make ``target`` sound as if recorded like ``reference`` (module docstring for the steps).

    Parameters
    ----------
    target : path or (np.ndarray, int)
        The recording to change: a file, or ``(audio, sample_rate)`` with audio ``(channels, n_samples)``.
    reference : path, (np.ndarray, int), or a list of them
        Recording(s) of the wanted sound, resampled to the target's rate for analysis if needed; several are
        averaged (weighted by ``reference_weights``). A ``.csv`` path is a target curve (``frequency,raw``).
    output : path, optional
        Where to write the result (atomically), in the target file's format and subtype (WAV float for arrays).
    statistic : {"log", "power"}
        Long-term statistic of the unaligned route and of the curve (README: when each is right).
    strength : float
        0..1, scales the correction in dB.
    band_hz : (float, float), optional
        Band of the correction; default: where every recording stands :data:`BAND_SNR_DB` above its own noise
        floor.
    smoothing_octaves : float or None
        Fractional-octave smoothing of the correction (default none: on the simulated pairs any smoothing moved
        the long-term spectrum further from the reference).
    loudness : "match", "keep", or a level such as "-23LUFS" / -23.0
        Integrated loudness (ITU-R BS.1770) of the result: the reference's, the target's, or that level.
    overs : {"scale", "clip", "float"}
        When the result exceeds full scale (true peak above -1 dBTP) in an integer format: one whole-file gain
        reduction (default), clip, or write a float file. ``"reduce"``, the old name of ``"scale"``, is accepted
        for one release.
    route : {"auto", "aligned", "unaligned"}
    n_fft : int, optional
        Analysis FFT size; default :func:`analysis_n_fft` (about 93 ms, smaller for inputs too short for it).
    report : path, optional
        Folder for report.html and its figures (:mod:`micmatch.report`).

    Returns
    -------
    MatchResult
    """
    overs = _check_options(statistic=statistic, route=route, overs=overs)
    level_mode = parse_loudness(loudness)
    inputs = _load_inputs(target, reference, reference_weights)
    sr = inputs.sample_rate
    config = _analysis_config(inputs, n_fft)
    curve_db = None if inputs.curve is None else read_target_curve(inputs.curve, config.frequencies)
    target_stats = array_stats(inputs.mono, config, name=inputs.target_label)
    chosen, reason, alignment = _choose_route(inputs, route)
    ref_stats = [array_stats(a, config, name=name) for a, name in zip(inputs.references, inputs.reference_labels)]
    target_db, reference_db = _level_curves(inputs, config, target_stats, ref_stats, curve_db, route=chosen,
                                            alignment=alignment, statistic=statistic)
    band_notes = []
    if band_hz is None:
        band_hz, band_notes = _signal_band(inputs, config, target_stats, ref_stats)
    reference_db = _level_matched(reference_db, target_db, config.frequencies, band_hz)
    correction = _correction(target_db, reference_db, config, band_hz=band_hz, statistic=statistic,
                             strength=strength, smoothing_octaves=smoothing_octaves, max_boost_db=max_boost_db,
                             max_cut_db=max_cut_db)
    corrected = apply_correction(inputs.audio, sr, correction, method="stft")
    wanted, lufs, loudness_notes = _wanted_loudness(inputs, level_mode)
    level_gain_db, measured = _level_gain(corrected, sr, wanted)
    leveled = _gained(corrected, level_gain_db)
    subtype = _output_subtype(target, output)
    y, subtype, reduction, overs_notes = _handle_overs(leveled, sr, overs=overs, subtype=subtype)
    # Each signal's loudness is measured once: the level-set one's is known unless the overs step changed it.
    lufs["result"] = (measured[level_gain_db] if y is leveled and level_gain_db in measured
                      else integrated_loudness(y, sr))
    reference_power_db = reference_db if inputs.curve is not None else np.tensordot(
        inputs.weights, np.array([s.power_db for s in ref_stats]), axes=1)
    distance, frame_lsd, spectra, distance_notes = _figures(inputs, config, y, target_stats.power_db,
                                                            reference_power_db, alignment=alignment)
    result = MatchResult(y, sr, correction, chosen, reason, level_gain_db - reduction, reduction, lufs, distance,
                         frame_lsd, alignment, None, [*band_notes, *loudness_notes, *overs_notes, *distance_notes],
                         spectra)
    if output is not None:
        result.output = _write_output(output, y, sr, target=target, subtype=subtype)
    if report is not None:
        from micmatch.report import write_report

        write_report(result, report, target_audio=inputs.audio,
                     reference_audio=inputs.references[0] if len(inputs.references) == 1 else None)
    return result


# ----------------------------------------------------------------------------------------------------------------
# The steps


@dataclass(frozen=True)
class _Inputs:
    """The recordings of one match, loaded: the target, and the references or a target curve."""

    audio: np.ndarray  # the target, (channels, n_samples) float32
    sample_rate: int
    mono: np.ndarray  # the target, channels mixed
    target_label: str  # how errors name the target
    references: list[np.ndarray]  # mono reference recordings at the target's rate (none for a target curve)
    reference_labels: list[str]
    weights: np.ndarray  # one per reference, summing to 1
    curve: Path | None  # a target curve file instead of reference recordings
    reference_rates: list[int]  # each reference recording's own sample rate (its band ends at half of it)


def _check_options(*, statistic: str, route: str, overs: str) -> str:
    """Refuse unknown options before any audio is read; returns the overs policy (old spellings translated)."""
    if route not in ROUTES:
        raise ParameterError(f"route={route!r} must be one of {ROUTES}")
    if overs in OVERS_ALIASES:
        warnings.warn(f"overs={overs!r} is now called {OVERS_ALIASES[overs]!r}; the old name goes in the next release",
                      DeprecationWarning, stacklevel=3)
    policy = resolve_overs(overs)
    if statistic not in STATISTICS:
        raise ParameterError(f"statistic={statistic!r} must be one of {STATISTICS}")
    return policy


def _load_inputs(target, reference, reference_weights: list[float] | None) -> _Inputs:
    """Load the target and the references (mixed to mono, at the target's rate); check their count and weights."""
    x, sr = _load_audio(target, None, "target")
    refs = list(reference) if isinstance(reference, (list, tuple)) and not (
        len(reference) == 2 and isinstance(reference[1], (int, np.integer))) else [reference]
    if not refs:
        raise ParameterError("no reference given")
    if reference_weights is not None and len(reference_weights) != len(refs):
        raise ParameterError(f"{len(reference_weights)} reference weights for {len(refs)} references")
    curves = [r for r in refs if _is_curve(r)]
    if curves and len(refs) > 1:
        raise ParameterError("a target curve must be the only reference")
    labels = [_label(r, f"reference {i + 1}") for i, r in enumerate(refs)]
    recordings = [] if curves else [_load_audio(r, sr, f"reference {i + 1}")[0].mean(axis=0)
                                    for i, r in enumerate(refs)]
    w = np.ones(len(refs)) if reference_weights is None else np.asarray(reference_weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ParameterError(f"reference weights {w.tolist()} must be non-negative with a positive sum")
    rates = [] if curves else [audio_io.info(r).sample_rate if isinstance(r, (str, os.PathLike)) else int(r[1])
                               for r in refs]  # each reference's own rate, before it was brought to the target's
    return _Inputs(x, sr, x.mean(axis=0), _label(target, "target"), recordings, labels, w / w.sum(),
                   Path(curves[0]) if curves else None, rates)


def _analysis_config(inputs: _Inputs, n_fft: int | None) -> SpectralConfig:
    if n_fft is None:
        n_fft = analysis_n_fft(inputs.sample_rate, min(a.shape[-1] for a in [inputs.mono, *inputs.references]))
    return SpectralConfig(sample_rate=inputs.sample_rate, n_fft=n_fft, hop_length=n_fft // 4)


def _choose_route(inputs: _Inputs, route: str) -> tuple[str, str, Alignment | None]:
    """The route (aligned when there is one reference recording of the same sound), why, and the alignment."""
    if inputs.curve is not None:
        return "curve", f"reference is a target curve ({inputs.curve.name})", None
    if len(inputs.references) > 1:
        if route == "aligned":
            raise ParameterError("route 'aligned' needs exactly one reference recording")
        return "unaligned", f"{len(inputs.references)} references: their long-term statistics are averaged", None
    if route == "unaligned":
        return "unaligned", "unaligned route requested", None
    sr = inputs.sample_rate
    try:
        alignment = estimate_alignment(inputs.references[0], inputs.mono, sr)
    except MeasurementError as exc:
        if route == "aligned":
            raise
        return "unaligned", f"no credible alignment ({exc}); comparing long-term statistics", None
    return "aligned", (f"the two hold the same sound: offset {alignment.offset_samples / sr:+.3f} s, drift "
                       f"{alignment.drift_ppm:+.1f} ppm, {int(alignment.chunk_used.sum())} chunks agree"), alignment


def _level_curves(inputs: _Inputs, config: SpectralConfig, target_stats: LogSpectrumStats,
                  ref_stats: list[LogSpectrumStats], curve_db: np.ndarray | None, *, route: str,
                  alignment: Alignment | None, statistic: str) -> tuple[np.ndarray, np.ndarray]:
    """The long-term levels per bin (dB) of the target and of the reference that the correction compares.

    Aligned route: the reference at 0 dB and the target relative to it (mean log ratio over gated cells, the
    aligned spectrum correction), or both long-term power spectra over the frames where both carry the sound.
    Otherwise the chosen statistic of each recording, the references weighted, or the target curve.
    """
    def level(stats: LogSpectrumStats) -> np.ndarray:
        return stats.power_db if statistic == "power" else stats.mean_db

    if route == "curve":
        return level(target_stats), curve_db
    if route == "unaligned":
        return level(target_stats), np.tensordot(inputs.weights, np.array([level(s) for s in ref_stats]), axes=1)
    ref, sr = inputs.references[0], inputs.sample_rate
    if statistic == "log":
        pair = estimate_pair(ref, inputs.mono, sr, n_fft=config.n_fft, hop_length=config.hop_length,
                             alignment=alignment)
        return pair.responses["device"].response_db, np.zeros(config.n_bins)
    # Frames outside the overlap are zeros in the aligned target; the silence gates of the statistics leave them out.
    aligned = align(inputs.mono, alignment, ref.shape[-1])
    return array_stats(aligned, config, name="target (aligned)").power_db, ref_stats[0].power_db


def _signal_band(inputs: _Inputs, config: SpectralConfig, target_stats: LogSpectrumStats,
                 ref_stats: list[LogSpectrumStats]) -> tuple[tuple[float, float], list[Note]]:
    """Where the target and every reference recording stand above their own noise floor (:data:`BAND_SNR_DB`);
    the whole band, with a note, when that band is missing or narrower than :data:`MIN_BAND_OCTAVES`."""
    freqs = config.frequencies
    has_signal = np.logical_and.reduce([snr_db(a, st, config) >= BAND_SNR_DB for a, st in
                                        zip([inputs.mono, *inputs.references], [target_stats, *ref_stats])])
    found = widest_band(has_signal, freqs) if has_signal[1:].any() else None
    if found is not None and np.log2(found[1] / found[0]) >= MIN_BAND_OCTAVES:
        return found, []
    # Steady material (room tone, noise, a drone) never pauses, so no bin stands above a noise floor measured in
    # its quietest frames: correct the whole band rather than none of it.
    return (float(freqs[1]), float(freqs[-1])), [
        Note("band", "no band stands above the recordings' noise floors (steady material?): the whole band is "
                     "corrected; pass --band LO HI to limit it")]


def _level_matched(reference_db: np.ndarray, target_db: np.ndarray, freqs_hz: np.ndarray,
                   band_hz: tuple[float, float]) -> np.ndarray:
    """The reference's level moved to the target's over the band (median of the difference): the level is the
    loudness step's job, so the clamps and the band's edges act on the tone correction only."""
    inside = (freqs_hz >= band_hz[0]) & (freqs_hz <= band_hz[1])
    return reference_db + float(np.median((target_db - reference_db)[inside]))


def _correction(target_db: np.ndarray, reference_db: np.ndarray, config: SpectralConfig, *,
                band_hz: tuple[float, float], statistic: str, strength: float, smoothing_octaves: float | None,
                max_boost_db: float, max_cut_db: float) -> Correction:
    """The tone correction target -> reference from their level curves, each floored
    :data:`~micmatch.correct.DEFAULT_DYNAMIC_RANGE_DB` below its maximum."""
    def floored(db: np.ndarray) -> np.ndarray:
        db = np.asarray(db, dtype=np.float64)
        return np.maximum(db, db.max() - DEFAULT_DYNAMIC_RANGE_DB)

    return correction_from_levels(
        floored(target_db), floored(reference_db), config.sample_rate, config.n_fft, device="target",
        reference="reference", max_boost_db=max_boost_db, max_cut_db=max_cut_db, smoothing_octaves=smoothing_octaves,
        band_hz=(float(band_hz[0]), float(band_hz[1])), strength=strength,
        settings={"dynamic_range_db": DEFAULT_DYNAMIC_RANGE_DB, "hop_length": config.hop_length,
                  "statistic": statistic})


def _wanted_loudness(inputs: _Inputs, level_mode: str | float) -> tuple[float | None, dict, list[Note]]:
    """The loudness the result should have (LUFS; None: leave the level), the measured ``target`` and
    ``reference`` loudness (each recording measured once; the references' weighted), and why the wanted one
    falls back to the target's."""
    lufs_target = integrated_loudness(inputs.audio, inputs.sample_rate)
    lufs_ref = None
    if inputs.curve is None:
        ref_lufs = [integrated_loudness(a, inputs.sample_rate) for a in inputs.references]
        if all(v is not None for v in ref_lufs):
            lufs_ref = float(np.dot(inputs.weights, ref_lufs))
    notes = []
    if level_mode == "match" and lufs_ref is None:
        notes.append(Note("loudness", "a target curve has no loudness: the target's loudness is kept"
                          if inputs.curve is not None else
                          "a reference is too short (under 0.4 s) or too quiet to measure its loudness (ITU-R "
                          "BS.1770): the target's loudness is kept"))
    if level_mode != "keep" and lufs_target is None:
        seconds = inputs.audio.shape[-1] / inputs.sample_rate
        why = f"too short ({seconds:.2f} s, under 0.4 s)" if seconds < 0.4 else "too quiet (below -70 LUFS)"
        notes.append(Note("loudness", f"the target is {why} to measure its loudness (ITU-R BS.1770): its level is "
                                      f"left as it is"))
    wanted = {"match": lufs_ref if lufs_ref is not None else lufs_target, "keep": lufs_target}.get(
        level_mode, level_mode)
    return wanted, {"target": lufs_target, "reference": lufs_ref}, notes


def _gained(audio: np.ndarray, gain_db: float) -> np.ndarray:
    return (audio * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def _level_gain(audio: np.ndarray, sample_rate: int, wanted: float | None) -> tuple[float, dict]:
    """The whole-file gain (dB) that brings ``audio`` to the ``wanted`` integrated loudness, and the loudness
    measured at each gain tried (``{gain_db: LUFS or None}``, 0 dB included), so no signal is measured twice.

    BS.1770's absolute gate (-70 LUFS) makes loudness not quite linear in gain when quiet blocks cross it: the
    result is measured again and the remainder corrected (two passes reach 0.01 LU on the simulated pairs).
    """
    measured = {0.0: integrated_loudness(audio, sample_rate)}
    if wanted is None or measured[0.0] is None or not np.isfinite(wanted):
        return 0.0, measured
    gain_db = float(wanted - measured[0.0])
    for _ in range(2):
        if gain_db not in measured:
            measured[gain_db] = integrated_loudness(_gained(audio, gain_db), sample_rate)
        level = measured[gain_db]
        if level is None or abs(wanted - level) < 0.01:
            break
        gain_db += float(wanted - level)
    return gain_db, measured


def _handle_overs(audio: np.ndarray, sample_rate: int, *, overs: str,
                  subtype: str | None) -> tuple[np.ndarray, str | None, float, list[Note]]:
    """Apply the overs policy for an integer output ``subtype``: ``scale`` lowers the whole file to a true peak of
    -1 dBTP (with a note), ``float`` switches to a float file when a sample exceeds full scale, ``clip`` clips.

    Returns the audio (``audio`` itself when unchanged), the output subtype, the reduction (dB, >= 0) and a note.
    """
    if subtype is None or subtype.startswith(("FLOAT", "DOUBLE")):
        return audio, subtype, 0.0, []
    over = float(np.abs(audio).max(initial=0.0)) > 1.0
    if overs == "float":
        return audio, "FLOAT" if over else subtype, 0.0, []
    if overs == "clip":
        return (np.clip(audio, -1.0, 1.0) if over else audio), subtype, 0.0, []
    reduction = peak_reduction_db(audio, sample_rate)
    if reduction <= 0:
        return audio, subtype, 0.0, []
    note = Note("overs", f"overs: the whole file was lowered by {reduction:.1f} dB to keep its true peak below "
                         f"-1 dBTP in {subtype}")
    return _gained(audio, -reduction), subtype, reduction, [note]


def _figures(inputs: _Inputs, config: SpectralConfig, result: np.ndarray, target_power_db: np.ndarray,
             reference_power_db: np.ndarray, *, alignment: Alignment | None) -> tuple[dict, dict | None, dict, list]:
    """The long-term distances to the reference before and after, the frame LSDs (aligned route), the long-term
    spectra, and notes: when the result is further from the reference than the input (by more than
    :data:`DISTANCE_TOLERANCE_DB`), and when a reference's band ends below the target's.

    Distances are taken over the band both recordings have: up to 0.45 x the lowest sample rate among the target
    and the reference recordings (a reference resampled up to the target's rate holds nothing above its own)."""
    freqs, sr = config.frequencies, inputs.sample_rate
    result_power_db = array_stats(result.mean(axis=0), config, name="result").power_db
    lowest = min([sr, *inputs.reference_rates])
    band = (DISTANCE_BAND_HZ[0], min(DISTANCE_BAND_HZ[1], 0.45 * lowest))
    distance = {"before": long_term_distance_db(target_power_db, reference_power_db, freqs, band_hz=band),
                "after": long_term_distance_db(result_power_db, reference_power_db, freqs, band_hz=band)}
    frame_lsd = None
    if alignment is not None:
        frame_lsd = frame_lsd_db(inputs.references[0], inputs.mono, result.mean(axis=0), sr, alignment)
    notes = []
    if lowest < sr:
        notes.append(Note("band", f"a reference was recorded at {lowest} Hz: its band ends at {lowest / 2:g} Hz, "
                                  f"below the target's ({sr / 2:g} Hz); distances are measured up to {band[1]:g} Hz"))
    if distance["after"] > distance["before"] + DISTANCE_TOLERANCE_DB:
        notes.append(Note("distance", f"the result is further from the reference than the input on the long-term "
                                      f"spectrum ({distance['before']:.2f} -> {distance['after']:.2f} dB RMS over "
                                      f"1/3-octave bands)"))
    spectra = {"frequencies_hz": freqs, "target": target_power_db, "reference": reference_power_db,
               "result": result_power_db}
    return distance, frame_lsd, spectra, notes


# ----------------------------------------------------------------------------------------------------------------
# The output file (written through the one write path of processed files, micmatch.render)


def _output_subtype(target, output) -> str | None:
    """The subtype the output file will have: the target file's when its format allows it, float for arrays."""
    if not isinstance(target, (str, os.PathLike)):
        return "FLOAT"
    meta = audio_io.info(target)
    if output is None:
        return meta.subtype
    fmt = audio_io._format_from_suffix(Path(output))
    import soundfile as sf

    return meta.subtype if sf.check_format(fmt, meta.subtype) else sf.default_subtype(fmt)


def _write_output(output, audio: np.ndarray, sample_rate: int, *, target, subtype: str | None) -> Path:
    """Write the result atomically, refusing to write over the target file."""
    output = Path(output)
    if isinstance(target, (str, os.PathLike)) and output.resolve() == Path(target).resolve():
        raise AudioError(f"{output}: output would overwrite the input; choose another path")
    # Overs were handled before on the array (true peak, loudness bookkeeping); "clip" only guards the write.
    return render_file(audio, output, sample_rate=sample_rate, subtype=subtype, overs="clip", warn=False).output


__all__ = ["MatchResult", "Note", "analysis_n_fft", "match"]

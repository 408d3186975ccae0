"""One call from recordings to a matched file: the flow for audio people.

:func:`match` makes a target recording sound as if made by the reference device (or like a target curve):

1. **route**: with one reference recording it tries to align the pair (:func:`micmatch.align.estimate_alignment`:
   offset and clock drift). When the two hold the same sound the **aligned** route compares them frame by frame
   (aligned spectrum correction, :func:`micmatch.align.estimate_pair`, or the ratio of their
   long-term power spectra over the same aligned frames); when the alignment is not credible (different
   material, or several references) the **unaligned** route compares their long-term statistics
   (:func:`micmatch.estimate.array_stats`). ``result.route`` and ``result.route_reason`` say which and why.
2. **curve**: :func:`micmatch.correct.correction_curve`: the chosen ``statistic`` (``log``: geometric mean of
   magnitudes; ``power``: long-term average spectrum), limited to the band where both recordings have signal
   (raised-cosine edges), scaled by ``strength``, smoothed, clamped.
3. **apply**: STFT-domain gain (sample-aligned with the input).
4. **level**: ITU-R BS.1770 integrated loudness (:mod:`micmatch.loudness`): ``match`` the reference, ``keep``
   the target's, or a fixed ``-23LUFS``; overs in integer formats are removed by one whole-file gain reduction.
5. **figures**: long-term 1/3-octave distance to the reference before and after (always; level-independent),
   frame log spectral distance before and after (aligned route), loudness of target, reference and result.
"""

from __future__ import annotations

import math
import os
import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from micmatch import audio as audio_io
from micmatch.align import Alignment, align, estimate_alignment
from micmatch.aligned import estimate_pair
from micmatch.correct import (
    DEFAULT_MAX_BOOST_DB,
    DEFAULT_MAX_CUT_DB,
    Correction,
    apply_correction,
    correction_curve,
    widest_band,
)
from micmatch.errors import AudioError, MeasurementError, ParameterError
from micmatch.estimate import array_stats
from micmatch.loudness import (
    OVERS_POLICIES,
    integrated_loudness,
    parse_loudness,
    peak_reduction_db,
)
from micmatch.metrics import log_spectral_distance
from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig
from micmatch.spectral import log_power_frames, smooth_fractional_octave

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
#: Long-term distance: 1/3-octave bands from 100 Hz to 16 kHz (or to 0.45 x the sample rate).
DISTANCE_BAND_HZ = (100.0, 16000.0)
CURVE_SUFFIXES = (".csv", ".txt")
#: A found band narrower than this (octaves) is not credible: the whole band is corrected instead.
MIN_BAND_OCTAVES = 1.0
#: A bin "has signal" when the recording's long-term power stands this far above its noise floor there (dB,
#: after 1/3-octave smoothing); the noise floor of a bin is the 10th percentile of its frame powers (sounds pause
#: in every bin, as in :func:`micmatch.align.estimate_pair`).
BAND_SNR_DB = 10.0
#: Frames used for the noise-floor percentile (evenly spread), bounding memory on long recordings.
NOISE_FRAMES = 4000


@dataclass
class MatchResult:
    """What :func:`match` did.

    Attributes
    ----------
    audio : np.ndarray [shape=(channels, n_samples), dtype=float32]
        The matched target (level set, overs handled), at ``sample_rate``.
    sample_rate : int
    correction : Correction
        The tone correction applied (dB per bin; level is set separately).
    route : {"aligned", "unaligned", "curve"}
    route_reason : str
    gain_db : float
        Whole-file gain applied after the correction (loudness, then overs).
    overs_reduction_db : float
        Part of ``gain_db`` that removed overs (0 when none).
    loudness_lufs : dict
        ``target``, ``reference`` (None for a curve) and ``result`` integrated loudness (LUFS).
    distance_db : dict
        Long-term 1/3-octave distance to the reference, ``before`` and ``after`` (dB RMS over bands, level removed).
    frame_lsd_db : dict or None
        Frame log spectral distance ``before`` / ``after`` (aligned route only).
    alignment : Alignment or None
    output : Path or None
    warnings : list of str
    """

    audio: np.ndarray
    sample_rate: int
    correction: Correction
    route: str
    route_reason: str
    gain_db: float
    overs_reduction_db: float
    loudness_lufs: dict
    distance_db: dict
    frame_lsd_db: dict | None = None
    alignment: Alignment | None = None
    output: Path | None = None
    warnings: list[str] = field(default_factory=list)
    spectra_db: dict = field(default_factory=dict)

    @property
    def helped(self) -> bool:
        """True unless the result is further from the reference on the long-term spectrum than the input."""
        return self.distance_db["after"] <= self.distance_db["before"] + 1e-9

    def summary(self) -> dict:
        """The figures as plain JSON-ready values."""
        out = {"route": self.route, "route_reason": self.route_reason, "sample_rate": self.sample_rate,
               "gain_db": round(self.gain_db, 3), "overs_reduction_db": round(self.overs_reduction_db, 3),
               "loudness_lufs": {k: None if v is None else round(v, 3) for k, v in self.loudness_lufs.items()},
               "distance_db": {k: round(v, 3) for k, v in self.distance_db.items()},
               "correction": {k: v for k, v in self.correction.settings.items()}}
        if self.frame_lsd_db is not None:
            out["frame_lsd_db"] = {k: round(v, 3) for k, v in self.frame_lsd_db.items()}
        if self.alignment is not None:
            out["alignment"] = self.alignment.to_json()
        if self.output is not None:
            out["output"] = str(self.output)
        return out


# ----------------------------------------------------------------------------------------------------------------
# Long-term spectra and distances


def long_term_spectrum_db(audio: np.ndarray, config: SpectralConfig, *, statistic: str = "power") -> np.ndarray:
    """Long-term level per bin (dB) of ``(..., n_samples)`` audio (channels mixed), frames gated as in
    :func:`micmatch.estimate.array_stats`: ``power`` = mean power, ``log`` = mean log power."""
    stats = array_stats(audio, config)
    return stats.power_db if statistic == "power" else stats.mean_db


def snr_db(audio: np.ndarray, stats, config: SpectralConfig) -> np.ndarray:
    """Long-term power over noise floor per bin (dB, 1/3-octave smoothed) of a 1-D recording whose statistics are
    ``stats``; the floor is the 10th percentile over frames of each bin's power (:data:`BAND_SNR_DB`)."""
    x = np.asarray(audio, dtype=np.float64)
    step = max(1, (x.shape[-1] // config.hop_length) // NOISE_FRAMES)
    frames = log_power_frames(x, n_fft=config.n_fft, hop_length=config.hop_length * step)
    floor = np.percentile(frames, 10, axis=1)
    return smooth_fractional_octave(stats.power_db - floor, config.frequencies, 1.0 / 3.0)


def third_octave_levels_db(spectrum_db: np.ndarray, freqs_hz: np.ndarray, *,
                           band_hz: tuple[float, float] = DISTANCE_BAND_HZ) -> tuple[np.ndarray, np.ndarray]:
    """Band power (dB) of a power spectrum in 1/3-octave bands centred on ``1000 * 2**(k/3)`` inside ``band_hz``.

    Returns
    -------
    centres_hz, levels_db : np.ndarray [shape=(n_bands,)]
        Bands with no FFT bin are left out.
    """
    f = np.asarray(freqs_hz, dtype=np.float64)
    p = 10.0 ** (np.asarray(spectrum_db, dtype=np.float64) / 10.0)
    # Nominal centres (100 Hz is 1000 * 2**(-10/3) = 99.2 Hz): a 2% tolerance keeps the named edge bands.
    k = np.arange(math.ceil(3 * math.log2(band_hz[0] / 1000.0) - 0.05),
                  math.floor(3 * math.log2(band_hz[1] / 1000.0) + 0.05) + 1)
    centres, levels = [], []
    for c in 1000.0 * 2.0 ** (k / 3.0):
        sel = (f >= c * 2 ** (-1 / 6)) & (f < c * 2 ** (1 / 6))
        if sel.any():
            centres.append(c)
            levels.append(10.0 * np.log10(max(p[sel].mean(), 1e-30)))
    return np.asarray(centres), np.asarray(levels)


def long_term_distance_db(a_db: np.ndarray, b_db: np.ndarray, freqs_hz: np.ndarray, *,
                          band_hz: tuple[float, float] = DISTANCE_BAND_HZ) -> float:
    """RMS over 1/3-octave bands of the difference of two long-term power spectra (dB), their mean difference
    (the level) removed: what a spectrum analyser shows once the two are level-matched."""
    _, la = third_octave_levels_db(a_db, freqs_hz, band_hz=band_hz)
    _, lb = third_octave_levels_db(b_db, freqs_hz, band_hz=band_hz)
    d = la - lb
    d = d - d.mean()
    return float(np.sqrt(np.mean(d * d)))


# ----------------------------------------------------------------------------------------------------------------
# References


def read_target_curve(path: str | os.PathLike, freqs_hz: np.ndarray) -> np.ndarray:
    """A target curve CSV (``frequency,raw`` as AutoEq writes it; other columns ignored) on ``freqs_hz`` (dB).

    Interpolated linearly in log frequency, held constant beyond its ends.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read target curve ({exc})") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ParameterError(f"{path}: empty target curve; expected columns frequency,raw")
    header = [h.strip().lower() for h in lines[0].split(",")]
    if "frequency" not in header or "raw" not in header:
        raise ParameterError(f"{path}: target curve needs columns 'frequency' and 'raw'; found {header}")
    fi, ri = header.index("frequency"), header.index("raw")
    f, g = [], []
    for n, ln in enumerate(lines[1:], start=2):
        parts = ln.split(",")
        try:
            f.append(float(parts[fi]))
            g.append(float(parts[ri]))
        except (ValueError, IndexError):
            raise ParameterError(f"{path}: line {n} is not 'frequency,raw' numbers: {ln!r}") from None
    fa, ga = np.asarray(f), np.asarray(g)
    if fa.size < 2 or (fa <= 0).any() or np.any(np.diff(fa) <= 0) or not np.isfinite(ga).all():
        raise ParameterError(f"{path}: target curve needs at least 2 rows of increasing positive frequencies")
    x = np.log(np.maximum(np.asarray(freqs_hz, dtype=np.float64), fa[0]))
    return np.interp(x, np.log(fa), ga)


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
# The flow


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
    overs: str = "reduce",
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
        Band of the correction; default: where both recordings have signal (:func:`signal_band`).
    smoothing_octaves : float or None
        Fractional-octave smoothing of the correction (default none: on the simulated pairs any smoothing moved
        the long-term spectrum further from the reference).
    loudness : "match", "keep", or a level such as "-23LUFS" / -23.0
        Integrated loudness (ITU-R BS.1770) of the result: the reference's, the target's, or that level.
    overs : {"reduce", "clip", "float"}
        When the result exceeds full scale (true peak above -1 dBTP) in an integer format: one whole-file gain
        reduction (default), clip, or write a float file.
    route : {"auto", "aligned", "unaligned"}
    n_fft : int, optional
        Analysis FFT size; default :func:`analysis_n_fft` (about 93 ms, smaller for inputs too short for it).
    report : path, optional
        Folder for report.html and its figures (:mod:`micmatch.report`).

    Returns
    -------
    MatchResult
    """
    if route not in ROUTES:
        raise ParameterError(f"route={route!r} must be one of {ROUTES}")
    if overs not in OVERS_POLICIES:
        raise ParameterError(f"overs={overs!r} must be one of {OVERS_POLICIES}")
    level_mode = parse_loudness(loudness)
    x, sr = _load_audio(target, None, "target")
    refs = list(reference) if isinstance(reference, (list, tuple)) and not (
        len(reference) == 2 and isinstance(reference[1], (int, np.integer))) else [reference]
    if not refs:
        raise ParameterError("no reference given")
    if reference_weights is not None and len(reference_weights) != len(refs):
        raise ParameterError(f"{len(reference_weights)} reference weights for {len(refs)} references")
    mono = x.mean(axis=0)

    curves = [r for r in refs if _is_curve(r)]
    if curves and len(refs) > 1:
        raise ParameterError("a target curve must be the only reference")
    ref_audio: list[np.ndarray] = []
    if not curves:
        for i, r in enumerate(refs):
            ra, _ = _load_audio(r, sr, f"reference {i + 1}")
            ref_audio.append(ra.mean(axis=0))
    if n_fft is None:
        n_fft = analysis_n_fft(sr, min(a.shape[-1] for a in [mono, *ref_audio]))
    config = SpectralConfig(sample_rate=sr, n_fft=n_fft, hop_length=n_fft // 4)
    freqs = config.frequencies
    if curves:
        ref_level = read_target_curve(curves[0], freqs)
    target_stats = array_stats(mono, config, name=_label(target, "target"))
    w = np.ones(len(refs)) if reference_weights is None else np.asarray(reference_weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ParameterError(f"reference weights {w.tolist()} must be non-negative with a positive sum")
    w = w / w.sum()

    # Route: aligned when there is one reference recording of the same sound.
    alignment = None
    chosen, reason = "unaligned", ""
    if curves:
        chosen, reason = "curve", f"reference is a target curve ({Path(curves[0]).name})"
    elif len(ref_audio) > 1:
        if route == "aligned":
            raise ParameterError("route 'aligned' needs exactly one reference recording")
        reason = f"{len(ref_audio)} references: their long-term statistics are averaged"
    elif route == "unaligned":
        reason = "unaligned route requested"
    else:
        try:
            alignment = estimate_alignment(ref_audio[0], mono, sr)
            chosen = "aligned"
            reason = (f"the two hold the same sound: offset {alignment.offset_samples / sr:+.3f} s, drift "
                      f"{alignment.drift_ppm:+.1f} ppm, {int(alignment.chunk_used.sum())} chunks agree")
        except MeasurementError as exc:
            if route == "aligned":
                raise
            reason = f"no credible alignment ({exc}); comparing long-term statistics"

    ref_stats = [array_stats(ra, config, name=_label(r, f"reference {i + 1}")) for i, (r, ra) in
                 enumerate(zip(refs, ref_audio))]
    target_level = target_stats.power_db if statistic == "power" else target_stats.mean_db
    if chosen == "aligned":
        target_level, ref_level = _aligned_levels(ref_audio[0], mono, sr, config, alignment, statistic)
    elif chosen == "unaligned":
        levels = [s.power_db if statistic == "power" else s.mean_db for s in ref_stats]
        ref_level = np.tensordot(w, np.array(levels), axes=1)

    notes: list[str] = []
    # Band: where the target and every reference recording stand above their own noise floor, unless given.
    if band_hz is None:
        has_signal = np.logical_and.reduce(
            [snr_db(a, st, config) >= BAND_SNR_DB for a, st in zip([mono] + ref_audio, [target_stats] + ref_stats)])
        found = widest_band(has_signal, freqs) if has_signal[1:].any() else None
        if found is None or np.log2(found[1] / found[0]) < MIN_BAND_OCTAVES:
            # Steady material (room tone, noise, a drone) never pauses, so no bin stands above a noise floor measured
            # in its quietest frames: correct the whole band rather than none of it.
            band_hz = (float(freqs[1]), float(freqs[-1]))
            notes.append("no band stands above the recordings' noise floors (steady material?): the whole band is "
                         "corrected; pass --band LO HI to limit it")
        else:
            band_hz = found
    # The level is the loudness step's job: align the reference's level to the target's over the band (median of
    # the difference), so the clamps and the band's edges act on the tone correction only.
    inside = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    ref_level = ref_level + float(np.median((target_level - ref_level)[inside]))
    responses = ResponseSet(config, [DeviceResponse("target", target_level, method="model"),
                                     DeviceResponse("reference", ref_level, method="model")])
    correction = correction_curve(responses, "target", "reference", statistic=statistic, limit_band=band_hz,
                                  strength=strength, smoothing_octaves=smoothing_octaves,
                                  max_boost_db=max_boost_db, max_cut_db=max_cut_db)
    y = apply_correction(x, sr, correction, method="stft")

    # Level.
    lufs_target = integrated_loudness(x, sr)
    lufs_ref = None
    if not curves:
        ref_lufs = [integrated_loudness(ra, sr) for ra in ref_audio]
        if all(v is not None for v in ref_lufs):
            lufs_ref = float(np.dot(w, ref_lufs))
    lufs_y = integrated_loudness(y, sr)
    wanted = {"match": lufs_ref if lufs_ref is not None else lufs_target, "keep": lufs_target}.get(
        level_mode, level_mode)
    if level_mode == "match" and lufs_ref is None:
        notes.append("a target curve has no loudness: the target's loudness is kept" if curves else
                     "a reference is too short (under 0.4 s) or too quiet to measure its loudness (ITU-R BS.1770): "
                     "the target's loudness is kept")
    gain_db = 0.0
    if wanted is not None and lufs_y is not None and np.isfinite(wanted):
        gain_db = float(wanted - lufs_y)
        # BS.1770's absolute gate (-70 LUFS) makes loudness not quite linear in gain when quiet blocks cross it:
        # measure again and correct the remainder (two passes reach 0.01 LU on the simulated pairs).
        for _ in range(2):
            measured = integrated_loudness(y * np.float32(10 ** (gain_db / 20)), sr)
            if measured is None or abs(wanted - measured) < 0.01:
                break
            gain_db += float(wanted - measured)
    y = (y * np.float32(10 ** (gain_db / 20))).astype(np.float32)
    subtype = _output_subtype(target, output)
    reduction = 0.0
    is_int = subtype is not None and not subtype.startswith(("FLOAT", "DOUBLE"))
    if is_int and overs == "reduce":
        reduction = peak_reduction_db(y, sr)
        if reduction > 0:
            y = (y * np.float32(10 ** (-reduction / 20))).astype(np.float32)
            gain_db -= reduction
            notes.append(f"overs: the whole file was lowered by {reduction:.1f} dB to keep its true peak below "
                         f"-1 dBTP in {subtype}")
    elif is_int and overs == "float" and np.abs(y).max(initial=0.0) > 1.0:
        subtype = "FLOAT"
    elif is_int and overs == "clip":
        y = np.clip(y, -1.0, 1.0)
    lufs_out = integrated_loudness(y, sr)

    # Figures.
    lt_ref = ref_level if curves else np.tensordot(w, np.array([s.power_db for s in ref_stats]), axes=1)
    lt_before = target_stats.power_db
    lt_after = array_stats(y.mean(axis=0), config, name="result").power_db
    top = min(DISTANCE_BAND_HZ[1], 0.45 * sr)
    distance = {"before": long_term_distance_db(lt_before, lt_ref, freqs, band_hz=(DISTANCE_BAND_HZ[0], top)),
                "after": long_term_distance_db(lt_after, lt_ref, freqs, band_hz=(DISTANCE_BAND_HZ[0], top))}
    frame_lsd = None
    if chosen == "aligned":
        frame_lsd = _frame_lsd(ref_audio[0], mono, y.mean(axis=0), sr, alignment)
    if distance["after"] > distance["before"] + 1e-9:
        notes.append(f"the result is further from the reference than the input on the long-term spectrum "
                     f"({distance['before']:.2f} -> {distance['after']:.2f} dB RMS over 1/3-octave bands)")
    result = MatchResult(y, sr, correction, chosen, reason, gain_db, reduction,
                         {"target": lufs_target, "reference": lufs_ref, "result": lufs_out}, distance, frame_lsd,
                         alignment, None, notes,
                         {"frequencies_hz": freqs, "target": lt_before, "reference": lt_ref, "result": lt_after})
    if output is not None:
        result.output = _write(output, y, sr, target, subtype)
    if report is not None:
        from micmatch.report import write_report

        write_report(result, report, target_audio=x, reference_audio=ref_audio[0] if len(ref_audio) == 1 else None)
    return result


def _aligned_levels(ref: np.ndarray, dev: np.ndarray, sr: int, config: SpectralConfig, alignment: Alignment,
                    statistic: str) -> tuple[np.ndarray, np.ndarray]:
    """Target and reference levels per bin from the aligned pair: the reference at 0 dB and the target relative to
    it (mean log ratio over gated cells, the aligned spectrum correction), or both long-term power spectra over the frames where
    both carry the sound."""
    if statistic == "log":
        pair = estimate_pair(ref, dev, sr, n_fft=config.n_fft, hop_length=config.hop_length, alignment=alignment)
        return pair.responses["device"].response_db, np.zeros(config.n_bins)
    aligned = align(dev, alignment, ref.shape[-1])
    # Frames outside the overlap are zeros in `aligned`; the silence gates of the statistics leave them out.
    return (array_stats(aligned, config, name="target (aligned)").power_db,
            array_stats(ref, config, name="reference").power_db)


def _frame_lsd(ref: np.ndarray, before: np.ndarray, after: np.ndarray, sr: int, alignment: Alignment) -> dict:
    """Frame LSD to the reference before and after, on the target aligned to the reference's clock, with both
    level-matched (the level is the loudness step's job) and pauses left out."""
    out = {}
    top = min(DISTANCE_BAND_HZ[1], 0.45 * sr)
    for key, sig in (("before", before), ("after", after)):
        a = align(sig, alignment, ref.shape[-1])
        scale = math.sqrt(float(np.mean(ref.astype(np.float64) ** 2)) / max(float(np.mean(a.astype(np.float64) ** 2)),
                                                                            1e-30))
        out[key] = log_spectral_distance(ref, a * scale, sr, band_hz=(DISTANCE_BAND_HZ[0], top), active_db=40.0)
    return out


def _output_subtype(target, output) -> str | None:
    if output is None:
        if isinstance(target, (str, os.PathLike)):
            return audio_io.info(target).subtype
        return "FLOAT"
    if isinstance(target, (str, os.PathLike)):
        meta = audio_io.info(target)
        fmt = audio_io._format_from_suffix(Path(output))
        import soundfile as sf

        return meta.subtype if sf.check_format(fmt, meta.subtype) else sf.default_subtype(fmt)
    return "FLOAT"


def _write(output, y: np.ndarray, sr: int, target, subtype: str | None) -> Path:
    output = Path(output)
    if isinstance(target, (str, os.PathLike)) and output.resolve() == Path(target).resolve():
        raise AudioError(f"{output}: output would overwrite the input; choose another path")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overs were handled above; the clip policy clips on purpose
        return audio_io.save(output, y, sr, subtype=subtype)


__all__ = ["MatchResult", "analysis_n_fft", "long_term_distance_db", "long_term_spectrum_db", "match", "read_target_curve",
           "third_octave_levels_db"]


class _CallableModule(types.ModuleType):
    """Importing this module sets the package attribute ``micmatch.match`` to the module, over the function of
    the same name that ``micmatch/__init__.py`` exports; calling the module calls :func:`match`, so
    ``micmatch.match(target, reference, output)`` works either way."""

    def __call__(self, *args, **kwargs) -> MatchResult:
        return match(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

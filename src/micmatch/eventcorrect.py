"""Event mode: the reference, each device's correction and each stem's loudness, from audio read in pieces.

* the **reference** chosen automatically: widest band above the noise floor, then best signal-to-noise ratio,
  over excerpts of each recording (:data:`EXCERPTS` pieces of :data:`EXCERPT_S` seconds spread over it); clipped
  recordings (more than :data:`~micmatch.eventstream.CLIPPED_FRACTION` of their samples within 1% of their peak)
  are ruled out while any other is left;
* the **link curves**: the aligned spectrum correction of two placed recordings over their overlap, measured on
  pieces of at most :data:`PIECE_S` seconds whose per-bin sums are added (each piece's silence gates are its own);
* **consensus** reference: the target is the mean (dB) of every kept device's response relative to the automatic
  reference, and every device (the reference too) is corrected towards it;
* **loudness**: :class:`LoudnessMeter` keeps the K-weighted energy of every 100 ms of a stem (ITU-R BS.1770), so
  the gated loudness of any stretch is computed later without the stem (:func:`gated_loudness`).
"""

from __future__ import annotations

import math

import numpy as np

from micmatch import eventsync
from micmatch.correct import correction_from_levels, widest_band
from micmatch.errors import MeasurementError
from micmatch.eventstream import CLIPPED_FRACTION, NEAR_PEAK
from micmatch.loudness import gated_mean_loudness
from micmatch.matching import BAND_SNR_DB, MIN_BAND_OCTAVES, analysis_n_fft

#: Longest piece of an overlap measured at once (seconds).
PIECE_S = 30.0
#: Bins whose reference power lies this far (dB) below its loudest bin in the band hold noise rather than sound:
#: they do not set a link curve's level (:func:`sound_level`). Speech's long-term spectrum spans about 25 dB from
#: its loudest band to 4 kHz.
SOUND_RANGE_DB = 30.0
#: Excerpts read from a recording (or overlap) to find its band and noise floor, and their length (seconds).
EXCERPTS, EXCERPT_S = 8, 15.0


def band_and_snr(excerpts: list[np.ndarray], sample_rate: int) -> tuple[tuple[float, float] | None, float]:
    """Widest band (Hz) standing :data:`BAND_SNR_DB` above the noise floor, and the median SNR inside it (dB), from
    mono excerpts of one recording: each excerpt's SNR per bin (:func:`micmatch.longterm.snr_db`), averaged in dB
    over the excerpts (one excerpt at a time in memory)."""
    from micmatch.estimate import array_stats
    from micmatch.longterm import snr_db
    from micmatch.response import SpectralConfig

    n_fft = analysis_n_fft(sample_rate, min(x.shape[-1] for x in excerpts))
    config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4)
    snr = np.mean([snr_db(x, array_stats(x, config), config) for x in excerpts], axis=0)
    ok = snr >= BAND_SNR_DB
    if not ok[1:].any():
        return None, float(np.median(snr))
    band = widest_band(ok, config.frequencies)
    inside = (config.frequencies >= band[0]) & (config.frequencies <= band[1])
    return band, float(np.median(snr[inside]))


def excerpt_spans(a: int, b: int, sample_rate: int) -> list[tuple[int, int]]:
    """Up to :data:`EXCERPTS` spans of :data:`EXCERPT_S` seconds spread evenly over ``a .. b`` (when shorter, all
    of it in equal spans of at most that length)."""
    n = int(EXCERPT_S * sample_rate)
    if b - a <= EXCERPTS * n:
        count = max(1, math.ceil((b - a) / n))
        edges = np.linspace(a, b, count + 1).astype(int)
        return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]
    starts = np.linspace(a, b - n, EXCERPTS).astype(int)
    return [(int(s), int(s) + n) for s in starts]


def file_excerpts(meta) -> list[np.ndarray]:
    """Mono excerpts of a file (float64), read with seeks."""
    import soundfile as sf

    parts = []
    with sf.SoundFile(str(meta.path)) as f:
        for a, b in excerpt_spans(0, meta.frames, meta.sample_rate):
            f.seek(a)
            parts.append(f.read(b - a, dtype="float64", always_2d=True).mean(axis=1))
    return parts


def choose_reference(candidates: list[int], names: list[str], metas: list, clipped: list[float]) -> tuple[int, str]:
    """The recording with the widest band above its noise floor (in 1/3 octaves), then the best median SNR, among
    those not clipped (all of them when every one is)."""
    bad = [k for k in candidates if clipped[k] > CLIPPED_FRACTION]
    pool = [k for k in candidates if k not in bad] or list(candidates)
    scored = []
    for k in pool:
        band, snr = band_and_snr(file_excerpts(metas[k]), metas[k].sample_rate)
        octaves = 0.0 if band is None else float(np.log2(band[1] / band[0]))
        scored.append((round(3 * octaves) / 3, snr, -k, band))
    best = max(scored)
    k, band = -best[2], best[3]
    where = "no band above its noise floor" if band is None else f"{band[0]:.0f}-{band[1]:.0f} Hz ({best[0]:.1f} octaves)"
    reason = (f"widest band above its noise floor, then best signal-to-noise ratio among {len(pool)} recordings: "
              f"{where}, median SNR {best[1]:.1f} dB")
    if bad:
        said = ", ".join(f"{names[m]} ({100 * clipped[m]:.3f}%)" for m in bad)
        rule = f"more than {100 * CLIPPED_FRACTION:g}% of samples within {100 * NEAR_PEAK:g}% of the peak"
        reason += (f"; clipped recordings ruled out ({rule}): {said}" if len(pool) < len(candidates) else
                   f"; every recording looks clipped ({rule}): {said}")
    return k, reason


# ----------------------------------------------------------------------------------------------------------------
# Corrections


def pieces(a: int, b: int, sample_rate: int) -> list[tuple[int, int]]:
    """``a .. b`` cut into equal pieces of at most :data:`PIECE_S` seconds."""
    count = max(1, math.ceil((b - a) / (PIECE_S * sample_rate)))
    edges = np.linspace(a, b, count + 1).astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def link_curve(dev_store, ref_store, a: int, b: int, sample_rate: int, n_fft: int,
               statistic: str = "power") -> tuple[np.ndarray, tuple]:
    """Tone gain (dB per bin, level removed over the band) that makes ``dev`` sound like ``ref`` over timeline
    samples ``a .. b`` (their overlap), and the band where both stand above their noise floors.

    ``statistic`` as for ``match``: "power" compares the two long-term average spectra (power summed over each
    one's frames with sound), "log" is the aligned spectrum correction (mean log ratio over the cells both carry).
    """
    from micmatch.align import Alignment
    from micmatch.aligned import estimate_pair
    from micmatch.errors import AudioError
    from micmatch.estimate import array_stats
    from micmatch.response import SpectralConfig

    config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4)
    sums, counts = np.zeros(n_fft // 2 + 1), np.zeros(n_fft // 2 + 1)
    power = {"dev": None, "ref": None}
    for lo, hi in pieces(a, b, sample_rate):
        if hi - lo < 2 * n_fft:
            continue
        ref, dev = ref_store.read(lo, hi).mean(axis=0), dev_store.read(lo, hi).mean(axis=0)
        try:
            got = {"ref": array_stats(ref, config, name="reference"), "dev": array_stats(dev, config, name="device")}
        except AudioError:
            continue  # a silent piece
        for key, st in got.items():
            power[key] = st if power[key] is None else power[key] + st
        if statistic == "power":
            continue
        try:
            pair = estimate_pair(ref.astype(np.float64), dev.astype(np.float64), sample_rate, n_fft=n_fft,
                                 hop_length=n_fft // 4, alignment=Alignment(0.0, 0.0, sample_rate))
        except MeasurementError:
            continue  # a silent piece
        stats = pair.responses["device"].stats
        sums += stats.sum_db
        counts += stats.bin_counts if stats.bin_counts is not None else stats.n_frames
    if statistic == "power" and power["ref"] is not None:
        gain = power["ref"].power_db - power["dev"].power_db
    elif statistic == "log" and counts.any():
        gain = -sums / np.maximum(counts, 1)
    else:
        raise MeasurementError("no piece of the overlap where both recordings carry the sound")
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    ref_power = power["ref"]
    spans = excerpt_spans(a, b, sample_rate)
    bands = [band_and_snr([s.read(lo, hi).mean(axis=0).astype(np.float64) for lo, hi in spans], sample_rate)[0]
             for s in (dev_store, ref_store)]
    if any(x is None for x in bands) or min(x[1] for x in bands) <= max(x[0] for x in bands):
        band = (float(freqs[1]), float(freqs[-1]))
    else:
        band = (max(x[0] for x in bands), min(x[1] for x in bands))
    return gain - sound_level(gain, freqs, band, ref_power.power_db), band


def sound_level(gain: np.ndarray, freqs: np.ndarray, band: tuple[float, float], ref_power_db: np.ndarray) -> float:
    """The level of ``gain`` where the sound is: its median over the bins of ``band`` where the reference's
    long-term power lies within :data:`SOUND_RANGE_DB` of its loudest bin there.

    Over all the band's bins, its top octaves would set the level whatever they hold. For speech (its sound
    below 4 kHz) recorded at 44.1 kHz they hold only noise floors (about 40 dB below the speech's loudest bin),
    and their difference then became the curve's level: a simulated phone's curve was shifted by 21 dB and its
    shape cut off by the correction's cut limit. A source with power everywhere in the band keeps the plain median.
    """
    inside = (freqs >= band[0]) & (freqs <= band[1])
    if not inside.any():
        return float(np.median(gain))
    sound = inside & (ref_power_db >= np.max(ref_power_db[inside]) - SOUND_RANGE_DB)
    return float(np.median(gain[sound]))


def corrections(kept, ref, names, stores, covered, links, rates, sample_rate, *, strength, smoothing_octaves,
                max_boost_db, max_cut_db, band_hz, consensus=False, statistic="power", progress=None):
    """Each kept device's route to the reference and its correction (sum of the link curves along the route);
    with ``consensus``, every device's (the reference's too) towards the mean of all responses."""
    n_fft = analysis_n_fft(sample_rate, int(eventsync.MIN_OVERLAP_S * sample_rate))
    curves, routes, totals, bands, notes = {}, {}, {}, {}, []
    for i, k in enumerate(kept):
        chain = eventsync.route(links, ref, k)
        routes[k] = chain
        total = np.zeros(n_fft // 2 + 1)
        lo, hi = 0.0, sample_rate / 2.0
        for u, v in zip(chain[:-1], chain[1:]):
            if (u, v) not in curves:
                a, b = max(covered[u][0], covered[v][0]), min(covered[u][1], covered[v][1])
                curves[(u, v)] = link_curve(stores[u], stores[v], a, b, sample_rate, n_fft, statistic)
            curve, band = curves[(u, v)]
            total += curve
            lo, hi = max(lo, band[0]), min(hi, band[1])
        totals[k], bands[k] = total, (lo, hi)
        if progress is not None:
            progress((i + 1) / len(kept))
    if consensus:
        target = np.mean([totals[k] for k in kept], axis=0)
        totals = {k: t - target for k, t in totals.items()}
        bands[ref] = (max(b[0] for b in bands.values()), min(b[1] for b in bands.values()))
    out = {}
    for k in kept:
        chain, total = routes[k], totals[k]
        lo, hi = bands[k]
        band = band_hz
        if band is None:
            band = (lo, hi)
            if hi <= lo or np.log2(hi / max(lo, 1e-9)) < MIN_BAND_OCTAVES:
                band = (sample_rate / n_fft, sample_rate / 2.0)
                if k != ref or consensus:
                    notes.append(f"{names[k]}: no band of an octave stands above the noise floors along its route: "
                                 f"the whole band is corrected")
        recorded = min(rates[m] for m in (kept if consensus and k == ref else chain)) / 2.0
        out[k] = correction_from_levels(
            np.zeros_like(total), total, sample_rate, n_fft, device=names[k],
            reference="consensus" if consensus else names[ref], max_boost_db=max_boost_db, max_cut_db=max_cut_db,
            smoothing_octaves=smoothing_octaves, band_hz=(float(band[0]), float(band[1])), strength=strength,
            recorded_band_hz=recorded if recorded < sample_rate / 2.0 else None,
            settings={"statistic": statistic, "hop_length": n_fft // 4, "route": [names[m] for m in chain],
                      "target": "consensus" if consensus else "reference"})
    return routes, out, notes


# ----------------------------------------------------------------------------------------------------------------
# Loudness


class LoudnessMeter:
    """K-weighted energy of every 100 ms of a stem on the timeline (per channel), fed block by block."""

    def __init__(self, sample_rate: int, channels: int):
        import pyloudnorm as pyln
        import scipy.signal

        self.sample_rate, self.channels = sample_rate, channels
        self.step = int(round(0.1 * sample_rate))
        meter = pyln.Meter(int(sample_rate))
        self.stages = [(np.asarray(f.b, float) * f.passband_gain, np.asarray(f.a, float))
                       for f in meter._filters.values()]
        self.zi = [np.zeros((channels, max(len(a), len(b)) - 1)) for b, a in self.stages]
        self._lfilter = scipy.signal.lfilter
        self.weights = np.array([1.0, 1.0, 1.0, 1.41, 1.41])[:channels] if channels <= 5 else np.ones(channels)
        self.energies: list[np.ndarray] = []
        self.tail = np.zeros((channels, 0))

    def add(self, block: np.ndarray) -> None:
        y = np.asarray(block, dtype=np.float64)
        for s, (b, a) in enumerate(self.stages):
            y, self.zi[s] = self._lfilter(b, a, y, axis=-1, zi=self.zi[s])
        y = np.concatenate([self.tail, y * y], axis=-1)
        whole = y.shape[-1] // self.step * self.step
        if whole:
            self.energies.append(y[:, :whole].reshape(self.channels, -1, self.step).sum(axis=-1))
        self.tail = y[:, whole:]

    def steps(self) -> np.ndarray:
        """``(channels, n_steps)`` summed squares of the K-weighted stem per 100 ms step."""
        return np.concatenate(self.energies, axis=-1) if self.energies else np.zeros((self.channels, 0))


def gated_loudness(steps: np.ndarray, weights: np.ndarray, step: int, a: int, b: int) -> float | None:
    """BS.1770-4 integrated loudness (LUFS) of timeline samples ``a .. b`` from per-100 ms energies: 400 ms blocks
    every 100 ms on the step grid inside the stretch, absolute gate -70 LUFS, relative gate -10 LU. None when
    shorter than one block or silent."""
    s0, s1 = -(-a // step), min(b // step, steps.shape[-1])
    if s1 - s0 < 4:
        return None
    e = steps[:, s0:s1]
    c = np.cumsum(np.concatenate([np.zeros((e.shape[0], 1)), e], axis=-1), axis=-1)
    z = (c[:, 4:] - c[:, :-4]) / (4 * step)
    return gated_mean_loudness((weights[:, None] * z).sum(axis=0))


def loudness_gains(kept, ref, names, meters, covered, routes, level_mode) -> tuple[dict, list]:
    """Gain (dB) per stem: each as loud as the next device of its route over their overlap; then all moved so the
    reference stem has the wanted loudness (``match``: the reference's own; ``keep``: no change)."""
    gains, notes = {ref: 0.0}, []
    if level_mode == "keep":
        return {k: 0.0 for k in kept}, notes

    def loud(k, a, b):
        m = meters[k]
        return gated_loudness(m.steps(), m.weights, m.step, a, b)

    for k in sorted(kept, key=lambda m: len(routes[m])):
        if k == ref:
            continue
        v = routes[k][1]
        a, b = max(covered[k][0], covered[v][0]), min(covered[k][1], covered[v][1])
        lk, lv = loud(k, a, b), loud(v, a, b)
        if lk is None or lv is None:
            notes.append(f"{names[k]}: its overlap with {names[v]} is too short or too quiet to measure loudness; "
                         f"its level is left as it is")
            gains[k] = gains[v]
        else:
            gains[k] = gains[v] + lv - lk
    if isinstance(level_mode, float):
        lr = loud(ref, *covered[ref])
        if lr is None:
            notes.append(f"{names[ref]}: too short or quiet to measure its loudness; levels left relative to it")
        else:
            gains = {k: g + level_mode - lr for k, g in gains.items()}
    return gains, notes


__all__ = ["LoudnessMeter", "band_and_snr", "choose_reference", "corrections", "gated_loudness", "link_curve",
           "loudness_gains", "pieces"]

"""Spectrum correction fitted per device (registry entry ``sc``): each device's correction curve towards a reference.

A :class:`SpectrumCorrection` holds one regularised correction curve (:class:`micmatch.correct.Correction`, on
the linear FFT grid) per device. It is fitted on recordings labelled by device (:meth:`SpectrumCorrection.fit`:
the unaligned response estimate of every device, then the curve from each device to the reference) or built
from measured responses (:meth:`SpectrumCorrection.from_responses`). It applies either to waveforms (STFT gain,
:meth:`~SpectrumCorrection.correct`; what the device-mismatch benchmark does) or to log-mel features as one dB
value per mel band (:meth:`~SpectrumCorrection.band_db`, :meth:`~SpectrumCorrection.transform`; what
``micmatch features`` does). The reference device, and any device without a curve of its own, is left as it is.

Noise floors. The plain unaligned estimate counts every frame within 30 dB of a recording's loudest. On a device
whose noise floor lies closer than that (a phone in a quiet room, a clip recorded at a low level or after a
compressor), the pauses then count too: they hold only the floor, and the estimate takes the device for several
dB quieter than it is (benchmarks/results/sc_noise.md: 5-7 dB RMS of band error on the mismatch benchmark's
noisier chained devices, against 2-3 dB without their floor). :meth:`SpectrumCorrection.fit` therefore finds each
device's floor (:func:`floor_gates_db`), counts only its frames ``floor_margin_db`` above it, and counts the
reference's recordings with gates matched by loudness rank (:func:`floor_gated_responses`), so both estimates
cover the same share of comparable recordings. A device without such a floor keeps the plain estimate exactly.

Boosts into noise. Where a device holds only its floor (above its low-pass corner, or in bands an automatic gain
control fills with raised noise), the curve towards a clean reference asks for a boost that raises only noise.
Each device's boost is therefore limited per bin to how far its long-term level stands above its floor there,
less :data:`BOOST_SNR_MARGIN_DB` (:func:`boost_limits_db`); a device without a floor keeps its curve exactly.
Where the signal does stand above the floor, a boost still raises the floor with it, into the pauses, where a
classifier trained on clean recordings never heard noise: by default a device with a floor therefore gets cuts
only (``floor_boost_db=0``). On the mismatch benchmark's generalize track (chained devices, 16 calibration clips)
boosts limited by the signal-to-floor ratio scored 82.5% on data seed 3 against the baseline's 90.3%, cuts only
89.2%; on data seed 1, 88.6% and 89.1% against 86.2% (``benchmarks/mismatch_generalize/README.md``).

Level. With cuts only, a curve that carries the level difference does nothing for a device quieter than the
reference: every bin asks for a boost and is clamped to 0 dB (on generalize data seed 3, four of six unseen
devices within 0.1 dB of flat). ``level="auto"``, the default, takes a noisy device's level out of its curve where
matching it would raise it, and keeps it where it lowers it; the tone's cuts apply either way. Side by side on one
machine (``benchmarks/sc_levels/``, 12 runs over both tracks): +2.9 points over the baseline on average against
+1.0 with the level matched, below it on one data seed of six (by 1.2) against three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from micmatch.errors import FeatureError, UnknownDeviceError
from micmatch.feature_stats import BandStats, PerDeviceStandardizer, config_json
from micmatch.logmel import LogMelConfig
from micmatch.normalizations import curve_band_db
from micmatch.spectral import DEFAULT_FLOOR_DB, DEFAULT_GATE_DB, DEFAULT_RELATIVE_GATE_DB, analysis_window, frame_view

#: How far (dB) above a device's noise floor a frame must lie to enter its estimate (:func:`floor_gate_db`).
FLOOR_MARGIN_DB = 15.0
#: The narrowest relative gate (dB) a noise floor can impose: frames within it of each recording's peak count.
MIN_RELATIVE_GATE_DB = 6.0
#: Percentile of all frame levels of a device taken as its noise floor (pauses and padding hold only the floor).
FLOOR_PERCENTILE = 10.0


#: A boost may lift a bin only this far (dB) below the device's signal-to-floor ratio there (:func:`boost_limits_db`).
BOOST_SNR_MARGIN_DB = 6.0

#: Largest boost (dB) a device with a noise floor gets (``floor_boost_db=`` of :meth:`SpectrumCorrection.fit`).
FLOOR_BOOST_DB = 0.0

#: What a curve does to its device's overall level (``level=`` of :meth:`SpectrumCorrection.fit`): ``"match"``
#: brings it to the reference's; ``"keep"`` corrects tone only (:func:`level_kept_db`); ``"auto"`` never raises the
#: level of a device with a noise floor (one :func:`boost_limits_db` finds), only lowers it, and matches the others'.
LEVELS = ("match", "keep", "auto")


def _power_frames(waves: Sequence[np.ndarray], *, n_fft: int, hop_length: int) -> np.ndarray | None:
    """Power of every frame of a device's recordings, ``(n_bins, n_frames)`` (None when none is ``n_fft`` long)."""
    from micmatch.spectral import log_power_frames

    frames = [log_power_frames(np.asarray(w, dtype=np.float64).reshape(-1), n_fft=n_fft, hop_length=hop_length)
              for w in waves if np.size(w) >= n_fft]
    if not frames:
        return None
    return 10.0 ** (np.concatenate(frames, axis=-1) / 10.0)


def long_term_power(waves: Sequence[np.ndarray], *, n_fft: int, hop_length: int) -> np.ndarray | None:
    """Mean power per bin over every frame of a device's recordings (None when none is ``n_fft`` long)."""
    power = _power_frames(waves, n_fft=n_fft, hop_length=hop_length)
    return None if power is None else np.mean(power, axis=-1)


def _pauses_below_peaks(levels: Sequence[np.ndarray], floor_db: float, margin_db: float) -> bool:
    """Whether a device's floor (``floor_db``) lies far enough below its typical recording's loudest frame to be a
    floor: ``margin_db`` + :data:`MIN_RELATIVE_GATE_DB` (a steady signal without pauses has no frames that far
    down; its quietest frames are signal)."""
    return float(np.median([v.max() for v in levels])) - floor_db >= float(margin_db) + MIN_RELATIVE_GATE_DB


def level_kept_db(gain_db: np.ndarray, power: np.ndarray, *, range_db: float = 40.0,
                  limit_db: np.ndarray | None = None) -> np.ndarray:
    """``gain_db`` shifted by one constant so that its mean over the bins where the device records sound is 0 dB:
    the curve's tone without its level. Those bins lie within ``range_db`` of the device's strongest long-term
    power bin (``power``) and, where a boost limit is given (:func:`boost_limits_db`), above its noise floor. A
    mean of dB, not of power: a power-weighted level follows the few strongest bins (low voice harmonics), and
    keeping it cut the bands above them by 5-10 dB on the mismatch benchmark's chained devices."""
    gain = np.asarray(gain_db, dtype=np.float64)
    level = 10.0 * np.log10(np.maximum(np.asarray(power, dtype=np.float64), 1e-30))
    sound = level >= level.max() - float(range_db)
    if limit_db is not None:
        sound &= np.asarray(limit_db) > 0.0
    if not np.any(sound):
        return gain
    return gain - float(np.mean(gain[sound]))


def boost_limits_db(waves: Sequence[np.ndarray], *, n_fft: int, hop_length: int,
                    margin_db: float = BOOST_SNR_MARGIN_DB) -> np.ndarray | None:
    """Largest boost (dB per bin, at least 0) worth giving a device: its long-term power over its floor less
    ``margin_db``. The floor is each bin's mean power over the device's quietest frames (the
    :data:`FLOOR_PERCENTILE` % of lowest broadband level: pauses and padding); a mean, since a percentile of one
    bin's frames would put even pure noise 10 dB below its own mean. None when the device shows no floor: its
    quiet frames are digital silence, or they lie less than :data:`FLOOR_MARGIN_DB` + :data:`MIN_RELATIVE_GATE_DB`
    below the typical recording's loudest frame (no pauses: a steady signal, whose quietest frames are signal;
    the test :func:`floor_gates_db` applies)."""
    waves = [w for w in waves if np.size(w) >= n_fft]
    if not waves:
        return None
    levels = [frame_levels_db(w, n_fft=n_fft, hop_length=hop_length) for w in waves]
    if not _pauses_below_peaks(levels, float(np.percentile(np.concatenate(levels), FLOOR_PERCENTILE)),
                               FLOOR_MARGIN_DB):
        return None
    power = _power_frames(waves, n_fft=n_fft, hop_length=hop_length)
    level = np.mean(power, axis=0)
    quiet = level <= np.percentile(level, FLOOR_PERCENTILE)
    floor = 10.0 * np.log10(np.maximum(np.mean(power[:, quiet], axis=-1), 1e-30))
    if np.median(floor) < DEFAULT_FLOOR_DB + 20.0:  # digital silence in the pauses: no floor to keep out
        return None
    mean = 10.0 * np.log10(np.maximum(np.mean(power, axis=-1), 1e-30))
    return np.maximum(mean - floor - margin_db, 0.0)


def frame_levels_db(wave: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Level of every Hann-windowed frame of one recording (dB re full scale, as the estimate's gates read it;
    digital silence reads -160)."""
    x = np.asarray(wave, dtype=np.float64).reshape(-1)
    if x.size < n_fft:
        return np.zeros(0)
    w = analysis_window(n_fft, dtype=np.float64)
    power = np.sum((frame_view(x, n_fft, hop_length) * w) ** 2, axis=-1) / np.sum(w * w)
    return 10.0 * np.log10(np.maximum(power, 1e-16))


def floor_gates_db(waves: Sequence[np.ndarray], *, n_fft: int, hop_length: int,
                   margin_db: float = FLOOR_MARGIN_DB) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-recording relative gates (dB below each recording's loudest frame) that keep a device's noise floor
    out of its response estimate, and each recording's loudest frame level; None where no floor reaches into the
    plain estimate's window.

    The floor is the :data:`FLOOR_PERCENTILE` th percentile of the levels of all the device's frames (pauses and
    padding hold only the floor). A recording's frames count down to ``margin_db`` above it: its gate is (loudest
    frame - floor - margin), within [:data:`MIN_RELATIVE_GATE_DB`,
    :data:`~micmatch.spectral.DEFAULT_RELATIVE_GATE_DB`]. A floor below the absolute silence gate (digital
    silence, a noise-free device), one that leaves every gate at the default, or quietest frames less than
    ``margin_db + MIN_RELATIVE_GATE_DB`` below the typical recording's loudest (no pauses: a steady signal, whose
    quietest frames are signal, not a floor) gives None.
    """
    levels = [frame_levels_db(w, n_fft=n_fft, hop_length=hop_length) for w in waves]
    if not all(v.size for v in levels):
        return None
    floor = float(np.percentile(np.concatenate(levels), FLOOR_PERCENTILE))
    peaks = np.array([v.max() for v in levels])
    gates = np.clip(peaks - floor - float(margin_db), MIN_RELATIVE_GATE_DB, DEFAULT_RELATIVE_GATE_DB)
    if floor < DEFAULT_GATE_DB or not _pauses_below_peaks(levels, floor, margin_db) or np.all(gates >= DEFAULT_RELATIVE_GATE_DB):
        return None
    return np.floor(gates * 2.0) / 2.0, peaks


def matched_gates(gates: np.ndarray, peaks: np.ndarray, other_peaks: np.ndarray) -> np.ndarray:
    """Gates for another device's recordings, matched by loudness rank: a recording whose loudest frame lies at
    quantile u among its device's gets the gate at quantile u among ``gates`` (ordered by ``peaks``), so both
    devices count the same share of comparable recordings."""
    order = np.argsort(peaks, kind="stable")
    u = (np.argsort(np.argsort(other_peaks, kind="stable"), kind="stable") + 0.5) / len(other_peaks)
    return np.interp(u, (np.arange(len(gates)) + 0.5) / len(gates), gates[order])


def _gated_stats(waves: Sequence[np.ndarray], gates: np.ndarray, config):
    from micmatch.estimate import array_stats
    from micmatch.response import LogSpectrumStats

    total = LogSpectrumStats.empty(config.n_bins)
    for w, g in zip(waves, gates):
        total = total + array_stats(np.asarray(w), replace(config, relative_gate_db=float(g)))
    return total


def floor_gated_responses(device: str, waves: Sequence[np.ndarray], reference: str,
                          reference_waves: Sequence[np.ndarray], sample_rate: int, *, n_fft: int, hop_length: int,
                          margin_db: float = FLOOR_MARGIN_DB):
    """The responses of ``device`` and ``reference`` estimated on frames above the device's noise floor
    (:func:`floor_gates_db`; the reference's recordings with gates matched by loudness rank,
    :func:`matched_gates`), or None where the device has no floor to keep out."""
    from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig

    found = floor_gates_db(waves, n_fft=n_fft, hop_length=hop_length, margin_db=margin_db)
    if found is None:
        return None
    gates, peaks = found
    ref_peaks = np.array([frame_levels_db(w, n_fft=n_fft, hop_length=hop_length).max() for w in reference_waves])
    ref_gates = matched_gates(gates, peaks, ref_peaks)
    config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, channels="mix")
    out = ResponseSet(config)
    out.add(DeviceResponse.from_stats(device, _gated_stats(waves, gates, config)))
    out.add(DeviceResponse.from_stats(reference, _gated_stats(reference_waves, ref_gates, config)))
    out.gates = (gates, ref_gates)
    return out


class SpectrumCorrection:
    """Correction curves of several devices towards one reference device.

    Parameters
    ----------
    corrections : mapping of str to Correction
        Device name -> its curve towards ``reference`` (anything with ``gain_db``, ``sample_rate``, ``n_fft``).
    reference : str
        The device the others are corrected to; it needs no curve.
    """

    def __init__(self, corrections: Mapping[str, object], *, reference: str) -> None:
        self.corrections = dict(corrections)
        self.reference = str(reference)
        #: Device -> the median of the narrower relative gates (dB) its curve was estimated with, for devices whose noise floor
        #: reached into the default window (set by :meth:`fit`).
        self.relative_gates: dict[str, float] = {}

    @classmethod
    def fit(cls, waves: Sequence[np.ndarray], devices: Sequence[str], sample_rate: int, *, reference: str,
            n_fft: int = 2048, max_boost_db: float = 20.0, max_cut_db: float = 30.0,
            floor_margin_db: float | None = FLOOR_MARGIN_DB,
            boost_margin_db: float | None = BOOST_SNR_MARGIN_DB, floor_boost_db: float | None = FLOOR_BOOST_DB,
            level: str = "auto") -> SpectrumCorrection:
        """Estimate every device's response from its recordings (unaligned, hop ``n_fft // 4``) and the curve
        from each device other than ``reference`` to it.

        Frames count as in :func:`micmatch.estimate.estimate_responses` (within 30 dB of each recording's loudest
        frame), except where a device's noise floor reaches into that window: then only frames 15 dB
        (``floor_margin_db``) above that floor count for the device, and the reference's recordings are gated to
        match (:func:`floor_gated_responses`), so that neither estimate takes the floor for the response.

        Parameters
        ----------
        waves : sequence of np.ndarray [shape=(n_samples,)]
            Recordings, one per device label.
        devices : sequence of str
            The device of each recording; ``reference`` must be among them.
        max_boost_db, max_cut_db : float
            Clamp of each curve (dB).
        floor_margin_db : float or None
            How far above a device's noise floor a frame must lie to count (dB); None keeps the plain estimate
            for every device (the behaviour before noise floors were handled).
        boost_margin_db : float or None
            Boosts are limited per bin to the device's signal-to-floor ratio less this (:func:`boost_limits_db`);
            None leaves them to ``max_boost_db`` alone.
        floor_boost_db : float or None
            Largest boost of a device with a noise floor (one :func:`boost_limits_db` finds), over the whole band:
            0 (the default) gives such devices cuts only; None leaves them the signal-to-floor limit alone. The
            floor is looked for only while ``boost_margin_db`` is set: with it None, neither limit applies.
        level : {"match", "keep", "auto"}
            ``"match"`` brings each device to the reference's level; ``"keep"`` shifts each curve so that its mean
            over the bins where the device records sound above its floor is 0 dB (:func:`level_kept_db`), then
            applies the boost limits, so a device with cuts only keeps the cuts of its tone; ``"auto"`` (the
            default) brings a device with a noise floor down to the reference's level where it is louder and keeps
            its level where it is quieter (raising it would raise the floor too), so with the default
            ``floor_boost_db`` such a device gets its level's cut and its tone's cuts; it matches the level of the
            others (a noise-free device gets the same curve as with ``"match"``). From
            unpaired recordings the level difference includes how loud their content is: on 16 spoken-digit clips
            against a reference's training clips that alone was -5.8 to +6.2 dB (the mismatch benchmark's
            calibration sets, data seeds 1-3), so with few recordings per device ``"keep"`` is the safer choice.
        """
        from micmatch.correct import correction_curve
        from micmatch.estimate import estimate_responses

        if level not in LEVELS:
            raise FeatureError(f"level={level!r} is not one of {', '.join(LEVELS)}")
        devices = [str(d) for d in devices]
        if len(devices) != len(waves):
            raise FeatureError(f"got {len(waves)} recordings but {len(devices)} device labels; give one per item")
        if reference not in devices:
            raise UnknownDeviceError(f"reference={reference!r} has no recordings among devices "
                                     f"{', '.join(sorted(set(devices)))}")
        sources: dict[str, list[np.ndarray]] = {}
        for w, d in zip(waves, devices):
            sources.setdefault(d, []).append(w)
        hop = n_fft // 4
        responses = estimate_responses(sources, sample_rate, n_fft=n_fft, hop_length=hop)
        curves, gated = {}, {}
        for d in sources:
            if d == reference:
                continue
            pair = None if floor_margin_db is None else floor_gated_responses(
                d, sources[d], reference, sources[reference], sample_rate, n_fft=n_fft, hop_length=hop,
                margin_db=floor_margin_db)
            if pair is not None:
                gated[d] = float(np.median(pair.gates[0]))
            curves[d] = correction_curve(responses if pair is None else pair, d, reference,
                                         max_boost_db=max_boost_db, max_cut_db=max_cut_db)
            above_floor = None if boost_margin_db is None else boost_limits_db(
                sources[d], n_fft=n_fft, hop_length=hop, margin_db=boost_margin_db)
            limit = above_floor
            if limit is not None and floor_boost_db is not None:
                limit = np.minimum(limit, float(floor_boost_db))
            gain = curves[d].gain_db
            keep = level == "keep" or (level == "auto" and above_floor is not None)
            power = long_term_power(sources[d], n_fft=n_fft, hop_length=hop) if keep else None
            if power is not None:
                # The tone before the limit: a device quieter than the reference with cuts only would otherwise
                # have every bin clamped to 0 dB before its level is taken out, and keep no tone at all.
                tone = level_kept_db(gain, power, limit_db=above_floor)
                if level == "auto":  # a level cut stays (it lowers the floor too); a level boost goes
                    tone = tone + min(float(np.mean(gain - tone)), 0.0)
                gain = np.clip(tone, -max_cut_db, max_boost_db)
            if limit is not None:
                gain = np.minimum(gain, limit)
            curves[d] = replace(curves[d], gain_db=gain)
        out = cls(curves, reference=reference)
        out.relative_gates = gated
        return out

    @classmethod
    def from_responses(cls, responses, *, reference: str, devices: Sequence[str],
                       **curve_options) -> SpectrumCorrection:
        """Curves of ``devices`` towards ``reference`` from measured responses
        (:class:`~micmatch.response.ResponseSet`); ``curve_options`` go to
        :func:`micmatch.correct.correction_curve`."""
        from micmatch.correct import correction_curve

        return cls({d: correction_curve(responses, d, reference, **curve_options) for d in devices},
                   reference=reference)

    @property
    def devices(self) -> list[str]:
        """Devices this correction knows: those with a curve, and the reference."""
        return sorted({*self.corrections, self.reference})

    def _check(self, device: str) -> None:
        if device not in self.corrections and device != self.reference:
            raise UnknownDeviceError(f"device {device!r} has no correction; known devices: "
                                     f"{', '.join(self.devices)}")

    def band_db(self, device: str, *, config: LogMelConfig) -> np.ndarray:
        """The band dB vector ``(n_mels,)`` that corrects log-mel features of ``device`` (zeros without a curve)."""
        self._check(device)
        if device not in self.corrections:
            return np.zeros(config.n_mels)
        c = self.corrections[device]
        return curve_band_db(c.gain_db, c.sample_rate, c.n_fft, config=config)

    def correct(self, waves: np.ndarray, devices: Sequence[int | str], sample_rate: int, *,
                names: Sequence[str] | None = None) -> np.ndarray:
        """Waveforms ``(n, n_samples)`` corrected by STFT gain, each with its device's curve (a new array).

        ``devices`` gives each row's device, by name or as an index into ``names``.
        """
        from micmatch.correct import apply_correction

        labels = np.asarray([names[int(d)] if names is not None else str(d) for d in devices])
        out = np.array(waves, copy=True)
        for d in dict.fromkeys(labels.tolist()):
            self._check(d)
            if d in self.corrections:
                rows = np.flatnonzero(labels == d)
                out[rows] = apply_correction(waves[rows], sample_rate, self.corrections[d], method="stft")
        return out

    def standardizer(self, *, config: LogMelConfig) -> PerDeviceStandardizer:
        """The band dB vectors as a per-device standardization without scaling (mean ``-band_db``), so features
        are corrected by :class:`~micmatch.feature_stats.PerDeviceStandardizer` and its torch twin."""
        out = PerDeviceStandardizer(scale=False)
        for d in self.devices:
            b = self.band_db(d, config=config)
            out.stats[d] = BandStats(-b, b * b, 1)
        out.config = config_json(config)
        return out

    def transform(self, features, devices: Sequence[str], *, config: LogMelConfig):
        """Log-mel features ``(n, n_mels, n_frames)`` (or a list) plus each item's device band dB vector."""
        return self.standardizer(config=config).transform(features, devices, config=config)


__all__ = ["BOOST_SNR_MARGIN_DB", "FLOOR_BOOST_DB", "FLOOR_MARGIN_DB", "LEVELS", "MIN_RELATIVE_GATE_DB", "SpectrumCorrection",
           "boost_limits_db", "floor_gated_responses", "floor_gates_db", "frame_levels_db", "level_kept_db",
           "long_term_power", "matched_gates"]

"""Spectrum correction fitted per device (registry entry ``sc``): each device's correction curve towards a reference.

A :class:`SpectrumCorrection` holds one regularised correction curve (:class:`micmatch.correct.Correction`, on
the linear FFT grid) per device. It is fitted on recordings labelled by device (:meth:`SpectrumCorrection.fit`:
the unaligned response estimate of every device, then the curve from each device to the reference) or built
from measured responses (:meth:`SpectrumCorrection.from_responses`). It applies either to waveforms (STFT gain,
:meth:`~SpectrumCorrection.correct`; what the device-mismatch benchmark does) or to log-mel features as one dB
value per mel band (:meth:`~SpectrumCorrection.band_db`, :meth:`~SpectrumCorrection.transform`; what
``micmatch features`` does). The reference device, and any device without a curve of its own, is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from micmatch.errors import FeatureError, UnknownDeviceError
from micmatch.feature_stats import BandStats, PerDeviceStandardizer, config_json
from micmatch.logmel import LogMelConfig
from micmatch.normalizations import curve_band_db


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

    @classmethod
    def fit(cls, waves: Sequence[np.ndarray], devices: Sequence[str], sample_rate: int, *, reference: str,
            n_fft: int = 2048, max_boost_db: float = 20.0, max_cut_db: float = 30.0) -> SpectrumCorrection:
        """Estimate every device's response from its recordings (unaligned, hop ``n_fft // 4``) and the curve
        from each device other than ``reference`` to it.

        Parameters
        ----------
        waves : sequence of np.ndarray [shape=(n_samples,)]
            Recordings, one per device label.
        devices : sequence of str
            The device of each recording; ``reference`` must be among them.
        max_boost_db, max_cut_db : float
            Clamp of each curve (dB).
        """
        from micmatch.correct import correction_curve
        from micmatch.estimate import estimate_responses

        devices = [str(d) for d in devices]
        if len(devices) != len(waves):
            raise FeatureError(f"got {len(waves)} recordings but {len(devices)} device labels; give one per item")
        if reference not in devices:
            raise UnknownDeviceError(f"reference={reference!r} has no recordings among devices "
                                     f"{', '.join(sorted(set(devices)))}")
        sources: dict[str, list[np.ndarray]] = {}
        for w, d in zip(waves, devices):
            sources.setdefault(d, []).append(w)
        responses = estimate_responses(sources, sample_rate, n_fft=n_fft, hop_length=n_fft // 4)
        curves = {d: correction_curve(responses, d, reference, max_boost_db=max_boost_db, max_cut_db=max_cut_db)
                  for d in sources if d != reference}
        return cls(curves, reference=reference)

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


__all__ = ["SpectrumCorrection"]

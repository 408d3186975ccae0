"""What micmatch can estimate of a device from a few unlabeled clips of it: band shift, level and noise floor.

A device known only by unlabeled recordings (no recorded impulse response) is described against a reference
device's clips, per mel band:

* **band response**: the unaligned estimate of spectrum correction, as ``profile`` makes it (floor-gated,
  :meth:`micmatch.spectrum_correction.SpectrumCorrection.fit`), clamps widened to +-``RESPONSE_CLAMP_DB`` and
  without the limits a correction curve puts on boosts into a noise floor (an estimate must show the
  attenuation that a correction declines to undo);
* **level**: shifted so that the loudest frames (``LOUD_PERCENTILE`` of frame energy) of the shifted reference
  clips match the device's loudest frames, which is what its gain control and recording level set;
* **noise floor**: the ``FLOOR_PERCENTILE`` per band over all the device's frames (its quietest frames: pauses
  and padding, where only the floor is left).

``shift_db`` (band response plus level) and ``floor_db`` condition the device converter in the adaptation track
and drive the simple known-device augmentation (``known-aug``) of the mismatch benchmark.
"""

from __future__ import annotations

import numpy as np

#: Percentile of frame energy that stands for a device's loudest frames (its level).
LOUD_PERCENTILE = 95.0
#: Percentile per band over all frames that stands for a device's noise floor.
FLOOR_PERCENTILE = 10.0
#: Clamp (dB) of the band response estimate, wider than correction's: a band limit is a deep cut.
RESPONSE_CLAMP_DB = 60.0
#: Reference clips at most used for the estimates (enough for a percentile).
MAX_REFERENCE_CLIPS = 400


def energy_db(features_db: np.ndarray) -> np.ndarray:
    """Broadband energy (dB) of every frame of log-mel features ``(n, n_mels, n_frames)``."""
    return 10.0 * np.log10(np.sum(10.0 ** (np.asarray(features_db, dtype=np.float64) / 10.0), axis=1) + 1e-20)


def noise_floor_db(features_db: np.ndarray) -> np.ndarray:
    """Noise floor per band (dB): the ``FLOOR_PERCENTILE`` of every frame of features ``(n, n_mels, n_frames)``."""
    x = np.asarray(features_db, dtype=np.float64)
    return np.percentile(x.transpose(1, 0, 2).reshape(x.shape[1], -1), FLOOR_PERCENTILE, axis=1)


def estimate_devices(reference_waves: np.ndarray, device_waves: dict[str, np.ndarray], sample_rate: int, *,
                     config, n_fft: int = 256, reference: str = "reference") -> dict[str, dict[str, np.ndarray]]:
    """Band shift and noise floor (dB per mel band) of each device of ``device_waves`` against the reference.

    Parameters
    ----------
    reference_waves : np.ndarray [shape=(n, n_samples)]
        Clips of the reference device (at most ``MAX_REFERENCE_CLIPS`` are used).
    device_waves : dict of str to np.ndarray [shape=(m, n_samples)]
        Unlabeled clips of each device.
    config : LogMelConfig
        The mel bands of the estimates.
    n_fft : int
        FFT size of the spectrum-correction estimate.

    Returns
    -------
    dict
        Name -> ``{"shift_db": (n_mels,), "floor_db": (n_mels,)}`` for every device and for ``reference``
        (shift zero, its own floor).
    """
    from micmatch.logmel import log_mel
    from micmatch.spectrum_correction import SpectrumCorrection

    ref_waves = np.asarray(reference_waves)[:MAX_REFERENCE_CLIPS]
    ref_feat = log_mel(ref_waves, sample_rate, config=config)
    out = {reference: {"shift_db": np.zeros(config.n_mels), "floor_db": noise_floor_db(ref_feat)}}
    for name, waves in device_waves.items():
        sc = SpectrumCorrection.fit(list(ref_waves) + list(waves), [reference] * len(ref_waves) + [name] * len(waves),
                                    sample_rate, reference=reference, n_fft=n_fft, max_boost_db=RESPONSE_CLAMP_DB,
                                    max_cut_db=RESPONSE_CLAMP_DB, boost_margin_db=None, floor_boost_db=None,
                                    level="match")
        response = -sc.band_db(name, config=config)
        feat = log_mel(np.asarray(waves), sample_rate, config=config)
        loud_dev = np.percentile(energy_db(feat), LOUD_PERCENTILE)
        loud_ref = np.percentile(energy_db(ref_feat + response[:, None]), LOUD_PERCENTILE)
        out[name] = {"shift_db": response + (loud_dev - loud_ref), "floor_db": noise_floor_db(feat)}
    return out


__all__ = ["FLOOR_PERCENTILE", "LOUD_PERCENTILE", "MAX_REFERENCE_CLIPS", "RESPONSE_CLAMP_DB", "energy_db",
           "estimate_devices", "noise_floor_db"]

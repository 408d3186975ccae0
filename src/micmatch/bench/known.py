"""Recipe ``known-aug`` of the adaptation track: training features augmented towards each known device, as micmatch
estimates it from that device's unlabeled clips.

The simple baseline that any converter trained on the known devices must beat. For every unseen device of the
``adapt`` track (:mod:`micmatch.bench.data`), from its unlabeled adaptation clips and the reference's training
clips (:func:`estimate_known_devices`):

* **band response**: the unaligned estimate of spectrum correction, as ``profile`` makes it (floor-gated,
  :meth:`micmatch.spectrum_correction.SpectrumCorrection.fit`), in dB per mel band, clamps widened to +-60 dB;
* **level**: shifted so that the loudest frames (95th percentile of frame energy) of the shifted reference clips
  match the device's loudest frames, which is what its gain control and recording level set;
* **noise floor**: per band, the 10th percentile over all the device's frames (its quietest frames: pauses and
  padding, where only the floor is left).

During training, each reference-device item becomes, with probability ``p``, a known device's version:
``10 log10(10^((x + shift) / 10) + 10^(floor / 10) * texture)`` in log-mel dB, ``texture`` a Gamma(4) / 4
power fluctuation per band and frame (the floor is noise, not a constant). Only the reference's rows are
augmented, as with the device converter. In the ``generalize`` track the recipe is refused: it needs the known
devices' clips.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from micmatch.errors import CorpusError
from micmatch.learn.augmentations import Augmentation, numpy_generator

#: Percentile of frame energy that stands for a device's loudest frames (its level).
LOUD_PERCENTILE = 95.0
#: Percentile per band over all frames that stands for a device's noise floor.
FLOOR_PERCENTILE = 10.0
#: Clamp (dB) of the band response estimate, wider than correction's: a band limit is a deep cut.
RESPONSE_CLAMP_DB = 60.0
#: Shape of the Gamma distribution of the floor's power fluctuation (mean 1, standard deviation 1 / 2).
TEXTURE_SHAPE = 4
#: Reference clips at most used for the level (enough for a percentile).
MAX_REFERENCE_CLIPS = 400


def _energy_db(features_db: np.ndarray) -> np.ndarray:
    """Broadband energy (dB) of every frame of log-mel features ``(n, n_mels, n_frames)``."""
    return 10.0 * np.log10(np.sum(10.0 ** (features_db / 10.0), axis=1) + 1e-20)


def estimate_known_devices(data) -> dict[str, dict[str, np.ndarray]]:
    """Band shift and noise floor (dB per mel band) of every unseen device, from its adaptation clips.

    Returns
    -------
    dict
        Device name -> ``{"shift_db": (n_mels,), "floor_db": (n_mels,)}`` (module docstring).
    """
    from micmatch.logmel import log_mel
    from micmatch.spectrum_correction import SpectrumCorrection

    if data.config.track != "adapt":
        raise CorpusError("recipe known-aug augments towards the devices known by their unlabeled clips: run it with "
                          "--track adapt")
    cfg = data.config.logmel(data.sample_rate)
    names = data.plan.names
    ref_index = names.index(data.plan.reference.name)
    ref_waves = data.train_set(False)[data.assign == ref_index]
    ref_feat = log_mel(ref_waves[:MAX_REFERENCE_CLIPS], data.sample_rate, config=cfg)
    out = {}
    for i, dev in enumerate(data.plan.devices):
        if dev.role != "unseen":
            continue
        waves = data.calibration_set(i)
        sc = SpectrumCorrection.fit(list(ref_waves) + list(waves), [names[ref_index]] * len(ref_waves)
                                    + [dev.name] * len(waves), data.sample_rate, reference=names[ref_index],
                                    n_fft=data.config.sc_n_fft, max_boost_db=RESPONSE_CLAMP_DB,
                                    max_cut_db=RESPONSE_CLAMP_DB)
        response = -sc.band_db(dev.name, config=cfg)
        feat = log_mel(waves, data.sample_rate, config=cfg)
        loud_dev = np.percentile(_energy_db(feat), LOUD_PERCENTILE)
        loud_ref = np.percentile(_energy_db(ref_feat + response[:, None]), LOUD_PERCENTILE)
        floor = np.percentile(feat.transpose(1, 0, 2).reshape(cfg.n_mels, -1), FLOOR_PERCENTILE, axis=1)
        out[dev.name] = {"shift_db": response + (loud_dev - loud_ref), "floor_db": floor}
    if not out:
        raise CorpusError("recipe known-aug needs unseen devices to augment towards; pass --unseen N")
    return out


class KnownDeviceAugment(Augmentation):
    """Log-mel features ``(batch, n_mels, n_frames)`` in dB as one of several known devices would record them.

    Parameters
    ----------
    devices : mapping of str to dict
        From :func:`estimate_known_devices`.
    p : float
        Probability that an item is converted.
    """

    def __init__(self, devices: Mapping[str, Mapping[str, np.ndarray]], *, p: float = 0.5) -> None:
        super().__init__()
        self.names = list(devices)
        self.p = float(p)
        self.register_buffer("shift_db", torch.as_tensor(np.stack([devices[n]["shift_db"] for n in self.names]),
                                                         dtype=torch.float32))
        self.register_buffer("floor_db", torch.as_tensor(np.stack([devices[n]["floor_db"] for n in self.names]),
                                                         dtype=torch.float32))

    def draw(self, batch_size: int, *, generator=None) -> dict:
        rng = numpy_generator(generator)
        return {"apply": (rng.random(batch_size) < self.p).tolist(),
                "device": rng.integers(0, len(self.names), size=batch_size).tolist(),
                "texture_seed": int(rng.integers(0, 2**62))}

    def apply_params(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:
        apply = torch.as_tensor(params["apply"], dtype=torch.bool, device=x.device)
        k = torch.as_tensor(params["device"], dtype=torch.long, device=x.device)
        g = torch.Generator().manual_seed(int(params["texture_seed"]))
        u = torch.rand((TEXTURE_SHAPE, *x.shape), generator=g).clamp_min(1e-12)
        texture = (-torch.log(u)).mean(dim=0).to(device=x.device, dtype=x.dtype)
        signal = 10.0 ** ((x + self.shift_db[k][:, :, None].to(x.dtype)) / 10.0)
        floor = 10.0 ** (self.floor_db[k][:, :, None].to(x.dtype) / 10.0)
        y = 10.0 * torch.log10(signal + floor * texture)
        return torch.where(apply[:, None, None], y, x)


def build_known_aug(data, arg) -> KnownDeviceAugment:
    """The step ``known-aug`` for the benchmark ``data`` (estimates cached on it: built once per run)."""
    cache = data._recorded
    if "known-aug" not in cache:
        cache["known-aug"] = estimate_known_devices(data)
    return KnownDeviceAugment(cache["known-aug"], p=data.config.aug_p)


__all__ = ["KnownDeviceAugment", "build_known_aug", "estimate_known_devices"]

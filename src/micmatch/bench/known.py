"""Recipe ``known-aug`` of the adaptation track: training features augmented towards each known device, as micmatch
estimates it from that device's unlabeled clips.

The simple baseline that any converter trained on the known devices must beat. For every unseen device of the
``adapt`` track (:mod:`micmatch.bench.data`), from its unlabeled adaptation clips and the reference's training
clips, :func:`micmatch.device_estimate.estimate_devices` gives a band shift (band response plus level) and a
noise floor per mel band (:func:`estimate_known_devices`).

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

#: Shape of the Gamma distribution of the floor's power fluctuation (mean 1, standard deviation 1 / 2).
TEXTURE_SHAPE = 4


def estimate_known_devices(data, *, reference: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Band shift and noise floor (dB per mel band) of every unseen device, from its adaptation clips.

    Returns
    -------
    dict
        Device name -> ``{"shift_db": (n_mels,), "floor_db": (n_mels,)}`` (:mod:`micmatch.device_estimate`);
        with ``reference=True`` the reference device too (shift zero, its own floor).
    """
    from micmatch.device_estimate import estimate_devices

    if data.config.track != "adapt":
        raise CorpusError("recipe known-aug augments towards the devices known by their unlabeled clips: run it with "
                          "--track adapt")
    names = data.plan.names
    ref_name = data.plan.reference.name
    unseen = {dev.name: data.calibration_set(i) for i, dev in enumerate(data.plan.devices) if dev.role == "unseen"}
    if not unseen:
        raise CorpusError("the adapt track needs unseen devices to adapt to; pass --unseen N")
    ref_waves = data.train_set(False)[data.assign == names.index(ref_name)]
    out = estimate_devices(ref_waves, unseen, data.sample_rate, config=data.config.logmel(data.sample_rate),
                           n_fft=data.config.sc_n_fft, reference=ref_name)
    return out if reference else {k: v for k, v in out.items() if k != ref_name}


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

"""The trained device converter as a batch augmentation: a share of each batch converted to other devices.

:class:`ConverterAugment` is one of the augmentations of :mod:`micmatch.learn.augmentations`: parameters drawn
(numpy, from an explicit generator), then applied (torch), so a logged draw replays exactly; the identity in
``.eval()`` mode.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from micmatch.conditioning import draw_synthetic_differences
from micmatch.errors import ConfigMismatchError, ParameterError
from micmatch.learn.converter_model import Converter
from micmatch.learn.augmentations import Augmentation, numpy_generator


class ConverterAugment(Augmentation):
    """Augmentation: convert a share of a batch of source-device features to other devices with a trained
    :class:`Converter` (parameters drawn, then applied, so a logged draw replays exactly).

    Parameters
    ----------
    converter : Converter
        Trained; used frozen (no gradients) on the batch's device.
    targets : mapping of str to np.ndarray [shape=(n_mels,)], optional
        Band responses of the target devices (dB; e.g. from augmentation IRs with
        :func:`micmatch.conditioning.ir_band_response`). Never the test devices.
    source_response : np.ndarray [shape=(n_mels,)], optional
        Band response of the device the batch was recorded with; zeros (a flat device) by default.
    p : float
        Probability that an item is converted.
    synthetic_fraction : float, optional
        Share of the converted items whose difference is a synthetic one
        (:func:`micmatch.augment.draw_synthetic_response`, options in ``synthetic_options``) instead of a target;
        by default 0.5 with ``targets`` and 1.0 without (the registry's ``umc`` does the same).
    floors : mapping of str to np.ndarray [shape=(n_mels,)], optional
        Noise floor (dB per band) of each target, for a converter of the stochastic form: a conversion to a
        target adds its floor, a synthetic difference the floor of a target drawn at random. Without it the
        floor path is skipped.

    Shape:
        - x: ``(batch, n_mels, n_frames)`` or one item ``(n_mels, n_frames)``, dB; output the same

    ``module(x)`` draws from torch's default generator, ``module(x, generator=g)`` from ``g`` and
    ``module(x, params)`` replays a draw (:mod:`micmatch.learn.augmentations` explains the protocol); the
    converter stays in eval mode whatever mode this module is in.
    """

    def __init__(self, converter: Converter, *, targets: Mapping[str, np.ndarray] | None = None,
                 source_response: np.ndarray | None = None, p: float = 0.5, synthetic_fraction: float | None = None,
                 synthetic_options: Mapping | None = None, floors: Mapping[str, np.ndarray] | None = None) -> None:
        super().__init__()
        n_mels = converter.config.n_mels
        self.converter = converter.eval().requires_grad_(False)
        self.targets = {k: np.asarray(v, dtype=np.float64) for k, v in (targets or {}).items()}
        for name, r in self.targets.items():
            if r.shape != (n_mels,):
                raise ConfigMismatchError(f"target {name!r} has {r.shape} bands; the converter has n_mels={n_mels}")
        if synthetic_fraction is None:
            synthetic_fraction = 0.5 if self.targets else 1.0
        self.source = np.zeros(n_mels) if source_response is None else np.asarray(source_response, dtype=float)
        if not 0.0 <= p <= 1.0 or not 0.0 <= synthetic_fraction <= 1.0:
            raise ParameterError(f"p={p} and synthetic_fraction={synthetic_fraction} must be in [0, 1]")
        if not self.targets and synthetic_fraction < 1.0:
            raise ParameterError("no target devices: give targets= or set synthetic_fraction=1.0")
        self.p, self.synthetic_fraction = float(p), float(synthetic_fraction)
        self.synthetic_options = dict(synthetic_options or {})
        self.floors = {k: np.asarray(v, dtype=np.float64) for k, v in (floors or {}).items()}
        for name, f in self.floors.items():
            if f.shape != (n_mels,):
                raise ConfigMismatchError(f"floor of {name!r} has {f.shape} bands; the converter has n_mels={n_mels}")

    def train(self, mode: bool = True) -> ConverterAugment:
        """Switch the augmentation on (``mode=True``) or off; the converter itself stays in eval mode."""
        super().train(mode)
        self.converter.eval()
        return self

    def draw(self, batch_size: int, *, generator=None) -> dict:
        """``{"difference_db": [list | None], "target": [str | None]}`` (``"synthetic"`` for synthetic ones)."""
        rng = numpy_generator(generator)
        cfg = self.converter.feature_config
        names = sorted(self.targets)
        floor_names = sorted(self.floors)
        diffs: list = []
        labels: list = []
        floors: list = []
        for _ in range(int(batch_size)):
            if rng.random() >= self.p:
                diffs.append(None)
                labels.append(None)
                floors.append(None)
                continue
            if not names or rng.random() < self.synthetic_fraction:
                if cfg is None:
                    raise ParameterError("the converter has no feature configuration: synthetic differences need "
                                         "its mel bands (train it with feature_config=...)")
                d = draw_synthetic_differences(rng, 1, config=cfg, **self.synthetic_options)[0]
                diffs.append([float(v) for v in d])
                labels.append("synthetic")
                floors.append(floor_names[int(rng.integers(len(floor_names)))] if floor_names else None)
            else:
                name = names[int(rng.integers(len(names)))]
                diffs.append([float(v) for v in self.targets[name] - self.source])
                labels.append(name)
                floors.append(name if name in self.floors else
                              floor_names[int(rng.integers(len(floor_names)))] if floor_names else None)
        out = {"difference_db": diffs, "target": labels}
        if floor_names:
            out.update(floor=floors, noise_seed=int(rng.integers(0, 2**62)))
        return out

    @torch.no_grad()
    def apply_params(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:
        """Convert the items whose ``difference_db`` is not None; the others pass unchanged."""
        diffs = params["difference_db"]
        if len(diffs) != x.shape[0]:
            raise ParameterError(f"params are for {len(diffs)} items but the batch has {x.shape[0]}")
        idx = [i for i, d in enumerate(diffs) if d is not None]
        if not idx:
            return x
        self.converter.to(x.device)
        d = torch.as_tensor(np.asarray([diffs[i] for i in idx]), dtype=x.dtype, device=x.device)
        out = x.clone()
        sel = torch.as_tensor(idx, device=x.device)
        names = [params.get("floor", [None] * len(diffs))[i] for i in idx]
        floor = None
        if all(n is not None for n in names) and self.floors:
            floor = torch.as_tensor(np.asarray([self.floors[n] for n in names]), dtype=x.dtype, device=x.device)
        gen = torch.Generator().manual_seed(int(params.get("noise_seed", 0)))
        out[sel] = self.converter(x[sel], d, floor, generator=gen)
        return out


__all__ = ["ConverterAugment"]

"""The torch pipeline of one recipe: waveform batches to features, on whichever device the batch lives.

Order: waveform augmentations (training only) -> mel energies -> log (dB) or the recipe's compression ->
feature augmentations of the reference device's clips (training only: the device converter) ->
per-spectrogram normalizations -> normalizations with fitted statistics (per device or global). Training-batch
augmentations (mixup, ...) act on features and targets together (:class:`BatchAugment`). Every random draw comes
from the generator passed in. Fitted steps get their states from :mod:`micmatch.bench.fitting`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from micmatch.bench.recipes import Recipe, build_step
from micmatch.learn.transforms import LogMel, Mixup


class FrontEnd(nn.Module):
    """Waveforms to the features of ``recipe`` for the benchmark ``data``.

    ``states`` maps each fitted step of the recipe that precedes the fitted normalizations (a device converter)
    to its state. Normalizations with fitted statistics are added in recipe order with :meth:`add_fitted` once
    fitted on the features before them. Feature augmentations change only the rows whose device index is the
    reference's (0), or every row when no indices are given.

    Shape: ``(batch, n_samples)`` -> ``(batch, n_mels, n_frames)``.
    """

    def __init__(self, recipe: Recipe, data, states: Mapping[str, object] | None = None) -> None:
        super().__init__()
        states = dict(states or {})
        self.logmel = LogMel(data.config.logmel(data.sample_rate))
        self.wave = nn.ModuleList([build_step(s, data, states.get(s)) for s in recipe.wave_augment])
        self.compress = None if recipe.compress == "log" else build_step(recipe.compress, data)
        self.feature_aug = nn.ModuleList([build_step(s, data, states.get(s)) for s in recipe.feature_augment])
        self.clip = nn.ModuleList([build_step(s, data) for s in recipe.clip_norms])
        self.fitted = nn.ModuleList()
        self._per_device: list[bool] = []

    def add_fitted(self, module: nn.Module, *, per_device: bool) -> None:
        """Append a normalization with fitted statistics; ``per_device`` ones take the device index."""
        self.fitted.append(module)
        self._per_device.append(bool(per_device))

    def features(self, waves: torch.Tensor, device_index: torch.Tensor | None = None, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Features before fitted statistics; feature augmentations only in training mode."""
        x = self.logmel(waves) if self.compress is None else self.compress(self.logmel.mel(waves))
        if self.training and len(self.feature_aug):
            rows = (torch.arange(x.shape[0], device=x.device) if device_index is None
                    else torch.nonzero(device_index == 0).flatten())
            if rows.numel():
                part = x[rows]
                for aug in self.feature_aug:
                    part = aug(part, generator=generator)
                x = x.index_copy(0, rows, part)
        for norm in self.clip:
            x = norm(x)
        return x

    def forward(self, waves: torch.Tensor, device_index: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
        if self.training:
            for aug in self.wave:
                waves = aug(waves, generator=generator)
        x = self.features(waves, device_index, generator=generator)
        for norm, per_device in zip(self.fitted, self._per_device):
            x = norm(x, device_index) if per_device else norm(x)
        return x


class BatchAugment:
    """A training-batch transform ``(features, soft targets, generator) -> (features, targets)`` from a module.

    Mixup mixes the targets with the parameters it drew for the features.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator):
        y = self.module(x, generator=generator)
        if isinstance(self.module, Mixup):
            target = Mixup.mix_labels(target, self.module.last_params).to(target.dtype)
        return y, target


def batch_augments(recipe: Recipe, data) -> tuple[BatchAugment, ...]:
    return tuple(BatchAugment(build_step(s, data)) for s in recipe.batch_augment)


@torch.no_grad()
def compute_features(front_end: FrontEnd, waves, device_index=None, *, device: torch.device,
                     dtype: torch.dtype = torch.float32, chunk: int = 64) -> torch.Tensor:
    """Features of fixed waveforms ``(n, n_samples)`` (no augmentation), in chunks, on ``device``, in ``dtype``."""
    was_training = front_end.training
    front_end.to(device).eval()
    x = torch.as_tensor(waves).to(dtype)
    idx = None if device_index is None else torch.as_tensor(np.asarray(device_index), device=device)
    out = [front_end(x[i : i + chunk].to(device), None if idx is None else idx[i : i + chunk])
           for i in range(0, x.shape[0], chunk)]
    front_end.train(was_training)
    return torch.cat(out)


__all__ = ["BatchAugment", "FrontEnd", "batch_augments", "compute_features"]

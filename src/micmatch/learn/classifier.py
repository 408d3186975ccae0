"""The device-robust classifier: the small CNN of "Spectrum Correction: Acoustic Scene Classification with
Mismatched Recording Devices" (Interspeech 2020, Table 1) for log-mel spectrograms, and its checkpoint files.

Five blocks of Conv2D (kernel 3, padding 1) + ReLU + BatchNorm with 16, 32, 32, 64, 64 channels and strides
1, 2, 1, 2, 1, then global average pooling over frequency and time and one dense layer (softmax in the loss).
For 10 classes it has 70,538 parameters (the paper: about 71k).

The per-mel-band standardization of the inputs (mean and standard deviation over the training set, as in the
spectrum-correction paper) is held in buffers, so a saved model carries everything it needs to score new features.

A checkpoint is a model file (:mod:`micmatch.learn.modelfile`, kind ``micmatch-classifier``): model name,
configuration, sample rate and ``extra`` settings in the JSON header, weights read with ``weights_only=True``.
Training: :mod:`micmatch.learn.classifier_train`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from micmatch.errors import ModelError, ParameterError
from micmatch.learn.modelfile import header_int, read_model_file, write_model_file

#: The ``kind`` of classifier model files.
KIND = "micmatch-classifier"

#: Channels and strides of the five convolution blocks (the spectrum-correction paper, Table 1).
CHANNELS = (16, 32, 32, 64, 64)
STRIDES = (1, 2, 1, 2, 1)
#: Floor (in feature units) of the standard deviation used to standardize inputs: avoids dividing by ~0 in bands
#: that are constant over the training set (e.g. zero-padded silence after a band limit).
STD_FLOOR = 1e-3


class DeviceCNN(nn.Module):
    """The spectrum-correction paper's CNN on ``(batch, 1, n_mels, n_frames)`` features; returns logits ``(batch, n_classes)``.

    Parameters
    ----------
    n_classes : int
    n_mels : int
        Number of mel bands, the size of the normalization buffers.
    """

    model_name = "device_cnn"

    def __init__(self, n_classes: int, n_mels: int) -> None:
        super().__init__()
        if n_classes < 2 or n_mels < 1:
            raise ParameterError(f"n_classes={n_classes} must be >= 2 and n_mels={n_mels} >= 1")
        self.config = {"n_classes": int(n_classes), "n_mels": int(n_mels)}
        blocks, c_in = [], 1
        for c_out, stride in zip(CHANNELS, STRIDES):
            blocks += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU(), nn.BatchNorm2d(c_out)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.dense = nn.Linear(c_in, n_classes)
        self.register_buffer("mean", torch.zeros(n_mels, 1))
        self.register_buffer("std", torch.ones(n_mels, 1))

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-band input standardization; ``mean``, ``std`` of shape ``(n_mels,)``; std floored at STD_FLOOR."""
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype).reshape(-1, 1))
        self.std.copy_(torch.clamp(torch.as_tensor(std, dtype=self.std.dtype).reshape(-1, 1), min=STD_FLOOR))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``(batch, 1, n_mels, n_frames)`` or ``(batch, n_mels, n_frames)`` -> ``(batch, n_classes)``."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = (x - self.mean) / self.std
        x = self.features(x)
        # A plain mean is the global average pooling; unlike adaptive_avg_pool2d its CUDA backward is deterministic.
        return self.dense(x.mean(dim=(2, 3)))


#: Models that checkpoints can name.
MODELS = {DeviceCNN.model_name: DeviceCNN}



@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` returns: the rebuilt model (eval mode, on CPU) and its metadata.

    ``version`` is the micmatch version that wrote the file.
    """

    model: nn.Module
    sample_rate: int
    version: str
    extra: dict


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, sample_rate: int, extra: dict | None = None) -> Path:
    """Save a classifier of :data:`MODELS` as a model file, atomically.

    ``extra`` must hold only JSON types (str, int, float, bool, lists, dicts), e.g. feature settings and class
    names: it goes into the header.
    """
    header = {"kind": KIND, "model_name": model.model_name, "config": dict(model.config),
              "sample_rate": int(sample_rate), "extra": dict(extra or {})}
    return write_model_file(path, header, model.state_dict())


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint` (or by micmatch before the model-file format).

    Raises
    ------
    ModelError
        One line: a missing or unreadable file, a model name not in :data:`MODELS`, or a configuration and
        weights that do not fit.
    """
    header, state = read_model_file(path, kind=KIND)
    name = header.get("model_name")
    if not isinstance(name, str) or name not in MODELS:
        raise ModelError(f"{path}: model_name={name!r} is not one of {sorted(MODELS)}")
    header_int(path, header, "sample_rate", lo=1000, hi=768_000)
    # Bounded sizes keep the model small whatever the header says (the weights' shapes are checked on loading).
    config = header.get("config")
    for key, hi in (("n_classes", 1 << 16), ("n_mels", 1 << 12)):
        if isinstance(config, dict) and key in config:
            header_int(path, header, f"config.{key}", lo=2 if key == "n_classes" else 1, hi=hi)
    try:
        model = MODELS[name](**header["config"])
        model.load_state_dict(state)
        sample_rate = int(header["sample_rate"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a config or weights that do not fit
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"{path}: the checkpoint's config or weights do not fit model {name!r} "
                         f"({type(exc).__name__}: {line})") from None
    model.eval()
    return Checkpoint(model, sample_rate, str(header.get("micmatch_version", "")), dict(header.get("extra", {})))


__all__ = ["CHANNELS", "KIND", "MODELS", "STD_FLOOR", "STRIDES", "Checkpoint", "DeviceCNN", "load_checkpoint",
           "save_checkpoint"]

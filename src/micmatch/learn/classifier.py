"""The small CNN of "Spectrum Correction: Acoustic Scene Classification with Mismatched Recording Devices"
(Interspeech 2020, Table 1) for classifying log-mel spectrograms.

Five blocks of Conv2D (kernel 3, padding 1) + ReLU + BatchNorm with 16, 32, 32, 64, 64 channels and strides
1, 2, 1, 2, 1, then global average pooling over frequency and time and one dense layer (softmax in the loss).
For 10 classes it has 70,538 parameters (the paper: about 71k).

The per-mel-band standardization of the inputs (mean and standard deviation over the training set, as in the
spectrum-correction paper) is held in buffers, so a saved model carries everything it needs to score new features.
"""

from __future__ import annotations

import torch
from torch import nn

from micmatch.errors import ParameterError

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


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


#: Models that checkpoints can name.
MODELS = {DeviceCNN.model_name: DeviceCNN}

__all__ = ["CHANNELS", "DeviceCNN", "MODELS", "STD_FLOOR", "STRIDES", "count_parameters"]

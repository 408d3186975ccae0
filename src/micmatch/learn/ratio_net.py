"""The spectral-ratio network (RatioNet): a device frame's log power in, a log ratio per bin out, and its input
features.

"A Frequency Response Normalization Method based on Deep Neural Networks for IoT Devices": the log power of a
device recording's STFT frame (optionally with ``context`` frames on each side) in, a log ratio per bin out; the
device's STFT is multiplied by the ratio and resynthesized with the device's phase. Three hidden layers of 1024
units, ReLU and dropout, as in the paper. The last layer starts at zero, so an untrained model is the identity
(exact reconstruction). Unlike a static equalizer it changes its gain from frame to frame, so it can also lower
noise in pauses and reverberant tails. Training: :mod:`micmatch.learn.normalizer_train`; application:
:mod:`micmatch.learn.normalizer`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: Floor of every log power (dB) of the RatioNet's features and loss, re the unnormalised Hann STFT's scale.
FEATURE_FLOOR_DB = -100.0
#: Largest gain or cut (dB) a RatioNet may apply to one bin of one frame (a tanh limits its output smoothly).
MAX_GAIN_DB = 40.0


def default_n_fft(sample_rate: int) -> int:
    """The paper's 20 ms frame rounded up to a power of two (1024 at 44.1 kHz, 256 at 8 kHz)."""
    return 1 << max(5, math.ceil(math.log2(0.02 * sample_rate)))


def _log_power_db(spec: np.ndarray | torch.Tensor):
    floor = 10.0 ** (FEATURE_FLOOR_DB / 10.0)
    if isinstance(spec, torch.Tensor):
        return 10.0 * torch.log10(spec.real**2 + spec.imag**2 + floor)
    return 10.0 * np.log10(spec.real**2 + spec.imag**2 + floor)


def _with_context(frames_db: np.ndarray, context: int) -> np.ndarray:
    """``(n_frames, n_bins)`` -> ``(n_frames, (2 context + 1) n_bins)``: each frame with its neighbours (edge
    frames repeated)."""
    if context == 0:
        return frames_db
    padded = np.pad(frames_db, ((context, context), (0, 0)), mode="edge")
    n = frames_db.shape[0]
    return np.concatenate([padded[i : i + n] for i in range(2 * context + 1)], axis=1)


class RatioNet(nn.Module):
    """Log power frame(s) in (dB), log ratio per bin out (dB).

    Shape: ``(batch, (2 context + 1) n_bins)`` -> ``(batch, n_bins)``. The input is standardised with the
    training set's per-feature mean and standard deviation (buffers, saved with the weights).
    """

    def __init__(self, n_bins: int, *, context: int = 0, hidden: int = 1024, layers: int = 3, dropout: float = 0.2,
                 max_gain_db: float = MAX_GAIN_DB):
        super().__init__()
        self.config = {"n_bins": int(n_bins), "context": int(context), "hidden": int(hidden), "layers": int(layers),
                       "dropout": float(dropout), "max_gain_db": float(max_gain_db)}
        n_in = (2 * context + 1) * n_bins
        self.register_buffer("feature_mean", torch.zeros(n_in))
        self.register_buffer("feature_std", torch.ones(n_in))
        mods: list[nn.Module] = []
        width = n_in
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        last = nn.Linear(width, n_bins)
        nn.init.zeros_(last.weight)  # an untrained model is the identity: ratio 0 dB everywhere
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*mods, last)

    def forward(self, features_db: torch.Tensor) -> torch.Tensor:
        z = (features_db - self.feature_mean) / self.feature_std
        m = self.config["max_gain_db"]
        return m * torch.tanh(self.body(z) / m)


__all__ = ["FEATURE_FLOOR_DB", "MAX_GAIN_DB", "RatioNet", "default_n_fft"]

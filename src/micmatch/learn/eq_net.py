"""The end-to-end equalization CNN (EQNet): waveform windows in, equalized waveform windows out.

"End-to-end equalization with convolutional neural networks" (DAFx 2018). Adaptive front end (Conv1D, absolute
value, a locally connected (depthwise) Conv1D with softplus, max pooling), a latent network of dense layers with
softplus, and a synthesis back end (upsampling, multiplication by the front end's Conv1D output, and a
deconvolution that reuses the first layer's filters, transposed). The default width (16 filters instead of the
paper's 128) keeps CPU training to minutes; the paper's size is ``channels=128``. The upsampling repeats values
(the authors' later code has no max-position mask). Training: :mod:`micmatch.learn.normalizer_train`;
application (windows of 4096 samples with 50% overlap-add): :mod:`micmatch.learn.normalizer`.
"""

from __future__ import annotations

import math

import scipy.fft
import torch
from torch import nn
from torch.nn import functional as F

from micmatch.errors import ParameterError


class EQNet(nn.Module):
    """End-to-end equalizer on waveform windows.

    Shape: ``(batch, window)`` -> ``(batch, window)``. With ``latent=False`` the latent network is bypassed (the
    autoencoder of the first training step). All convolutions run by FFT: on CPU, torch's direct convolutions of
    these sizes are one to two orders of magnitude slower in the backward pass.
    """

    def __init__(self, *, window: int = 4096, channels: int = 16, taps: int = 64, local_taps: int = 128,
                 pool: int = 16, latent_units: int = 64):
        super().__init__()
        if window % pool:
            raise ParameterError(f"window={window} must be a multiple of pool={pool}")
        self.config = {"window": int(window), "channels": int(channels), "taps": int(taps),
                       "local_taps": int(local_taps), "pool": int(pool), "latent_units": int(latent_units)}
        # Front end: Conv1D, `channels` filters of `taps` (no bias: the back end reuses them transposed).
        self.conv_weight = nn.Parameter(torch.randn(channels, taps) / math.sqrt(taps))
        # Locally connected: one filter of `local_taps` per channel (depthwise), softplus.
        self.local_weight = nn.Parameter(torch.randn(channels, local_taps) / math.sqrt(local_taps))
        self.local_bias = nn.Parameter(torch.zeros(channels))
        n_pooled = window // pool
        # Latent network: dense layers along the pooled time axis (64 units, softplus), shared by the channels.
        self.dense1 = nn.Linear(n_pooled, latent_units)
        self.dense2 = nn.Linear(latent_units, n_pooled)

    def forward(self, x: torch.Tensor, *, latent: bool = True) -> torch.Tensor:
        c = self.config
        n = scipy.fft.next_fast_len(x.shape[-1] + max(c["taps"], c["local_taps"]) - 1, real=True)
        w_spec = torch.fft.rfft(torch.flip(self.conv_weight, dims=[-1]), n=n)
        x1 = _correlate(torch.fft.rfft(x, n=n).unsqueeze(1) * w_spec, n, c["taps"], x.shape[-1])
        x2 = F.softplus(_depthwise_same(torch.abs(x1), self.local_weight, self.local_bias, n))
        z = F.max_pool1d(x2, c["pool"])  # (batch, channels, window / pool)
        if latent:
            z = F.softplus(self.dense2(F.softplus(self.dense1(z))))
        u = torch.repeat_interleave(z, c["pool"], dim=-1)
        # Deconvolution with the first layer's filters: the adjoint of the front end's correlation.
        v_spec = torch.fft.rfft(x1 * u, n=n) * torch.fft.rfft(self.conv_weight, n=n)
        start = c["taps"] // 2
        return torch.fft.irfft(v_spec.sum(dim=1), n=n)[..., start : start + x.shape[-1]]


def _correlate(spec: torch.Tensor, n: int, k: int, t: int) -> torch.Tensor:
    """Inverse FFT of (signal spectrum x flipped-filter spectrum), cut to the 'same' correlation output: sample
    ``t`` holds ``sum_j w[j] x[t + j - k // 2]``."""
    start = k - 1 - k // 2
    return torch.fft.irfft(spec, n=n)[..., start : start + t]


def _depthwise_same(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """Per-channel cross-correlation ``sum_j w[c, j] x[c, t + j - K // 2]`` by FFT, output length T.
    ``x`` (batch, C, T), ``weight`` (C, K), ``bias`` (C,)."""
    t, k = x.shape[-1], weight.shape[-1]
    n = n or scipy.fft.next_fast_len(t + k - 1, real=True)
    spec = torch.fft.rfft(x, n=n) * torch.fft.rfft(torch.flip(weight, dims=[-1]), n=n)
    return _correlate(spec, n, k, t) + bias[:, None]


__all__ = ["EQNet"]

"""``nn.Module`` twins of :mod:`micmatch.features` and :mod:`micmatch.augment` for batches on CPU or GPU.

Each module gives the same result as its numpy function on the same input (tests check it per transform) and
works on any ``torch.device``: the fitted statistics and filterbanks are buffers that move with ``.to(device)``.
Buffers are built in float64 (so ``module.double()`` matches numpy to rounding) and cast to the input's dtype.

Shapes (time last), batched or not, as torchaudio's transforms take them:

* waveforms ``(..., n_samples)``;
* log-mel features ``(..., n_mels, n_frames)`` in dB.

Every module returns the shape it is given (or the documented one: ``LogMel`` adds the mel axis, cepstral mean
subtraction keeps ``n_ceps`` rows) and composes with ``nn.Sequential``, ``.to(device)`` and ``.apply(fn)``.

The augmentations (identity in ``.eval()`` mode, parameters drawn then applied, replayable) are defined in
:mod:`micmatch.learn.augmentations` and importable from here too, so this module is the one namespace of every
twin (the registry reads it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as tf

from micmatch import features as feat
from micmatch import normalizations as norms
from micmatch import validate
from micmatch.features import LogMelConfig
from micmatch.logmel import default_settings
from micmatch.learn.augmentations import (
    Augmentation,
    DeviceIR,
    FilterAugment,
    FreqMixStyle,
    Mixup,
    ParametricEQ,
    SyntheticResponse,
    numpy_generator,
)

__all__ = [
    "Augmentation", "BandOffset", "CepstralMeanSubtraction", "DeviceIR", "FilterAugment", "FreqMixStyle",
    "GlobalNormalize",
    "LogMel", "MedianFilterResidual", "MelSpectrogram", "Mixup", "PCEN", "ParametricEQ", "PerDeviceStandardize", "Rasta",
    "SpectrogramMeanSubtraction", "SyntheticResponse", "numpy_generator",
]


# ----------------------------------------------------------------------------------------------------------------
# Front end


class MelSpectrogram(nn.Module):
    """Linear mel spectrogram (power, or magnitude for ``config.power=1``), the twin of
    :func:`micmatch.logmel.mel_spectrogram`: the front end for PCEN, which takes linear energies, not dB.

    Centred frames with zero padding, periodic Hann window, ``torch.fft.rfft`` of unfolded frames, power through
    the mel filterbank (a buffer). ``config`` defaults to ``LogMelConfig()``.

    Shape: ``(..., n_samples)`` -> ``(..., n_mels, 1 + n_samples // hop_length)``.
    """

    def __init__(self, config: LogMelConfig | None = None) -> None:
        super().__init__()
        config = LogMelConfig() if config is None else config
        self.config = config
        n = torch.arange(config.n_fft, dtype=torch.float64)
        self.register_buffer("window", 0.5 - 0.5 * torch.cos(2 * math.pi * n / config.n_fft))
        self.register_buffer("filterbank", torch.from_numpy(config.filterbank()))

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Linear mel power (or magnitude for ``power=1``), ``(..., n_mels, n_frames)``."""
        cfg = self.config
        pad = cfg.n_fft // 2
        lead = audio.shape[:-1]
        x = tf.pad(audio.reshape(-1, 1, audio.shape[-1]), (pad, pad)).squeeze(1)
        frames = x.unfold(-1, cfg.n_fft, cfg.hop_length) * self.window.to(x.dtype)
        spec = torch.view_as_real(torch.fft.rfft(frames, dim=-1))
        power = spec.square().sum(-1)
        if cfg.power == 1.0:
            power = power.sqrt()
        mel = torch.matmul(power, self.filterbank.to(power.dtype).T)
        return mel.transpose(-1, -2).reshape(*lead, cfg.n_mels, -1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.mel(audio)


class LogMel(MelSpectrogram):
    """Log-mel spectrogram in dB, the twin of :func:`micmatch.features.log_mel` (librosa compatible):
    :class:`MelSpectrogram` then ``(20 / power) * log10(max(mel, amin))``. ``config`` defaults to
    ``LogMelConfig()``.

    Shape: ``(..., n_samples)`` -> ``(..., n_mels, 1 + n_samples // hop_length)``.
    """

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        return (20.0 / cfg.power) * torch.log10(self.mel(audio).clamp_min(cfg.amin))


# ----------------------------------------------------------------------------------------------------------------
# Normalizations


class BandOffset(nn.Module):
    """Add one dB value per mel band: spectrum correction on features (twin of
    :func:`micmatch.features.apply_band_offset`). Build it with :meth:`from_correction`.

    Shape: ``(..., n_mels, n_frames)`` -> same.
    """

    def __init__(self, offset_db: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("offset_db", torch.as_tensor(np.asarray(offset_db), dtype=torch.float64))

    @classmethod
    def from_correction(cls, correction=None, *, config: LogMelConfig, **kwargs) -> BandOffset:
        """Same arguments as :func:`micmatch.features.correction_offset_db`."""
        return cls(feat.correction_offset_db(correction, config=config, **kwargs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.offset_db.to(features.dtype)[:, None]


class SpectrogramMeanSubtraction(nn.Module):
    """Each band minus its mean over time, per spectrogram (twin of ``spectrogram_mean_subtraction``).

    Shape: ``(..., n_mels, n_frames)`` -> same.
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features - features.mean(dim=-1, keepdim=True)


class CepstralMeanSubtraction(nn.Module):
    """Mean-free cepstra (twin of ``cepstral_mean_subtraction``).

    Shape: ``(..., n_mels, n_frames)`` -> ``(..., n_ceps, n_frames)``.
    """

    def __init__(self, n_mels: int, n_ceps: int | None = None) -> None:
        super().__init__()
        validate.positive_int(n_mels, "n_mels", error=feat.FeatureError)
        if n_ceps is not None:
            validate.int_in_range(n_ceps, "n_ceps", low=1, high=n_mels, error=feat.FeatureError)
        self.register_buffer("dct", torch.from_numpy(feat.dct_matrix(n_mels, n_ceps)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        ceps = torch.matmul(self.dct.to(features.dtype), features)
        return ceps - ceps.mean(dim=-1, keepdim=True)


class MedianFilterResidual(nn.Module):
    """``x - medfilt2d(x, size)`` with zero padding (twin of ``median_filter_residual``).

    Uses ``unfold``: memory is ``size[0] * size[1]`` times the batch, so feed moderate batches.

    Shape: ``(..., n_mels, n_frames)`` -> same.
    """

    def __init__(self, size: tuple[int, int] = (7, 21)) -> None:
        super().__init__()
        self.size = feat.median_size(size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        kb, kt = self.size
        m, t = features.shape[-2:]
        flat = features.reshape(-1, 1, m, t)
        patches = tf.unfold(flat, (kb, kt), padding=(kb // 2, kt // 2))  # (N, kb*kt, m*t)
        med = patches.median(dim=1).values.reshape(flat.shape)
        return (flat - med).reshape(features.shape)


class PCEN(nn.Module):
    """Per-channel energy normalization of linear mel energies (twin of :func:`micmatch.features.pcen`).

    ``PCEN.preset("a", sample_rate, hop_length)`` gives the two settings compared in "Spectrum Correction:
    Acoustic Scene Classification with Mismatched Recording Devices"; the defaults are preset ``"b"`` with
    ``input_scale=2 ** 31``, as the registry's ``pcen-b``. The smoother runs frame by frame. The input is
    multiplied by ``input_scale`` first (librosa advises integer-like magnitudes: ``2 ** 31`` for full scale).
    ``hop_length`` defaults to the hop of ``LogMelConfig(sample_rate=sample_rate)``. Input in dB (negative values, as log-mel gives) raises :class:`~micmatch.errors.FeatureError`: put
    :class:`MelSpectrogram` in front, not :class:`LogMel`.

    Shape: ``(..., n_mels, n_frames)`` -> same.
    """

    def __init__(self, sample_rate: int, *, hop_length: int | None = None, time_constant: float = 0.2, eps: float = 1e-6,
                 gain: float = 1.0, bias: float = 2.0, power: float = 0.5,
                 input_scale: float = norms.PCEN_INPUT_SCALE) -> None:
        super().__init__()
        feat.check_pcen_options(time_constant=time_constant, eps=eps, gain=gain, bias=bias, power=power)
        if hop_length is None:  # the default feature configuration's hop for this rate
            hop_length = default_settings(sample_rate)["hop_length"]
        self.b = feat.pcen_smoothing_coefficient(sample_rate, hop_length, time_constant)
        self.eps, self.gain, self.bias, self.power = eps, gain, bias, power
        self.input_scale = validate.positive_float(input_scale, "input_scale", error=feat.FeatureError)

    @classmethod
    def preset(cls, name: str, sample_rate: int, hop_length: int | None = None, *,
               input_scale: float = norms.PCEN_INPUT_SCALE) -> PCEN:
        try:
            params = feat.PCEN_PRESETS[name]
        except KeyError:
            raise feat.FeatureError(f"PCEN preset {name!r} unknown; known: {sorted(feat.PCEN_PRESETS)}") from None
        return cls(sample_rate, hop_length=hop_length, input_scale=input_scale, **params)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        b = self.b
        low = float(mel.detach().amin()) if mel.numel() else 0.0
        if low < 0.0:
            raise norms.linear_input_error("PCEN", low)
        if self.input_scale != 1.0:
            mel = mel * self.input_scale
        state = torch.ones(mel.shape[:-1], dtype=mel.dtype, device=mel.device)
        smooth = []
        for t in range(mel.shape[-1]):
            state = (1.0 - b) * state + b * mel[..., t]
            smooth.append(state)
        m = torch.stack(smooth, dim=-1)
        agc = torch.exp(-self.gain * (math.log(self.eps) + torch.log1p(m / self.eps)))
        return self.bias**self.power * torch.expm1(self.power * torch.log1p(mel * agc / self.bias))


class Rasta(nn.Module):
    """RASTA filtering of log features along time (twin of :func:`micmatch.features.rasta`).

    Shape: ``(..., n_mels, n_frames)`` -> same (``n_frames >= 5``).
    """

    def __init__(self, pole: float = 0.98) -> None:
        super().__init__()
        self.pole = feat.check_rasta_pole(pole)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n = features.shape[-1]
        if n < 5:
            raise feat.FeatureError(f"features have n_frames={n}; at least 5 are needed")
        num = feat.RASTA_NUMERATOR
        fir = sum(float(num[k]) * features[..., 4 - k : n - k] for k in range(5))
        out = [torch.zeros_like(features[..., 0])] * 4
        y = torch.zeros_like(features[..., 0])
        for t in range(fir.shape[-1]):
            y = fir[..., t] + self.pole * y
            out.append(y)
        return torch.stack(out, dim=-1)


class GlobalNormalize(nn.Module):
    """GMS / GMSVN with a fitted :class:`~micmatch.features.GlobalNormalizer` (its mean and std as buffers).

    Fit the statistics once on the training features (arrays, a tensor or a features file), then build it::

        state, _ = registry.fit("gms", train_logmel, config=cfg)      # or "gmsvn"; (batch, n_mels, n_frames)
        module = registry.get("gms").torch(config=cfg, state=state)   # the same as GlobalNormalize(state)

    Shape: ``(..., n_mels, n_frames)`` -> same.
    """

    def __init__(self, normalizer: feat.GlobalNormalizer) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(normalizer.mean))
        self.register_buffer("std", torch.from_numpy(normalizer.std))
        self.config = normalizer.config

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean.to(features.dtype)[:, None]) / self.std.to(features.dtype)[:, None]


class PerDeviceStandardize(nn.Module):
    """Per-device standardization with a fitted :class:`~micmatch.features.PerDeviceStandardizer`.

    Fit it on features labelled by device, then pass each item's device index::

        state, _ = registry.fit("device-std", logmel, config=cfg, devices=device_names)
        module = registry.get("device-std").torch(config=cfg, state=state)
        out = module(batch, module.index(batch_devices))

    ``forward(features, device_index)`` with ``device_index`` a ``(batch,)`` integer tensor into
    :attr:`devices` (use :meth:`index` to turn names into it).

    Shape: features ``(batch, ..., n_mels, n_frames)`` and ``device_index`` ``(batch,)`` -> features' shape; one
    item ``(n_mels, n_frames)`` takes a 0-d ``device_index``.
    """

    def __init__(self, standardizer: feat.PerDeviceStandardizer) -> None:
        super().__init__()
        self.devices = standardizer.devices
        self.register_buffer("mean", torch.from_numpy(np.stack([standardizer.mean(d) for d in self.devices])))
        self.register_buffer("std", torch.from_numpy(np.stack([standardizer.std(d) for d in self.devices])))
        self.config = standardizer.config

    def index(self, devices: Sequence[str]) -> torch.Tensor:
        """Device names to a ``(batch,)`` index tensor (on the buffers' device)."""
        lookup = {d: i for i, d in enumerate(self.devices)}
        missing = [d for d in devices if d not in lookup]
        if missing:
            from micmatch.errors import UnknownDeviceError

            raise UnknownDeviceError(f"device {missing[0]!r} was not in the fitting set; known devices: "
                                     f"{', '.join(self.devices)}")
        return torch.tensor([lookup[d] for d in devices], device=self.mean.device)

    def forward(self, features: torch.Tensor, device_index: torch.Tensor) -> torch.Tensor:
        if features.dim() == 2:
            return self.forward(features.unsqueeze(0), device_index.reshape(1)).squeeze(0)
        mean = _per_item_tensor(self.mean[device_index], features)
        std = _per_item_tensor(self.std[device_index], features)
        return (features - mean) / std


def _per_item_tensor(rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(batch, n_mels)`` rows reshaped to broadcast over ``(batch, ..., n_mels, n_frames)``."""
    return rows.to(x.dtype).reshape(rows.shape[:1] + (1,) * (x.dim() - 3) + rows.shape[1:] + (1,))

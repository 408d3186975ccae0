"""``nn.Module`` twins of the numpy augmentations (:mod:`micmatch.augment`): parameters drawn, then applied.

Augmentations are identity in ``.eval()`` mode. They take the parameters that the numpy ``draw_*`` functions
return, so a logged parameter set replays a batch exactly on either side: ``module(x, params)``.
``module(x)`` draws them from torch's default generator (``torch.manual_seed`` makes the run repeatable),
``module(x, generator=g)`` from an explicit ``torch.Generator`` (which seeds a numpy generator; the parameters are
tiny, the work stays on the device) or ``numpy.random.Generator``; the parameters used are kept in
``module.last_params`` for logging. ``module.apply_params(batch, params)`` applies given parameters to a batch.
New augmentations subclass :class:`Augmentation`. They are also reachable from :mod:`micmatch.learn.transforms`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as tf

from micmatch import augment as aug
from micmatch import features as feat
from micmatch import validate
from micmatch.features import LogMelConfig
from micmatch.simulate import load_ir

__all__ = ["Augmentation", "DeviceIR", "FilterAugment", "FreqMixStyle", "Mixup", "ParametricEQ", "SyntheticResponse",
           "numpy_generator"]


def numpy_generator(generator: torch.Generator | np.random.Generator | None = None) -> np.random.Generator:
    """A numpy generator from a ``torch.Generator`` (one 62-bit draw seeds it), a numpy one (returned as is), or
    torch's default generator when ``generator`` is None (so ``torch.manual_seed`` makes a run repeatable)."""
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None:
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        return np.random.default_rng(seed)
    raise aug.AugmentError(f"generator={generator!r} must be a torch.Generator, a numpy Generator or None")


def _per_item(values: np.ndarray, x: torch.Tensor, *, trailing: int) -> torch.Tensor:
    """``(batch, k)`` numpy values as a tensor broadcasting over ``x`` (``trailing`` axes after the k axis)."""
    t = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    return t.reshape(t.shape[:1] + (1,) * (x.dim() - 2 - trailing) + t.shape[1:] + (1,) * trailing)


class Augmentation(nn.Module):
    """Draw the parameters (numpy, from a generator) then apply them (torch).

    Subclasses define ``draw(batch_size, *, generator)`` and ``apply_params(x, params)`` on batched input, and
    set :attr:`item_dims` (the number of dimensions of one unbatched item). ``forward`` adds and removes the batch
    axis for unbatched input, returns the input unchanged in ``.eval()`` mode, and keeps the parameters it used
    in :attr:`last_params` (JSON types: log them to replay the batch with ``module(x, params)``).
    """

    #: Dimensions of one item without a batch axis: 2 for features ``(n_mels, n_frames)``, 1 for waveforms.
    item_dims = 2

    def __init__(self) -> None:
        super().__init__()
        self.last_params: dict | None = None

    def forward(self, x: torch.Tensor, params: Mapping | None = None, *,
                generator: torch.Generator | np.random.Generator | None = None) -> torch.Tensor:
        """Augment ``x`` (identity in eval mode).

        Parameters
        ----------
        x : torch.Tensor
            A batch, or one item without the batch axis.
        params : dict, optional
            Parameters drawn earlier (by :meth:`draw`, the numpy ``draw_*`` function or a logged run): replays
            them exactly. Drawn from ``generator`` when omitted.
        generator : torch.Generator or numpy.random.Generator, optional
            Source of the draw; torch's default generator when omitted (``torch.manual_seed`` reproduces it).
        """
        if not self.training:
            return x
        unbatched = x.dim() == self.item_dims
        batch = x.unsqueeze(0) if unbatched else x
        if params is None:
            params = self.draw(batch.shape[0], generator=generator)
        self.last_params = dict(params)
        out = self.apply_params(batch, params)
        return out.squeeze(0) if unbatched else out

    def draw(self, batch_size: int, *, generator=None) -> dict:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def apply_params(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class Mixup(Augmentation):
    """mixup (twin of :func:`micmatch.augment.apply_mixup`); :meth:`mix_labels` mixes the targets alike.

    Each item is mixed with probability ``p`` (the others keep ``lam = 1``).

    Shape: ``(batch, ...)`` -> same; one item without the batch axis (``item_dims`` dimensions: 2 for
    ``(n_mels, n_frames)``, 1 for a waveform) comes back unchanged.
    """

    def __init__(self, alpha: float = 0.4, *, domain: str = "log", amin: float = feat.DEFAULT_AMIN, p: float = 1.0,
                 item_dims: int = 2) -> None:
        super().__init__()
        self.domain = validate.one_of(domain, "domain", ("log", "linear"), error=aug.AugmentError)
        self.alpha = validate.positive_float(alpha, "alpha", error=aug.AugmentError)
        self.amin = validate.positive_float(amin, "amin", error=aug.AugmentError)
        self.p = validate.probability(p, error=aug.AugmentError)
        self.item_dims = validate.positive_int(item_dims, "item_dims", error=aug.AugmentError)

    def draw(self, batch_size: int, *, generator=None) -> dict:
        return aug.draw_mixup(numpy_generator(generator), batch_size, alpha=self.alpha, p=self.p)

    def apply_params(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:
        lam = torch.as_tensor(params["lam"], dtype=x.dtype, device=x.device).reshape((-1,) + (1,) * (x.dim() - 1))
        perm = torch.as_tensor(params["perm"], dtype=torch.long, device=x.device)
        if self.domain == "log":
            return lam * x + (1.0 - lam) * x[perm]
        p = torch.pow(10.0, x / 10.0)
        return 10.0 * torch.log10((lam * p + (1.0 - lam) * p[perm]).clamp_min(self.amin))

    def forward(self, x: torch.Tensor, params: Mapping | None = None, *,
                generator: torch.Generator | np.random.Generator | None = None,
                targets: torch.Tensor | None = None, n_classes: int | None = None):
        """Mix ``x`` as :meth:`Augmentation.forward` does; with ``targets=`` (class indices ``(batch,)`` with
        ``n_classes=``, or one-hot / soft ``(batch, n_classes)``) return ``(mixed x, mixed soft targets)``, the
        pair a training step needs: ``F.cross_entropy(model(x), y)`` takes the soft targets as they are. In
        ``.eval()`` mode the targets come back unmixed (as soft targets).
        """
        out = super().forward(x, params, generator=generator)
        if targets is None:
            return out
        mixed = self.training and x.dim() != self.item_dims
        n = targets.shape[0]
        used = self.last_params if mixed else {"lam": [1.0] * n, "perm": list(range(n))}
        return out, self.mix_labels(targets, used, n_classes=n_classes)

    @staticmethod
    def mix_labels(labels: torch.Tensor, params: Mapping, *, n_classes: int | None = None) -> torch.Tensor:
        """Soft targets ``(batch, n_classes)`` from class indices ``(batch,)`` or one-hot labels."""
        y = labels
        if y.dim() == 1:
            if n_classes is None:
                raise aug.AugmentError("labels are class indices: pass n_classes= to build one-hot targets")
            y = tf.one_hot(y.long(), n_classes)
        y = y.to(torch.float64 if not y.is_floating_point() else y.dtype)
        lam = torch.as_tensor(params["lam"], dtype=y.dtype, device=y.device)[:, None]
        perm = torch.as_tensor(params["perm"], dtype=torch.long, device=y.device)
        return lam * y + (1.0 - lam) * y[perm]


def _filter_waveforms(x: torch.Tensor, gain_db: np.ndarray, n_fft: int) -> torch.Tensor:
    """Twin of :func:`micmatch.augment.apply_gain_curve` (zero phase, zero padded, same length)."""
    g = torch.as_tensor(np.power(10.0, gain_db / 20.0), device=x.device)
    g = g.reshape(g.shape[:1] + (1,) * (x.dim() - 2) + g.shape[1:])
    spec = torch.fft.rfft(x, n=n_fft, dim=-1)
    y = torch.fft.irfft(spec * g.to(spec.real.dtype), n=n_fft, dim=-1)
    return y[..., : x.shape[-1]]


class SyntheticResponse(Augmentation):
    """Synthetic frequency-response differences (twin of the numpy functions), the augmentation of "Unified
    Microphone Conversion: Many-to-Many Device Mapping via Feature-wise Linear Modulation".

    ``domain="waveform"`` (the default, as the registry's ``synth-fr-aug``) filters waveforms at
    ``config.sample_rate`` (zero phase); ``domain="features"`` adds the curves to log-mel features of ``config``. Each item is changed with probability ``p``.

    Shape: features ``(batch, ..., n_mels, n_frames)`` or ``(n_mels, n_frames)``; waveforms
    ``(batch, ..., n_samples)`` or ``(n_samples,)``; the output has the input's shape.
    """

    def __init__(self, config: LogMelConfig, *, domain: str = "waveform", n_bands=(4, 8),
                 range_db=(0.0, 10.0), p: float = 1.0) -> None:
        super().__init__()
        self.domain = validate.one_of(domain, "domain", ("features", "waveform"), error=aug.AugmentError)
        self.config, self.n_bands, self.range_db = config, n_bands, range_db
        self.p = validate.probability(p, error=aug.AugmentError)
        self.item_dims = 2 if domain == "features" else 1

    def draw(self, batch_size: int, *, generator=None) -> dict:
        return aug.draw_synthetic_response(numpy_generator(generator), batch_size, n_bands=self.n_bands,
                                           range_db=self.range_db, p=self.p)

    def apply_params(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:
        if self.domain == "features":
            return x + _per_item(aug.synthetic_response_offsets(params, self.config), x, trailing=1)
        sr = self.config.sample_rate
        n_fft, freqs = aug.filter_grid(x.shape[-1], sr)
        return _filter_waveforms(x, aug.synthetic_response_db(params, aug.mel_position(freqs, sr)), n_fft)


class FilterAugment(Augmentation):
    """Random per-band dB gains on log-mel features (twin of :func:`micmatch.augment.apply_filter_augment`).

    Each item is changed with probability ``p``.

    Shape: ``(batch, ..., n_mels, n_frames)`` or ``(n_mels, n_frames)`` -> same.
    """

    def __init__(self, *, n_bands=(3, 5), gain_db: float = 6.0, mode: str = "step", p: float = 1.0) -> None:
        super().__init__()
        self.mode = validate.one_of(mode, "mode", ("step", "linear"), error=aug.AugmentError)
        self.gain_db = validate.positive_float(gain_db, "gain_db", error=aug.AugmentError)
        self.n_bands = n_bands
        self.p = validate.probability(p, error=aug.AugmentError)

    def draw(self, batch_size: int, *, generator=None) -> dict:
        return aug.draw_filter_augment(numpy_generator(generator), batch_size, n_bands=self.n_bands,
                                       gain_db=self.gain_db, mode=self.mode, p=self.p)

    def apply_params(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:
        return x + _per_item(aug.filter_augment_offsets(params, x.shape[-2]), x, trailing=1)


class ParametricEQ(Augmentation):
    """Random peaking EQs on waveforms (twin of :func:`micmatch.augment.apply_parametric_eq`).

    Each item is changed with probability ``p``.

    Shape: ``(batch, ..., n_samples)`` or ``(n_samples,)`` -> same.
    """

    item_dims = 1

    def __init__(self, sample_rate: int, *, n_filters=(1, 3), gain_db: float = 6.0,
                 freq_range_hz=(100.0, 8000.0), q_range=(0.5, 3.0), p: float = 1.0) -> None:
        super().__init__()
        self.sample_rate = validate.positive_int(sample_rate, "sample_rate", error=aug.AugmentError)
        self.options = {"n_filters": n_filters, "gain_db": gain_db, "freq_range_hz": freq_range_hz,
                        "q_range": q_range, "p": validate.probability(p, error=aug.AugmentError)}

    def draw(self, batch_size: int, *, generator=None) -> dict:
        return aug.draw_parametric_eq(numpy_generator(generator), batch_size, self.sample_rate, **self.options)

    def apply_params(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:
        if int(params["sample_rate"]) != self.sample_rate:
            raise aug.AugmentError(f"the EQ was drawn for sample_rate={params['sample_rate']} but this module runs "
                                   f"at {self.sample_rate}; draw it again for this rate")
        n_fft, freqs = aug.filter_grid(x.shape[-1], self.sample_rate)
        return _filter_waveforms(x, aug.parametric_eq_db(params, freqs), n_fft)


class DeviceIR(Augmentation):
    """Device impulse-response augmentation (twin of :class:`micmatch.augment.DeviceIRAugment`).

    IRs are loaded at ``sample_rate`` (resampled once, cached) on first use; convolution runs on the batch's
    device via FFT; the delay is compensated and each item keeps its length and RMS level. Each item is
    convolved with probability ``p``.

    Shape: ``(batch, ..., n_samples)`` or ``(n_samples,)`` -> same.
    """

    item_dims = 1

    def __init__(self, irs, sample_rate: int, *, p: float = 0.5) -> None:
        super().__init__()
        self.numpy = aug.DeviceIRAugment(irs, p=p)
        self.sample_rate = validate.positive_int(sample_rate, "sample_rate", error=aug.AugmentError)
        self.p = self.numpy.p

    def draw(self, batch_size: int, *, generator=None) -> dict:
        return self.numpy.draw(numpy_generator(generator), batch_size)

    def _spectrum(self, path: str, n: int, x: torch.Tensor):
        """The IR's spectrum for a linear convolution of ``n`` samples (cached per IR, length, device, dtype) and
        its delay. The FFT size is the next fast length: zero padding beyond ``n + len(ir) - 1`` leaves the
        linear convolution unchanged and avoids slow prime-sized FFTs."""
        key = (path, n, x.device, x.dtype)
        cache = self.__dict__.setdefault("_spectra", {})
        if key not in cache:
            import scipy.fft

            ir = load_ir(path, self.sample_rate)
            h = torch.as_tensor(np.array(ir.ir), dtype=x.dtype, device=x.device)
            n_fft = scipy.fft.next_fast_len(n + h.shape[-1] - 1, real=True)
            cache[key] = (torch.fft.rfft(h, n=n_fft), n_fft, ir.delay)
        return cache[key]

    def apply_params(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:
        out = x.clone()
        n = x.shape[-1]
        for i, path in enumerate(params["ir"]):
            if path is None:
                continue
            spectrum, n_fft, delay = self._spectrum(path, n, x)
            y = torch.fft.irfft(torch.fft.rfft(x[i], n=n_fft) * spectrum, n=n_fft)
            y = y[..., delay : delay + n]
            rms_in = x[i].double().square().mean().sqrt()
            rms_out = y.double().square().mean().sqrt()
            gain = torch.clamp(rms_in / rms_out.clamp_min(aug.MIN_RMS), max=aug.MAX_LEVEL_GAIN)
            out[i] = (y * gain).to(x.dtype)
        return out


class FreqMixStyle(Augmentation):
    """Freq-MixStyle (twin of :func:`micmatch.augment.apply_freq_mixstyle`); the batch is mixed with probability
    ``p``.

    Shape: ``(batch, ..., n_mels, n_frames)`` -> same; one item ``(n_mels, n_frames)`` comes back unchanged
    (it has no partner to mix with).
    """

    def __init__(self, *, p: float = 0.5, alpha: float = 0.3, eps: float = aug.MIXSTYLE_EPS) -> None:
        super().__init__()
        self.p = validate.probability(p, error=aug.AugmentError)
        self.alpha = validate.positive_float(alpha, "alpha", error=aug.AugmentError)
        self.eps = validate.positive_float(eps, "eps", error=aug.AugmentError)

    def draw(self, batch_size: int, *, generator=None) -> dict:
        return aug.draw_freq_mixstyle(numpy_generator(generator), batch_size, p=self.p, alpha=self.alpha)

    def apply_params(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:
        if not params["apply"]:
            return x
        if x.dim() < 3:
            raise aug.AugmentError(f"features.shape={tuple(x.shape)} must be (batch, ..., n_mels, n_frames)")
        dims = tuple(d for d in range(1, x.dim()) if d != x.dim() - 2)
        mu = x.mean(dim=dims, keepdim=True)
        sig = (x.var(dim=dims, keepdim=True, unbiased=False) + self.eps).sqrt()
        lam = torch.as_tensor(params["lam"], dtype=x.dtype, device=x.device).reshape((-1,) + (1,) * (x.dim() - 1))
        perm = torch.as_tensor(params["perm"], dtype=torch.long, device=x.device)
        mu_mix = lam * mu + (1.0 - lam) * mu[perm]
        sig_mix = lam * sig + (1.0 - lam) * sig[perm]
        return (x - mu) / sig * sig_mix + mu_mix

"""The one list of front ends, normalizations and augmentations, by name.

Every method is one :class:`Transform` entry: its canonical name, what it does (one line), its JSON parameters
with their defaults, its numpy function and a factory for its ``torch.nn.Module`` twin. The command line
(``micmatch features --normalization``), the benchmark recipes and the Python API look names up here, so a new
method is one entry and shows up everywhere, ``--help`` included.

Entry kinds and call signatures (``x`` is time-last: waveforms ``(..., n_samples)``, features
``(..., n_mels, n_frames)``; ``config`` is a :class:`~micmatch.features.LogMelConfig`):

* ``front-end``: ``numpy(x, config=..., **params)`` turns waveforms into features.
* ``normalization``: ``numpy(x, config=..., **params)``; a *fitted* one (``fitted=True``) first needs
  ``state = fit(items, config=..., devices=..., **params)`` and then takes ``state=`` (and ``devices=``).
  :attr:`Transform.input` says whether it takes log-mel features in dB (``"log-mel"``) or linear mel power
  (``"mel"``).
* ``augmentation``: ``drawn = draw(rng, batch_size, config=..., **params)`` (JSON types, to log and replay),
  then ``numpy(x, drawn, config=..., **params)``.

``torch(config=..., **params)`` (and ``state=`` for fitted entries) builds the module; it imports torch only when
called, so this registry stays importable without it.

Old spellings (``mean``, ``medfilt``, ``per-device``, ``pcen``) still resolve through :func:`get` for one release,
with a :class:`FutureWarning` naming the new name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from micmatch import augment as aug
from micmatch import features as feat
from micmatch.errors import ParameterError

#: Kinds of entries, in the order listings show them.
KINDS = ("front-end", "normalization", "augmentation")

#: Old names kept for one release: old -> canonical.
ALIASES: dict[str, str] = {"mean": "spec-mean-sub", "medfilt": "median", "per-device": "device-std",
                           "pcen": "pcen-b"}

#: Scale applied to linear mel power before PCEN (librosa advises integer-like magnitudes; full scale -> 2**31).
PCEN_INPUT_SCALE = float(2**31)


@dataclass(frozen=True)
class Transform:
    """One front end, normalization or augmentation.

    Attributes
    ----------
    name : str
        Canonical name (lower case, ``-`` separated).
    kind : {"front-end", "normalization", "augmentation"}
    description : str
        One line for ``--help`` and listings.
    input : {"waveform", "log-mel", "mel"}
        What the numpy function takes with the default parameters.
    params : Mapping
        JSON defaults of every parameter; :meth:`parameters` merges overrides and refuses unknown names.
    numpy, torch, fit, draw : callables
        See the module docstring for their signatures.
    fitted : bool
        Needs statistics fitted on a set of recordings first (:attr:`fit`).
    """

    name: str
    kind: str
    description: str
    input: str
    numpy: Callable[..., Any]
    torch: Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    fit: Callable[..., Any] | None = None
    draw: Callable[..., Any] | None = None

    @property
    def fitted(self) -> bool:
        return self.fit is not None

    def parameters(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with ``overrides`` applied; an unknown parameter raises :class:`ParameterError`."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise ParameterError(f"{self.name}: unknown parameter(s) {', '.join(unknown)}; known: {known}")
        return {**self.params, **overrides}


_REGISTRY: dict[str, Transform] = {}


def register(entry: Transform) -> Transform:
    """Add an entry; its name must be new (and not an alias)."""
    if entry.kind not in KINDS:
        raise ParameterError(f"kind={entry.kind!r} must be one of {', '.join(KINDS)}")
    if entry.name in _REGISTRY or entry.name in ALIASES:
        raise ParameterError(f"a transform named {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def canonical(name: str, *, warn: bool = True) -> str:
    """The canonical spelling of ``name``; an old alias gives a :class:`FutureWarning` (when ``warn``)."""
    if name in ALIASES:
        new = ALIASES[name]
        if warn:
            warnings.warn(f"{name!r} is deprecated and will be removed in the next release; use {new!r}",
                          FutureWarning, stacklevel=3)
        return new
    return name


def get(name: str, *, kind: str | None = None) -> Transform:
    """The entry named ``name`` (or one of its old aliases), optionally of one kind."""
    entry = _REGISTRY.get(canonical(name))
    if entry is None or (kind is not None and entry.kind != kind):
        raise ParameterError(f"unknown {kind or 'transform'} {name!r}; known: {', '.join(names(kind))}")
    return entry


def names(kind: str | None = None) -> list[str]:
    """Canonical names, in registration order, of one kind or of all."""
    return [n for n, e in _REGISTRY.items() if kind is None or e.kind == kind]


def entries(kind: str | None = None) -> list[Transform]:
    return [get(n) for n in names(kind)]


def help_text(kind: str) -> str:
    """``name (description); ...`` for every entry of ``kind``, for ``--help``."""
    return "; ".join(f"{e.name} ({e.description})" for e in entries(kind))


# ----------------------------------------------------------------------------------------------------------------
# Entries. Torch twins are imported inside the factories so the numpy core never imports torch.


def _t():
    from micmatch.learn import transforms

    return transforms


def _stateless(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def run(x, *, config, **params):
        return fn(x, **params)

    run.__doc__ = fn.__doc__
    return run


register(Transform(
    "log-mel", "front-end", "log-mel spectrogram in dB, librosa compatible", "waveform",
    numpy=lambda x, *, config: feat.log_mel(x, config.sample_rate, config=config),
    torch=lambda *, config: _t().LogMel(config)))


def _sc(x, *, config, offset_db):
    if offset_db is None:
        raise ParameterError("sc needs offset_db: one dB value per mel band (micmatch.features.correction_offset_db)")
    return feat.apply_band_offset(x, np.asarray(offset_db, dtype=np.float64))


def _sc_torch(*, config, offset_db):
    if offset_db is None:
        raise ParameterError("sc needs offset_db: one dB value per mel band (micmatch.features.correction_offset_db)")
    return _t().BandOffset(np.asarray(offset_db, dtype=np.float64))


register(Transform(
    "sc", "normalization", "spectrum correction as one dB offset per mel band, from measured device responses",
    "log-mel", numpy=_sc, torch=_sc_torch, params={"offset_db": None}))
register(Transform(
    "spec-mean-sub", "normalization", "each band minus its mean over time, per spectrogram", "log-mel",
    numpy=_stateless(feat.spectrogram_mean_subtraction), torch=lambda *, config: _t().SpectrogramMeanSubtraction()))


def _median(x, *, config, size):
    return feat.median_filter_residual(x, size=tuple(size))


register(Transform(
    "median", "normalization", "minus a median filter over mel bands x frames", "log-mel",
    numpy=_median, torch=lambda *, config, size: _t().MedianFilterResidual(tuple(size)), params={"size": [7, 21]}))
register(Transform(
    "cms", "normalization", "cepstral mean subtraction: mean-free cepstra", "log-mel",
    numpy=lambda x, *, config, n_ceps: feat.cepstral_mean_subtraction(x, n_ceps=n_ceps),
    torch=lambda *, config, n_ceps: _t().CepstralMeanSubtraction(config.n_mels, n_ceps), params={"n_ceps": None}))


def _pcen_entry(preset: str, description: str) -> Transform:
    defaults = {**feat.PCEN_PRESETS[preset], "input_scale": PCEN_INPUT_SCALE}

    def run(x, *, config, input_scale, **options):
        scaled = x if input_scale == 1.0 else np.multiply(x, input_scale, dtype=np.result_type(x, np.float32))
        return feat.pcen(scaled, config.sample_rate, hop_length=config.hop_length, **options)

    def module(*, config, input_scale, **options):
        return _t().PCEN(config.sample_rate, hop_length=config.hop_length, input_scale=input_scale, **options)

    return Transform(f"pcen-{preset}", "normalization", description, "mel", numpy=run, torch=module,
                     params=defaults)


register(_pcen_entry("a", "per-channel energy normalization, time constant 0.01 s, gain 0.95"))
register(_pcen_entry("b", "per-channel energy normalization, time constant 0.2 s, gain 1.0"))
register(Transform(
    "rasta", "normalization", "RASTA band-pass filtering of each band along time", "log-mel",
    numpy=lambda x, *, config, pole: feat.rasta(x, pole=pole),
    torch=lambda *, config, pole: _t().Rasta(pole), params={"pole": 0.98}))


def _check_state(name: str, state, cls) -> None:
    if not isinstance(state, cls):
        raise ParameterError(f"{name} needs state=: a fitted {cls.__name__} (fit it first)")


def _device_std_fit(items, *, config, devices, scale):
    if devices is None:
        raise ParameterError("device-std needs devices=: the recording device of each item")
    return feat.PerDeviceStandardizer(scale=scale).fit(items, devices, config=config)


def _device_std(x, *, config, state, devices, scale):
    _check_state("device-std", state, feat.PerDeviceStandardizer)
    return state.transform(x, devices, config=config)


def _device_std_torch(*, config, state, scale):
    _check_state("device-std", state, feat.PerDeviceStandardizer)
    return _t().PerDeviceStandardize(state)


register(Transform(
    "device-std", "normalization", "per-device standardization with each device's band statistics", "log-mel",
    numpy=_device_std, torch=_device_std_torch, fit=_device_std_fit, params={"scale": True}))


def _global_entry(mode: str, description: str) -> Transform:
    def fit(items, *, config, devices=None):
        return feat.GlobalNormalizer(mode).fit(items, config=config)

    def run(x, *, config, state, devices=None):
        _check_state(mode, state, feat.GlobalNormalizer)
        return state.transform(x, config=config)

    def module(*, config, state):
        _check_state(mode, state, feat.GlobalNormalizer)
        return _t().GlobalNormalize(state)

    return Transform(mode, "normalization", description, "log-mel", numpy=run, torch=module, fit=fit)


register(_global_entry("gms", "global mean subtraction with training-set band means"))
register(_global_entry("gmsvn", "global mean and variance normalization with training-set band statistics"))


# Augmentations: numpy functions take (x, drawn, config=..., **params).


register(Transform(
    "mixup", "augmentation", "mix pairs of items (and their labels) with Beta-distributed weights", "log-mel",
    numpy=lambda x, drawn, *, config, alpha, domain, p: aug.apply_mixup(x, drawn, domain=domain, amin=config.amin),
    torch=lambda *, config, alpha, domain, p: _t().Mixup(alpha, domain=domain, amin=config.amin, p=p),
    draw=lambda rng, n, *, config, alpha, domain, p: aug.draw_mixup(rng, n, alpha=alpha, p=p),
    params={"alpha": 0.4, "domain": "log", "p": 1.0}))


def _pair(value):
    """A JSON list ``[low, high]`` as the tuple the augment functions take (an int stays an int)."""
    return tuple(value) if isinstance(value, Sequence) else value


def _irs(irs) -> list[str]:
    if not irs:
        raise ParameterError("dir-aug needs irs: a folder or a list of impulse-response files")
    return aug.DeviceIRAugment(irs).irs


register(Transform(
    "dir-aug", "augmentation", "convolve waveforms with impulse responses of other devices", "waveform",
    numpy=lambda x, drawn, *, config, irs, p: aug.apply_device_ir(x, config.sample_rate, drawn),
    torch=lambda *, config, irs, p: _t().DeviceIR(_irs(irs), config.sample_rate, p=p),
    draw=lambda rng, n, *, config, irs, p: aug.draw_device_ir(rng, n, _irs(irs), p=p),
    params={"irs": None, "p": 0.5}))


def _synth(x, drawn, *, config, domain, n_bands, range_db, p):
    if domain == "waveform":
        return aug.apply_synthetic_response(x, config.sample_rate, drawn)
    return aug.apply_synthetic_response_features(x, drawn, config=config)


register(Transform(
    "synth-fr-aug", "augmentation", "random piecewise-linear frequency-response differences (dB on the mel axis)",
    "waveform", numpy=_synth,
    torch=lambda *, config, domain, n_bands, range_db, p: _t().SyntheticResponse(
        config, domain=domain, n_bands=_pair(n_bands), range_db=tuple(range_db), p=p),
    draw=lambda rng, n, *, config, domain, n_bands, range_db, p: aug.draw_synthetic_response(
        rng, n, n_bands=_pair(n_bands), range_db=tuple(range_db), p=p),
    params={"domain": "waveform", "n_bands": [4, 8], "range_db": [0.0, 10.0], "p": 1.0}))


register(Transform(
    "filteraugment", "augmentation", "random dB gains on random mel band groups", "log-mel",
    numpy=lambda x, drawn, *, config, n_bands, gain_db, mode, p: aug.apply_filter_augment(x, drawn),
    torch=lambda *, config, n_bands, gain_db, mode, p: _t().FilterAugment(
        n_bands=_pair(n_bands), gain_db=gain_db, mode=mode, p=p),
    draw=lambda rng, n, *, config, n_bands, gain_db, mode, p: aug.draw_filter_augment(
        rng, n, n_bands=_pair(n_bands), gain_db=gain_db, mode=mode, p=p),
    params={"n_bands": [3, 5], "gain_db": 6.0, "mode": "step", "p": 1.0}))
register(Transform(
    "freq-mixstyle", "augmentation", "mix per-band mean and spread between items of a batch", "log-mel",
    numpy=lambda x, drawn, *, config, alpha, p: aug.apply_freq_mixstyle(x, drawn),
    torch=lambda *, config, alpha, p: _t().FreqMixStyle(p=p, alpha=alpha),
    draw=lambda rng, n, *, config, alpha, p: aug.draw_freq_mixstyle(rng, n, p=p, alpha=alpha),
    params={"alpha": 0.3, "p": 0.5}))


__all__ = ["ALIASES", "KINDS", "PCEN_INPUT_SCALE", "Transform", "canonical", "entries", "get", "help_text", "names",
           "register"]

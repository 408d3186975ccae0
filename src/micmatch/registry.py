"""The one list of front ends, normalizations and augmentations, by name.

Every method is one :class:`Transform` entry: its canonical name, what it does (one line), its JSON parameters
with their defaults, its numpy function and a factory for its ``torch.nn.Module`` twin. The command line
(``micmatch features --normalization``), the benchmark recipes and the Python API look names up here, so a new
method is one entry and shows up everywhere, ``--help`` included.

Entry kinds and call signatures (``x`` is time-last: waveforms ``(..., n_samples)``, features
``(..., n_mels, n_frames)``; ``config`` is a :class:`~micmatch.logmel.LogMelConfig`):

* ``front-end``: ``numpy(x, config=..., **params)`` turns waveforms into features.
* ``normalization``: ``numpy(x, config=..., **params)``. :attr:`Transform.input` says whether it takes log-mel
  features in dB (``"log-mel"``) or linear mel power (``"mel"``).
* ``augmentation``: ``drawn = draw(rng, batch_size, config=..., **params)`` (JSON types, to log and replay),
  then ``numpy(x, drawn, config=..., **params)``.

``torch(config=..., **params)`` builds the module; it imports torch only when called, so this registry stays
importable without it. Every callable takes only the parameters it overrides (``entry.torch(config=cfg, p=0.5)``)
and fills the others from :attr:`Transform.params`, the same defaults as the module classes' own.

**Fitted entries** (``sc``, ``device-std``, ``gms``, ``gmsvn``, ``umc``) hold a state fitted once on data
before any pipeline is built::

    state = entry.fit(items, config=cfg, devices=devices, reference=reference, **params)

``items`` are what :attr:`Transform.fit_domain` names (waveforms ``(n_samples,)`` or log-mel ``(n_mels,
n_frames)``), taken from the recordings :attr:`Transform.fit_on` names: ``"per-device"`` (every device's
recordings, ``devices`` labelling each; ``reference`` names the device to correct towards), ``"training"`` (the
training set) or ``"reference"`` (the reference device's recordings). A state saved earlier or trained
elsewhere comes back with ``entry.load(path, config=cfg)`` where the entry has a file form. Every call then
takes ``state=``: ``numpy(x, config=..., state=..., devices=..., **params)`` (``devices`` for per-device
entries), ``torch(config=..., state=..., **params)`` and, for augmentations, ``draw(..., state=...)``.
:func:`fit` does the same from a name. The benchmark fits every fitted entry of a recipe through this one call
(:mod:`micmatch.bench.fitting`); ``micmatch features`` fits on its inputs, or loads ``--feature-stats``.

Old spellings (``mean``, ``medfilt``, ``per-device``, ``pcen``) still resolve through :func:`get` for one release,
with a :class:`FutureWarning` naming the new name.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from micmatch import augment as aug
from micmatch import converter_entry as umc
from micmatch import feature_stats as stats
from micmatch import logmel, normalizations as norms
from micmatch.errors import ParameterError

#: Kinds of entries, in the order listings show them.
KINDS = ("front-end", "normalization", "augmentation")

#: Which recordings a fitted entry is fitted on (:attr:`Transform.fit_on`).
FIT_ON = ("per-device", "training", "reference")

#: Old names kept for one release: old -> canonical.
ALIASES: dict[str, str] = {"mean": "spec-mean-sub", "medfilt": "median", "per-device": "device-std",
                           "pcen": "pcen-b"}

#: Scale applied to linear mel power before PCEN (librosa advises integer-like magnitudes; full scale -> 2**31).
PCEN_INPUT_SCALE = norms.PCEN_INPUT_SCALE

#: Keywords an entry's callables take besides its parameters (data and context, never defaulted).
CONTEXT = frozenset({"config", "state", "devices", "reference"})


def _with_defaults(entry: Transform, fn: Callable[..., Any], *, needs_state: bool) -> Callable[..., Any]:
    """``fn`` taking only the parameters a caller overrides: the others come from ``entry.params``."""
    fn = getattr(fn, "__wrapped__", fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if needs_state and kwargs.get("state") is None:
            raise ParameterError(f"{entry.name} needs state=: fit it first with registry.fit({entry.name!r}, items, "
                                 f"config=...)" + (" or entry.load(path)" if entry.load else ""))
        context = {k: kwargs.pop(k) for k in list(kwargs) if k in CONTEXT}
        return fn(*args, **context, **entry.parameters(kwargs))

    return call


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
    numpy, torch, fit, draw, load : callables
        See the module docstring for their signatures.
    fit_input : {"waveform", "log-mel"}, optional
        What :attr:`fit` takes (default: :attr:`input`).
    fit_on : {"per-device", "training", "reference"}
        Which recordings the state is fitted on (fitted entries).
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
    fit_input: str | None = None
    fit_on: str = "training"
    load: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if self.fit_on not in FIT_ON:
            raise ParameterError(f"{self.name}: fit_on={self.fit_on!r} must be one of {', '.join(FIT_ON)}")
        # Every callable fills the parameters the caller leaves out from params: one set of defaults.
        for name in ("numpy", "torch", "draw", "fit"):
            fn = getattr(self, name)
            if fn is not None:
                needs_state = self.fit is not None and name != "fit"
                object.__setattr__(self, name, _with_defaults(self, fn, needs_state=needs_state))

    @property
    def fitted(self) -> bool:
        """The entry needs a state fitted on data first (:attr:`fit`)."""
        return self.fit is not None

    @property
    def per_device(self) -> bool:
        """The state holds one part per device: applying it needs each item's device."""
        return self.fitted and self.fit_on == "per-device"

    @property
    def fit_domain(self) -> str:
        """What :attr:`fit` takes: ``"waveform"`` or ``"log-mel"``."""
        return self.fit_input or self.input

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


def fit(name: str, items, *, config=None, devices: Sequence[str] | None = None, reference: str | None = None,
        params: Mapping[str, Any] | None = None):
    """Fit the state of the fitted entry ``name`` in one call; returns ``(state, parameters)``.

    Parameters
    ----------
    name : {"sc", "device-std", "gms", "gmsvn", "umc"}
        A fitted entry (:attr:`Transform.fitted`).
    items : arrays, a torch tensor, or a features file path
        What the entry fits on (:attr:`Transform.fit_domain`): log-mel features in dB ``(n_mels, n_frames)``
        (device-std, gms, gmsvn) or waveforms ``(n_samples,)`` (sc, umc); a batch ``(batch, ...)`` is that many
        items, a tensor is copied to the CPU. A ``.npz`` written by ``micmatch features --normalization none``
        gives its clips (without padding), its devices (unless ``devices`` is given) and its configuration.
    config : LogMelConfig
        The feature settings; may be omitted with a features file (its own settings are used).
    devices, reference : optional
        Each item's device for per-device entries (:attr:`Transform.fit_on`), the reference device for ``sc``.
    params : mapping, optional
        Parameters overriding the entry's defaults.

    Examples
    --------
    Global mean subtraction fitted on a training batch of log-mel features, then used as a module::

        state, _ = registry.fit("gms", train_logmel, config=cfg)        # (batch, n_mels, n_frames)
        gms = registry.get("gms").torch(config=cfg, state=state)        # nn.Module with the means as buffers
        state.save("gms.json")  # registry.get("gms").load("gms.json") reads it back

    Per-device standardization straight from a features file::

        state, _ = registry.fit("device-std", "train.npz")
    """
    entry = get(name)
    if not entry.fitted:
        raise ParameterError(f"{entry.name} is not fitted: it needs no data before use")
    if isinstance(items, (str, Path)):
        items, file_devices, config = _from_features_file(entry, items, config)
        devices = file_devices if devices is None else devices
    elif hasattr(items, "detach") or (isinstance(items, Sequence) and items and hasattr(items[0], "detach")):
        items = [np.asarray(x.detach().cpu()) for x in items]
    if config is None:
        raise ParameterError(f"{entry.name}: pass config= (the LogMelConfig of the items)")
    p = entry.parameters(params)
    return entry.fit(items, config=config, devices=devices, reference=reference, **p), p


def _from_features_file(entry: Transform, path, config):
    """Clips, devices and configuration of a features file, refused where the entry cannot fit on them."""
    from micmatch.extract import load_features

    doc = load_features(path)
    if entry.fit_domain != "log-mel" or doc.normalization != "none":
        raise ParameterError(f"{path}: {entry.name} fits on {entry.fit_domain}, not on features normalized with "
                             f"{doc.normalization!r}; write them with micmatch features --normalization none")
    if config is not None and config != doc.config:
        from micmatch.errors import ConfigMismatchError

        raise ConfigMismatchError(f"{path}: its features have {doc.config}, not config={config}")
    ends = doc.lengths if doc.lengths is not None else [None] * len(doc.files)
    return [doc.clip(i)[:, :end] for i, end in enumerate(ends)], doc.devices, doc.config


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
    numpy=lambda x, *, config: logmel.log_mel(x, config.sample_rate, config=config),
    torch=lambda *, config: _t().LogMel(config)))
register(Transform(
    "mel", "front-end", "linear mel power (the front end of pcen-a and pcen-b)", "waveform",
    numpy=lambda x, *, config: logmel.mel_spectrogram(x, config.sample_rate, config=config),
    torch=lambda *, config: _t().MelSpectrogram(config)))


def _check_state(name: str, state, cls) -> None:
    if not isinstance(state, cls):
        raise ParameterError(f"{name} needs state=: a fitted {cls.__name__} (fit it first)")


def _needs_devices(name: str, devices) -> list[str]:
    if devices is None:
        raise ParameterError(f"{name} needs devices=: the recording device of each item")
    return [str(d) for d in devices]


def _sc_fit(waves, *, config, devices=None, reference=None, **options):
    from micmatch.spectrum_correction import SpectrumCorrection

    if reference is None:
        raise ParameterError("sc needs reference=: the device the others are corrected to")
    return SpectrumCorrection.fit(list(waves), _needs_devices("sc", devices), config.sample_rate, reference=reference,
                                  **options)


def _sc_state(state):
    from micmatch.spectrum_correction import SpectrumCorrection

    _check_state("sc", state, SpectrumCorrection)
    return state


register(Transform(
    "sc", "normalization", "spectrum correction: each device's response corrected to the reference's, as one dB "
    "value per mel band", "log-mel",
    numpy=lambda x, *, config, state, devices, **p: _sc_state(state).transform(
        x, _needs_devices("sc", devices), config=config),
    torch=lambda *, config, state, **p: _t().PerDeviceStandardize(_sc_state(state).standardizer(config=config)),
    fit=_sc_fit, fit_input="waveform", fit_on="per-device",
    params={"n_fft": 2048, "max_boost_db": 20.0, "max_cut_db": 30.0, "floor_margin_db": 15.0, "floor_boost_db": 0.0,
            "level": "auto"}))
register(Transform(
    "spec-mean-sub", "normalization", "each band minus its mean over time, per spectrogram", "log-mel",
    numpy=_stateless(norms.spectrogram_mean_subtraction), torch=lambda *, config: _t().SpectrogramMeanSubtraction()))


def _median(x, *, config, size):
    return norms.median_filter_residual(x, size=tuple(size))


register(Transform(
    "median", "normalization", "minus a median filter over mel bands x frames", "log-mel",
    numpy=_median, torch=lambda *, config, size: _t().MedianFilterResidual(tuple(size)), params={"size": [7, 21]}))
register(Transform(
    "cms", "normalization", "cepstral mean subtraction: mean-free cepstra", "log-mel",
    numpy=lambda x, *, config, n_ceps: norms.cepstral_mean_subtraction(x, n_ceps=n_ceps),
    torch=lambda *, config, n_ceps: _t().CepstralMeanSubtraction(config.n_mels, n_ceps), params={"n_ceps": None}))


def _pcen_entry(preset: str, description: str) -> Transform:
    defaults = {**norms.PCEN_PRESETS[preset], "input_scale": PCEN_INPUT_SCALE}

    def run(x, *, config, input_scale, **options):
        scaled = x if input_scale == 1.0 else np.multiply(x, input_scale, dtype=np.result_type(x, np.float32))
        return norms.pcen(scaled, config.sample_rate, hop_length=config.hop_length, **options)

    def module(*, config, input_scale, **options):
        return _t().PCEN(config.sample_rate, hop_length=config.hop_length, input_scale=input_scale, **options)

    return Transform(f"pcen-{preset}", "normalization", description, "mel", numpy=run, torch=module,
                     params=defaults)


register(_pcen_entry("a", "per-channel energy normalization, time constant 0.01 s, gain 0.95"))
register(_pcen_entry("b", "per-channel energy normalization, time constant 0.2 s, gain 1.0"))
register(Transform(
    "rasta", "normalization", "RASTA band-pass filtering of each band along time", "log-mel",
    numpy=lambda x, *, config, pole: norms.rasta(x, pole=pole),
    torch=lambda *, config, pole: _t().Rasta(pole), params={"pole": 0.98}))


def _load_stats(name: str, cls, mode: str | None = None):
    """The file form of a feature-statistics entry: a file saved by ``micmatch features --save-feature-stats``."""

    def load(path, *, config=None):
        state = stats.load_feature_stats(path)
        if not isinstance(state, cls) or (mode is not None and state.mode != mode):
            raise ParameterError(f"{path}: holds {state.kind} feature statistics, not {name!r}; fit them with "
                                 f"--normalization {name} --save-feature-stats PATH")
        return state

    return load


def _device_std_fit(items, *, config, devices=None, reference=None, scale):
    return stats.PerDeviceStandardizer(scale=scale).fit(items, _needs_devices("device-std", devices), config=config)


def _device_std(x, *, config, state, devices, scale):
    _check_state("device-std", state, stats.PerDeviceStandardizer)
    return state.transform(x, _needs_devices("device-std", devices), config=config)


def _device_std_torch(*, config, state, scale):
    _check_state("device-std", state, stats.PerDeviceStandardizer)
    return _t().PerDeviceStandardize(state)


register(Transform(
    "device-std", "normalization", "per-device standardization with each device's band statistics", "log-mel",
    numpy=_device_std, torch=_device_std_torch, fit=_device_std_fit, fit_on="per-device",
    load=_load_stats("device-std", stats.PerDeviceStandardizer), params={"scale": True}))


def _global_entry(mode: str, description: str) -> Transform:
    def fit(items, *, config, devices=None, reference=None):
        return stats.GlobalNormalizer(mode).fit(items, config=config)

    def run(x, *, config, state, devices=None):
        _check_state(mode, state, stats.GlobalNormalizer)
        return state.transform(x, config=config)

    def module(*, config, state):
        _check_state(mode, state, stats.GlobalNormalizer)
        return _t().GlobalNormalize(state)

    return Transform(mode, "normalization", description, "log-mel", numpy=run, torch=module, fit=fit,
                     load=_load_stats(mode, stats.GlobalNormalizer, mode))


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


def _irs(irs, name: str = "dir-aug") -> list[str]:
    if not irs:
        raise ParameterError(f"{name} needs irs: a folder or a list of impulse-response files")
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



# The device converter: a fitted augmentation. Its state is a trained converter (torch); fitting trains one
# (micmatch.converter_entry holds the work).


def _umc_fit(waves, *, config, devices=None, reference=None, irs, known=False, **options):
    fit = {k: v for k, v in options.items() if k not in ("p", "synthetic")}
    return umc.fit_converter(waves, [] if known else _irs(irs, "umc"), config=config, known=known, devices=devices,
                             reference=reference, **fit)


def _umc_module(*, config, state, irs, p, synthetic=False, **unused):
    return umc.converter_module(state, _irs(irs, "umc") if irs else [], config=config, p=p, synthetic=synthetic)


def _umc_apply(x, drawn, *, config, state, irs, p, synthetic=False, **unused):
    return umc.apply_converter(x, drawn, state, _irs(irs, "umc") if irs else [], config=config, p=p,
                               synthetic=synthetic)


register(Transform(
    "umc", "augmentation", "device converter (FiLM CycleGAN): reference-device features converted to other devices",
    "log-mel", numpy=_umc_apply, torch=_umc_module,
    draw=lambda rng, n, *, config, state, **params: _umc_module(config=config, state=state, **params).draw(
        n, generator=rng),
    fit=_umc_fit, fit_input="waveform", fit_on="reference", load=umc.load_converter,
    params={"irs": None, "preset": "cpu-smoke", "epochs": 10, "n_clips": 1200, "n_devices": 6, "norm": None,
            "seed": 0, "compute": "auto", "progress": False, "p": 0.5, "form": None, "discriminator": None,
            "known": False, "n_fft": 256, "synthetic": False}))


__all__ = ["ALIASES", "FIT_ON", "KINDS", "PCEN_INPUT_SCALE", "Transform", "canonical", "entries", "fit", "get",
           "help_text", "names", "register"]

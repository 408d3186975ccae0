"""Recipes of the mismatch benchmark: named remedies, how they combine, and the steps that implement them.

A recipe is a named remedy, described by the pipeline steps it changes; ``a+b`` combines remedies and
``name:ARG`` gives a recipe that takes an argument (a file or a folder, e.g. a trained model used as an
augmentation or a normalizer) its value. Every entry of :mod:`micmatch.registry` is a step and a recipe of the
same name (the front end ``log-mel`` is ``baseline``); later remedies are one :func:`register_recipe` call each,
plus one :func:`register_step` when they need a new kind of step.

Step names map to torch modules in one place, :data:`STEPS`; each builder gets the benchmark data (sample rate,
settings, augmentation impulse responses), the step's argument (None for steps that take none) and, for a step
of a fitted registry entry, the entry's fitted state (:mod:`micmatch.bench.fitting` fits it first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from micmatch.errors import CorpusError

#: Kinds of steps, in pipeline order: correction of each device's waveforms (fitted; applied once, in numpy),
#: waveform augmentation (training only), compression of mel energies, augmentation of the reference device's
#: log-mel features (training only), normalization per spectrogram, normalization with statistics fitted on the
#: data (after the per-spectrogram ones), augmentation of training batches (features and targets).
STEP_KINDS = ("correct", "wave_augment", "compress", "feature_augment", "clip_norms", "fitted_norms",
              "batch_augment")


@dataclass(frozen=True)
class Step:
    """How a step name becomes a torch module: ``build(data, argument) -> nn.Module``.

    ``kind`` is one of :data:`STEP_KINDS`; ``takes`` names the argument (e.g. ``"PATH"``) for steps written
    ``name:ARG``, None for steps without one. ``fitted`` names the fitted registry entry whose state the step
    applies: its builder is then ``build(data, argument, state)``, and its state is fitted on the benchmark's
    data (or, given an argument, loaded from that file) before any pipeline is built. ``settings(data)`` gives
    the entry's parameters in the benchmark (over its JSON defaults); ``before_fit(data)`` refuses data the
    entry cannot be fitted on; ``check_loaded(state, argument, data)`` refuses a loaded state that does not
    suit the benchmark. ``fit_data(data, ideal)`` gives the ``(device index, rows)`` the state is fitted on when the
    entry's ``fit_on`` does not say it (:func:`micmatch.bench.fitting.fitting_rows` has the form);
    ``apply_only`` names parameters that change how the state is applied, not how it is fitted (recipes that
    differ only there share one fitted state).
    """

    kind: str
    build: Callable
    takes: str | None = None
    fitted: str | None = None
    settings: Callable = lambda data: {}
    before_fit: Callable | None = None
    check_loaded: Callable | None = None
    fit_data: Callable | None = None
    apply_only: tuple[str, ...] = ()


def _logmel(data):
    return data.config.logmel(data.sample_rate)


def _registry_step(kind: str, name: str, settings: Callable = lambda data: {}, **options) -> Step:
    """The step of registry entry ``name``: its torch module with the benchmark's ``settings(data)`` over the
    entry's JSON defaults, so recipes and ``micmatch features`` share one implementation per method."""
    from micmatch import registry

    entry = registry.get(name)

    def build(data, arg, state=None):
        params = entry.parameters(settings(data))
        if entry.fitted:
            return entry.torch(config=_logmel(data), state=state, **params)
        return entry.torch(config=_logmel(data), **params)

    return Step(kind, build, fitted=name if entry.fitted else None, settings=settings, **options)


def _dir_aug_settings(data) -> dict:
    if not data.aug_irs:
        raise CorpusError("recipe dir-aug needs augmentation impulse responses: pass --aug-irs DIR "
                          "(or --aug-from-rest)")
    return {"irs": [str(p) for p in data.plan.aug_irs], "p": data.config.aug_p}


def _sc_settings(data) -> dict:
    cfg = data.config
    return {"n_fft": cfg.sc_n_fft, "max_boost_db": cfg.sc_max_boost_db, "max_cut_db": cfg.sc_max_cut_db,
            "level": cfg.sc_level}


def _sc_build(data, arg, state):
    """Spectrum correction of waveforms: ``correct(waves, device_index)`` with each row's device's curve."""

    def correct(waves, devices):
        return state.correct(waves, devices, data.sample_rate, names=data.plan.names)

    return correct


def _umc_settings(data) -> dict:
    cfg = data.config
    return {"irs": [str(p) for p in data.plan.aug_irs], "preset": cfg.umc_preset, "epochs": cfg.umc_epochs,
            "n_clips": cfg.umc_clips, "n_devices": cfg.umc_devices, "norm": cfg.umc_norm, "seed": cfg.data_seed,
            "compute": cfg.device, "progress": cfg.progress, "p": cfg.aug_p, "known": cfg.track == "adapt",
            "form": cfg.umc_form or ("stochastic" if cfg.track == "adapt" else None),
            "discriminator": cfg.umc_discriminator or ("conditional" if cfg.track == "adapt" else None),
            "n_fft": cfg.sc_n_fft}


def _umc_synth_settings(data) -> dict:
    return {**_umc_settings(data), "synthetic": True}


def _umc_fit_data(data, ideal):
    from micmatch.bench.umc import fit_data

    return fit_data(data, ideal)


def _umc_before_fit(data) -> None:
    if data.config.track == "adapt":
        if not any(d.role == "unseen" for d in data.plan.devices):
            raise CorpusError("recipe umc in --track adapt trains on the unseen devices' clips: pass --unseen N")
        return
    if not data.plan.aug_irs:
        raise CorpusError("recipe umc trains a converter on augmentation devices: pass --aug-irs DIR (or "
                          "--aug-from-rest), or give a trained one as umc:CONVERTER")


def _umc_check_loaded(converter, path: str, data) -> None:
    from micmatch.bench.umc import check_converter

    check_converter(converter, path, data)


def _known_aug_build(data, arg):
    from micmatch.bench.known import build_known_aug

    return build_known_aug(data, arg)


#: Step name -> implementation. The one place where recipe steps meet the torch modules.
STEPS: dict[str, Step] = {
    # Fitted per device on each device's training or calibration clips; applied once to the waveforms.
    "sc": Step("correct", _sc_build, fitted="sc", settings=_sc_settings),
    "dir-aug": _registry_step("wave_augment", "dir-aug", _dir_aug_settings),
    "synth-fr-aug": _registry_step("wave_augment", "synth-fr-aug", lambda d: {"p": d.config.aug_p}),
    # The recipe "pcen" is the registry's setting b (T = 0.2 s, gain 1.0), scaled as librosa advises.
    "pcen": _registry_step("compress", "pcen-b"),
    **{n: _registry_step("compress", n) for n in ("pcen-a", "pcen-b")},
    **{n: _registry_step("clip_norms", n) for n in ("spec-mean-sub", "cms", "median", "rasta")},
    # Fitted on features: each device's (device-std) or the whole training set's (gms, gmsvn).
    "device-std": _registry_step("fitted_norms", "device-std", lambda d: {"scale": True}),
    **{n: _registry_step("fitted_norms", n) for n in ("gms", "gmsvn")},
    # Mixed as the features are given (dB or normalized values), so it composes with every front end.
    "mixup": _registry_step("batch_augment", "mixup", lambda d: {"alpha": d.config.mixup_alpha, "domain": "log"}),
    "filteraugment": _registry_step("batch_augment", "filteraugment"),
    "freq-mixstyle": _registry_step("batch_augment", "freq-mixstyle", lambda d: {"p": d.config.aug_p,
                                                                                  "alpha": 0.3}),
    # Without an argument the converter is trained on the augmentation devices; umc:CONVERTER loads a trained one.
    # In --track adapt it is trained on the reference's and the known devices' clips instead (micmatch.bench.umc).
    "umc": _registry_step("feature_augment", "umc", _umc_settings, takes="CONVERTER",
                          before_fit=_umc_before_fit, check_loaded=_umc_check_loaded, fit_data=_umc_fit_data,
                          apply_only=("p", "synthetic")),
    # The same converter, towards synthetic response differences at classifier-training time.
    "umc-synth": _registry_step("feature_augment", "umc", _umc_synth_settings, before_fit=_umc_before_fit,
                                fit_data=_umc_fit_data, apply_only=("p", "synthetic")),
    # Adaptation track only: towards each known device as estimated from its unlabeled clips.
    "known-aug": Step("feature_augment", _known_aug_build),
}


def split_step(step: str) -> tuple[str, str | None]:
    """``"name:arg"`` -> ``("name", "arg")``; ``"name"`` -> ``("name", None)``."""
    name, sep, arg = step.partition(":")
    return name, (arg if sep else None)


def build_step(step: str, data, state=None):
    """The torch module of one step (``"name"`` or ``"name:arg"``) for the benchmark ``data``; a fitted step
    takes its fitted ``state``."""
    name, arg = split_step(step)
    impl = STEPS[name]
    if impl.fitted:
        if state is None:
            raise CorpusError(f"step {step!r} applies a fitted {impl.fitted}: fit it first (micmatch.bench.fitting)")
        return impl.build(data, arg, state)
    return impl.build(data, arg)


def register_step(name: str, step: Step) -> None:
    """Add a step implementation; refuses a name already taken or an unknown kind."""
    if name in STEPS:
        raise CorpusError(f"step {name!r} is already registered")
    if step.kind not in STEP_KINDS:
        raise CorpusError(f"step {name!r} has kind {step.kind!r}; known kinds: {', '.join(STEP_KINDS)}")
    STEPS[name] = step


# ----------------------------------------------------------------------------------------------------------------
# Recipes


@dataclass(frozen=True)
class Recipe:
    """A remedy, as the pipeline steps it changes; :func:`compose` merges two.

    Steps, in pipeline order: ``ideal`` (train on every device), ``correct`` (per-device corrections of the
    waveforms, e.g. ``("sc",)``: unaligned spectrum correction of each clip to the reference), ``wave_augment``
    (training waveforms, redrawn every batch), ``compress`` (``"log"`` dB or a compression step such as
    ``"pcen"``), ``feature_augment`` (the reference device's training log-mel features, in dB: the device
    converter), ``clip_norms`` (per spectrogram), ``fitted_norms`` (with statistics fitted on the data:
    ``device-std``, ``gms``, ``gmsvn``), ``batch_augment`` (training-batch transforms: mixup, filteraugment,
    freq-mixstyle). Step names are keys of :data:`STEPS`, with ``:ARG`` once bound. ``argument`` names what the
    recipe takes after ``name:`` (None: nothing); with ``argument_optional`` the recipe may also be written
    without one (its steps then get None).

    ``correct=True`` (the spelling of the previous release) means ``correct=("sc",)``; it goes in the next release.
    """

    name: str
    ideal: bool = False
    correct: tuple[str, ...] = ()
    wave_augment: tuple[str, ...] = ()
    compress: str = "log"
    clip_norms: tuple[str, ...] = ()
    fitted_norms: tuple[str, ...] = ()
    batch_augment: tuple[str, ...] = ()
    description: str = ""
    argument: str | None = None
    feature_augment: tuple[str, ...] = ()
    argument_optional: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.correct, bool):
            object.__setattr__(self, "correct", ("sc",) if self.correct else ())

    def steps(self) -> list[str]:
        """Every step name of the recipe in pipeline order (the compression only when it is not ``log``)."""
        compress = [] if self.compress == "log" else [self.compress]
        return [*self.correct, *self.wave_augment, *compress, *self.feature_augment, *self.clip_norms,
                *self.fitted_norms, *self.batch_augment]


#: Recipe fields that hold a tuple of steps.
_STEP_FIELDS = ("correct", "wave_augment", "feature_augment", "clip_norms", "fitted_norms", "batch_augment")


def compose(a: Recipe, b: Recipe) -> Recipe:
    """``a+b``: every step of both (steps of ``a`` first); two different compressions cannot be combined, and
    feature augmentations (which work on log-mel in dB) do not follow another compression."""
    if a.compress != "log" and b.compress != "log" and a.compress != b.compress:
        raise CorpusError(f"recipes {a.name!r} and {b.name!r} both replace the log compression; pick one")

    def merged(x: tuple, y: tuple) -> tuple:
        return x + tuple(v for v in y if v not in x)

    compress = a.compress if a.compress != "log" else b.compress
    steps = {f: merged(getattr(a, f), getattr(b, f)) for f in _STEP_FIELDS}
    if steps["feature_augment"] and compress != "log":
        raise CorpusError(f"recipes {a.name!r} and {b.name!r}: {', '.join(steps['feature_augment'])} converts "
                          f"log-mel features in dB and cannot follow the compression {compress!r}; drop one")
    return Recipe(f"{a.name}+{b.name}", ideal=a.ideal or b.ideal, compress=compress,
                  description=f"{a.description}; {b.description}", **steps)


def bind(recipe: Recipe, argument: str) -> Recipe:
    """``recipe`` with its argument given: every step that takes one becomes ``step:argument``."""

    def bound(steps: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f"{s}:{argument}" if STEPS[s].takes else s for s in steps)

    compress = recipe.compress
    if compress != "log" and STEPS[compress].takes:
        compress = f"{compress}:{argument}"
    return replace(recipe, name=f"{recipe.name}:{argument}", compress=compress,
                   description=f"{recipe.description} ({argument})", argument=None, argument_optional=False,
                   **{f: bound(getattr(recipe, f)) for f in _STEP_FIELDS})


#: The named remedies.
RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a named remedy; its steps must be registered (:func:`register_step`) and its name new.

    A recipe whose steps take an argument must say what it takes (``argument="PATH"``), and is then written
    ``name:PATH`` on the command line.
    """
    if recipe.name in RECIPES or not recipe.name or any(c in recipe.name for c in "+:,"):
        raise CorpusError(f"recipe name {recipe.name!r} is taken or holds one of + : ,")
    unknown = [s for s in recipe.steps() if s not in STEPS]
    if unknown:
        raise CorpusError(f"recipe {recipe.name!r} uses unregistered step(s) {', '.join(unknown)}")
    takes = {STEPS[s].takes for s in recipe.steps()} - {None}
    if bool(takes) != (recipe.argument is not None):
        raise CorpusError(f"recipe {recipe.name!r}: argument={recipe.argument!r} but its steps take "
                          f"{', '.join(sorted(takes)) or 'no argument'}")
    RECIPES[recipe.name] = recipe
    return recipe


for _r in [
    Recipe("baseline", description="log-mel, per-band standardization over the training set"),
    Recipe("ideal", ideal=True, description="every device in training (the upper bound)"),
    Recipe("sc", correct=("sc",), description="unaligned spectrum correction of waveforms to the reference "
                                               "(unseen devices: from calibration clips)"),
    Recipe("device-std", fitted_norms=("device-std",), description="per-device standardization of log-mel "
                                                                   "(unseen devices: from calibration clips)"),
    Recipe("gms", fitted_norms=("gms",), description="global mean subtraction with training-set band means"),
    Recipe("gmsvn", fitted_norms=("gmsvn",), description="global mean and variance normalization with "
                                                         "training-set band statistics"),
    Recipe("spec-mean-sub", clip_norms=("spec-mean-sub",), description="spectrogram-wise mean subtraction"),
    Recipe("cms", clip_norms=("cms",), description="cepstral mean subtraction"),
    Recipe("median", clip_norms=("median",), description="median-filter residual (7 bands x 21 frames)"),
    Recipe("pcen", compress="pcen", description="PCEN instead of log (Spectrum Correction paper, setting b: "
                                                "T=0.2 s, alpha=1)"),
    Recipe("pcen-a", compress="pcen-a", description="PCEN instead of log (Spectrum Correction paper, setting a: "
                                                    "T=0.01 s, alpha=0.95)"),
    Recipe("pcen-b", compress="pcen-b", description="PCEN instead of log (Spectrum Correction paper, setting b: "
                                                    "T=0.2 s, alpha=1; the same as pcen)"),
    Recipe("rasta", clip_norms=("rasta",), description="RASTA filtering of log-mel (pole 0.98)"),
    Recipe("mixup", batch_augment=("mixup",), description="mixup (alpha 0.4, on the features as given)"),
    Recipe("dir-aug", wave_augment=("dir-aug",), description="device impulse-response augmentation (p=0.5)"),
    Recipe("synth-fr-aug", wave_augment=("synth-fr-aug",),
           description="synthetic frequency-response differences (Unified Microphone Conversion paper, p=0.5)"),
    Recipe("filteraugment", batch_augment=("filteraugment",), description="FilterAugment (random band gains)"),
    Recipe("freq-mixstyle", batch_augment=("freq-mixstyle",), description="Freq-MixStyle (p=0.5, alpha 0.3)"),
    Recipe("umc", feature_augment=("umc",), argument="CONVERTER", argument_optional=True,
           description="device converter (Unified Microphone Conversion paper): reference-device training features "
                       "converted to augmentation devices and synthetic differences (p=0.5); umc trains the "
                       "converter in the run (in the adapt track on the reference's and the known devices' clips, "
                       "towards those devices), umc:CONVERTER loads a trained one"),
    Recipe("umc-synth", feature_augment=("umc-synth",),
           description="the converter of umc, towards synthetic response differences at classifier-training time "
                       "(Unified Microphone Conversion paper's second variant, p=0.5)"),
    Recipe("known-aug", feature_augment=("known-aug",),
           description="adaptation track: reference training features augmented towards each known device, with its "
                       "band response, level and noise floor estimated from its unlabeled clips (p=0.5)"),
]:
    register_recipe(_r)


def _one(part: str) -> Recipe:
    name, arg = split_step(part)
    recipe = RECIPES[name]
    if recipe.argument and not arg and recipe.argument_optional:
        return recipe
    if recipe.argument and not arg:
        raise CorpusError(f"recipe {name} needs an argument: write {name}:{recipe.argument}")
    if arg is not None and not recipe.argument:
        raise CorpusError(f"recipe {name} takes no argument (got {part!r}); write {name}")
    return bind(recipe, arg) if recipe.argument else recipe


def parse_recipe(spec: str) -> Recipe:
    """A recipe by name, ``name:ARG`` for one that takes an argument, several joined with ``+`` (``"sc+mixup"``).

    Arguments cannot contain ``+``.

    Raises
    ------
    CorpusError
        Unknown names, a missing or unexpected argument, or remedies that cannot be combined.
    """
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    if not parts:
        raise CorpusError(f"recipe {spec!r} is empty; known recipes: {', '.join(RECIPES)}")
    unknown = [p for p in parts if split_step(p)[0] not in RECIPES]
    if unknown:
        raise CorpusError(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(RECIPES)} "
                          "(combine with +, e.g. sc+mixup)")
    recipe = _one(parts[0])
    for p in parts[1:]:
        recipe = compose(recipe, _one(p))
    return replace(recipe, name="+".join(parts))


__all__ = ["RECIPES", "Recipe", "STEPS", "STEP_KINDS", "Step", "bind", "build_step", "compose", "parse_recipe",
           "register_recipe", "register_step", "split_step"]

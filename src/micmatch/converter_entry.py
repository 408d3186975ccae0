"""The device converter as a registry entry (``umc``): fitting trains a converter, the module converts features.

The registry's ``umc`` entry calls these functions; torch and the converter half of :mod:`micmatch.learn` are
imported only when one of them runs, so the numpy core stays importable without torch.

Two ways to fit it. By default (``known=False``) on clean clips of the reference device recorded through chains
drawn with impulse responses (never the devices being tested). With ``known=True`` on the clips as labelled by
``devices``: the reference's and those of the *known* target devices (their unlabeled recordings), one domain per
device, each conditioned on what :func:`micmatch.device_estimate.estimate_devices` measures of it against the
reference (band shift and noise floor) instead of a recorded impulse response: the protocol of the converter
papers, which train on recordings of the devices they convert to. ``form`` picks the generator's form
(:data:`micmatch.learn.converter_model.FORMS`), ``discriminator`` one per device domain or one conditional.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from micmatch.errors import ParameterError


def _converter_api():
    """The converter half of :mod:`micmatch.learn` (torch), imported here only, when an entry needs it."""
    from types import SimpleNamespace

    from micmatch.domains import simulate_domains
    from micmatch.learn.converter_augment import ConverterAugment
    from micmatch.learn.converter_model import Converter
    from micmatch.learn.converter_train import PRESETS, train_converter

    return SimpleNamespace(PRESETS=PRESETS, simulate_domains=simulate_domains, train_converter=train_converter,
                           Converter=Converter, ConverterAugment=ConverterAugment)


def check_converter(state) -> None:
    """Refuse a ``state`` that is not a trained :class:`~micmatch.learn.converter_model.Converter`."""
    cls = _converter_api().Converter
    if not isinstance(state, cls):
        raise ParameterError(f"umc needs state=: a fitted {cls.__name__} (fit it first)")


#: ``discriminator`` values: one per device domain (the paper) or one conditioned on the domain's response.
DISCRIMINATORS = {"per-device": "per-domain", "conditional": "conditional"}


def fit_converter(waves, paths: list[str], *, config, preset, epochs, n_clips, n_devices, norm, seed, compute,
                  progress, form=None, discriminator=None, known=False, devices=None, reference=None,
                  n_fft=256):
    """Train a converter on ``waves``: clean clips of the reference device (at most ``n_clips`` of them, a seeded
    draw) recorded through ``n_devices`` chains drawn with the impulse responses ``paths``; with ``known`` the
    clips of the reference and known devices as labelled by ``devices`` (module docstring)."""
    from dataclasses import replace

    import torch

    api = _converter_api()
    if preset not in api.PRESETS:
        raise ParameterError(f"umc: preset={preset!r} must be one of {', '.join(api.PRESETS)}")
    if discriminator is not None and discriminator not in DISCRIMINATORS:
        raise ParameterError(f"umc: discriminator={discriminator!r} must be one of {', '.join(DISCRIMINATORS)}")
    chosen = api.PRESETS[preset]
    model = replace(chosen.model, norm=norm or chosen.model.norm)
    if form is not None:
        model = model.with_form(form)
    train = replace(chosen.train, epochs=epochs, seed=seed, device=compute, progress=progress,
                    threads=1 if chosen.train.threads is None and torch.get_num_threads() <= 2 else None,
                    **({"discriminator": DISCRIMINATORS[discriminator]} if discriminator else {}))
    if known:
        return _fit_known(api, waves, devices, reference, config=config, model=model, train=train, n_clips=n_clips,
                          seed=seed, n_fft=n_fft, preset=preset)
    rows = np.arange(len(waves))
    if len(rows) > n_clips:
        rows = np.sort(np.random.default_rng([seed, 13]).choice(rows, size=n_clips, replace=False))
    clips = [waves[i] for i in rows]
    features, band, simulated = api.simulate_domains(clips, config.sample_rate, paths, feature_config=config,
                                                     n_devices=min(n_devices, len(paths)), seed=seed,
                                                     progress=progress)
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(f"umc: training a converter on {len(clips)} clips, domains {', '.join(features)} "
                   f"({epochs} epochs)")
    floors = None
    if model.floor_path:
        from micmatch.device_estimate import noise_floor_db

        floors = {k: noise_floor_db(v) for k, v in features.items()}
    return api.train_converter(features, band, floors=floors, config=model, train=train, feature_config=config,
                               info={"simulated_devices": simulated, "preset": preset}, desc="umc converter")


def _fit_known(api, waves, devices, reference, *, config, model, train, n_clips, seed, n_fft, preset):
    """The ``known=True`` fit: one domain per device label, conditioned on micmatch's own estimates."""
    from micmatch.device_estimate import estimate_devices
    from micmatch.logmel import log_mel

    labels = np.asarray([str(d) for d in (devices or [])])
    if len(labels) != len(waves) or reference not in set(labels.tolist()) or len(set(labels.tolist())) < 2:
        raise ParameterError("umc with known devices needs devices= (one label per clip) naming the reference "
                             f"{reference!r} and at least one other device")
    ref_rows = np.flatnonzero(labels == reference)
    if len(ref_rows) > n_clips:
        ref_rows = np.sort(np.random.default_rng([seed, 13]).choice(ref_rows, size=n_clips, replace=False))
    waves = np.asarray(waves)
    others = {n: waves[labels == n] for n in dict.fromkeys(labels.tolist()) if n != reference}
    estimates = estimate_devices(waves[ref_rows], others, config.sample_rate, config=config, n_fft=n_fft,
                                 reference=reference)
    features = {reference: log_mel(waves[ref_rows], config.sample_rate, config=config).astype(np.float32)}
    features.update({n: log_mel(w, config.sample_rate, config=config).astype(np.float32) for n, w in others.items()})
    band = {n: e["shift_db"] for n, e in estimates.items()}
    floors = {n: e["floor_db"] for n, e in estimates.items()}
    info = {"known_devices": sorted(others), "reference": reference, "preset": preset,
            "clips": {n: int(len(v)) for n, v in features.items()}}
    return api.train_converter(features, band, floors=floors if model.floor_path else None, config=model,
                               train=train, feature_config=config, info={**info, "floors": {
                                   n: [float(v) for v in f] for n, f in floors.items()}}, desc="umc converter")


def load_converter(path, *, config=None):
    """A converter saved earlier (the entry's file form)."""
    return _converter_api().Converter.load(path)


def converter_module(state, paths: list[str], *, config, p, synthetic=False):
    """The converter as an augmentation. Trained on known devices: towards them (their estimated shift and floor),
    or with ``synthetic`` towards synthetic differences (each with a known device's floor). Otherwise targets are
    the band dB vectors of the IRs ``paths`` (half the converted items) and synthetic differences (the other half,
    all without ``paths`` or with ``synthetic``)."""
    from micmatch.conditioning import ir_band_response

    check_converter(state)
    known = state.info.get("known_devices")
    if known:
        ref = state.info.get("reference")
        targets = {n: r for n, r in state.band_responses.items() if n in known}
        floors = {n: f for n, f in state.floors.items() if n in known}
        return _converter_api().ConverterAugment(state, targets=targets, source_response=state.band_responses[ref],
                                                 p=p, synthetic_fraction=1.0 if synthetic else 0.0, floors=floors)
    targets = {Path(f).stem: ir_band_response(f, config=config) for f in paths}
    floors = None
    if state.config.floor_path and state.floors:  # simulated devices: their floors stand for any target's
        floors = {k: v for k, v in state.floors.items() if k != "reference"}
    return _converter_api().ConverterAugment(state, targets=targets, p=p,
                                             synthetic_fraction=1.0 if synthetic else None, floors=floors)


def apply_converter(x, drawn, state, paths: list[str], *, config, p, synthetic=False) -> np.ndarray:
    """The numpy form: features ``x`` converted with the drawn parameters by a copy of the converter in the
    features' precision (the fitted state is left as it is)."""
    import copy

    import torch

    x = torch.as_tensor(np.asarray(x))
    module = converter_module(copy.deepcopy(state).to(x.dtype), paths, config=config, p=p, synthetic=synthetic)
    return module.apply_params(x, drawn).numpy()


__all__ = ["DISCRIMINATORS", "apply_converter", "check_converter", "converter_module", "fit_converter", "load_converter"]

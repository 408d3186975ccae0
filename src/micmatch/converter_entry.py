"""The device converter as a registry entry (``umc``): fitting trains a converter, the module converts features.

The registry's ``umc`` entry calls these functions; torch and the converter half of :mod:`micmatch.learn` are
imported only when one of them runs, so the numpy core stays importable without torch.
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


def fit_converter(waves, paths: list[str], *, config, preset, epochs, n_clips, n_devices, norm, seed, compute,
                  progress):
    """Train a converter on ``waves`` (clean clips of the reference device; at most ``n_clips`` of them, a seeded
    draw) recorded through ``n_devices`` chains drawn with the impulse responses ``paths``."""
    from dataclasses import replace

    import torch

    api = _converter_api()
    if preset not in api.PRESETS:
        raise ParameterError(f"umc: preset={preset!r} must be one of {', '.join(api.PRESETS)}")
    chosen = api.PRESETS[preset]
    rows = np.arange(len(waves))
    if len(rows) > n_clips:
        rows = np.sort(np.random.default_rng([seed, 13]).choice(rows, size=n_clips, replace=False))
    clips = [waves[i] for i in rows]
    features, band, simulated = api.simulate_domains(clips, config.sample_rate, paths, feature_config=config,
                                                     n_devices=min(n_devices, len(paths)), seed=seed,
                                                     progress=progress)
    train = replace(chosen.train, epochs=epochs, seed=seed, device=compute, progress=progress,
                    threads=1 if chosen.train.threads is None and torch.get_num_threads() <= 2 else None)
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(f"umc: training a converter on {len(clips)} clips, domains {', '.join(features)} "
                   f"({epochs} epochs)")
    model = replace(chosen.model, norm=norm or chosen.model.norm)
    return api.train_converter(features, band, config=model, train=train, feature_config=config,
                               info={"simulated_devices": simulated, "preset": preset}, desc="umc converter")


def load_converter(path, *, config=None):
    """A converter saved earlier (the entry's file form)."""
    return _converter_api().Converter.load(path)


def converter_module(state, paths: list[str], *, config, p):
    """The converter as an augmentation: targets are the band dB vectors of the IRs ``paths`` (half the converted
    items), and synthetic differences (the other half, or all without ``paths``)."""
    from micmatch.conditioning import ir_band_response

    check_converter(state)
    targets = {Path(f).stem: ir_band_response(f, config=config) for f in paths}
    return _converter_api().ConverterAugment(state, targets=targets, p=p)


def apply_converter(x, drawn, state, paths: list[str], *, config, p) -> np.ndarray:
    """The numpy form: features ``x`` converted with the drawn parameters by a copy of the converter in the
    features' precision (the fitted state is left as it is)."""
    import copy

    import torch

    x = torch.as_tensor(np.asarray(x))
    module = converter_module(copy.deepcopy(state).to(x.dtype), paths, config=config, p=p)
    return module.apply_params(x, drawn).numpy()


__all__ = ["apply_converter", "check_converter", "converter_module", "fit_converter", "load_converter"]

"""The device converter in the mismatch benchmark (recipes ``umc`` and ``umc:CONVERTER``).

``umc`` trains a converter during the run on the benchmark's *augmentation* devices: the reference device's
training clips recorded through recording chains drawn with the augmentation impulse responses
(:func:`micmatch.learn.converter.simulate_domains`), never through a test device. ``umc:CONVERTER`` loads one
trained with ``micmatch train converter`` and refuses it when it was trained on a device the benchmark tests, or
on other log-mel settings. Either way the converter becomes a :class:`~micmatch.learn.converter.ConverterAugment`
whose targets are the band responses of the augmentation impulse responses, half of the converted items taking
a synthetic difference instead.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from micmatch.errors import CorpusError

_CACHE_KEY = "umc-converter"


def _log(data, line: str) -> None:
    if data.config.progress:
        from tqdm.auto import tqdm

        tqdm.write(line)


def train_for_benchmark(data):
    """The converter of recipe ``umc`` for the benchmark ``data`` (trained once per run, then cached).

    The corpus is ``config.umc_clips`` of the reference device's training clips (a seeded draw) spread over the
    reference and ``config.umc_devices`` chains drawn with the augmentation impulse responses; the architecture
    and schedule come from the preset ``config.umc_preset`` with ``config.umc_epochs`` epochs, and the
    generator's normalisation from ``config.umc_norm`` when set.

    Raises
    ------
    CorpusError
        When the benchmark has no augmentation impulse responses.
    """
    if _CACHE_KEY in data._cache:
        return data._cache[_CACHE_KEY]
    import torch

    from micmatch.domains import simulate_domains
    from micmatch.learn.converter_train import PRESETS, train_converter

    cfg = data.config
    irs = list(data.plan.aug_irs)
    if len(irs) < 1:
        raise CorpusError("recipe umc trains a converter on augmentation devices: pass --aug-irs DIR (or "
                          "--aug-from-rest), or give a trained one as umc:CONVERTER")
    if cfg.umc_preset not in PRESETS:
        raise CorpusError(f"umc_preset={cfg.umc_preset!r} must be one of {', '.join(PRESETS)}")
    preset = PRESETS[cfg.umc_preset]
    rows = np.flatnonzero(data.assign == 0)
    rng = np.random.default_rng([cfg.data_seed, 13])
    if len(rows) > cfg.umc_clips:
        rows = np.sort(rng.choice(rows, size=cfg.umc_clips, replace=False))
    waves = list(data.train_set(False)[rows])
    fcfg = cfg.logmel(data.sample_rate)
    features, band, devices = simulate_domains(waves, data.sample_rate, irs, feature_config=fcfg,
                                               n_devices=min(cfg.umc_devices, len(irs)), seed=cfg.data_seed,
                                               progress=cfg.progress)
    train = replace(preset.train, epochs=cfg.umc_epochs, seed=cfg.data_seed, device=cfg.device,
                    progress=cfg.progress,
                    threads=1 if preset.train.threads is None and torch.get_num_threads() <= 2 else None)
    _log(data, f"umc: training a converter on {len(waves)} clips, domains {', '.join(features)} "
               f"({cfg.umc_epochs} epochs)")
    model = replace(preset.model, norm=cfg.umc_norm or preset.model.norm)
    converter = train_converter(features, band, config=model, train=train, feature_config=fcfg,
                                info={"simulated_devices": devices, "preset": cfg.umc_preset}, desc="umc converter")
    data._cache[_CACHE_KEY] = converter
    return converter


def trained_converter(data):
    """The converter that recipe ``umc`` trained in this run, or None when no recipe trained one."""
    return data._cache.get(_CACHE_KEY)


def converter_devices(converter) -> set[str]:
    """Names of the devices a converter was trained on (its domains and its simulated devices' IR files)."""
    names = {str(n) for n in converter.info.get("domains", [])}
    for name, chain in dict(converter.info.get("simulated_devices") or {}).items():
        names.add(str(name))
        if isinstance(chain, dict) and chain.get("ir"):
            names.add(Path(str(chain["ir"])).stem)
    return names


def load_for_benchmark(path: str, data):
    """A trained converter for ``umc:PATH``, checked against the benchmark's features and test devices.

    Raises
    ------
    CorpusError
        Other log-mel settings, or a converter trained on a device that the benchmark tests.
    """
    from micmatch.learn.converter_model import Converter

    converter = Converter.load(path)
    want = data.config.logmel(data.sample_rate)
    have = converter.feature_config
    if have is None or have.to_json() != want.to_json():
        raise CorpusError(f"umc:{path}: the converter was trained on log-mel features {have and have.to_json()} but "
                          f"the benchmark uses {want.to_json()}; train one with these settings (micmatch train "
                          "converter --n-mels ...) or use recipe umc")
    tested = {d.name for d in data.plan.devices if d.path is not None}
    overlap = sorted(tested & converter_devices(converter))
    if overlap:
        raise CorpusError(f"umc:{path}: the converter was trained on test device(s) {', '.join(overlap)}; train it "
                          "on impulse responses that the benchmark does not test")
    return converter


def converter_augment(data, path: str | None):
    """The feature augmentation of recipe ``umc`` (``path`` None: train the converter in this run).

    Targets: every augmentation impulse response's band response (half of the converted items), and synthetic
    differences (the other half, or all when there are no augmentation impulse responses).
    """
    from micmatch.conditioning import ir_band_response
    from micmatch.learn.converter_augment import ConverterAugment

    converter = train_for_benchmark(data) if path is None else load_for_benchmark(path, data)
    fcfg = data.config.logmel(data.sample_rate)
    targets = {Path(p).stem: ir_band_response(p, config=fcfg) for p in data.plan.aug_irs}
    return ConverterAugment(converter, targets=targets, p=data.config.aug_p,
                            synthetic_fraction=0.5 if targets else 1.0)


__all__ = ["converter_augment", "converter_devices", "load_for_benchmark", "train_for_benchmark",
           "trained_converter"]

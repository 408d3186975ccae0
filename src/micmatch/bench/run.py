"""Running the mismatch benchmark: one classifier per recipe and seed, trained on tensors, scored per device.

Per recipe, the waveforms every device records and their spectrum correction (``sc``) are prepared once, in
numpy (:mod:`micmatch.bench.data`). Everything after that runs in torch on one device, batched
(:mod:`micmatch.bench.pipeline`): recipes without waveform augmentation compute their features once and train on
them; recipes with it train on waveforms and compute features batch by batch, so a GPU speeds up the features
as well as the classifier.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from micmatch import features as feat
from micmatch.bench.data import MismatchConfig, MismatchData, prepare_data
from micmatch.bench.plan import plan_devices
from micmatch.bench.recipes import Recipe, build_step, parse_recipe
from micmatch.bench.report import MismatchResult, hardware
from micmatch.corpus import load_corpus
from micmatch.errors import CorpusError
from micmatch.simulate import list_irs


def _corrections(data: MismatchData, ideal: bool) -> dict[int, object]:
    """Spectrum correction of every non-reference device to the reference (cached per training set)."""
    key = ("corrections", ideal)
    if key in data._cache:
        return data._cache[key]
    from micmatch.correct import correction_curve
    from micmatch.estimate import estimate_responses

    cfg = data.config
    sources = {d.name: list(data.device_source(i, ideal)) for i, d in enumerate(data.plan.devices)}
    responses = estimate_responses(sources, data.sample_rate, n_fft=cfg.sc_n_fft, hop_length=cfg.sc_n_fft // 4)
    ref = data.plan.reference.name
    out = {i: correction_curve(responses, d.name, ref, max_boost_db=cfg.sc_max_boost_db,
                               max_cut_db=cfg.sc_max_cut_db)
           for i, d in enumerate(data.plan.devices) if d.role != "reference"}
    data._cache[key] = out
    return out


def corrected(waves: np.ndarray, devices: np.ndarray, data: MismatchData, recipe: Recipe) -> np.ndarray:
    """``waves`` ``(n, n_samples)`` corrected to the reference per row's device when the recipe corrects."""
    if not recipe.correct:
        return waves
    from micmatch.correct import apply_correction

    corrections = _corrections(data, recipe.ideal)
    out = waves.copy()
    for d in np.unique(devices):
        if int(d) in corrections:
            rows = np.flatnonzero(devices == d)
            out[rows] = apply_correction(waves[rows], data.sample_rate, corrections[int(d)], method="stft")
    return out


@dataclass
class Prepared:
    """What training one recipe needs, on the torch device: inputs, their device indices, fixed training
    features (for the classifier's input standardization), test features per device, and the front end."""

    inputs: object
    train_devices: np.ndarray
    train_features: object
    test: dict[int, object]
    front_end: object
    per_batch: bool


def prepare(data: MismatchData, recipe: Recipe) -> Prepared:
    """Build the recipe's front end, fit its device statistics, and compute the fixed features."""
    import torch

    from micmatch.bench.pipeline import FrontEnd, compute_features
    from micmatch.learn.engine import select_device
    from micmatch.learn.transforms import PerDeviceStandardize

    dev = select_device(data.config.device)
    ideal = recipe.ideal
    train_dev = data.assign_ideal if ideal else data.assign
    train_waves = corrected(data.train_set(ideal), train_dev, data, recipe)
    front = FrontEnd(recipe, data).to(dev)
    train = compute_features(front, train_waves, device=dev)
    if recipe.device_std:
        cfg = data.config.logmel(data.sample_rate)
        standardizer = feat.PerDeviceStandardizer(scale=True)
        names = data.plan.names
        for i in range(len(names)):
            rows = np.flatnonzero(train_dev == i)
            if rows.size:
                source = train[torch.as_tensor(rows, device=dev)]
            else:
                calib = data.calibration_set(i)
                source = compute_features(front, corrected(calib, np.full(len(calib), i), data, recipe), device=dev)
            standardizer.fit(source.double().cpu().numpy(), [names[i]] * len(source), config=cfg)
        front.set_device_std(PerDeviceStandardize(standardizer).to(dev))
        train = compute_features(front, train_waves, train_dev, device=dev)
    test = {}
    for i in range(len(data.plan.names)):
        n = data.test_waves.shape[0]
        waves = corrected(data.test_set(i), np.full(n, i), data, recipe)
        test[i] = compute_features(front, waves, np.full(n, i), device=dev)
    per_batch = bool(recipe.wave_augment or recipe.feature_augment)
    inputs = torch.as_tensor(train_waves, device=dev) if per_batch else train
    return Prepared(inputs, train_dev, train, test, front, per_batch)


def run_recipe(data: MismatchData, recipe: Recipe, seed: int, *, prepared: Prepared | None = None) -> dict:
    """Train one classifier for ``recipe`` with ``seed`` and score every test device.

    Returns
    -------
    dict
        ``{device name: {"accuracy": float, "macro_f1": float}}`` plus ``"_loss"`` (final training loss).
    """
    import torch

    from micmatch.bench.pipeline import batch_augments
    from micmatch.learn.classifier import DeviceCNN
    from micmatch.learn.classifier_train import TrainConfig, predict, train_classifier
    from micmatch.learn.engine import select_device
    from micmatch.metrics import macro_f1

    cfg = data.config
    prep = prepared if prepared is not None else prepare(data, recipe)
    front_end = None
    if prep.per_batch:
        front = prep.front_end.train()
        dev_index = torch.as_tensor(prep.train_devices, device=select_device(cfg.device))

        def front_end(x, rows, generator):
            return front(x, dev_index[rows], generator=generator)

    torch.manual_seed(seed)
    model = DeviceCNN(len(data.classes), prep.train_features.shape[1])
    model.set_normalization(prep.train_features.mean(dim=(0, 2)), prep.train_features.std(dim=(0, 2)))
    train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, seed=seed,
                            device=cfg.device, progress=cfg.progress)
    history = train_classifier(model, prep.inputs, data.train_labels, config=train_cfg, front_end=front_end,
                               batch_transforms=batch_augments(recipe, data), desc=f"{recipe.name} seed {seed}")
    prep.front_end.eval()
    out: dict = {"_loss": history[-1]}
    for i, name in enumerate(data.plan.names):
        pred = predict(model, prep.test[i], device=cfg.device).argmax(axis=1)
        out[name] = {"accuracy": float(np.mean(pred == data.test_labels)),
                     "macro_f1": macro_f1(data.test_labels, pred, n_classes=len(data.classes))}
    return out


def check_recipe(recipe: Recipe, data: MismatchData) -> None:
    """Build every step of ``recipe`` once, so a missing input (e.g. no augmentation IRs) fails before training."""
    for step in recipe.steps():
        build_step(step, data)


def run_benchmark(data_dir: str | os.PathLike, irs_dir: str | os.PathLike, *, recipes: Sequence[str],
                  seeds: Sequence[int], config: MismatchConfig | None = None,
                  aug_irs_dir: str | os.PathLike | None = None, aug_from_rest: bool = False,
                  reference: str | None = None, seen: Sequence[str] | None = None,
                  unseen: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> MismatchResult:
    """Run the whole benchmark: plan devices, load data, train and score every recipe and seed.

    Parameters
    ----------
    data_dir : path-like
        A corpus folder (:func:`micmatch.corpus.load_corpus`).
    irs_dir : path-like
        Folder of device impulse responses.
    recipes : sequence of str
        Recipe specs (:func:`~micmatch.bench.recipes.parse_recipe`), e.g. ``["baseline", "ideal", "sc",
        "sc+mixup"]``.
    seeds : sequence of int
        Training seeds; each recipe trains once per seed.
    aug_irs_dir : path-like, optional
        Folder of augmentation impulse responses (must not share a device with the test devices).
    """
    config = MismatchConfig() if config is None else config
    start = time.perf_counter()
    parsed = [parse_recipe(r) for r in recipes]
    names = [r.name for r in parsed]
    if len(set(names)) != len(names):
        raise CorpusError(f"recipes {names} list one twice; list each once")
    corpus = load_corpus(data_dir, seed=config.data_seed)
    aug = list_irs(aug_irs_dir) if aug_irs_dir is not None else []
    plan = plan_devices(list_irs(irs_dir), n_seen=config.n_seen, n_unseen=config.n_unseen, seed=config.data_seed,
                        reference=reference, seen=seen, unseen=unseen, aug_irs=aug, aug_from_rest=aug_from_rest)
    data = prepare_data(corpus, plan, config)
    for recipe in parsed:
        check_recipe(recipe, data)
    runs: dict[str, list[dict]] = {}
    timings: dict[str, float] = {}
    for recipe in parsed:
        t0 = time.perf_counter()
        prepared = prepare(data, recipe)
        runs[recipe.name] = [run_recipe(data, recipe, s, prepared=prepared) for s in seeds]
        timings[recipe.name] = round(time.perf_counter() - t0, 2)
        if log is not None:
            unseen_names = [d.name for d in plan.role("unseen")]
            accs = [np.mean([r[d]["accuracy"] for d in unseen_names] or [np.nan]) for r in runs[recipe.name]]
            log(f"{recipe.name}: unseen accuracy {np.mean(accs):.3f} ({timings[recipe.name]:.0f} s)")
    info = {"wall_s": round(time.perf_counter() - start, 1), "recipe_wall_s": timings, "hardware": hardware(config),
            "sample_rate": data.sample_rate, "n_train": int(data.train_waves.shape[0]),
            "n_test": int(data.test_waves.shape[0]), "classes": list(data.classes),
            "recipes": {r.name: r.description for r in parsed}, "device_chains": data.chains}
    from micmatch.bench.umc import trained_converter

    converter = trained_converter(data)
    if converter is not None:
        info["umc_converter"] = {"train_seconds": round(converter.info.get("train_seconds", 0.0), 1),
                                 "last_epoch": (converter.info.get("history") or [None])[-1],
                                 "devices": sorted(converter.info.get("simulated_devices") or {})}
    return MismatchResult(plan, config, list(seeds), runs, info,
                          models={"umc-converter": converter} if converter is not None else {})


__all__ = ["Prepared", "check_recipe", "corrected", "prepare", "run_benchmark", "run_recipe"]

"""Running the mismatch benchmark: one classifier per recipe and seed, trained on tensors, scored per device.

The waveforms every device records are prepared once, in numpy (:mod:`micmatch.bench.data`); the states of
fitted steps (spectrum correction, statistics, the device converter) are fitted once per run through one path
(:mod:`micmatch.bench.fitting`), before the pipeline that uses them is built. Everything after that runs in torch on one device, batched
(:mod:`micmatch.bench.pipeline`): recipes without waveform augmentation compute their features once and train on
them; recipes with it train on waveforms and compute features batch by batch, so a GPU speeds up the features
as well as the classifier.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from micmatch.bench.data import MismatchConfig, MismatchData, prepare_data
from micmatch.bench.fitting import FittedStates, entry_of, fitting_rows, waveform_states
from micmatch.bench.plan import plan_devices
from micmatch.bench.recipes import Recipe, build_step, parse_recipe, split_step
from micmatch.bench.report import MismatchResult, hardware
from micmatch.corpus import load_corpus
from micmatch.errors import CorpusError
from micmatch.device_models import exclude_named
from micmatch.simulate import list_irs


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


def prepare(data: MismatchData, recipe: Recipe, store: FittedStates | None = None) -> Prepared:
    """Fit the recipe's fitted steps (through ``store``, shared by the recipes of a run), build its front end and
    compute the fixed features."""
    import torch

    from micmatch.bench.pipeline import FrontEnd, compute_features
    from micmatch.learn.engine import select_device

    store = FittedStates() if store is None else store
    dev = select_device(data.config.device)
    ideal = recipe.ideal
    train_dev = data.assign_ideal if ideal else data.assign
    states = waveform_states(recipe, data, store)
    corrections = [build_step(s, data, states[s]) for s in recipe.correct]

    def corrected(waves: np.ndarray, devices: np.ndarray) -> np.ndarray:
        for correct in corrections:
            waves = correct(waves, devices)
        return waves

    train_waves = corrected(data.train_set(ideal), train_dev)
    front = FrontEnd(recipe, data, states).to(dev)
    train = compute_features(front, train_waves, device=dev)
    for step in recipe.fitted_norms:
        entry = entry_of(step)
        if split_step(step)[1] is not None:
            state = store.load(step, data)
        else:
            items, labels = [], []
            for i, rows in fitting_rows(data, ideal, entry.fit_on):
                if callable(rows):  # a device without training clips: its calibration clips
                    calib = rows()
                    source = compute_features(front, corrected(calib, np.full(len(calib), i)), np.full(len(calib), i),
                                              device=dev)
                    index = np.full(len(calib), i)
                else:
                    source, index = train[torch.as_tensor(rows, device=dev)], train_dev[rows]
                items.append(source.double().cpu().numpy())
                labels += [data.plan.names[int(d)] for d in index]
            state = store.fit(step, data, np.concatenate(items), devices=labels, reference=data.plan.reference.name)
        front.add_fitted(build_step(step, data, state).to(dev), per_device=entry.per_device)
        train = compute_features(front, train_waves, train_dev, device=dev)
    test = {}
    for i in range(len(data.plan.names)):
        n = data.test_waves.shape[0]
        waves = corrected(data.test_set(i), np.full(n, i))
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


def check_recipe(recipe: Recipe, data: MismatchData, store: FittedStates | None = None) -> None:
    """Build every step of ``recipe`` once, and load or check what its fitted steps need, so a missing input (no
    augmentation IRs, a converter file that does not suit) fails before training."""
    store = FittedStates() if store is None else store
    for step in recipe.steps():
        if entry_of(step) is not None:
            store.check(step, data)
        else:
            build_step(step, data)


def _dominant(recipe: Recipe, fit_s: float, total_s: float) -> str:
    """What takes most of a recipe's time, in words for results.md."""
    if fit_s > 0.5 * total_s:
        return "fitting before training (" + ("training the device converter" if "umc" in recipe.name
                                               else "statistics or corrections") + ")"
    if recipe.wave_augment:
        return "waveform augmentation: every batch is augmented, then its features recomputed"
    if recipe.correct:
        return "correcting the waveforms, then classifier training"
    return "classifier training"


def track_info(config: MismatchConfig, recipes: Sequence[Recipe]) -> dict:
    """What results.json and results.md say of the run's track (:data:`~micmatch.bench.data.TRACKS`)."""
    if config.track != "adapt":
        return {"name": "generalize", "description": "unseen devices never heard before the test; sc and device-std "
                f"calibrate on {config.calibration_clips} unlabeled clips per unseen device"}
    out = {"name": "adapt", "adapt_clips": config.adapt_clips,
           "description": f"unseen devices known by {config.adapt_clips} unlabeled clips each, set aside from the "
                          "training split (not trained on, not test clips); sc, device-std and known-aug read them"}
    if any(s == "umc" or s == "umc-synth" for r in recipes for s in r.steps()):
        out["umc"] = ("converter trained on the reference's training clips and the known devices' adaptation clips, "
                      "conditioned on micmatch's estimate of each device (band shift and noise floor), form "
                      f"{config.umc_form or 'stochastic'}")
    return out


def run_benchmark(data_dir: str | os.PathLike, irs_dir: str | os.PathLike, *, recipes: Sequence[str],
                  seeds: Sequence[int], config: MismatchConfig | None = None,
                  aug_irs_dir: str | os.PathLike | None = None, aug_from_rest: bool = False,
                  reference: str | None = None, seen: Sequence[str] | None = None,
                  unseen: Sequence[str] | None = None, exclude_aug_irs: Sequence[str] = (),
                  log: Callable[[str], None] | None = None) -> MismatchResult:
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
    exclude_aug_irs : sequence of str
        IR names (file stems) left out of the augmentation set (of ``aug_irs_dir`` or ``aug_from_rest``).
    log : callable, optional
        Gets one line when the run starts, when the data is ready, when each recipe starts and when it ends.
    """
    config = MismatchConfig() if config is None else config
    start = time.perf_counter()
    parsed = [parse_recipe(r) for r in recipes]
    names = [r.name for r in parsed]
    if len(set(names)) != len(names):
        raise CorpusError(f"recipes {names} list one twice; list each once")
    say = log or (lambda line: None)
    say(f"bench mismatch: {len(parsed)} recipe(s) x {len(seeds)} seed(s); loading the corpus and recording it "
        f"through the simulated devices first")
    corpus = load_corpus(data_dir, seed=config.data_seed)
    aug = list_irs(aug_irs_dir) if aug_irs_dir is not None else []
    plan = plan_devices(list_irs(irs_dir), n_seen=config.n_seen, n_unseen=config.n_unseen, seed=config.data_seed,
                        reference=reference, seen=seen, unseen=unseen, aug_irs=aug, aug_from_rest=aug_from_rest)
    if exclude_aug_irs:
        plan = replace(plan, aug_irs=tuple(exclude_named(plan.aug_irs, exclude_aug_irs, option="--exclude-aug-irs")))
    data = prepare_data(corpus, plan, config)
    say(f"data ready ({time.perf_counter() - start:.0f} s, track {config.track}): {data.train_waves.shape[0]} "
        f"training and {data.test_waves.shape[0]} test clips at {data.sample_rate} Hz; devices "
        f"{', '.join(f'{d.name} ({d.role})' for d in plan.devices)}")
    store = FittedStates()
    for recipe in parsed:
        check_recipe(recipe, data, store)
    runs: dict[str, list[dict]] = {}
    timings: dict[str, float] = {}
    time_parts: dict[str, dict] = {}
    for i, recipe in enumerate(parsed, 1):
        say(f"recipe {i}/{len(parsed)} {recipe.name}: fitting what it needs, then {len(seeds)} training run(s)")
        t0 = time.perf_counter()
        prepared = prepare(data, recipe, store)
        fit_s = time.perf_counter() - t0
        runs[recipe.name] = [run_recipe(data, recipe, s, prepared=prepared) for s in seeds]
        timings[recipe.name] = round(time.perf_counter() - t0, 2)
        time_parts[recipe.name] = {"fit_s": round(fit_s, 2), "train_s_per_seed": round(
            (timings[recipe.name] - fit_s) / max(1, len(seeds)), 2), "dominant": _dominant(recipe, fit_s,
                                                                                         timings[recipe.name])}
        if log is not None:
            unseen_names = [d.name for d in plan.role("unseen")]
            accs = [np.mean([r[d]["accuracy"] for d in unseen_names] or [np.nan]) for r in runs[recipe.name]]
            log(f"{recipe.name}: unseen accuracy {np.mean(accs):.3f} ({timings[recipe.name]:.0f} s)")
    info = {"wall_s": round(time.perf_counter() - start, 1), "recipe_wall_s": timings, "recipe_time": time_parts, "hardware": hardware(config),
            "sample_rate": data.sample_rate, "features": config.logmel(data.sample_rate).to_json(), "n_train": int(data.train_waves.shape[0]),
            "n_test": int(data.test_waves.shape[0]), "classes": list(data.classes),
            "recipes": {r.name: r.description for r in parsed}, "device_chains": data.chains,
            "track": track_info(config, parsed)}
    converter = store.first_trained("umc")
    if converter is not None:
        from micmatch.bench.umc import converter_info

        info["umc_converter"] = converter_info(converter)
    return MismatchResult(plan, config, list(seeds), runs, info,
                          models={"umc-converter": converter} if converter is not None else {})


__all__ = ["Prepared", "check_recipe", "prepare", "run_benchmark", "run_recipe", "track_info"]

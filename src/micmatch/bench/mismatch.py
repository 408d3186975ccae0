"""The device-mismatch benchmark: how much of the accuracy lost on unseen recording devices a remedy wins back.

Protocol (seed 001 Table 4, seed 004 Table 2, seed 002 Table 2, on any corpus and any impulse-response folder):

1. **Devices.** The *reference* device is the corpus's own recordings (or a named impulse response). Impulse
   responses from ``irs`` become simulated devices (:func:`plan_devices`): a few *seen* devices contribute a small
   fraction of the training clips (as devices B and C did in DCASE 2019 task 1b: 3 h each beside 40 h of device
   A); *unseen* devices appear only in the test set. Every test clip is scored once per device, so the devices
   are compared on the same content.
2. **Calibration.** Remedies that need a device's statistics (spectrum correction, per-device standardization)
   take them from the device's training clips when it has some, and otherwise from ``calibration_clips``
   unlabeled clips of that device drawn from the *training* split: never from the clips being scored.
3. **Recipes.** A recipe is a named remedy (:data:`RECIPES`); ``a+b`` composes remedies. One classifier (seed 001
   CNN) is trained per recipe and seed; ``baseline`` is the plain log-mel pipeline and ``ideal`` trains with every
   device (the upper bound).
4. **Scores.** Accuracy and macro-F1 per device, means over seen and unseen devices, the device gap (reference
   minus the others' mean) and the gap closed, ``(recipe - baseline) / (ideal - baseline)`` on unseen devices;
   mean and standard deviation over seeds.

Augmentation impulse responses must not be test devices: :func:`check_disjoint` compares names and file contents
and refuses to run otherwise.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from micmatch import features as feat
from micmatch.audio import atomic_path, load
from micmatch.corpus import Corpus, load_corpus
from micmatch.errors import CorpusError
from micmatch.simulate import ImpulseResponse, file_sha256, list_irs, load_ir, record_with_ir

#: Name of the reference device when it is the corpus's own recordings.
ORIGINAL = "original"
ROLES = ("reference", "seen", "unseen")


# ----------------------------------------------------------------------------------------------------------------
# Devices


@dataclass(frozen=True)
class SimDevice:
    """A device of the benchmark: its name, role, and impulse-response file (None for the original recordings)."""

    name: str
    role: str
    path: Path | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DevicePlan:
    """Reference, seen and unseen devices (in this order in ``devices``) and the augmentation IR files."""

    devices: tuple[SimDevice, ...]
    aug_irs: tuple[Path, ...] = ()

    def role(self, role: str) -> list[SimDevice]:
        return [d for d in self.devices if d.role == role]

    @property
    def reference(self) -> SimDevice:
        return self.role("reference")[0]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.devices]

    def to_json(self) -> dict:
        return {
            "reference": self.reference.name,
            "seen": [d.name for d in self.role("seen")],
            "unseen": [d.name for d in self.role("unseen")],
            "aug_irs": [p.stem for p in self.aug_irs],
        }


def _by_name(paths: Sequence[Path]) -> dict[str, Path]:
    names: dict[str, Path] = {}
    for p in paths:
        if p.stem in names:
            raise CorpusError(f"two impulse responses are named {p.stem!r} ({names[p.stem]} and {p}); "
                              "device names come from file names: rename one")
        names[p.stem] = p
    return names


def plan_devices(irs: Sequence[str | os.PathLike], *, n_seen: int = 2, n_unseen: int = 6, seed: int = 0,
                 reference: str | None = None, seen: Sequence[str] | None = None,
                 unseen: Sequence[str] | None = None, aug_irs: Sequence[str | os.PathLike] = (),
                 aug_from_rest: bool = False) -> DevicePlan:
    """Give impulse responses their roles: named ones first, the rest drawn with ``default_rng(seed)``.

    Parameters
    ----------
    irs : sequence of path-like
        Impulse-response files; a device is named after its file's stem.
    n_seen, n_unseen : int
        How many seen / unseen devices to draw when ``seen`` / ``unseen`` do not name them.
    reference : str, optional
        Name of an impulse response to use as the reference device; default: the original recordings.
    aug_irs : sequence of path-like
        Augmentation impulse responses (from a separate folder).
    aug_from_rest : bool
        Use the impulse responses of ``irs`` that got no role as the augmentation set (a seeded split of one
        folder into test devices and augmentation IRs).

    Raises
    ------
    CorpusError
        Unknown or repeated names, too few impulse responses, or an augmentation IR that is also a device.
    """
    available = _by_name([Path(p) for p in irs])
    order = list(available)
    if n_seen < 0 or n_unseen < 0:
        raise CorpusError(f"n_seen={n_seen} and n_unseen={n_unseen} must be >= 0")

    def named(names: Sequence[str] | None, what: str) -> list[str]:
        out = list(names or [])
        for n in out:
            if n not in available:
                raise CorpusError(f"{what} device {n!r} is not among the impulse responses "
                                  f"({', '.join(order[:8])}{', ...' if len(order) > 8 else ''})")
        return out

    ref = named([reference] if reference else None, "reference")
    seen_names = named(seen, "seen")
    unseen_names = named(unseen, "unseen")
    taken = ref + seen_names + unseen_names
    if len(set(taken)) != len(taken):
        raise CorpusError(f"a device has two roles: reference={ref}, seen={seen_names}, unseen={unseen_names}")
    rest = [n for n in order if n not in taken]
    want = (0 if seen is not None else n_seen) + (0 if unseen is not None else n_unseen)
    if want > len(rest):
        raise CorpusError(f"{want} more devices are needed but only {len(rest)} impulse responses are left; "
                          "pass fewer --seen/--unseen or more impulse responses")
    drawn = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))[:want]]
    if seen is None:
        seen_names, drawn = drawn[:n_seen], drawn[n_seen:]
    if unseen is None:
        unseen_names = drawn[:n_unseen]
    if not unseen_names and not seen_names:
        raise CorpusError("the benchmark needs at least one seen or unseen device; pass --unseen N or names")

    def device(name: str, role: str) -> SimDevice:
        return SimDevice(name, role, available[name], file_sha256(available[name]))

    devices = [device(ref[0], "reference") if ref else SimDevice(ORIGINAL, "reference")]
    devices += [device(n, "seen") for n in seen_names] + [device(n, "unseen") for n in unseen_names]
    used = {d.name for d in devices}
    aug = [Path(p) for p in aug_irs]
    if aug_from_rest:
        aug += [available[n] for n in order if n not in used]
    plan = DevicePlan(tuple(devices), tuple(sorted(set(aug))))
    check_disjoint(plan.devices, plan.aug_irs)
    return plan


def check_disjoint(devices: Sequence[SimDevice], aug_irs: Sequence[str | os.PathLike]) -> None:
    """Refuse augmentation impulse responses that are also benchmark devices, by name or by file content.

    Raises
    ------
    CorpusError
        Naming the augmentation file and the device it duplicates.
    """
    by_name = {d.name: d for d in devices if d.path is not None}
    by_hash = {d.sha256: d for d in devices if d.sha256 is not None}
    for p in aug_irs:
        p = Path(p)
        if p.stem in by_name:
            raise CorpusError(f"augmentation IR {p} has the name of test device {p.stem!r}; an augmentation IR "
                              "must not be a test device: remove it from --aug-irs or pick other devices")
        twin = by_hash.get(file_sha256(p))
        if twin is not None:
            raise CorpusError(f"augmentation IR {p} has the same content as test device {twin.name!r} "
                              f"({twin.path}); remove it from --aug-irs or pick other devices")


# ----------------------------------------------------------------------------------------------------------------
# Settings and data


@dataclass(frozen=True)
class MismatchConfig:
    """Settings of the benchmark (defaults: the full run; :meth:`quick` for smoke tests and first looks).

    Durations in seconds, rates in Hz. Clips are cut or zero padded to ``clip_s``. ``seen_fraction`` is the share
    of training clips that each seen device records (the rest are the reference's). ``noise_floor_db`` and
    ``band_hz`` apply to every simulated device. ``max_train`` / ``max_test`` subsample the splits (seeded,
    stratified by label).
    """

    n_seen: int = 2
    n_unseen: int = 6
    seen_fraction: float = 0.075
    calibration_clips: int = 16
    clip_s: float = 1.0
    n_fft: int = 256
    hop_length: int = 128
    n_mels: int = 40
    sc_n_fft: int = 256
    sc_max_boost_db: float = 20.0
    sc_max_cut_db: float = 30.0
    noise_floor_db: float | None = None
    band_hz: tuple[float, float] | None = None
    aug_p: float = 0.5
    mixup_alpha: float = 0.4
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 2e-3
    data_seed: int = 0
    max_train: int | None = None
    max_test: int | None = None
    device: str = "auto"
    progress: bool = True

    @classmethod
    def quick(cls, **overrides) -> MismatchConfig:
        """A reduced configuration: a few hundred clips, fewer devices and epochs (minutes on two CPU cores)."""
        base = dict(n_seen=1, n_unseen=2, epochs=10, max_train=600, max_test=150, n_mels=32, calibration_clips=8)
        base.update(overrides)
        return cls(**base)

    def logmel(self, sample_rate: int) -> feat.LogMelConfig:
        return feat.LogMelConfig(sample_rate=sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                                 n_mels=self.n_mels)


def _subsample(corpus: Corpus, clips, limit: int | None, seed: int) -> list:
    if limit is None or limit >= len(clips):
        return list(clips)
    from micmatch.corpus import stratified_split

    keep = stratified_split([c.label for c in clips], test_fraction=limit / len(clips), seed=seed)
    return [c for c, k in zip(clips, keep) if k]


def _fixed_length(audio: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    m = min(n, audio.shape[-1])
    out[:m] = audio[:m]
    return out


@dataclass
class MismatchData:
    """Clean clips, the device plan, the loaded impulse responses and the training-set device assignments.

    ``assign`` gives each training clip's device index (into ``plan.devices``) for the normal recipes,
    ``assign_ideal`` for ``ideal`` (uniform over all devices); ``calibration`` indexes training clips that
    stand for a device's unlabeled calibration recordings.
    """

    sample_rate: int
    classes: tuple[str, ...]
    plan: DevicePlan
    config: MismatchConfig
    train_waves: np.ndarray
    train_labels: np.ndarray
    test_waves: np.ndarray
    test_labels: np.ndarray
    irs: dict[str, ImpulseResponse]
    aug_irs: list[ImpulseResponse]
    assign: np.ndarray
    assign_ideal: np.ndarray
    calibration: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False)

    def record(self, waves: np.ndarray, device: int, purpose: str) -> np.ndarray:
        """``waves`` as recorded by device index ``device``; noise seeded by (data seed, device, purpose)."""
        dev = self.plan.devices[device]
        if dev.path is None:
            return waves
        cfg = self.config
        rng = np.random.default_rng([cfg.data_seed, device, sum(map(ord, purpose))])
        low, high = cfg.band_hz if cfg.band_hz else (None, None)
        return record_with_ir(waves, self.sample_rate, self.irs[dev.name], noise_floor_db=cfg.noise_floor_db,
                              low_hz=low, high_hz=high, rng=rng).astype(np.float32, copy=False)

    def train_set(self, ideal: bool) -> np.ndarray:
        """Training waveforms ``(n_train, n_samples)``, each recorded by its assigned device (cached)."""
        key = ("train", ideal)
        if key not in self._cache:
            assign = self.assign_ideal if ideal else self.assign
            out = self.train_waves.copy()
            for d in np.unique(assign):
                rows = np.flatnonzero(assign == d)
                out[rows] = self.record(self.train_waves[rows], int(d), "train")
            self._cache[key] = out
        return self._cache[key]

    def test_set(self, device: int) -> np.ndarray:
        key = ("test", device)
        if key not in self._cache:
            self._cache[key] = self.record(self.test_waves, device, "test")
        return self._cache[key]

    def calibration_set(self, device: int) -> np.ndarray:
        key = ("calibration", device)
        if key not in self._cache:
            self._cache[key] = self.record(self.train_waves[self.calibration], device, "calibration")
        return self._cache[key]

    def device_source(self, device: int, ideal: bool) -> np.ndarray:
        """Waveforms a remedy may learn device ``device``'s statistics from: its training clips if it has any
        in this training set, else its calibration clips."""
        assign = self.assign_ideal if ideal else self.assign
        rows = np.flatnonzero(assign == device)
        if rows.size:
            return self.train_set(ideal)[rows]
        return self.calibration_set(device)


def prepare_data(corpus: Corpus, plan: DevicePlan, config: MismatchConfig) -> MismatchData:
    """Load the corpus's clips (cut or padded to ``config.clip_s``), the impulse responses, and draw the
    training-set device assignments and calibration clips from ``config.data_seed``."""
    train = _subsample(corpus, corpus.train, config.max_train, config.data_seed)
    test = _subsample(corpus, corpus.test, config.max_test, config.data_seed + 1)
    _, sample_rate = load(train[0].path, channels="mix")
    n = int(round(config.clip_s * sample_rate))

    def waves(clips) -> np.ndarray:
        return np.stack([_fixed_length(load(c.path, sample_rate=sample_rate, channels="mix")[0][0], n)
                         for c in clips])

    irs = {d.name: load_ir(d.path, sample_rate) for d in plan.devices if d.path is not None}
    aug = [load_ir(p, sample_rate) for p in plan.aug_irs]
    rng = np.random.default_rng([config.data_seed, 7])
    n_train = len(train)
    assign = np.zeros(n_train, dtype=np.int64)
    seen_idx = [i for i, d in enumerate(plan.devices) if d.role == "seen"]
    n_each = int(round(config.seen_fraction * n_train))
    if seen_idx and n_each * len(seen_idx) >= n_train:
        raise CorpusError(f"seen_fraction={config.seen_fraction} x {len(seen_idx)} seen devices leaves no "
                          "training clips for the reference; lower it")
    order = rng.permutation(n_train)
    for k, d in enumerate(seen_idx):
        assign[order[k * n_each : (k + 1) * n_each]] = d
    assign_ideal = rng.integers(0, len(plan.devices), size=n_train)
    k = min(config.calibration_clips, n_train)
    if k < 1:
        raise CorpusError(f"calibration_clips={config.calibration_clips} must be >= 1")
    calibration = np.sort(rng.choice(n_train, size=k, replace=False))
    return MismatchData(sample_rate, corpus.classes, plan, config, waves(train), corpus.label_indices(train),
                        waves(test), corpus.label_indices(test), irs, aug, assign, assign_ideal, calibration)


# ----------------------------------------------------------------------------------------------------------------
# Recipes

#: A waveform augmentation: (waves (n, n_samples), sample_rate, data, rng) -> waves of the same shape.
WaveAugment = Callable[[np.ndarray, int, "MismatchData", np.random.Generator], np.ndarray]
#: A per-clip feature normalization: (features (n, n_mels, n_frames), settings) -> same shape.
ClipNorm = Callable[[np.ndarray, MismatchConfig, int], np.ndarray]


@dataclass(frozen=True)
class Recipe:
    """A remedy, as the pipeline steps it changes; :func:`compose` merges two.

    Steps, in pipeline order: ``ideal`` (train on every device), ``correct`` (unaligned spectrum correction of
    each clip's waveform to the reference), ``wave_augment`` (training waveforms, redrawn every epoch),
    ``compress`` (``"log"`` dB or ``"pcen"``), ``clip_norms`` (per spectrogram), ``device_std`` (per-device
    standardization), ``batch_augment`` (names of training-batch transforms: mixup, filteraugment,
    freq-mixstyle).
    """

    name: str
    ideal: bool = False
    correct: bool = False
    wave_augment: tuple[str, ...] = ()
    compress: str = "log"
    clip_norms: tuple[str, ...] = ()
    device_std: bool = False
    batch_augment: tuple[str, ...] = ()
    description: str = ""


def compose(a: Recipe, b: Recipe) -> Recipe:
    """``a+b``: every step of both (steps of ``a`` first); two different compressions cannot be combined."""
    if a.compress != "log" and b.compress != "log" and a.compress != b.compress:
        raise CorpusError(f"recipes {a.name!r} and {b.name!r} both replace the log compression; pick one")

    def merged(x: tuple, y: tuple) -> tuple:
        return x + tuple(v for v in y if v not in x)

    return Recipe(
        f"{a.name}+{b.name}", a.ideal or b.ideal, a.correct or b.correct, merged(a.wave_augment, b.wave_augment),
        a.compress if a.compress != "log" else b.compress, merged(a.clip_norms, b.clip_norms),
        a.device_std or b.device_std, merged(a.batch_augment, b.batch_augment),
        f"{a.description}; {b.description}")


#: The named remedies.
RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("baseline", description="log-mel, per-band standardization over the training set"),
    Recipe("ideal", ideal=True, description="every device in training (the upper bound)"),
    Recipe("sc", correct=True, description="unaligned spectrum correction of waveforms to the reference "
                                           "(unseen devices: from calibration clips)"),
    Recipe("device-std", device_std=True, description="per-device standardization of log-mel "
                                                      "(unseen devices: from calibration clips)"),
    Recipe("spec-mean-sub", clip_norms=("spec-mean-sub",), description="spectrogram-wise mean subtraction"),
    Recipe("cms", clip_norms=("cms",), description="cepstral mean subtraction"),
    Recipe("median", clip_norms=("median",), description="median-filter residual (7 bands x 21 frames)"),
    Recipe("pcen", compress="pcen", description="PCEN instead of log (seed 001 setting b: T=0.2 s, alpha=1)"),
    Recipe("rasta", clip_norms=("rasta",), description="RASTA filtering of log-mel (pole 0.98)"),
    Recipe("mixup", batch_augment=("mixup",), description="mixup (alpha 0.4, linear domain)"),
    Recipe("dir-aug", wave_augment=("dir-aug",), description="device impulse-response augmentation (p=0.5)"),
    Recipe("synth-fr-aug", wave_augment=("synth-fr-aug",), description="synthetic frequency-response "
                                                                      "differences (seed 002, p=0.5)"),
    Recipe("filteraugment", batch_augment=("filteraugment",), description="FilterAugment (random band gains)"),
    Recipe("freq-mixstyle", batch_augment=("freq-mixstyle",), description="Freq-MixStyle (p=0.5, alpha 0.3)"),
]}


def parse_recipe(spec: str) -> Recipe:
    """A recipe by name, or several joined with ``+`` (e.g. ``"sc+mixup"``)."""
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    if not parts:
        raise CorpusError(f"recipe {spec!r} is empty; known recipes: {', '.join(RECIPES)}")
    unknown = [p for p in parts if p not in RECIPES]
    if unknown:
        raise CorpusError(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(RECIPES)} "
                          "(combine with +, e.g. sc+mixup)")
    recipe = RECIPES[parts[0]]
    for p in parts[1:]:
        recipe = compose(recipe, RECIPES[p])
    return replace(recipe, name="+".join(parts))


# ----------------------------------------------------------------------------------------------------------------
# Pipeline


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


def _corrected(waves: np.ndarray, devices: np.ndarray, data: MismatchData, recipe: Recipe) -> np.ndarray:
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


def _clip_features(waves: np.ndarray, data: MismatchData, recipe: Recipe) -> np.ndarray:
    """Waveforms ``(n, n_samples)`` -> features ``(n, n_mels, n_frames)`` (float32) before device statistics."""
    cfg = data.config.logmel(data.sample_rate)
    if recipe.compress == "pcen":
        mel = feat.mel_spectrogram(waves, data.sample_rate, config=cfg)
        # librosa's advice: scale float audio energies to a 32-bit integer range before PCEN.
        x = feat.pcen(mel * float(2**31), data.sample_rate, hop_length=cfg.hop_length, **feat.PCEN_PRESETS["b"])
    else:
        x = feat.log_mel(waves, data.sample_rate, config=cfg)
    for norm in recipe.clip_norms:
        x = CLIP_NORMS[norm](x)
    return x.astype(np.float32, copy=False)


CLIP_NORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "spec-mean-sub": feat.spectrogram_mean_subtraction,
    "cms": feat.cepstral_mean_subtraction,
    "median": feat.median_filter_residual,
    "rasta": feat.rasta,
}


def _wave_augmenter(recipe: Recipe, data: MismatchData):
    """The training-waveform augmentation of ``recipe`` as ``(waves, rng) -> waves``, or None."""
    if not recipe.wave_augment:
        return None
    from micmatch import augment

    steps = []
    for name in recipe.wave_augment:
        if name == "dir-aug" and not data.aug_irs:
            raise CorpusError("recipe dir-aug needs augmentation impulse responses: pass --aug-irs DIR "
                              "(or --aug-from-rest)")
        steps.append(WAVE_AUGMENTS[name])
    p = data.config.aug_p

    def run(waves: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = waves
        for step in steps:
            out = step(out, data, p, rng, augment)
        return out

    return run


def _dir_aug(waves, data, p, rng, augment):
    params = augment.draw_device_ir(rng, waves.shape[0], [str(q) for q in data.plan.aug_irs], p=p)
    return augment.apply_device_ir(waves, data.sample_rate, params)


def _synth_fr_aug(waves, data, p, rng, augment):
    out = waves.copy()
    rows = np.flatnonzero(rng.random(waves.shape[0]) < p)
    if rows.size:
        params = augment.draw_synthetic_response(rng, rows.size)
        out[rows] = augment.apply_synthetic_response(waves[rows], data.sample_rate, params)
    return out


WAVE_AUGMENTS = {"dir-aug": _dir_aug, "synth-fr-aug": _synth_fr_aug}


def _batch_transform(name: str, config: MismatchConfig):
    """A training-batch transform ``(x, targets, torch generator) -> (x, targets)`` built on :mod:`augment`.

    Parameters are drawn with a numpy generator seeded from the torch generator, so runs replay exactly.
    """
    import torch

    from micmatch import augment

    def run(x, target, gen):
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        n = x.shape[0]
        xn = x.detach().cpu().numpy()
        if name == "mixup":
            # Mixed as the features are given (dB or normalized values), so it composes with every front end.
            params = augment.draw_mixup(rng, n, alpha=config.mixup_alpha)
            xn = augment.apply_mixup(xn, params, domain="log")
            target = torch.as_tensor(augment.mix_labels(target.cpu().numpy(), params), dtype=target.dtype)
        elif name == "filteraugment":
            xn = augment.apply_filter_augment(xn, augment.draw_filter_augment(rng, n))
        elif name == "freq-mixstyle":
            xn = augment.apply_freq_mixstyle(xn, augment.draw_freq_mixstyle(rng, n, p=config.aug_p, alpha=0.3))
        return torch.as_tensor(xn).to(x.device), target.to(x.device)

    return run


def _batch_transforms(recipe: Recipe, config: MismatchConfig) -> tuple:
    return tuple(_batch_transform(name, config) for name in recipe.batch_augment)


@dataclass
class _Prepared:
    train: np.ndarray | None
    train_devices: np.ndarray
    test: dict[int, np.ndarray]
    standardizer: object | None


def _prepare(data: MismatchData, recipe: Recipe) -> _Prepared:
    """Features of the fixed training set and of every test device, with the recipe's device statistics."""
    ideal = recipe.ideal
    train_dev = data.assign_ideal if ideal else data.assign
    train_waves = _corrected(data.train_set(ideal), train_dev, data, recipe)
    train = _clip_features(train_waves, data, recipe)
    standardizer = None
    if recipe.device_std:
        cfg = data.config.logmel(data.sample_rate)
        standardizer = feat.PerDeviceStandardizer(scale=True)
        names = data.plan.names
        for i in range(len(names)):
            rows = np.flatnonzero(train_dev == i)
            if rows.size:
                source = train[rows]
            else:
                calib = data.calibration_set(i)
                source = _clip_features(_corrected(calib, np.full(len(calib), i), data, recipe), data, recipe)
            standardizer.fit(source, [names[i]] * len(source), config=cfg)
        train = standardizer.transform(train, [names[i] for i in train_dev], config=cfg)
    test = {}
    for i, name in enumerate(data.plan.names):
        waves = _corrected(data.test_set(i), np.full(data.test_waves.shape[0], i), data, recipe)
        x = _clip_features(waves, data, recipe)
        if standardizer is not None:
            x = standardizer.transform(x, [name] * len(x), config=data.config.logmel(data.sample_rate))
        test[i] = x.astype(np.float32, copy=False)
    return _Prepared(train.astype(np.float32, copy=False), train_dev, test, standardizer)


def run_recipe(data: MismatchData, recipe: Recipe, seed: int, *, prepared: _Prepared | None = None) -> dict:
    """Train one classifier for ``recipe`` with ``seed`` and score every test device.

    Returns
    -------
    dict
        ``{device name: {"accuracy": float, "macro_f1": float}}`` plus ``"_loss"`` (final training loss).
    """
    from micmatch.learn.classifier import DeviceCNN
    from micmatch.learn.train import TrainConfig, predict, train_classifier
    from micmatch.metrics import macro_f1

    cfg = data.config
    prep = prepared if prepared is not None else _prepare(data, recipe)
    augmenter = _wave_augmenter(recipe, data)
    features = prep.train
    if augmenter is not None:
        base = _corrected(data.train_set(recipe.ideal), prep.train_devices, data, recipe)
        names = [data.plan.names[i] for i in prep.train_devices]

        def features(epoch: int, rng: np.random.Generator) -> np.ndarray:
            x = _clip_features(augmenter(base, rng), data, recipe)
            if prep.standardizer is not None:
                x = prep.standardizer.transform(x, names, config=cfg.logmel(data.sample_rate))
            return x

    import torch

    torch.manual_seed(seed)
    model = DeviceCNN(len(data.classes), prep.train.shape[1])
    model.set_normalization(torch.as_tensor(prep.train.mean(axis=(0, 2))), torch.as_tensor(prep.train.std(axis=(0, 2))))
    train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, seed=seed,
                            device=cfg.device, progress=cfg.progress)
    history = train_classifier(model, features, data.train_labels, config=train_cfg,
                               batch_transforms=_batch_transforms(recipe, cfg), desc=f"{recipe.name} seed {seed}")
    out: dict = {"_loss": history[-1]}
    for i, name in enumerate(data.plan.names):
        pred = predict(model, prep.test[i], device=cfg.device).argmax(axis=1)
        out[name] = {"accuracy": float(np.mean(pred == data.test_labels)),
                     "macro_f1": macro_f1(data.test_labels, pred, n_classes=len(data.classes))}
    return out


# ----------------------------------------------------------------------------------------------------------------
# Running and reporting


@dataclass
class MismatchResult:
    """Per recipe, per seed, per device scores, with the plan and settings that produced them."""

    plan: DevicePlan
    config: MismatchConfig
    seeds: list[int]
    runs: dict[str, list[dict]]
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Mean and standard deviation over seeds of every score (see :func:`summarize`)."""
        return summarize(self.runs, self.plan)

    def to_json(self) -> dict:
        return {"plan": self.plan.to_json(), "config": asdict(self.config), "seeds": self.seeds,
                "runs": self.runs, "summary": self.summary(), "info": self.info}


def _stats(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    # Sample standard deviation (ddof=1) over seeds; 0 for a single seed.
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0}


def summarize(runs: dict[str, list[dict]], plan: DevicePlan) -> dict:
    """Scores per recipe: per device, mean over seen / unseen devices, device gap and gap closed.

    Every score is computed per seed first and then averaged (mean, sample std over seeds). ``gap_closed`` uses
    the ``baseline`` and ``ideal`` recipes of the same run (None when either is missing):
    ``(recipe - baseline) / (ideal - baseline)`` of the mean unseen-device accuracy.
    """
    from micmatch.metrics import device_gap, gap_closed

    ref = plan.reference.name
    seen = [d.name for d in plan.role("seen")]
    unseen = [d.name for d in plan.role("unseen")]
    out: dict = {}
    for name, per_seed in runs.items():
        rec: dict = {"devices": {}}
        for dev in plan.names:
            rec["devices"][dev] = {m: _stats([r[dev][m] for r in per_seed]) for m in ("accuracy", "macro_f1")}
        for group, names in (("seen", seen), ("unseen", unseen)):
            if names:
                for m in ("accuracy", "macro_f1"):
                    rec[f"{group}_{m}"] = _stats([np.mean([r[d][m] for d in names]) for r in per_seed])
        rec["reference_accuracy"] = rec["devices"][ref]["accuracy"]
        rec["device_gap"] = _stats([device_gap({d: r[d]["accuracy"] for d in plan.names}, ref) for r in per_seed])
        out[name] = rec
    if "baseline" in out and "ideal" in out and unseen:
        b = out["baseline"]["unseen_accuracy"]["mean"]
        i = out["ideal"]["unseen_accuracy"]["mean"]
        for rec in out.values():
            rec["gap_closed"] = gap_closed(rec["unseen_accuracy"]["mean"], b, i)
    return out


def run_benchmark(data_dir: str | os.PathLike, irs_dir: str | os.PathLike, *, recipes: Sequence[str],
                  seeds: Sequence[int], config: MismatchConfig = MismatchConfig(),
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
        Recipe specs (:func:`parse_recipe`), e.g. ``["baseline", "ideal", "sc", "sc+mixup"]``.
    seeds : sequence of int
        Training seeds; each recipe trains once per seed.
    aug_irs_dir : path-like, optional
        Folder of augmentation impulse responses (must not share a device with the test devices).
    """
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
    runs: dict[str, list[dict]] = {}
    timings: dict[str, float] = {}
    for recipe in parsed:
        t0 = time.perf_counter()
        prepared = _prepare(data, recipe)
        runs[recipe.name] = [run_recipe(data, recipe, s, prepared=prepared) for s in seeds]
        timings[recipe.name] = round(time.perf_counter() - t0, 2)
        if log is not None:
            accs = [np.mean([r[d.name]["accuracy"] for d in plan.role("unseen")] or [np.nan]) for r in runs[recipe.name]]
            log(f"{recipe.name}: unseen accuracy {np.mean(accs):.3f} ({timings[recipe.name]:.0f} s)")
    info = {"wall_s": round(time.perf_counter() - start, 1), "recipe_wall_s": timings, "hardware": _hardware(config),
            "sample_rate": data.sample_rate, "n_train": int(data.train_waves.shape[0]),
            "n_test": int(data.test_waves.shape[0]), "classes": list(data.classes),
            "recipes": {r.name: r.description for r in parsed}}
    return MismatchResult(plan, config, list(seeds), runs, info)


def _hardware(config: MismatchConfig) -> str:
    try:
        import torch

        from micmatch.learn.train import select_device

        dev = select_device(config.device)
        gpu = f", {torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else ""
        return f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} on {dev.type}{gpu}"
    except ImportError:
        return f"{platform.machine()}, {os.cpu_count()} CPU cores"


def _pm(stat: dict | None, scale: float = 100.0, digits: int = 1) -> str:
    if stat is None:
        return "-"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def to_markdown(result: MismatchResult) -> str:
    """Two tables: the summary per recipe and the accuracy per device (percent, mean ± std over seeds)."""
    s = result.summary()
    plan = result.plan
    lines = [
        "| recipe | reference acc | seen acc | unseen acc | unseen macro-F1 | device gap | gap closed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rec in s.items():
        closed = rec.get("gap_closed")
        lines.append(f"| {name} | {_pm(rec['reference_accuracy'])} | {_pm(rec.get('seen_accuracy'))} | "
                     f"{_pm(rec.get('unseen_accuracy'))} | {_pm(rec.get('unseen_macro_f1'))} | "
                     f"{_pm(rec['device_gap'])} | {'-' if closed is None else f'{closed * 100:.0f}%'} |")
    lines += ["", "Accuracy per device (%):", ""]
    roles = {d.name: d.role[0].upper() for d in plan.devices}
    lines.append("| recipe | " + " | ".join(f"{n} ({roles[n]})" for n in plan.names) + " |")
    lines.append("|---|" + "---|" * len(plan.names))
    for name, rec in s.items():
        lines.append(f"| {name} | " + " | ".join(_pm(rec["devices"][n]["accuracy"]) for n in plan.names) + " |")
    lines += ["", "Macro-F1 per device (%):", ""]
    lines.append("| recipe | " + " | ".join(plan.names) + " |")
    lines.append("|---|" + "---|" * len(plan.names))
    for name, rec in s.items():
        lines.append(f"| {name} | " + " | ".join(_pm(rec["devices"][n]["macro_f1"]) for n in plan.names) + " |")
    return "\n".join(lines) + "\n"


def write_results(result: MismatchResult, out_dir: str | os.PathLike, *, command: str | None = None,
                  chart: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and (``chart``) ``accuracy.png`` into ``out_dir`` atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = result.to_json()
    if command:
        doc["info"]["command"] = command
    paths = {"json": out / "results.json", "md": out / "results.md"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    plan = result.plan.to_json()
    head = [
        "# Device-mismatch benchmark",
        "",
        f"- reference: {plan['reference']}; seen: {', '.join(plan['seen']) or '-'}; "
        f"unseen: {', '.join(plan['unseen'])}",
        f"- augmentation IRs: {', '.join(plan['aug_irs']) or '-'}",
        f"- seeds: {result.seeds}; train clips: {result.info.get('n_train')}, test clips per device: "
        f"{result.info.get('n_test')}; sample rate {result.info.get('sample_rate')} Hz",
        f"- hardware: {result.info.get('hardware')}; wall time {result.info.get('wall_s')} s",
    ]
    if command:
        head.append(f"- command: `{command}`")
    head += ["", "Percent, mean ± standard deviation over seeds. gap closed = (recipe - baseline) / "
             "(ideal - baseline) of the mean unseen-device accuracy.", ""]
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text("\n".join(head) + to_markdown(result))
    if chart:
        from micmatch.plot import plot_mismatch_bars

        paths["png"] = plot_mismatch_bars(result.summary(), out / "accuracy.png")
    return paths


def load_result(path: str | os.PathLike) -> MismatchResult:
    """Read a ``results.json`` written by :func:`write_results`."""
    doc = json.loads(Path(path).read_text())
    try:
        plan_doc, cfg = doc["plan"], dict(doc["config"])
        if cfg.get("band_hz") is not None:
            cfg["band_hz"] = tuple(cfg["band_hz"])
        devices = [SimDevice(plan_doc["reference"], "reference")]
        devices += [SimDevice(n, "seen") for n in plan_doc["seen"]] + [SimDevice(n, "unseen") for n in plan_doc["unseen"]]
        plan = DevicePlan(tuple(devices), tuple(Path(n) for n in plan_doc["aug_irs"]))
        return MismatchResult(plan, MismatchConfig(**cfg), list(doc["seeds"]), dict(doc["runs"]), dict(doc["info"]))
    except (KeyError, TypeError) as exc:
        raise CorpusError(f"{path}: not a mismatch-benchmark results.json ({exc})") from None


def merge_results(results: Sequence[MismatchResult]) -> MismatchResult:
    """Join runs of the same benchmark (same devices, settings and seeds) made in several parts.

    A recipe present in two parts must have identical scores (the runs are deterministic); otherwise the parts
    did not come from the same setup and merging is refused.
    """
    first = results[0]
    runs = dict(first.runs)
    info = {**first.info, "parts_wall_s": [r.info.get("wall_s") for r in results]}
    info["wall_s"] = round(sum(r.info.get("wall_s", 0.0) for r in results), 1)
    for other in results[1:]:
        if other.plan.to_json() != first.plan.to_json() or other.config != first.config or other.seeds != first.seeds:
            raise CorpusError("results to merge differ in devices, settings or seeds; merge only parts of one run")
        for name, per_seed in other.runs.items():
            if name in runs and runs[name] != per_seed:
                raise CorpusError(f"recipe {name!r} scored differently in two parts; the runs are not the same setup")
            runs[name] = per_seed
        info["recipe_wall_s"] = {**info.get("recipe_wall_s", {}), **other.info.get("recipe_wall_s", {})}
        info["recipes"] = {**info.get("recipes", {}), **other.info.get("recipes", {})}
    return MismatchResult(first.plan, first.config, first.seeds, runs, info)


__all__ = ["CLIP_NORMS", "DevicePlan", "MismatchConfig", "MismatchData", "MismatchResult", "ORIGINAL", "RECIPES",
           "Recipe", "SimDevice", "check_disjoint", "compose", "load_result", "merge_results", "parse_recipe", "plan_devices", "prepare_data",
           "run_benchmark", "run_recipe", "summarize", "to_markdown", "write_results"]

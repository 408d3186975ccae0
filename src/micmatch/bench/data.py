"""Data of the mismatch benchmark: its settings, the clean clips, and the clips as each simulated device records them.

Loading, cutting and recording happen once, in numpy, before training (cached per device and purpose);
training then runs on tensors (:mod:`micmatch.bench.run`). Calibration: remedies that need a device's
statistics take them from the device's training clips when it has some, and otherwise from
``calibration_clips`` unlabeled clips of that device drawn from the *training* split, never from the clips
being scored.

Tracks (:data:`TRACKS`). ``generalize`` (the default) tests devices never heard: an unseen device's only
recordings before the test are its few calibration clips. ``adapt`` tests devices known in advance by unlabeled
audio, as a team deploying to a few phone models would record: ``adapt_clips`` clips of the training split are
set aside (the classifier never trains on them, so the reference never records them: their content is not paired
with the reference's clips), every unseen device records all of them, and remedies that read an unseen device's
audio (its calibration clips) read these. Their labels are never used; they are disjoint from the test clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from micmatch import features as feat
from micmatch.audio import load
from micmatch.bench.plan import DevicePlan
from micmatch.corpus import Corpus
from micmatch.errors import CorpusError
from micmatch.simulate import ImpulseResponse, apply_device_chain, draw_device_chain, load_ir, record_with_ir

#: Protocols of the benchmark: devices never heard (``generalize``) or known by unlabeled clips (``adapt``).
TRACKS = ("generalize", "adapt")


@dataclass(frozen=True)
class MismatchConfig:
    """Settings of the benchmark (defaults: the full run; :meth:`quick` for smoke tests and first looks).

    Durations in seconds, rates in Hz. Clips are cut or zero padded to ``clip_s``. ``seen_fraction`` is the share
    of training clips that each seen device records (the rest are the reference's). ``noise_floor_db`` and
    ``band_hz`` apply to every simulated device. ``max_train`` / ``max_test`` subsample the splits (seeded,
    stratified by label).

    ``n_fft``, ``hop_length`` and ``n_mels`` left at None follow :func:`micmatch.logmel.default_settings` for the
    corpus's rate, as ``micmatch features`` and ``micmatch train converter`` do (512 / 128 / 40 at 8 kHz; results
    recorded before this default used 256 / 128 / 40: pass those to compare with them).

    ``device_chain`` (default on) records every simulated device through its impulse response *and* a phone or
    laptop recording chain drawn for it from the data seed (:func:`~micmatch.simulate.draw_device_chain`: band
    limits, a coloured noise floor, a compressor or automatic gain control, recording level, soft clipping), so
    that devices differ as real ones do and not by their frequency response alone. Off, a device is its impulse
    response (plus ``noise_floor_db`` and ``band_hz`` when set).

    ``track`` and ``adapt_clips``: the protocol (module docstring); ``adapt_clips`` counts only in ``adapt``.

    ``sc_*`` set the ``sc`` recipe's curves (:meth:`~micmatch.spectrum_correction.SpectrumCorrection.fit`): FFT
    size, clamp, and ``sc_level``: ``"auto"`` (a device with a noise floor brought down to the reference's level, never up; the others matched),
    ``"match"`` (each device brought to the reference's level) or ``"keep"`` (tone only).

    ``umc_*`` set the converter that recipe ``umc`` trains during the run (the registry entry ``umc``, fitted
    by :mod:`micmatch.bench.fitting`): a preset of :data:`micmatch.learn.converter_train.PRESETS`, its epochs, how many reference clips and how many
    augmentation devices it trains on, and its generator's normalisation (``"instance"`` or ``"none"``; None:
    the preset's), its form (``"pure"``, ``"offset"`` or ``"stochastic"``; None: stochastic in ``adapt``, the
    preset's offset form in ``generalize``) and discriminator (``"per-device"`` or ``"conditional"``; None: conditional
    in ``adapt``, where it trained the better converter in ``benchmarks/bench_converter_quality.py``, else one per
    device domain).
    """

    n_seen: int = 2
    n_unseen: int = 6
    seen_fraction: float = 0.075
    calibration_clips: int = 16
    clip_s: float = 1.0
    n_fft: int | None = None
    hop_length: int | None = None
    n_mels: int | None = None
    sc_n_fft: int = 256
    sc_max_boost_db: float = 20.0
    sc_max_cut_db: float = 30.0
    sc_level: str = "auto"
    noise_floor_db: float | None = None
    band_hz: tuple[float, float] | None = None
    device_chain: bool = True
    track: str = "generalize"
    adapt_clips: int = 200
    umc_preset: str = "cpu-smoke"
    umc_epochs: int = 10
    umc_clips: int = 1200
    umc_devices: int = 6
    umc_norm: str | None = None
    umc_form: str | None = None
    umc_discriminator: str | None = None
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
        base = dict(n_seen=1, n_unseen=2, epochs=10, max_train=600, max_test=150, n_mels=32, calibration_clips=8,
                    umc_epochs=3, umc_clips=400)
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
    stand for a device's unlabeled calibration recordings. ``chains`` holds each simulated device's recording
    chain (device name -> parameters of :func:`~micmatch.simulate.draw_device_chain`; empty when
    ``config.device_chain`` is off). ``adapt_waves`` holds the clean clips every unseen device records in the
    ``adapt`` track (empty otherwise); ``files`` the corpus paths of the ``"train"``, ``"test"`` and ``"adapt"``
    clips.
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
    chains: dict[str, dict] = field(default_factory=dict)
    adapt_waves: np.ndarray | None = None
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _recorded: dict = field(default_factory=dict, repr=False)  # recordings, by purpose and device

    def record(self, waves: np.ndarray, device: int, purpose: str) -> np.ndarray:
        """``waves`` as recorded by device index ``device``; noise seeded by (data seed, device, purpose)."""
        dev = self.plan.devices[device]
        if dev.path is None:
            return waves
        cfg = self.config
        rng = np.random.default_rng([cfg.data_seed, device, sum(map(ord, purpose))])
        chain = self.chains.get(dev.name)
        if chain is not None:  # the device's own chain; its noise differs between training, test and calibration
            chain = {**chain, "noise": {**chain["noise"], "seed": int(rng.integers(0, 2**31 - 1))}}
            return apply_device_chain(waves, self.sample_rate, chain, ir=self.irs[dev.name]).astype(
                np.float32, copy=False)
        low, high = cfg.band_hz if cfg.band_hz else (None, None)
        return record_with_ir(waves, self.sample_rate, self.irs[dev.name], noise_floor_db=cfg.noise_floor_db,
                              low_hz=low, high_hz=high, rng=rng).astype(np.float32, copy=False)

    def train_set(self, ideal: bool) -> np.ndarray:
        """Training waveforms ``(n_train, n_samples)``, each recorded by its assigned device (cached)."""
        key = ("train", ideal)
        if key not in self._recorded:
            assign = self.assign_ideal if ideal else self.assign
            out = self.train_waves.copy()
            for d in np.unique(assign):
                rows = np.flatnonzero(assign == d)
                out[rows] = self.record(self.train_waves[rows], int(d), "train")
            self._recorded[key] = out
        return self._recorded[key]

    def test_set(self, device: int) -> np.ndarray:
        key = ("test", device)
        if key not in self._recorded:
            self._recorded[key] = self.record(self.test_waves, device, "test")
        return self._recorded[key]

    def calibration_set(self, device: int) -> np.ndarray:
        """Unlabeled clips of ``device``: its calibration clips, or in the ``adapt`` track its adaptation clips."""
        key = ("calibration", device)
        if key not in self._recorded:
            if self.config.track == "adapt":
                self._recorded[key] = self.record(self.adapt_waves, device, "adapt")
            else:
                self._recorded[key] = self.record(self.train_waves[self.calibration], device, "calibration")
        return self._recorded[key]

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
    if config.device_chain and (config.noise_floor_db is not None or config.band_hz is not None):
        raise CorpusError("noise_floor_db and band_hz set one noise floor and band for every device, but with "
                          "device_chain each device draws its own: set device_chain=False to use them")
    train = _subsample(corpus, corpus.train, config.max_train, config.data_seed)
    test = _subsample(corpus, corpus.test, config.max_test, config.data_seed + 1)
    train, adapt = _adaptation_clips(list(corpus.train), train, config)
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
    chains = {}
    if config.device_chain:
        for i, d in enumerate(plan.devices):
            if d.path is not None:
                chains[d.name] = draw_device_chain(np.random.default_rng([config.data_seed, i, 11]), sample_rate,
                                                   ir=d.path.name)
    files = {"train": tuple(str(c.path) for c in train), "test": tuple(str(c.path) for c in test),
             "adapt": tuple(str(c.path) for c in adapt)}
    return MismatchData(sample_rate, corpus.classes, plan, config, waves(train), corpus.label_indices(train),
                        waves(test), corpus.label_indices(test), irs, aug, assign, assign_ideal, calibration,
                        chains, waves(adapt) if adapt else np.zeros((0, n), dtype=np.float32), files)


def _adaptation_clips(split: list, train: list, config: MismatchConfig) -> tuple[list, list]:
    """``(training clips, adaptation clips)``: in the ``adapt`` track, ``config.adapt_clips`` clips of the
    training ``split`` set aside (first those the subsampled ``train`` left out, then some of ``train``)."""
    if config.track not in TRACKS:
        raise CorpusError(f"track={config.track!r} must be one of {', '.join(TRACKS)}")
    if config.track != "adapt":
        return train, []
    n, m = config.adapt_clips, len(split)
    if n < 1 or n > m // 2:
        raise CorpusError(f"--adapt-clips {n} needs a training split of at least {2 * max(n, 1)} clips (at most half "
                          f"of it is set aside, the classifier trains on the rest) but it has {m}; lower --adapt-clips")
    rng = np.random.default_rng([config.data_seed, 13])
    kept = {c.path for c in train}
    rest = [c for c in split if c.path not in kept]
    if len(rest) >= n:
        return train, [rest[i] for i in np.sort(rng.choice(len(rest), size=n, replace=False))]
    taken = set(rng.choice(len(train), size=n - len(rest), replace=False).tolist())
    return [c for i, c in enumerate(train) if i not in taken], rest + [train[i] for i in sorted(taken)]


__all__ = ["MismatchConfig", "MismatchData", "TRACKS", "prepare_data"]

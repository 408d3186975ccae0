"""Training of the device converter: the unpaired CycleGAN loop, its settings and presets, and training from a
folder of recordings (``micmatch train converter``).

* :func:`train_converter`: cycle consistency (weight 10; in the stochastic form only where the input, shifted,
  stays above the target's noise floor), identity loss (``G(x, 0) = x``), a history buffer of
  generated samples per domain, Adam, step decay; least-squares discriminators, one per device domain
  (``discriminator="per-domain"``, as the paper) or one conditioned on the domain's band response
  (``"conditional"``); deterministic under a seed.
* :func:`train_converter_from_folder`: features of a folder of recordings, on devices simulated with impulse
  responses (:func:`micmatch.domains.simulate_domains`) or recorded one sub-folder per device, then
  :func:`train_converter`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from micmatch.errors import ConfigMismatchError, ParameterError
from micmatch.features import LogMelConfig
from micmatch.learn.converter_model import Converter, ConverterConfig, PatchDiscriminator
from micmatch.learn.engine import deterministic, progress_bar, select_device

DISCRIMINATORS = ("per-domain", "conditional")
#: Width (dB) of the soft step that weights the stochastic form's cycle loss by how far a bin lies above the
#: target's noise floor (a bin under the floor cannot be recovered, so it does not count).
FLOOR_SOFTNESS_DB = 3.0


class HistoryBuffer:
    """Generated samples kept per domain (at most ``size`` each): half of each query is answered with older
    samples, so the discriminators do not chase only the generator's latest output."""

    def __init__(self, size: int = 50) -> None:
        self.size = int(size)
        self.items: dict[int, list[torch.Tensor]] = {}

    def query(self, samples: torch.Tensor, domains: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        if self.size <= 0:
            return samples
        out = []
        draws = torch.rand(samples.shape[0], generator=generator)
        picks = torch.randint(0, max(self.size, 1), (samples.shape[0],), generator=generator)
        for x, d, u, j in zip(samples.detach(), domains.tolist(), draws.tolist(), picks.tolist()):
            pool = self.items.setdefault(d, [])
            if len(pool) < self.size:
                pool.append(x.clone())
                out.append(x)
            elif u < 0.5:
                out.append(pool[j].clone())
                pool[j] = x.clone()
            else:
                out.append(x)
        return torch.stack(out)


# ----------------------------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class ConverterTrainConfig:
    """Settings of :func:`train_converter`.

    One epoch draws every training clip once as a source, in batches of ``batch_size`` crops of ``n_frames``
    frames, each converted to a target domain drawn uniformly among the others. The learning rate is divided
    by 10 after every ``decay_fraction`` of the epochs (the paper: every 30 of 100 epochs). ``threads`` sets
    torch's CPU threads for the run (restored afterwards); on a busy machine one thread avoids the
    synchronisation stalls of several threads on small convolutions.
    """

    epochs: int = 100
    batch_size: int = 32
    n_frames: int = 32
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    decay_fraction: float = 0.3
    cycle_weight: float = 10.0
    identity_weight: float = 5.0
    buffer_size: int = 50
    discriminator: str = "per-domain"
    discriminator_channels: int = 32
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    progress: bool = True

    def __post_init__(self):
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise ParameterError(f"threads={self.threads!r} must be a positive integer or None")
        for name in ("epochs", "batch_size", "n_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"{name}={value!r} must be a positive integer")
        if self.discriminator not in DISCRIMINATORS:
            raise ParameterError(f"discriminator={self.discriminator!r} must be one of {DISCRIMINATORS}")
        if not self.learning_rate > 0 or not 0 < self.decay_fraction <= 1:
            raise ParameterError(f"learning_rate={self.learning_rate} must be positive and decay_fraction="
                                 f"{self.decay_fraction} in (0, 1]")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    def to_json(self) -> dict:
        return {**asdict(self), "betas": list(self.betas)}


@dataclass(frozen=True)
class Preset:
    """A named training budget: architecture, training settings and the simulated corpus size."""

    model: ConverterConfig
    train: ConverterTrainConfig
    n_devices: int
    max_clips: int | None
    description: str = ""
    extra: dict = field(default_factory=dict)


#: Training budgets. ``cpu-smoke``: a CI-sized smoke run, measured at 315 CPU-seconds on one thread (FSDD, 1140
#: steps); ``cpu-short``: the same size without the generator's instance norms and without step decay
#: (``benchmarks/results/converter_norm.md``); ``full``: the paper's schedule (100 epochs, step decay every 30) at
#: a size meant for a GPU (untimed).
PRESETS: dict[str, Preset] = {
    "cpu-smoke": Preset(
        ConverterConfig(channels=32, n_blocks=4, film_channels=16, film_hidden=64),
        ConverterTrainConfig(epochs=30, batch_size=32, n_frames=32, learning_rate=5e-4, discriminator_channels=16),
        n_devices=6, max_clips=1200,
        description="32 channels, 4 residual blocks, 1200 clips on 6 simulated devices + the reference, 30 epochs"),
    "cpu-short": Preset(
        ConverterConfig(channels=32, n_blocks=4, film_channels=16, film_hidden=64, norm="none"),
        ConverterTrainConfig(epochs=30, batch_size=32, n_frames=32, learning_rate=5e-4, decay_fraction=1.0,
                             discriminator_channels=16),
        n_devices=6, max_clips=1200,
        description="cpu-smoke without instance norms in the generator (so it can move a band's level and noise "
                    "floor) and at a constant learning rate, for runs of a few epochs"),
    "full": Preset(
        ConverterConfig(channels=128, n_blocks=9, film_channels=32, film_hidden=256),
        ConverterTrainConfig(epochs=100, batch_size=64, n_frames=64, learning_rate=5e-4, discriminator_channels=64),
        n_devices=12, max_clips=None,
        description="128 channels, 9 residual blocks, every clip on 12 simulated devices + the reference, 100 epochs"),
}


def _crop(features: torch.Tensor, n_frames: int, generator: torch.Generator) -> torch.Tensor:
    """Random crops ``(batch, n_mels, n_frames)`` (clips shorter than ``n_frames`` repeat themselves)."""
    if features.shape[-1] < n_frames:
        reps = -(-n_frames // features.shape[-1])
        features = features.repeat(1, 1, reps)
    start = torch.randint(0, features.shape[-1] - n_frames + 1, (features.shape[0],), generator=generator)
    idx = start[:, None] + torch.arange(n_frames)[None, :]
    return torch.gather(features, 2, idx[:, None, :].expand(-1, features.shape[1], -1))


def _check_domains(features: Mapping[str, np.ndarray], band_responses: Mapping[str, np.ndarray]) -> list[str]:
    names = list(features)
    if len(names) < 2:
        raise ParameterError(f"train_converter needs at least two device domains, got {names}")
    n_mels = None
    for name in names:
        x = features[name]
        if name not in band_responses:
            raise ParameterError(f"domain {name!r} has no band response; give one per domain")
        if np.ndim(x) != 3 or len(x) == 0:
            raise ParameterError(f"features of domain {name!r} must be (n_clips >= 1, n_mels, n_frames), "
                                 f"got shape {np.shape(x)}")
        n_mels = n_mels or np.shape(x)[1]
        if np.shape(x)[1] != n_mels or np.shape(band_responses[name]) != (n_mels,):
            raise ConfigMismatchError(f"domain {name!r}: features and band responses must all have n_mels={n_mels}")
    return names


def train_converter(features: Mapping[str, np.ndarray], band_responses: Mapping[str, np.ndarray], *,
                    floors: Mapping[str, np.ndarray] | None = None, config: ConverterConfig | None = None, train: ConverterTrainConfig = ConverterTrainConfig(),
                    feature_config: LogMelConfig | None = None, info: Mapping | None = None,
                    desc: str = "converter", log=None) -> Converter:
    """Train a :class:`Converter` unpaired on log-mel features of several device domains.

    Parameters
    ----------
    features : mapping of str to np.ndarray [shape=(n_clips, n_mels, n_frames)]
        Log-mel features (dB) per device domain; clips of one domain need not appear in another (unpaired).
        Every domain's clips may have their own length only through ``n_frames`` (one array per domain).
    band_responses : mapping of str to np.ndarray [shape=(n_mels,)]
        Each domain's band response (dB, :mod:`micmatch.conditioning`); the conditioning of a conversion
        from ``s`` to ``t`` is ``band_responses[t] - band_responses[s]``.
    floors : mapping of str to np.ndarray [shape=(n_mels,)], optional
        Each domain's noise floor (dB per band); needed by the stochastic form (``config.floor_path``), which
        adds the target's floor on conversion. The identity pass takes no floor.
    config : ConverterConfig, optional
        Architecture; ``n_mels``, ``mean_db`` and ``scale_db`` are set from the features.
    train : ConverterTrainConfig
    feature_config : LogMelConfig, optional
        Stored in the checkpoint so users convert features made the same way.
    info : mapping, optional
        More JSON-able metadata for the checkpoint header (e.g. the simulated devices).
    log : callable, optional
        Called with one line per epoch (mean losses, elapsed time), for logs where no progress bar shows.

    Returns
    -------
    Converter
        In eval mode on the CPU; ``converter.info["history"]`` holds the mean losses per epoch.
    """
    names = _check_domains(features, band_responses)
    n_mels = int(np.shape(features[names[0]])[1])
    if config is not None and config.floor_path:
        missing = [n for n in names if floors is None or np.shape(floors.get(n)) != (n_mels,)]
        if missing:
            raise ParameterError(f"the stochastic converter needs a noise floor of {n_mels} bands per domain; "
                                 f"missing for {', '.join(missing)}")
    stacked = np.concatenate([np.asarray(features[n], dtype=np.float64).reshape(-1) for n in names])
    config = replace(config or ConverterConfig(), n_mels=n_mels, mean_db=float(np.mean(stacked)),
                     scale_db=float(max(np.std(stacked), 1.0)))
    del stacked
    device = select_device(train.device)
    x_dom = [torch.as_tensor(np.asarray(features[n], dtype=np.float32)) for n in names]
    r_dom = torch.as_tensor(np.stack([np.asarray(band_responses[n], dtype=np.float32) for n in names]))
    f_dom = None if not config.floor_path else torch.as_tensor(
        np.stack([np.asarray(floors[n], dtype=np.float32) for n in names]))
    sizes = torch.tensor([len(x) for x in x_dom])
    # Every clip once per epoch as a source: (domain, index) pairs.
    all_pairs = torch.cat([torch.stack([torch.full((len(x),), k), torch.arange(len(x))], 1)
                           for k, x in enumerate(x_dom)])
    history: list[dict] = []
    started = time.perf_counter()
    threads_before = torch.get_num_threads()
    if train.threads is not None:
        torch.set_num_threads(train.threads)
    try:
        model = _fit(x_dom, r_dom, f_dom, sizes, all_pairs, config, train, device, desc, history, log)
    finally:
        torch.set_num_threads(threads_before)
    model = model.cpu().eval()
    model.info = {
        "feature_config": None if feature_config is None else feature_config.to_json(),
        "domains": names,
        "band_responses": {n: [float(v) for v in band_responses[n]] for n in names},
        **({"floors": {n: [float(v) for v in floors[n]] for n in names}} if f_dom is not None else {}),
        "train": train.to_json(),
        "history": history,
        "train_seconds": time.perf_counter() - started,
        **dict(info or {}),
    }
    return model


def _fit(x_dom, r_dom, f_dom, sizes, all_pairs, config, train, device, desc, history, log) -> Converter:
    """The training loop of :func:`train_converter` (appends the epoch means to ``history``)."""
    scale, mean = config.scale_db, config.mean_db
    k_domains = len(x_dom)
    started = time.perf_counter()
    with deterministic():
        torch.manual_seed(train.seed)
        gen = torch.Generator().manual_seed(train.seed)
        model = Converter(config).to(device).train()
        if train.discriminator == "per-domain":
            discs = nn.ModuleList(PatchDiscriminator(channels=train.discriminator_channels)
                                  for _ in range(k_domains)).to(device)
        else:
            discs = nn.ModuleList([PatchDiscriminator(channels=train.discriminator_channels, conditional=True)])
            discs = discs.to(device)
        buffer = HistoryBuffer(train.buffer_size)
        opt_g = torch.optim.Adam(model.parameters(), lr=train.learning_rate, betas=train.betas)
        opt_d = torch.optim.Adam(discs.parameters(), lr=train.learning_rate, betas=train.betas)
        step = max(1, round(train.decay_fraction * train.epochs))
        sched_g = torch.optim.lr_scheduler.StepLR(opt_g, step_size=step, gamma=0.1)
        sched_d = torch.optim.lr_scheduler.StepLR(opt_d, step_size=step, gamma=0.1)
        r_dev = r_dom.to(device)
        f_dev = None if f_dom is None else f_dom.to(device)

        def score(x_norm: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
            if train.discriminator == "conditional":
                return discs[0](x_norm, r_dev[domains] / scale)
            out = torch.empty(x_norm.shape[0], device=device)
            for k in domains.unique().tolist():
                m = domains == k
                out[m] = discs[k](x_norm[m])
            return out

        def batch_of(domains: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            clips = []
            for k, i in zip(domains.tolist(), index.tolist()):
                clips.append(_crop(x_dom[k][i : i + 1], train.n_frames, gen))
            return torch.cat(clips).to(device)

        n_steps = -(-len(all_pairs) // train.batch_size)
        with progress_bar(train.epochs * n_steps, enabled=train.progress, desc=desc, unit="step") as bar:
            for epoch in range(train.epochs):
                order = all_pairs[torch.randperm(len(all_pairs), generator=gen)]
                sums = {"g_adv": 0.0, "cycle": 0.0, "identity": 0.0, "d": 0.0}
                for b in range(n_steps):
                    pairs = order[b * train.batch_size : (b + 1) * train.batch_size]
                    src = pairs[:, 0]
                    x = batch_of(src, pairs[:, 1])
                    # A target domain other than the source, uniformly.
                    tgt = (src + torch.randint(1, k_domains, src.shape, generator=gen)) % k_domains
                    src_d, tgt_d = src.to(device), tgt.to(device)
                    d = r_dev[tgt_d] - r_dev[src_d]
                    # Generator step: fool the target's discriminator, cycle back, leave same-device input alone.
                    f_tgt = None if f_dev is None else f_dev[tgt_d]
                    f_src = None if f_dev is None else f_dev[src_d]
                    fake = model(x, d, f_tgt, generator=gen)
                    rec = model(fake, -d, f_src, generator=gen)
                    idt = model(x, torch.zeros_like(d), generator=gen)
                    g_adv = torch.mean((score((fake - mean) / scale, tgt_d) - 1.0) ** 2)
                    if f_tgt is None:
                        cycle = torch.mean(torch.abs(rec - x)) / scale
                    else:  # what the target's floor covers is lost: the cycle counts only what stays above it
                        above = torch.sigmoid((x + d.unsqueeze(-1) - f_tgt.unsqueeze(-1)) / FLOOR_SOFTNESS_DB)
                        cycle = torch.mean(above * torch.abs(rec - x)) / scale
                    identity = torch.mean(torch.abs(idt - x)) / scale
                    loss_g = g_adv + train.cycle_weight * cycle + train.identity_weight * identity
                    opt_g.zero_grad(set_to_none=True)
                    loss_g.backward()
                    opt_g.step()
                    # Discriminator step: real clips of the target domains against (buffered) fakes.
                    real_idx = (torch.rand(len(tgt), generator=gen) * sizes[tgt]).long()
                    real = batch_of(tgt, real_idx)
                    old = buffer.query((fake.detach() - mean) / scale, tgt, generator=gen).to(device)
                    loss_d = 0.5 * (torch.mean((score((real - mean) / scale, tgt_d) - 1.0) ** 2)
                                    + torch.mean(score(old, tgt_d) ** 2))
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
                    for key, value in (("g_adv", g_adv), ("cycle", cycle), ("identity", identity), ("d", loss_d)):
                        sums[key] += float(value.detach())
                    bar.update(1)
                    if b % 10 == 0:
                        bar.set_postfix(epoch=epoch + 1, g=f"{float(g_adv.detach()):.3f}",
                                        d=f"{float(loss_d.detach()):.3f}", cyc=f"{float(cycle.detach()) * scale:.2f}dB",
                                        idt=f"{float(identity.detach()) * scale:.2f}dB")
                sched_g.step()
                sched_d.step()
                history.append({k: v / n_steps for k, v in sums.items()})
                if log is not None:
                    h = history[-1]
                    log(f"epoch {epoch + 1}/{train.epochs}: generator {h['g_adv']:.3f}, discriminator {h['d']:.3f}, "
                        f"cycle {h['cycle'] * scale:.2f} dB, identity {h['identity'] * scale:.2f} dB "
                        f"({time.perf_counter() - started:.0f} s)")
    return model


# ----------------------------------------------------------------------------------------------------------------
# Training from folders (the ``micmatch train converter`` command)


#: A clip whose RMS lies below this (dBFS) holds nothing to learn from: it is skipped as silent.
SILENT_DBFS = -100.0


def _load_clips(paths: Sequence[Path], sample_rate: int, log, *, min_samples: int = 2
                ) -> tuple[list[np.ndarray], list[Path], list[str]]:
    """Mono clips resampled to ``sample_rate``; unreadable, silent and too short files (under ``min_samples``,
    one FFT frame) are reported and skipped."""
    from micmatch.audio import load
    from micmatch.errors import AudioError

    waves, kept, failed = [], [], []
    for path in paths:
        try:
            x, _ = load(path, sample_rate=sample_rate, channels="mix", dtype="float64")
            if x.shape[-1] < min_samples:
                raise AudioError(f"{path}: {x.shape[-1]} sample(s), shorter than one {min_samples}-sample frame")
            if not np.any(x) or 10 * np.log10(np.mean(x * x) + 1e-300) < SILENT_DBFS:
                raise AudioError(f"{path}: silent (RMS below {SILENT_DBFS:.0f} dBFS)")
        except AudioError as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            failed.append(message)
            log(f"micmatch: warning: skipped {message}")
            continue
        waves.append(x[0])
        kept.append(Path(path))
    return waves, kept, failed


def train_converter_from_folder(data: str | os.PathLike, *, irs: str | os.PathLike | None = None,
                                responses: str | os.PathLike | None = None, preset: str = "cpu-smoke",
                                epochs: int | None = None, device: str = "auto", seed: int = 0,
                                discriminator: str | None = None, norm: str | None = None,
                                form: str | None = None, n_devices: int | None = None,
                                max_clips: int | None = None, n_fft: int | None = None,
                                hop_length: int | None = None, n_mels: int | None = None,
                                exclude_irs: Sequence[str] = (), progress: bool = True,
                                log=lambda line: None) -> Converter:
    """Train a converter on a folder of recordings, as ``micmatch train converter`` does.

    Two kinds of corpus:

    * ``irs`` given: the audio files under ``data`` (recursively; seeded subsample of ``max_clips``) are recorded
      through ``n_devices`` recording chains drawn with the IRs (:func:`micmatch.domains.simulate_domains`),
      each clip on one device or left as the ``"reference"``; band responses come from the chains.
    * ``irs`` not given: ``data`` holds one sub-folder per device (its name is the device name) of real
      recordings, and ``responses`` (a responses JSON from ``micmatch profile``, ``pair`` or ``measure``) gives
      each device's response.

    Features are log-mel spectrograms at the first readable file's sample rate with ``n_fft``, ``hop_length``,
    ``n_mels`` (None: :func:`micmatch.logmel.default_settings` for the rate, as everywhere). ``exclude_irs``
    names IRs (file stems) left out of ``irs``: the devices kept for testing. ``preset`` names an entry of :data:`PRESETS`;
    ``epochs``, ``discriminator``, ``norm`` (the generator's, :data:`NORMS`), ``form`` (``FORMS`` of :mod:`~micmatch.learn.converter_model`; the
    stochastic form is conditioned on each domain's noise floor, measured from its clips), ``n_devices`` and
    ``max_clips`` override it.
    """
    from micmatch.audio import find_audio_files, first_sample_rate
    from micmatch.errors import CorpusError
    from micmatch.features import log_mel
    from micmatch.conditioning import all_band_responses
    from micmatch.domains import simulate_domains
    from micmatch.device_models import exclude_named
    from micmatch.simulate import list_irs

    if preset not in PRESETS:
        raise ParameterError(f"--config {preset!r} must be one of {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    root = Path(data)
    if not root.is_dir():
        raise CorpusError(f"--data {root}: folder not found")
    train = replace(chosen.train, seed=seed, device=device, progress=progress,
                    **({"epochs": epochs} if epochs is not None else {}),
                    **({"discriminator": discriminator} if discriminator is not None else {}))
    if chosen.train.threads is None and select_device(device).type == "cpu":
        train = replace(train, threads=1 if torch.get_num_threads() <= 2 else None)
    max_clips = chosen.max_clips if max_clips is None else max_clips
    files = find_audio_files([root])
    if not files:
        raise CorpusError(f"--data {root}: no audio files found")
    sample_rate = first_sample_rate(files)
    fcfg = LogMelConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    info: dict = {"data": str(root), "preset": preset}
    if irs is not None:
        if responses is not None:
            raise ParameterError("--responses is for recorded corpora; with --irs the devices are simulated and "
                                 "their responses come from the drawn chains: pass one or the other")
        ir_files = exclude_named(list_irs(irs), exclude_irs, option="--exclude-irs")
        n_devices = min(chosen.n_devices, len(ir_files)) if n_devices is None else n_devices
        rng = np.random.default_rng([seed, 7])
        if max_clips is not None and len(files) > max_clips:
            files = [files[i] for i in sorted(rng.choice(len(files), size=max_clips, replace=False))]
        waves, _, failed = _load_clips(files, sample_rate, log, min_samples=fcfg.n_fft)
        if len(waves) < 2:
            raise CorpusError(f"--data {root}: fewer than two readable audio files")
        log(f"simulating {n_devices} devices on {len(waves)} clips at {sample_rate} Hz")
        features, band, devices = simulate_domains(waves, sample_rate, ir_files, feature_config=fcfg,
                                                   n_devices=n_devices, seed=seed, progress=progress)
        info.update(simulated_devices=devices, n_clips=len(waves), skipped=failed)
    else:
        if responses is None:
            raise ParameterError("pass --irs DIR to simulate devices, or --responses R.json for a corpus recorded "
                                 "on several devices (one sub-folder per device)")
        known = all_band_responses(responses, config=fcfg)
        folders = sorted(p for p in root.iterdir() if p.is_dir() and find_audio_files([p]))
        missing = [p.name for p in folders if p.name not in known]
        if missing:
            raise CorpusError(f"--data {root}: device folder(s) {', '.join(missing)} have no response in "
                              f"{responses} (devices there: {', '.join(known)})")
        if len(folders) < 2:
            raise CorpusError(f"--data {root}: needs one sub-folder of recordings per device, at least two")
        features, band, failed = {}, {}, []
        for folder in folders:
            paths = find_audio_files([folder])
            if max_clips is not None and len(paths) > max_clips // len(folders):
                rng = np.random.default_rng([seed, 7, len(features)])
                keep = sorted(rng.choice(len(paths), size=max(1, max_clips // len(folders)), replace=False))
                paths = [paths[i] for i in keep]
            waves, _, bad = _load_clips(paths, sample_rate, log, min_samples=fcfg.n_fft)
            failed += bad
            if not waves:
                continue
            mels = [log_mel(w, sample_rate, config=fcfg).astype(np.float32) for w in waves]
            n_frames = max(m.shape[-1] for m in mels)
            features[folder.name] = np.stack([np.tile(m, (1, -(-n_frames // m.shape[-1])))[:, :n_frames]
                                              for m in mels])
            band[folder.name] = known[folder.name]
        info.update(responses=str(responses), skipped=failed)
    log(f"training on domains {', '.join(f'{k} ({len(v)})' for k, v in features.items())}")
    model_config = chosen.model if norm is None else replace(chosen.model, norm=norm)
    floors = None
    if form is not None:
        model_config = model_config.with_form(form)
    if model_config.floor_path:
        from micmatch.device_estimate import noise_floor_db

        floors = {k: noise_floor_db(v) for k, v in features.items()}
    return train_converter(features, band, floors=floors, config=model_config, train=train, feature_config=fcfg,
                           info=info, log=log)


__all__ = ["DISCRIMINATORS", "PRESETS", "ConverterTrainConfig", "HistoryBuffer", "Preset", "train_converter",
           "train_converter_from_folder"]

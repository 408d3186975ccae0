"""A many-to-many device converter for log-mel spectrograms: one generator for all devices, conditioned through
FiLM on the target-minus-source response difference, trained unpaired as a CycleGAN with least-squares
discriminators ("Unified Microphone Conversion: Many-to-Many Device Mapping via Feature-wise Linear Modulation").

Used as augmentation: a classifier trained on one device sees its clips converted to other devices, with response
differences measured (responses files, impulse responses: :mod:`micmatch.learn.conditioning`) or synthetic.

Pieces
------
* :class:`FiLMEncoder`: three blocks of Conv1D + InstanceNorm + ReLU over the band vector, then an MLP giving one
  ``(gamma, beta)`` pair per generator channel.
* :class:`Converter`: a residual 1-D CNN over time (mel bands as input channels) whose first residual block is
  modulated by the encoder; ``converter(log_mel, response_difference)``; exactly the identity at initialisation
  (its output layer starts at zero), so a zero difference starts as "no change".
* :class:`PatchDiscriminator`: a least-squares 2-D patch discriminator; :func:`train_converter` uses one per
  device domain (``discriminator="per-domain"``, as the paper) or one conditioned on the domain's band response
  (``"conditional"``).
* :func:`train_converter`: cycle consistency (weight 10), identity loss (``G(x, 0) = x``), a history buffer of
  generated samples per domain, Adam, step decay; deterministic under a seed.
* :func:`simulate_domains`: record a folder corpus through several drawn phone/laptop chains
  (:func:`micmatch.simulate.draw_device_chain`) to train on, each clip on one device (unpaired).

Two choices are ours, not the paper's: (1) the encoder's MLP also sees the raw difference vector, because the
instance norms inside the encoder discard the vector's mean and scale (a 2x larger difference would otherwise
give the same modulation); (2) ``offset_skip=True`` adds the difference itself to the output, so the network
learns only what a fixed per-band offset (the textbook device model) does not explain: noise floors, dynamics,
clipping. ``offset_skip=False`` is the paper's pure form.

Checkpoints hold the generator's weights and a JSON header (configuration, feature settings, domains and their
band responses, training history) and load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from micmatch import __version__
from micmatch.outputs import atomic_path
from micmatch.errors import ConfigMismatchError, ParameterError, ProfileError
from micmatch.features import LogMelConfig
from micmatch.learn.train import deterministic, select_device

FORMAT = "micmatch.converter"
FORMAT_VERSION = 1
#: Name of the domain of the recordings as they are (a flat response) in simulated corpora.
REFERENCE_DOMAIN = "reference"
DISCRIMINATORS = ("per-domain", "conditional")
#: Normalisation inside the generator: ``"instance"`` (the paper's, per clip and channel over time) or ``"none"``.
NORMS = ("instance", "none")


@dataclass(frozen=True)
class ConverterConfig:
    """Architecture of a :class:`Converter`.

    ``channels`` hidden channels in ``n_blocks`` residual blocks (dilations cycling through ``dilations``, so the
    receptive field grows without pooling); ``film_channels`` in the encoder's convolutions; ``scale_db``
    divides dB values before they enter the network (and multiplies its residual), ``mean_db`` is subtracted
    first (both set from the training features).
    """

    n_mels: int = 40
    channels: int = 64
    n_blocks: int = 6
    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 2, 4)
    film_channels: int = 32
    film_hidden: int = 128
    offset_skip: bool = True
    identity_init: bool = True
    norm: str = "instance"
    mean_db: float = -40.0
    scale_db: float = 20.0

    def __post_init__(self):
        for name in ("n_mels", "channels", "n_blocks", "kernel_size", "film_channels", "film_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"{name}={value!r} must be a positive integer")
        if self.kernel_size % 2 == 0:
            raise ParameterError(f"kernel_size={self.kernel_size} must be odd (the output keeps its length)")
        if not self.scale_db > 0:
            raise ParameterError(f"scale_db={self.scale_db} must be positive")
        if self.norm not in NORMS:
            raise ParameterError(f"norm={self.norm!r} must be one of {', '.join(NORMS)}")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))

    def to_json(self) -> dict:
        return {**asdict(self), "dilations": list(self.dilations)}

    @classmethod
    def from_json(cls, doc: Mapping) -> ConverterConfig:
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        known.setdefault("norm", "instance")  # checkpoints written before the option existed
        if "dilations" in known:
            known["dilations"] = tuple(known["dilations"])
        return cls(**known)


class FiLMEncoder(nn.Module):
    """Response difference ``(batch, n_mels)`` -> FiLM factors ``gamma, beta`` each ``(batch, channels)``.

    Three blocks of Conv1D (kernel 5, stride 2 after the first) + InstanceNorm + ReLU over the band axis, then
    an MLP on the flattened features concatenated with the difference itself (see the module notes).

    Shape:
        - difference: ``(batch, n_mels)``, dB divided by the converter's ``scale_db``
        - gamma, beta: ``(batch, channels)``
    """

    def __init__(self, n_mels: int, channels: int, *, film_channels: int = 32, hidden: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, length = 1, n_mels
        for i, c_out in enumerate((film_channels // 2 or 1, film_channels, film_channels)):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv1d(c_in, c_out, 5, stride=stride, padding=2), nn.InstanceNorm1d(c_out, affine=True),
                       nn.ReLU()]
            c_in, length = c_out, (length + 2 * 2 - 5) // stride + 1
        self.blocks = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(c_in * length + n_mels, hidden), nn.ReLU(), nn.Linear(hidden, 2 * channels))
        self.channels = channels

    def forward(self, difference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.blocks(difference.unsqueeze(1)).flatten(1)
        gamma, beta = self.mlp(torch.cat([h, difference], dim=1)).split(self.channels, dim=1)
        return gamma, beta


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int, norm: str = "instance") -> None:
        super().__init__()
        pad = dilation * (kernel_size // 2)
        instance = norm == "instance"
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation)
        self.norm1 = nn.InstanceNorm1d(channels, affine=False) if instance else nn.Identity()
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation)
        self.norm2 = nn.InstanceNorm1d(channels, affine=True) if instance else nn.Identity()

    def forward(self, x: torch.Tensor, film: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        h = self.norm1(self.conv1(x))
        if film is not None:  # FiLM on the channel statistics: gamma = 0, beta = 0 leaves the block unmodulated
            gamma, beta = film
            h = h * (1.0 + gamma.unsqueeze(-1)) + beta.unsqueeze(-1)
        h = torch.relu(h)
        return x + self.norm2(self.conv2(h))


class Converter(nn.Module):
    """Convert log-mel spectrograms of one device into another, given the response difference (target - source).

    Parameters
    ----------
    config : ConverterConfig
        Architecture; keyword overrides are accepted instead (``Converter(n_mels=40, channels=32)``).

    Shape:
        - log_mel: ``(batch, n_mels, n_frames)``, dB (the classifier's log-mel features)
        - response_difference: ``(batch, n_mels)`` or ``(n_mels,)`` (shared by the batch), dB
        - output: ``(batch, n_mels, n_frames)``, dB

    The generator is fully convolutional over time, so any ``n_frames >= 1`` works. ``Converter.load(path)``
    reads a checkpoint written by :meth:`save` (``torch.load(weights_only=True)``).
    """

    model_name = "converter"

    def __init__(self, config: ConverterConfig | None = None, **overrides) -> None:
        super().__init__()
        config = replace(config or ConverterConfig(), **overrides) if overrides else (config or ConverterConfig())
        self.config = config
        c, k = config.channels, config.kernel_size
        self.encoder = FiLMEncoder(config.n_mels, c, film_channels=config.film_channels, hidden=config.film_hidden)
        instance = config.norm == "instance"
        self.input = nn.Sequential(nn.Conv1d(config.n_mels, c, k, padding=k // 2),
                                   nn.InstanceNorm1d(c, affine=True) if instance else nn.Identity(),
                                   nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleList(
            _ResidualBlock(c, k, config.dilations[i % len(config.dilations)], config.norm)
            for i in range(config.n_blocks))
        self.output = nn.Conv1d(c, config.n_mels, k, padding=k // 2)
        if config.identity_init:
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)
        #: Training metadata (feature settings, domains, band responses, history); saved in the JSON header.
        self.info: dict = {}

    def forward(self, log_mel: torch.Tensor, response_difference: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if log_mel.ndim != 3 or log_mel.shape[1] != cfg.n_mels:
            raise ConfigMismatchError(f"log_mel.shape={tuple(log_mel.shape)} must be (batch, n_mels={cfg.n_mels}, "
                                      "n_frames)")
        d = torch.as_tensor(response_difference, dtype=log_mel.dtype, device=log_mel.device)
        if d.ndim == 1:
            d = d.unsqueeze(0).expand(log_mel.shape[0], -1)
        if d.shape != (log_mel.shape[0], cfg.n_mels):
            raise ConfigMismatchError(f"response_difference.shape={tuple(d.shape)} must be (n_mels,) or (batch, "
                                      f"n_mels) = ({log_mel.shape[0]}, {cfg.n_mels})")
        film = self.encoder(d / cfg.scale_db)
        h = self.input((log_mel - cfg.mean_db) / cfg.scale_db)
        for i, block in enumerate(self.blocks):
            h = block(h, film if i == 0 else None)
        out = log_mel + cfg.scale_db * self.output(h)
        return out + d.unsqueeze(-1) if cfg.offset_skip else out

    @torch.no_grad()
    def convert(self, log_mel: np.ndarray, response_difference: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """NumPy convenience: ``(n, n_mels, n_frames)`` features and ``(n, n_mels)`` or ``(n_mels,)`` differences
        (dB) -> converted features (float32), in eval mode on the module's device."""
        x = np.asarray(log_mel, dtype=np.float32)
        d = np.asarray(response_difference, dtype=np.float32)
        if d.ndim == 1:
            d = np.broadcast_to(d, (x.shape[0], d.shape[0]))
        dev = next(self.parameters()).device
        was_training = self.training
        self.eval()
        # torch.tensor copies: inputs may be read-only views (np.broadcast_to) and are never modified.
        out = [self(torch.tensor(x[i : i + batch_size], device=dev), torch.tensor(d[i : i + batch_size], device=dev))
               .cpu().numpy() for i in range(0, x.shape[0], batch_size)]
        self.train(was_training)
        return np.concatenate(out) if out else x.copy()

    # Persistence ------------------------------------------------------------------------------------------------
    def header(self) -> dict:
        """The JSON header saved with the weights."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "micmatch_version": __version__,
                "model_name": self.model_name, "config": self.config.to_json(), **self.info}

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``{"header": JSON text, "state_dict": tensors}`` atomically (loads with ``weights_only=True``)."""
        payload = {"header": json.dumps(self.header(), allow_nan=False),
                   "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Converter:
        """Read a converter saved by :meth:`save` (eval mode, CPU). Bad files raise :class:`ProfileError`."""
        p = Path(path)
        if not p.is_file():
            raise ProfileError(f"{p}: converter checkpoint not found")
        try:
            payload = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises several kinds for corrupt or unsafe files
            raise ProfileError(f"{p}: not a readable converter checkpoint ({type(exc).__name__})") from None
        try:
            header = json.loads(payload["header"])
            state = payload["state_dict"]
        except (TypeError, KeyError, IndexError, json.JSONDecodeError):
            raise ProfileError(f"{p}: not a micmatch converter checkpoint (no JSON header)") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ProfileError(f"{p}: not a micmatch converter checkpoint (format {header.get('format')!r})"
                               if isinstance(header, dict) else f"{p}: header is not a JSON object")
        if header.get("format_version") != FORMAT_VERSION:
            raise ProfileError(f"{p}: converter format_version={header.get('format_version')!r} is not "
                               f"{FORMAT_VERSION}; retrain it with this micmatch")
        try:
            model = cls(ConverterConfig.from_json(header["config"]))
            model.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ProfileError(f"{p}: converter weights do not match their configuration "
                               f"({str(exc).splitlines()[0]})") from None
        model.info = {k: v for k, v in header.items()
                      if k not in ("format", "format_version", "micmatch_version", "model_name", "config")}
        return model.eval()

    @property
    def feature_config(self) -> LogMelConfig | None:
        """The log-mel settings the converter was trained on (``None`` before training)."""
        doc = self.info.get("feature_config")
        return None if doc is None else LogMelConfig.from_json(doc)

    @property
    def band_responses(self) -> dict[str, np.ndarray]:
        """Band response (dB per mel band) of each training domain, by name."""
        return {k: np.asarray(v) for k, v in self.info.get("band_responses", {}).items()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------------------------
# Discriminators


class PatchDiscriminator(nn.Module):
    """Least-squares patch discriminator on log-mel spectrograms (2-D convolutions over bands and time).

    With ``conditional=True`` a second input plane carries the target domain's band response (broadcast over
    time), so one discriminator judges every domain.

    Shape:
        - log_mel: ``(batch, n_mels, n_frames)`` (normalised units)
        - band_response: ``(batch, n_mels)`` or None
        - output: ``(batch,)``, the mean patch score
    """

    def __init__(self, *, channels: int = 32, conditional: bool = False) -> None:
        super().__init__()
        c = channels
        self.conditional = conditional
        self.net = nn.Sequential(
            nn.Conv2d(2 if conditional else 1, c, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c, affine=True), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(4 * c, affine=True), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * c, 1, 3, padding=1))

    def forward(self, log_mel: torch.Tensor, band_response: torch.Tensor | None = None) -> torch.Tensor:
        x = log_mel.unsqueeze(1)
        if self.conditional:
            x = torch.cat([x, band_response[:, None, :, None].expand_as(x)], dim=1)
        return self.net(x).mean(dim=(1, 2, 3))


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
                    config: ConverterConfig | None = None, train: ConverterTrainConfig = ConverterTrainConfig(),
                    feature_config: LogMelConfig | None = None, info: Mapping | None = None,
                    desc: str = "converter", log=None) -> Converter:
    """Train a :class:`Converter` unpaired on log-mel features of several device domains.

    Parameters
    ----------
    features : mapping of str to np.ndarray [shape=(n_clips, n_mels, n_frames)]
        Log-mel features (dB) per device domain; clips of one domain need not appear in another (unpaired).
        Every domain's clips may have their own length only through ``n_frames`` (one array per domain).
    band_responses : mapping of str to np.ndarray [shape=(n_mels,)]
        Each domain's band response (dB, :mod:`micmatch.learn.conditioning`); the conditioning of a conversion
        from ``s`` to ``t`` is ``band_responses[t] - band_responses[s]``.
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
    stacked = np.concatenate([np.asarray(features[n], dtype=np.float64).reshape(-1) for n in names])
    config = replace(config or ConverterConfig(), n_mels=n_mels, mean_db=float(np.mean(stacked)),
                     scale_db=float(max(np.std(stacked), 1.0)))
    del stacked
    device = select_device(train.device)
    x_dom = [torch.as_tensor(np.asarray(features[n], dtype=np.float32)) for n in names]
    r_dom = torch.as_tensor(np.stack([np.asarray(band_responses[n], dtype=np.float32) for n in names]))
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
        model = _fit(x_dom, r_dom, sizes, all_pairs, config, train, device, desc, history, log)
    finally:
        torch.set_num_threads(threads_before)
    model = model.cpu().eval()
    model.info = {
        "feature_config": None if feature_config is None else feature_config.to_json(),
        "domains": names,
        "band_responses": {n: [float(v) for v in band_responses[n]] for n in names},
        "train": train.to_json(),
        "history": history,
        "train_seconds": time.perf_counter() - started,
        **dict(info or {}),
    }
    return model


def _fit(x_dom, r_dom, sizes, all_pairs, config, train, device, desc, history, log) -> Converter:
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
        from tqdm.auto import tqdm

        with tqdm(total=train.epochs * n_steps, desc=desc, unit="step", leave=False,
                  disable=None if train.progress else True) as bar:
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
                    fake = model(x, d)
                    rec = model(fake, -d)
                    idt = model(x, torch.zeros_like(d))
                    g_adv = torch.mean((score((fake - mean) / scale, tgt_d) - 1.0) ** 2)
                    cycle = torch.mean(torch.abs(rec - x)) / scale
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
# Simulated multi-device corpora


def simulate_domains(waves: Sequence[np.ndarray], sample_rate: int, irs: Sequence[str | os.PathLike], *,
                     feature_config: LogMelConfig, n_devices: int, seed: int = 0,
                     include_reference: bool = True, chain_options: Mapping | None = None,
                     progress: bool = True) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Record clips through ``n_devices`` drawn recording chains (one IR each), each clip on one device only.

    Parameters
    ----------
    waves : sequence of np.ndarray [shape=(n_samples,)]
        Mono clips at ``sample_rate``, of any lengths: each clip's features are repeated up to the longest clip
        of its domain (training crops short windows anyway).
    irs : sequence of paths
        Impulse responses to draw devices from (without replacement; ``n_devices <= len(irs)``).
    include_reference : bool
        Keep a share of clips unprocessed as the ``"reference"`` domain (flat response).
    chain_options : mapping, optional
        Options of :func:`micmatch.simulate.draw_device_chain`.

    Returns
    -------
    features : dict of str to np.ndarray [shape=(n_clips, n_mels, n_frames)]
    band_responses : dict of str to np.ndarray [shape=(n_mels,)]
        Each device's IR plus band limits (:func:`~micmatch.learn.conditioning.device_chain_band_response`).
    devices : dict of str to dict
        The drawn chain parameters per device (JSON), so the devices can be recreated exactly.
    """
    from micmatch.features import log_mel
    from micmatch.learn.conditioning import device_chain_band_response
    from micmatch.simulate import apply_device_chain, draw_device_chain, load_ir

    if n_devices < 1 or n_devices > len(irs):
        raise ParameterError(f"n_devices={n_devices} must be between 1 and the number of impulse responses "
                             f"({len(irs)})")
    rng = np.random.default_rng([seed, 11])
    chosen = sorted(rng.choice(len(irs), size=n_devices, replace=False).tolist())
    devices = {Path(irs[j]).stem: draw_device_chain(rng, sample_rate, ir=str(irs[j]), **dict(chain_options or {}))
               for j in chosen}
    names = ([REFERENCE_DOMAIN] if include_reference else []) + list(devices)
    assign = rng.integers(0, len(names), size=len(waves))
    features: dict[str, list[np.ndarray]] = {n: [] for n in names}
    from tqdm.auto import tqdm

    for i in tqdm(range(len(waves)), desc="simulate devices", unit="clip", leave=False,
                  disable=None if progress else True):
        name = names[assign[i]]
        x = np.asarray(waves[i], dtype=np.float64)
        if name != REFERENCE_DOMAIN:
            x = apply_device_chain(x, sample_rate, devices[name], ir=load_ir(devices[name]["ir"], sample_rate))
        features[name].append(log_mel(x, sample_rate, config=feature_config).astype(np.float32))
    out, responses = {}, {}
    for name in names:
        clips = features[name]
        if not clips:
            continue
        n_frames = max(c.shape[-1] for c in clips)
        out[name] = np.stack([np.tile(c, (1, -(-n_frames // c.shape[-1])))[:, :n_frames] for c in clips])
        responses[name] = (np.zeros(feature_config.n_mels) if name == REFERENCE_DOMAIN else
                           device_chain_band_response(devices[name], config=feature_config))
    return out, responses, devices


# ----------------------------------------------------------------------------------------------------------------
# Use as augmentation


def _numpy_rng(generator) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator).item()))
    raise ParameterError("pass generator=torch.Generator().manual_seed(seed) or a numpy Generator")


class ConverterAugment(nn.Module):
    """Augmentation: convert a share of a batch of source-device features to other devices with a trained
    :class:`Converter` (parameters drawn, then applied, so a logged draw replays exactly).

    Parameters
    ----------
    converter : Converter
        Trained; used frozen (no gradients) on the batch's device.
    targets : mapping of str to np.ndarray [shape=(n_mels,)], optional
        Band responses of the target devices (dB; e.g. from augmentation IRs with
        :func:`micmatch.learn.conditioning.ir_band_response`). Never the test devices.
    source_response : np.ndarray [shape=(n_mels,)], optional
        Band response of the device the batch was recorded with; zeros (a flat device) by default.
    p : float
        Probability that an item is converted.
    synthetic_fraction : float
        Share of the converted items whose difference is a synthetic one
        (:func:`micmatch.augment.draw_synthetic_response`, options in ``synthetic_options``) instead of a target.

    Shape:
        - x: ``(batch, n_mels, n_frames)``, dB; output the same
    """

    def __init__(self, converter: Converter, *, targets: Mapping[str, np.ndarray] | None = None,
                 source_response: np.ndarray | None = None, p: float = 0.5, synthetic_fraction: float = 0.5,
                 synthetic_options: Mapping | None = None) -> None:
        super().__init__()
        n_mels = converter.config.n_mels
        self.converter = converter.eval().requires_grad_(False)
        self.targets = {k: np.asarray(v, dtype=np.float64) for k, v in (targets or {}).items()}
        for name, r in self.targets.items():
            if r.shape != (n_mels,):
                raise ConfigMismatchError(f"target {name!r} has {r.shape} bands; the converter has n_mels={n_mels}")
        self.source = np.zeros(n_mels) if source_response is None else np.asarray(source_response, dtype=float)
        if not 0.0 <= p <= 1.0 or not 0.0 <= synthetic_fraction <= 1.0:
            raise ParameterError(f"p={p} and synthetic_fraction={synthetic_fraction} must be in [0, 1]")
        if not self.targets and synthetic_fraction < 1.0:
            raise ParameterError("no target devices: give targets= or set synthetic_fraction=1.0")
        self.p, self.synthetic_fraction = float(p), float(synthetic_fraction)
        self.synthetic_options = dict(synthetic_options or {})
        self.last_params: dict | None = None

    def draw(self, batch_size: int, *, generator) -> dict:
        """``{"difference_db": [list | None], "target": [str | None]}`` (``"synthetic"`` for synthetic ones)."""
        from micmatch.learn.conditioning import draw_synthetic_differences

        rng = _numpy_rng(generator)
        cfg = self.converter.feature_config
        names = sorted(self.targets)
        diffs: list = []
        labels: list = []
        for _ in range(int(batch_size)):
            if rng.random() >= self.p:
                diffs.append(None)
                labels.append(None)
            elif not names or rng.random() < self.synthetic_fraction:
                if cfg is None:
                    raise ParameterError("the converter has no feature configuration: synthetic differences need "
                                         "its mel bands (train it with feature_config=...)")
                d = draw_synthetic_differences(rng, 1, config=cfg, **self.synthetic_options)[0]
                diffs.append([float(v) for v in d])
                labels.append("synthetic")
            else:
                name = names[int(rng.integers(len(names)))]
                diffs.append([float(v) for v in self.targets[name] - self.source])
                labels.append(name)
        return {"difference_db": diffs, "target": labels}

    @torch.no_grad()
    def apply(self, x: torch.Tensor, params: Mapping) -> torch.Tensor:
        diffs = params["difference_db"]
        if len(diffs) != x.shape[0]:
            raise ParameterError(f"params are for {len(diffs)} items but the batch has {x.shape[0]}")
        idx = [i for i, d in enumerate(diffs) if d is not None]
        if not idx:
            return x
        self.converter.to(x.device)
        d = torch.as_tensor(np.asarray([diffs[i] for i in idx]), dtype=x.dtype, device=x.device)
        out = x.clone()
        sel = torch.as_tensor(idx, device=x.device)
        out[sel] = self.converter(x[sel], d)
        return out

    def forward(self, x: torch.Tensor, params: Mapping | None = None, *, generator=None) -> torch.Tensor:
        if params is None:
            params = self.draw(x.shape[0], generator=generator)
        self.last_params = dict(params)
        return self.apply(x, params)


# ----------------------------------------------------------------------------------------------------------------
# Training from folders (the ``micmatch train converter`` command)


def _load_clips(paths: Sequence[Path], sample_rate: int, log) -> tuple[list[np.ndarray], list[Path], list[str]]:
    """Mono clips resampled to ``sample_rate``; unreadable files are reported and skipped."""
    from micmatch.audio import load
    from micmatch.errors import AudioError

    waves, kept, failed = [], [], []
    for path in paths:
        try:
            x, _ = load(path, sample_rate=sample_rate, channels="mix", dtype="float64")
        except AudioError as exc:
            failed.append(str(exc))
            log(f"skipped: {exc}")
            continue
        waves.append(x[0])
        kept.append(Path(path))
    return waves, kept, failed


def train_converter_from_folder(data: str | os.PathLike, *, irs: str | os.PathLike | None = None,
                                responses: str | os.PathLike | None = None, preset: str = "cpu-smoke",
                                epochs: int | None = None, device: str = "auto", seed: int = 0,
                                discriminator: str | None = None, norm: str | None = None,
                                n_devices: int | None = None,
                                max_clips: int | None = None, n_fft: int = 256, hop_length: int = 128,
                                n_mels: int = 40, progress: bool = True, log=lambda line: None) -> Converter:
    """Train a converter on a folder of recordings, as ``micmatch train converter`` does.

    Two kinds of corpus:

    * ``irs`` given: the audio files under ``data`` (recursively; seeded subsample of ``max_clips``) are recorded
      through ``n_devices`` recording chains drawn with the IRs (:func:`simulate_domains`), each clip on one
      device or left as the ``"reference"``; band responses come from the chains.
    * ``irs`` not given: ``data`` holds one sub-folder per device (its name is the device name) of real
      recordings, and ``responses`` (a responses JSON from ``micmatch profile``, ``pair`` or ``measure``) gives
      each device's response.

    Features are log-mel spectrograms at the first readable file's sample rate with ``n_fft``, ``hop_length``,
    ``n_mels`` (the device-mismatch benchmark's defaults). ``preset`` names an entry of :data:`PRESETS`;
    ``epochs``, ``discriminator``, ``norm`` (the generator's, :data:`NORMS`), ``n_devices`` and ``max_clips``
    override it.
    """
    from micmatch.audio import find_audio_files, first_sample_rate
    from micmatch.errors import CorpusError
    from micmatch.features import log_mel
    from micmatch.learn.conditioning import all_band_responses
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
        ir_files = list_irs(irs)
        n_devices = min(chosen.n_devices, len(ir_files)) if n_devices is None else n_devices
        rng = np.random.default_rng([seed, 7])
        if max_clips is not None and len(files) > max_clips:
            files = [files[i] for i in sorted(rng.choice(len(files), size=max_clips, replace=False))]
        waves, _, failed = _load_clips(files, sample_rate, log)
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
            waves, _, bad = _load_clips(paths, sample_rate, log)
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
    return train_converter(features, band, config=model_config, train=train, feature_config=fcfg, info=info, log=log)


__all__ = ["DISCRIMINATORS", "NORMS", "PRESETS", "REFERENCE_DOMAIN", "Converter", "ConverterAugment", "ConverterConfig", "ConverterTrainConfig",
           "FiLMEncoder", "HistoryBuffer", "PatchDiscriminator", "Preset", "count_parameters", "simulate_domains",
           "train_converter", "train_converter_from_folder"]

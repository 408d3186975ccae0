"""The device converter's networks: the FiLM-conditioned generator, its encoder, and the patch discriminator.

A many-to-many device converter for log-mel spectrograms: one generator for all devices, conditioned through
FiLM on the target-minus-source response difference ("Unified Microphone Conversion: Many-to-Many Device
Mapping via Feature-wise Linear Modulation"). Training lives in :mod:`micmatch.learn.converter_train`, its use
as an augmentation in :mod:`micmatch.learn.converter_augment`.

* :class:`FiLMEncoder`: three blocks of Conv1D + InstanceNorm + ReLU over the band vector, then an MLP giving one
  ``(gamma, beta)`` pair per generator channel.
* :class:`Converter`: a residual 1-D CNN over time (mel bands as input channels) whose first residual block is
  modulated by the encoder; ``converter(log_mel, response_difference)``; exactly the identity at initialisation
  (its output layer starts at zero), so a zero difference starts as "no change".
* :class:`PatchDiscriminator`: a least-squares 2-D patch discriminator, one per device domain or one conditioned
  on the domain's band response.

Two choices are ours, not the paper's: (1) the encoder's MLP also sees the raw difference vector, because the
instance norms inside the encoder discard the vector's mean and scale (a 2x larger difference would otherwise
give the same modulation); (2) ``offset_skip=True`` adds the difference itself to the output, so the network
learns only what a fixed per-band offset (the textbook device model) does not explain: noise floors, dynamics,
clipping. ``offset_skip=False`` is the paper's pure form.

A deterministic generator fed a silent frame can only return a constant, so a third form draws
(:data:`FORMS`, ``"stochastic"``): ``noise_channels`` channels of seeded Gaussian noise are concatenated to the
generator's input, the encoder also sees the target's noise floor (dB per band, a second plane beside the
difference), and a floor path adds that floor in power to the output, ``10 log10(10^(y/10) + 10^((floor + c +
t)/10))``, with ``c`` a correction per band and frame bounded to +-``floor_bound_db`` by a tanh (the network's
second output half) and ``t`` a Gamma(4) / 4 power fluctuation (a floor is noise, not a constant). Without a floor
(``floor_db=None``) the floor path is skipped, so a zero difference and no floor start as the identity.

A converter file is a model file (:mod:`micmatch.learn.modelfile`, kind ``micmatch-converter``): the
configuration, feature settings, domains and their band responses and the training history in the JSON header,
the generator's weights read with ``weights_only=True``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from micmatch.errors import ConfigMismatchError, MicmatchError, ModelError, ParameterError
from micmatch.features import LogMelConfig
from micmatch.learn.modelfile import header_float, header_int, read_model_file, write_model_file

#: The ``kind`` of converter model files.
KIND = "micmatch-converter"
#: Normalisation inside the generator: ``"instance"`` (the paper's, per clip and channel over time) or ``"none"``.
NORMS = ("instance", "none")
#: Forms of the converter: ``"pure"`` (the paper's), ``"offset"`` (the difference added to the output) and
#: ``"stochastic"`` (offset, noise input and floor path: see the module notes).
FORMS = ("pure", "offset", "stochastic")
#: Shape of the Gamma distribution of the floor path's power fluctuation (mean 1, standard deviation 1 / 2).
FLOOR_TEXTURE_SHAPE = 4
#: Header keys written by the model file itself, not part of :attr:`Converter.info`.
_FILE_KEYS = ("kind", "format", "micmatch_version", "weights_sha256", "weights_bytes", "sha256", "model_name",
              "config")

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
    noise_channels: int = 0
    floor_path: bool = False
    floor_bound_db: float = 12.0

    def __post_init__(self):
        for name in ("n_mels", "channels", "n_blocks", "kernel_size", "film_channels", "film_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"{name}={value!r} must be a positive integer")
        n = self.noise_channels
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= 256:
            raise ParameterError(f"noise_channels={n!r} must be an integer in [0, 256]")
        if not 0 < self.floor_bound_db <= 60:
            raise ParameterError(f"floor_bound_db={self.floor_bound_db} must be in (0, 60]")
        if self.kernel_size % 2 == 0:
            raise ParameterError(f"kernel_size={self.kernel_size} must be odd (the output keeps its length)")
        if not self.scale_db > 0:
            raise ParameterError(f"scale_db={self.scale_db} must be positive")
        if self.norm not in NORMS:
            raise ParameterError(f"norm={self.norm!r} must be one of {', '.join(NORMS)}")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))

    def to_json(self) -> dict:
        return {**asdict(self), "dilations": list(self.dilations)}

    @property
    def form(self) -> str:
        """Which of :data:`FORMS` this configuration is."""
        if self.floor_path or self.noise_channels:
            return "stochastic"
        return "offset" if self.offset_skip else "pure"

    def with_form(self, form: str, *, noise_channels: int = 4) -> ConverterConfig:
        """This architecture in ``form`` (:data:`FORMS`)."""
        if form not in FORMS:
            raise ParameterError(f"form={form!r} must be one of {', '.join(FORMS)}")
        stochastic = form == "stochastic"
        return replace(self, offset_skip=form != "pure", floor_path=stochastic,
                       noise_channels=noise_channels if stochastic else 0)

    @classmethod
    def from_json(cls, doc: Mapping) -> ConverterConfig:
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        known.setdefault("norm", "instance")  # files written before the option existed
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

    def __init__(self, n_mels: int, channels: int, *, film_channels: int = 32, hidden: int = 128,
                 planes: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, length = planes, n_mels
        for i, c_out in enumerate((film_channels // 2 or 1, film_channels, film_channels)):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv1d(c_in, c_out, 5, stride=stride, padding=2), nn.InstanceNorm1d(c_out, affine=True),
                       nn.ReLU()]
            c_in, length = c_out, (length + 2 * 2 - 5) // stride + 1
        self.blocks = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(c_in * length + planes * n_mels, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * channels))
        self.channels = channels

    def forward(self, difference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``difference``: ``(batch, n_mels)``, or ``(batch, planes, n_mels)`` for an encoder of several planes."""
        planes = difference if difference.ndim == 3 else difference.unsqueeze(1)
        h = self.blocks(planes).flatten(1)
        gamma, beta = self.mlp(torch.cat([h, planes.flatten(1)], dim=1)).split(self.channels, dim=1)
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
    reads a file written by :meth:`save`.
    """

    model_name = "converter"

    def __init__(self, config: ConverterConfig | None = None, **overrides) -> None:
        super().__init__()
        config = replace(config or ConverterConfig(), **overrides) if overrides else (config or ConverterConfig())
        self.config = config
        c, k = config.channels, config.kernel_size
        self.encoder = FiLMEncoder(config.n_mels, c, film_channels=config.film_channels, hidden=config.film_hidden,
                                   planes=2 if config.floor_path else 1)
        instance = config.norm == "instance"
        self.input = nn.Sequential(nn.Conv1d(config.n_mels + config.noise_channels, c, k, padding=k // 2),
                                   nn.InstanceNorm1d(c, affine=True) if instance else nn.Identity(),
                                   nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleList(
            _ResidualBlock(c, k, config.dilations[i % len(config.dilations)], config.norm)
            for i in range(config.n_blocks))
        self.output = nn.Conv1d(c, config.n_mels * (2 if config.floor_path else 1), k, padding=k // 2)
        if config.identity_init:
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)
        #: Training metadata (feature settings, domains, band responses, history); saved in the JSON header.
        self.info: dict = {}

    def forward(self, log_mel: torch.Tensor, response_difference: torch.Tensor, floor_db: torch.Tensor | None = None,
                *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Convert ``log_mel``; ``floor_db`` (``(batch, n_mels)`` or ``(n_mels,)``, the target's noise floor) and
        ``generator`` (the noise, drawn on the CPU so a seed replays on any device) count in the stochastic form
        only."""
        cfg = self.config
        if log_mel.ndim != 3 or log_mel.shape[1] != cfg.n_mels:
            raise ConfigMismatchError(f"log_mel.shape={tuple(log_mel.shape)} must be (batch, n_mels={cfg.n_mels}, "
                                      "n_frames)")
        d = self._per_item(response_difference, log_mel, "response_difference")
        floor = None if floor_db is None or not cfg.floor_path else self._per_item(floor_db, log_mel, "floor_db")
        cond = d / cfg.scale_db
        if cfg.floor_path:
            plane = torch.zeros_like(d) if floor is None else (floor - cfg.mean_db) / cfg.scale_db
            cond = torch.stack([cond, plane], dim=1)
        film = self.encoder(cond)
        h = (log_mel - cfg.mean_db) / cfg.scale_db
        b, _, t = log_mel.shape
        if cfg.noise_channels:
            z = torch.randn((b, cfg.noise_channels, t), generator=generator)
            h = torch.cat([h, z.to(device=log_mel.device, dtype=log_mel.dtype)], dim=1)
        h = self.input(h)
        for i, block in enumerate(self.blocks):
            h = block(h, film if i == 0 else None)
        o = self.output(h)
        out = log_mel + cfg.scale_db * o[:, : cfg.n_mels]
        if cfg.offset_skip:
            out = out + d.unsqueeze(-1)
        if floor is None:
            return out
        bound = cfg.floor_bound_db
        correction = bound * torch.tanh(cfg.scale_db * o[:, cfg.n_mels :] / bound)
        u = torch.rand((FLOOR_TEXTURE_SHAPE, b, cfg.n_mels, t), generator=generator).clamp_min(1e-12)
        texture = (-torch.log(u)).mean(dim=0).to(device=log_mel.device, dtype=log_mel.dtype)
        floor_t = floor.unsqueeze(-1) + correction + 10.0 * torch.log10(texture)
        k = float(np.log(10.0) / 10.0)
        return torch.logaddexp(out * k, floor_t * k) / k

    @staticmethod
    def _per_item(v, log_mel: torch.Tensor, name: str) -> torch.Tensor:
        """``(n_mels,)`` or ``(batch, n_mels)`` -> ``(batch, n_mels)`` on the features' device and dtype."""
        v = torch.as_tensor(v, dtype=log_mel.dtype, device=log_mel.device)
        if v.ndim == 1:
            v = v.unsqueeze(0).expand(log_mel.shape[0], -1)
        if v.shape != (log_mel.shape[0], log_mel.shape[1]):
            raise ConfigMismatchError(f"{name}.shape={tuple(v.shape)} must be (n_mels,) or (batch, n_mels) = "
                                      f"({log_mel.shape[0]}, {log_mel.shape[1]})")
        return v

    @torch.no_grad()
    def convert(self, log_mel: np.ndarray, response_difference: np.ndarray, floor_db: np.ndarray | None = None, *,
                seed: int = 0, batch_size: int = 256) -> np.ndarray:
        """NumPy convenience: ``(n, n_mels, n_frames)`` features and ``(n, n_mels)`` or ``(n_mels,)`` differences
        (and floors, stochastic form) in dB -> converted features (float32), in eval mode on the module's device;
        the noise of the stochastic form is drawn from ``seed``."""
        x = np.asarray(log_mel, dtype=np.float32)
        d = np.asarray(response_difference, dtype=np.float32)
        if d.ndim == 1:
            d = np.broadcast_to(d, (x.shape[0], d.shape[0]))
        f = None if floor_db is None else np.asarray(floor_db, dtype=np.float32)
        if f is not None and f.ndim == 1:
            f = np.broadcast_to(f, (x.shape[0], f.shape[0]))
        dev = next(self.parameters()).device
        gen = torch.Generator().manual_seed(int(seed))
        was_training = self.training
        self.eval()
        # torch.tensor copies: inputs may be read-only views (np.broadcast_to) and are never modified.
        out = [self(torch.tensor(x[i : i + batch_size], device=dev), torch.tensor(d[i : i + batch_size], device=dev),
                    None if f is None else torch.tensor(f[i : i + batch_size], device=dev), generator=gen)
               .cpu().numpy() for i in range(0, x.shape[0], batch_size)]
        self.train(was_training)
        return np.concatenate(out) if out else x.copy()

    # Persistence ------------------------------------------------------------------------------------------------
    def header(self) -> dict:
        """The JSON header saved with the weights."""
        return {"kind": KIND, "model_name": self.model_name, "config": self.config.to_json(), **self.info}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file atomically (:func:`~micmatch.learn.modelfile.write_model_file`)."""
        return write_model_file(path, self.header(), self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Converter:
        """Read a converter saved by :meth:`save` (eval mode, CPU). Bad files raise one :class:`ModelError` line."""
        header, state = read_model_file(path, kind=KIND)
        _check_header(path, header, state)
        try:
            model = cls(ConverterConfig.from_json(header["config"]))
            model.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: converter weights do not match their configuration "
                             f"({str(exc).splitlines()[0]})") from None
        model.info = {k: v for k, v in header.items() if k not in _FILE_KEYS}
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

    @property
    def floors(self) -> dict[str, np.ndarray]:
        """Noise floor (dB per mel band) of each training domain, by name (stochastic form; else empty)."""
        return {k: np.asarray(v) for k, v in self.info.get("floors", {}).items()}


def _check_header(path, header: dict, state: dict) -> None:
    """Every number of a converter header in range and the sizes consistent with the weights, before the model is
    built (an edited size must not allocate gigabytes); the feature settings valid."""
    config = header.get("config")
    if not isinstance(config, dict):
        raise ModelError(f"{path}: invalid model header (config is missing or not an object)")
    ints = {"n_mels": 1 << 12, "channels": 1 << 12, "n_blocks": 256, "kernel_size": 255, "film_channels": 1 << 12,
            "film_hidden": 1 << 14}
    size = {k: header_int(path, header, f"config.{k}", lo=1, hi=hi) for k, hi in ints.items() if
            k in config or k in ("n_mels", "channels", "kernel_size")}
    for key in ("mean_db", "scale_db"):
        if key in config:
            header_float(path, header, f"config.{key}", lo=-1000.0 if key == "mean_db" else 0.0, hi=1000.0,
                         open_low=key == "scale_db")
    dilations = config.get("dilations", [1])
    if not isinstance(dilations, list) or not dilations or len(dilations) > 64:
        raise ModelError(f"{path}: invalid model header (config.dilations={dilations!r} must be a list of integers)")
    for i in range(len(dilations)):
        d = dilations[i]
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 4096:
            raise ModelError(f"{path}: invalid model header (config.dilations[{i}]={d!r} must be an integer in "
                             f"[1, 4096])")
    noise = header_int(path, header, "config.noise_channels", lo=0, hi=256) if "noise_channels" in config else 0
    expected = (size["channels"], size["n_mels"] + noise, size["kernel_size"])
    got = tuple(state["input.0.weight"].shape) if "input.0.weight" in state else None
    if got != expected:
        raise ModelError(f"{path}: converter weights do not match their configuration (weight 'input.0.weight' "
                         f"has shape {got}, the header's config needs {expected})")
    doc = header.get("feature_config")
    if doc is not None:
        try:
            fcfg = LogMelConfig.from_json(doc)
        except (MicmatchError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: invalid model header (feature_config: {str(exc).splitlines()[0]})") from None
        if fcfg.n_mels != size["n_mels"]:
            raise ModelError(f"{path}: invalid model header (feature_config.n_mels={fcfg.n_mels} differs from "
                             f"config.n_mels={size['n_mels']})")


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


__all__ = ["FORMS", "KIND", "NORMS", "Converter", "ConverterConfig", "FiLMEncoder", "PatchDiscriminator"]

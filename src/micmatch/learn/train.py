"""Training and scoring loops for feature classifiers, deterministic under a seed, and safe checkpoints.

Determinism: the weights are initialised after ``torch.manual_seed(seed)``; batches are drawn from a
``torch.Generator`` seeded with ``seed`` (no DataLoader workers); augmentations get their own generator derived
from the same seed; ``torch.use_deterministic_algorithms`` is switched on for the duration of training (and
cuBLAS is given the workspace setting it needs for that). So the same seed on the same machine and library
versions gives the same weights, bit for bit.

Checkpoints hold ``{model_name, config, state_dict, sample_rate, version, extra}`` (plain Python types and
tensors only) and are read back with ``torch.load(..., weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from micmatch import __version__
from micmatch.outputs import atomic_path
from micmatch.errors import ConfigMismatchError, ParameterError, ProfileError
from micmatch.learn.classifier import MODELS

#: A batch transform: (features (batch, n_mels, n_frames), soft targets (batch, n_classes), generator) -> both.
BatchTransform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
#: A front end run on every training batch: (inputs (batch, ...), row indices (batch,), generator) -> features
#: (batch, n_mels, n_frames); inputs, indices and the result live on the training device.
FrontEnd = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train_classifier`.

    ``learning_rate`` decays to zero along a cosine over ``epochs``; ``device`` is ``"auto"`` (CUDA when present),
    ``"cpu"`` or ``"cuda"``.
    """

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ParameterError(f"epochs={self.epochs}, batch_size={self.batch_size} and "
                                 f"learning_rate={self.learning_rate} must be positive")


def select_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Switch on deterministic algorithms for a block and restore the previous setting afterwards."""
    # cuBLAS needs a fixed workspace to be deterministic; it must be set before its first use.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = torch.are_deterministic_algorithms_enabled()
    before_cudnn = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.benchmark = before_cudnn


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    # disable=None turns the bar off when stderr is not a terminal (logs, CI).
    return tqdm(total=total, desc=desc, unit="epoch", leave=False, disable=None if enabled else True)


def train_classifier(model: nn.Module, inputs: np.ndarray | torch.Tensor, labels: np.ndarray, *,
                     config: TrainConfig = TrainConfig(), front_end: FrontEnd | None = None,
                     batch_transforms: tuple[BatchTransform, ...] = (), desc: str = "train") -> list[float]:
    """Train ``model`` in place with AdamW and cross-entropy on soft targets; returns the mean loss per epoch.

    The inputs are moved to the training device once; every batch then stays there, through ``front_end``,
    ``batch_transforms`` and the model.

    Parameters
    ----------
    model : nn.Module
        Maps ``(batch, n_mels, n_frames)`` to logits ``(batch, n_classes)``; it must have ``config["n_classes"]``.
    inputs : np.ndarray or torch.Tensor [shape=(n_clips, ...)]
        Training features ``(n_clips, n_mels, n_frames)``, or whatever ``front_end`` turns into features
        (e.g. waveforms ``(n_clips, n_samples)``).
    labels : np.ndarray [shape=(n_clips,), dtype=int]
    front_end : callable, optional
        ``(inputs batch, row indices, generator) -> features``, run on each training batch (e.g. waveform
        augmentation and log-mel); the row indices say which clips the batch holds.
    batch_transforms : tuple of callables
        Applied in order to each training batch of features (e.g. mixup, Freq-MixStyle): ``(x, targets,
        generator) -> (x, targets)``, targets being class probabilities.

    Raises
    ------
    ConfigMismatchError
        When ``inputs`` and ``labels`` hold different numbers of clips.
    """
    device = select_device(config.device)
    labels = np.asarray(labels, dtype=np.int64)
    if inputs.shape[0] != labels.shape[0]:
        raise ConfigMismatchError(f"inputs have {inputs.shape[0]} clips but labels {labels.shape[0]}; "
                                  "give one label per training clip")
    n_classes = int(model.config["n_classes"])
    y_all = torch.as_tensor(labels).to(device)
    history: list[float] = []
    with deterministic():
        torch.manual_seed(config.seed)
        batch_gen = torch.Generator().manual_seed(config.seed)
        aug_gen = torch.Generator().manual_seed(config.seed + 1)  # CPU: transforms draw from it
        model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
        x_all = torch.as_tensor(inputs, dtype=torch.float32).to(device)
        with _progress(config.epochs, config.progress, desc) as bar:
            for _ in range(config.epochs):
                order = torch.randperm(labels.shape[0], generator=batch_gen).to(device)
                total, count = 0.0, 0
                for start in range(0, order.numel(), config.batch_size):
                    idx = order[start : start + config.batch_size]
                    if idx.numel() < 2:  # BatchNorm needs two examples
                        continue
                    x = x_all[idx]
                    if front_end is not None:
                        x = front_end(x, idx, aug_gen)
                    target = nn.functional.one_hot(y_all[idx], n_classes).to(torch.float32)
                    for transform in batch_transforms:
                        x, target = transform(x, target, aug_gen)
                    loss = nn.functional.cross_entropy(model(x), target)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * idx.numel()
                    count += idx.numel()
                schedule.step()
                history.append(total / max(count, 1))
                bar.set_postfix(loss=f"{history[-1]:.3f}")
                bar.update(1)
    model.eval()
    return history


@torch.no_grad()
def predict(model: nn.Module, features: np.ndarray | torch.Tensor, *, batch_size: int = 256,
            device: str = "auto") -> np.ndarray:
    """Class probabilities ``(n_clips, n_classes)`` (float64) for features ``(n_clips, n_mels, n_frames)``."""
    dev = select_device(device)
    model.to(dev).eval()
    x = torch.as_tensor(features, dtype=torch.float32)
    out = [torch.softmax(model(x[i : i + batch_size].to(dev)), dim=-1).cpu() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).double().numpy()


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` returns: the rebuilt model (eval mode, on CPU) and its metadata."""

    model: nn.Module
    sample_rate: int
    version: str
    extra: dict


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, sample_rate: int, extra: dict | None = None) -> Path:
    """Save ``{model_name, config, state_dict, sample_rate, version, extra}`` atomically.

    ``extra`` must hold only plain Python types (str, int, float, bool, lists, dicts), e.g. feature settings and
    class names, so the file loads with ``weights_only=True``.
    """
    payload = {
        "model_name": model.model_name,
        "config": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "sample_rate": int(sample_rate),
        "version": __version__,
        "format": CHECKPOINT_VERSION,
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no code is unpickled)."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ProfileError(f"checkpoint {path} not found") from None
    except Exception as exc:  # torch raises several kinds for corrupt or unsafe files
        raise ProfileError(f"{path}: not a readable micmatch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("model_name") not in MODELS:
        name = payload.get("model_name") if isinstance(payload, dict) else type(payload).__name__
        raise ProfileError(f"{path}: model_name={name!r} is not one of {sorted(MODELS)}")
    if payload.get("format") != CHECKPOINT_VERSION:
        raise ProfileError(f"{path}: checkpoint format {payload.get('format')!r} is not {CHECKPOINT_VERSION}; "
                           "retrain or convert it with the micmatch version that wrote it")
    try:
        model = MODELS[payload["model_name"]](**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a config or weights that do not fit
        raise ProfileError(f"{path}: the checkpoint's config or weights do not fit model "
                           f"{payload['model_name']!r} ({type(exc).__name__}: {exc})") from None
    model.eval()
    return Checkpoint(model, int(payload["sample_rate"]), str(payload["version"]), dict(payload.get("extra", {})))


__all__ = ["BatchTransform", "Checkpoint", "FrontEnd", "TrainConfig", "deterministic", "load_checkpoint",
           "predict", "save_checkpoint", "select_device", "train_classifier"]


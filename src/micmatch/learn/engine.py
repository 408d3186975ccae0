"""The training engine shared by every learned model: compute device, determinism, progress bars, early stopping.

* :func:`select_device` turns the one vocabulary of ``--compute`` (``auto``, ``cpu``, ``cuda``) into a
  ``torch.device``;
* :func:`deterministic` switches on deterministic algorithms for a block (training under a seed then gives the
  same weights on the same machine and library versions);
* :func:`progress_bar` is the progress bar of every loop (off when stderr is not a terminal);
* :func:`fit_supervised` is the early-stopping loop of the supervised models (the learned normalizers);
* :func:`count_parameters` counts a model's trainable parameters.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator

import torch
from torch import nn

from micmatch.errors import ParameterError

#: The values of ``--compute`` (and of every ``device=`` / ``compute=`` option of the learned models).
COMPUTE_CHOICES = ("auto", "cpu", "cuda")
#: Smallest validation gain (the score's unit, dB for the normalizers) that counts as an improvement.
MIN_IMPROVEMENT = 1e-4


def select_device(compute: str = "auto") -> torch.device:
    """The torch device for ``compute``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    ParameterError
        ``compute`` is not one of :data:`COMPUTE_CHOICES`, or ``"cuda"`` is asked for and no CUDA device exists.
    """
    if compute not in COMPUTE_CHOICES:
        raise ParameterError(f"compute={compute!r} must be 'auto', 'cpu' or 'cuda'")
    if compute == "cuda" and not torch.cuda.is_available():
        raise ParameterError("compute='cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    if compute == "auto":
        compute = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(compute)


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


def progress_bar(total: int, *, enabled: bool = True, desc: str = "", unit: str = "epoch"):
    """A tqdm bar of ``total`` steps; ``enabled=False`` hides it, and it hides itself when stderr is not a
    terminal (logs, CI)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None if enabled else True)


def fit_supervised(model: nn.Module, batch_loss: Callable[[torch.Tensor], torch.Tensor],
                   validate: Callable[[], float], *, n: int, batch_size: int, epochs: int, patience: int,
                   learning_rate: float, generator: torch.Generator, device: torch.device, best: float,
                   progress: bool = True, desc: str = "train", min_batch: int = 1) -> tuple[float, int, list]:
    """Train ``model`` in place with Adam, stop early, and leave it holding the best weights.

    Each epoch visits the ``n`` examples in an order drawn from ``generator``, in batches of ``batch_size``
    row indices (on ``device``) passed to ``batch_loss``; batches smaller than ``min_batch`` are skipped. After
    every epoch ``validate()`` scores the model (lower is better); training stops after ``patience`` epochs
    without a gain of :data:`MIN_IMPROVEMENT`.

    Parameters
    ----------
    best : float
        The score to beat: the untrained model's (so training never leaves a worse model), or ``inf``.

    Returns
    -------
    best : float
        The best validation score.
    best_epoch : int
        The epoch that reached it (0: the starting weights).
    history : list of float
        The validation score of every epoch run, rounded to 4 decimals.
    """
    best_state, best_epoch, history = copy.deepcopy(model.state_dict()), 0, []
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    with progress_bar(epochs, enabled=progress, desc=desc) as bar:
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n, generator=generator).to(device)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                if idx.numel() < min_batch:
                    continue
                loss = batch_loss(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            score = validate()
            history.append(round(score, 4))
            if score < best - MIN_IMPROVEMENT:
                best, best_epoch, best_state = score, epoch, copy.deepcopy(model.state_dict())
            bar.set_postfix(val_lsd=f"{score:.2f} dB", best=f"{best:.2f}")
            bar.update(1)
            if epoch - best_epoch >= patience:
                break
    model.load_state_dict(best_state)
    return best, best_epoch, history


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["COMPUTE_CHOICES", "count_parameters", "deterministic", "fit_supervised", "progress_bar", "select_device"]

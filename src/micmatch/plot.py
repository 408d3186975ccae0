"""Plots: response curves, correction curves, before/after spectrograms, benchmark charts (matplotlib, Agg).

Each function draws into a new figure, saves it atomically to ``path`` (format from the extension: PNG, SVG,
PDF) and returns the path. Modules that add plots append them here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure atomically and close it."""
    from micmatch.audio import atomic_path

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _log_freq_axis(ax, freqs: np.ndarray) -> np.ndarray:
    """Set a log frequency axis and return a mask that drops 0 Hz."""
    ax.set_xscale("log")
    ax.set_xlabel("frequency (Hz)")
    ax.grid(True, which="both", alpha=0.3)
    pos = freqs > 0
    ax.set_xlim(max(freqs[pos].min(), 20.0), freqs.max())
    return pos

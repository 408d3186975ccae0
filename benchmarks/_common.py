"""Shared helpers of the benchmark scripts: timing, machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def single_thread_env() -> None:
    """Pin BLAS/OpenMP pools to one thread so 'one core' comparisons are fair (set before numpy loads them)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def median_time(func: Callable[[], object], repeats: int = 5, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``func`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def machine() -> dict:
    import scipy

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "cpus": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor() or "unknown"}


def write_results(name: str, data: dict, markdown: str) -> Path:
    """Write ``results/<name>.json`` and ``results/<name>.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {**data, "machine": machine(), "date": time.strftime("%Y-%m-%d")}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")
    md = RESULTS / f"{name}.md"
    md.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return md


def write_pcm16_clips(folder: Path, n_files: int, seconds: float, sample_rate: int, seed: int = 0) -> list[Path]:
    """Pink-ish noise clips with a speech-like envelope, 16-bit WAV (the common format of recordings)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = int(seconds * sample_rate)
    paths = []
    for i in range(n_files):
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / sample_rate)
        spec *= np.maximum(f, 50.0) ** -0.5
        x = np.fft.irfft(spec, n)
        x *= 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * np.arange(n) / sample_rate) ** 2
        x = x / np.abs(x).max() * 0.5
        p = folder / f"clip_{i:03d}.wav"
        sf.write(p, x.astype(np.float32), sample_rate, subtype="PCM_16")
        paths.append(p)
    return paths


def fsdd_data_dir() -> Path:
    """The real data folder holding ``fsdd/`` ($MICMATCH_DATA, or ``shared/data`` beside the repository); exits
    with one line when FSDD is not there."""
    import sys

    env = os.environ.get("MICMATCH_DATA")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (d / "fsdd" / "metadata.csv").is_file():
        sys.exit(f"FSDD not found under {d}; set MICMATCH_DATA")
    return d

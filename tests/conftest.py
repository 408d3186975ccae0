"""Shared fixtures: a seeded generator, signal generators, and the location of the real data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``$MICMATCH_DATA`` or ``../shared/data`` beside the repository; None when absent."""
    env = os.environ.get("MICMATCH_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "fsdd" / "metadata.csv").is_file() and (c / "micirp" / "metadata.csv").is_file():
            return c
    return None


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder; tests using it skip with a reason when it is not there."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("real data not found: set MICMATCH_DATA or place shared/data beside the repository")
    return d


def tone(freq_hz: float, sample_rate: int, duration_s: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float64)


def white(rng: np.random.Generator, sample_rate: int, duration_s: float = 1.0, level: float = 0.1) -> np.ndarray:
    return rng.standard_normal(int(round(duration_s * sample_rate))) * level


def pink(rng: np.random.Generator, sample_rate: int, duration_s: float = 1.0, level: float = 0.1) -> np.ndarray:
    n = int(round(duration_s * sample_rate))
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / np.std(x) * level


def log_sweep(sample_rate: int, duration_s: float = 1.0, f0: float = 20.0, f1: float | None = None,
              amplitude: float = 0.5) -> np.ndarray:
    f1 = f1 or sample_rate / 2 * 0.95
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    k = np.log(f1 / f0)
    return amplitude * np.sin(2 * np.pi * f0 * duration_s / k * (np.exp(t / duration_s * k) - 1))


def room_ir(rng: np.random.Generator, sr: int, *, delay_s: float, rt60_s: float = 0.6,
            drr_db: float = -6.0) -> np.ndarray:
    """A synthetic room impulse response: the direct sound at ``delay_s``, then an exponentially decaying noise
    tail (60 dB down after ``rt60_s``) from 2 ms on, ``drr_db`` direct-to-reverberant energy ratio (a phone a few
    metres from the talker)."""
    n = int((delay_s + 1.5 * rt60_s) * sr)
    h = np.zeros(n)
    d = int(round(delay_s * sr))
    h[d] = 1.0
    t = np.arange(n - d - int(0.002 * sr)) / sr
    tail = rng.standard_normal(t.size) * 10 ** (-3.0 * t / rt60_s)
    h[d + int(0.002 * sr) :] = tail * np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    return h

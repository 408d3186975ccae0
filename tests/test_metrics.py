"""metrics: log spectral distance and response error on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import pink, white

from micmatch import metrics
from micmatch.errors import AudioError, ConfigMismatchError

SR = 8000


def test_lsd_of_identical_signals_is_zero(rng):
    x = pink(rng, SR, 1.0)
    assert metrics.log_spectral_distance(x, x.copy(), SR, n_fft=256, hop_length=64) == 0.0


def test_lsd_of_x_and_2x_is_6_02_db(rng):
    x = white(rng, SR, 1.0)
    # Every bin's power differs by exactly 20 log10 2 dB: the per-frame RMS over bins is that constant.
    lsd = metrics.log_spectral_distance(x, 2 * x, SR, n_fft=256, hop_length=64)
    assert lsd == pytest.approx(20 * np.log10(2), abs=1e-9)
    assert metrics.log_spectral_distance(2 * x, x, SR, n_fft=256, hop_length=64) == pytest.approx(6.0206, abs=1e-4)


def test_lsd_band_and_active_frames(rng):
    x = white(rng, SR, 1.0)
    spec = np.fft.rfft(x)
    fx = np.fft.rfftfreq(x.size, 1 / SR)
    y = np.fft.irfft(spec * np.where(fx > 2000, 2.0, 1.0), x.size)  # +6 dB above 2 kHz only
    low = metrics.log_spectral_distance(x, y, SR, n_fft=256, hop_length=64, band_hz=(100, 1500))
    high = metrics.log_spectral_distance(x, y, SR, n_fft=256, hop_length=64, band_hz=(2500, 3900))
    assert low < 0.3 and high == pytest.approx(6.02, abs=0.3)  # Hann leakage smears the step over ~2 bins
    # Frames of silence in the reference are left out with active_db; with them the LSD differs.
    xs = np.concatenate([x, np.zeros(SR)])
    ys = np.concatenate([2 * x, 1e-3 * white(rng, SR, 1.0)])
    active = metrics.log_spectral_distance(xs, ys, SR, n_fft=256, hop_length=64, active_db=30)
    every = metrics.log_spectral_distance(xs, ys, SR, n_fft=256, hop_length=64)
    assert active == pytest.approx(6.02, abs=0.05)
    assert abs(every - 6.02) > 1.0


def test_lsd_from_power_db_floor_and_weights():
    r = np.zeros((3, 2))
    e = np.array([[0.0, 3.0], [0.0, 3.0], [0.0, 3.0]])
    assert metrics.lsd_from_power_db(r, e) == pytest.approx(1.5)
    assert metrics.lsd_from_power_db(r, e, frame_weights=np.array([0.0, 1.0])) == pytest.approx(3.0)
    # Digital silence in the estimate is floored at the reference's max minus floor_db, not -inf.
    silent = np.full((3, 2), -1000.0)
    assert metrics.lsd_from_power_db(r, silent, floor_db=120.0) == pytest.approx(120.0)
    assert metrics.lsd_from_power_db(r, e, bins=np.array([True, False, False])) == pytest.approx(1.5)


def test_lsd_errors(rng):
    x = white(rng, SR, 0.5)
    with pytest.raises(ConfigMismatchError, match="reference and estimate must be 1-D of equal length"):
        metrics.log_spectral_distance(x, x[:-1], SR, n_fft=256)
    with pytest.raises(AudioError, match="reference has 100 samples; at least 256 are needed"):
        metrics.log_spectral_distance(x[:100], x[:100], SR, n_fft=256)
    with pytest.raises(ValueError, match="band_hz needs sample_rate"):
        metrics.log_spectral_distance(x, x, n_fft=256, band_hz=(100, 1000))
    with pytest.raises(ConfigMismatchError, match="spectrogram shapes differ"):
        metrics.lsd_from_power_db(np.zeros((3, 2)), np.zeros((3, 3)))


def test_response_error_known_values():
    f = np.linspace(0, 4000, 101)
    truth = np.zeros_like(f)
    est = np.where(f < 2000, 1.0, -1.0)
    assert metrics.response_error_db(est, truth, f) == pytest.approx(1.0)
    assert metrics.response_error_db(est + 3.0, truth, f, band=(0, 1000)) == pytest.approx(4.0)
    # Shapes only: a constant offset vanishes.
    assert metrics.response_error_db(truth + 5.0, truth, f, remove_mean=True) == pytest.approx(0.0)
    ramp = np.linspace(-1, 1, f.size)
    assert metrics.response_error_db(ramp, truth, f) == pytest.approx(np.sqrt(np.mean(ramp[1:] ** 2)))
    with pytest.raises(ValueError, match="contains no frequency bin"):
        metrics.response_error_db(est, truth, f, band=(5000, 6000))
    with pytest.raises(ConfigMismatchError, match="shapes differ"):
        metrics.response_error_db(est[:-1], truth, f)

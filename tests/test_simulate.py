"""simulate: delay-compensated IR convolution, IR loading (resample once, cache), parametric device models."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from conftest import white

from micmatch import audio, simulate
from micmatch.errors import AudioError

SR = 8000


@pytest.mark.parametrize("delay", [0, 5, 300])
def test_delayed_impulse_ir_leaves_signal_unchanged(rng, delay):
    x = rng.standard_normal((2, 3000))
    h = np.zeros(delay + 50)
    h[delay] = 1.0
    y = simulate.apply_ir(x, h, SR)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_allclose(y, x, atol=1e-12)


def test_apply_ir_equals_delay_compensated_convolution(rng):
    x = rng.standard_normal(2000)
    h = rng.standard_normal(64) * np.exp(-np.arange(64) / 10)
    h[12] = 4.0
    y = simulate.apply_ir(x, h, SR)
    full = np.convolve(x, h)
    np.testing.assert_allclose(y, full[12 : 12 + x.size], atol=1e-10)
    np.testing.assert_allclose(simulate.apply_ir(x, h, SR, delay=0), full[: x.size], atol=1e-10)
    assert simulate.apply_ir(x.astype(np.float32), h, SR).dtype == np.float32


def test_load_ir_resamples_normalises_and_caches(tmp_path, rng):
    h = np.zeros(4410)
    h[100] = 0.8
    h[101:] = rng.standard_normal(4309) * 0.01 * np.exp(-np.arange(4309) / 300)
    path = audio.save(tmp_path / "mic.wav", h, 44100, subtype="FLOAT")
    ir = simulate.load_ir(path, SR)
    assert ir.sample_rate == SR and ir.name == "mic"
    assert abs(ir.ir.size - 4410 * SR / 44100) <= 1
    assert abs(ir.delay - round(100 * SR / 44100)) <= 1
    assert np.sum(ir.ir**2) == pytest.approx(1.0, rel=1e-9)
    assert simulate.load_ir(path, SR) is ir  # cached: resampled only once
    assert not ir.ir.flags.writeable  # the cached array cannot be changed by a caller
    raw = simulate.load_ir(path, normalize=False)
    assert raw.sample_rate == 44100 and raw.delay == 100
    np.testing.assert_allclose(raw.ir, h, atol=1e-7)
    with pytest.raises(AudioError, match=r"nothere\.wav: impulse response file not found"):
        simulate.load_ir(tmp_path / "nothere.wav", SR)
    zero = audio.save(tmp_path / "zero.wav", np.zeros(100), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"zero\.wav: impulse response is all zeros"):
        simulate.load_ir(zero, SR)
    with pytest.raises(AudioError, match="is at 8000 Hz but the audio at 16000 Hz"):
        simulate.apply_ir(np.zeros(100), ir, 16000)


def test_list_irs(tmp_path):
    audio.save(tmp_path / "b" / "2.wav", np.ones(10) * 0.1, SR)
    audio.save(tmp_path / "a.wav", np.ones(10) * 0.1, SR)
    assert [p.name for p in simulate.list_irs(tmp_path)] == ["a.wav", "2.wav"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioError, match="no audio files"):
        simulate.list_irs(tmp_path / "empty")
    with pytest.raises(AudioError, match="impulse-response folder not found"):
        simulate.list_irs(tmp_path / "missing")


@pytest.mark.parametrize("name", ["phone", "laptop", "headset", "studio"])
def test_device_model_record_follows_its_magnitude(name):
    model = simulate.BUILTIN_DEVICES[name]
    rng = np.random.default_rng(1)
    x = white(rng, SR, 30.0, level=0.1)
    quiet = simulate.DeviceModel(name, model.sections, gain_db=model.gain_db)  # no noise floor
    y = quiet.record(x, SR)
    f, pxx = scipy.signal.welch(x, SR, nperseg=512)
    _, pyy = scipy.signal.welch(y, SR, nperseg=512)
    measured = 10 * np.log10(pyy / pxx)
    band = (f >= 100) & (f <= 0.45 * SR)
    truth = model.magnitude_db(f, SR)
    # Same noise in and out: the Welch ratio cancels the noise's own spectrum; 512-point resolution smooths
    # steep slopes (fourth-order low-passes) by a few tenths of a dB at most.
    np.testing.assert_allclose(measured[band], truth[band], atol=0.5)


def test_device_model_noise_needs_a_generator_and_is_reproducible():
    model = simulate.BUILTIN_DEVICES["phone"]
    x = np.zeros(4000)
    with pytest.raises(ValueError, match="has a noise floor: pass rng="):
        model.record(x, SR)
    a = model.record(x, SR, rng=np.random.default_rng(3))
    b = model.record(x, SR, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    level = 10 * np.log10(np.mean(a**2))
    assert level == pytest.approx(model.noise_floor_db, abs=0.3)


def test_builtin_device_lookup():
    assert simulate.builtin_device("phone") is simulate.BUILTIN_DEVICES["phone"]
    with pytest.raises(KeyError, match="unknown built-in device 'tablet'; known: studio, phone"):
        simulate.builtin_device("tablet")
    with pytest.raises(ValueError, match="unknown section kind 'notch'"):
        simulate.DeviceModel("x", (simulate.Section("notch", 1000.0),)).sos(SR)


def test_noise_floor_and_band_limit(rng):
    x = np.zeros(SR * 4)
    y = simulate.add_noise_floor(x, -60.0, rng=rng)
    assert 10 * np.log10(np.mean(y**2)) == pytest.approx(-60.0, abs=0.1)
    assert np.all(x == 0)  # a new array
    w = white(rng, SR, 4.0)
    b = simulate.band_limit(w, SR, low_hz=500, high_hz=2000)
    f, p_in = scipy.signal.welch(w, SR, nperseg=256)
    _, p_out = scipy.signal.welch(b, SR, nperseg=256)
    gain = 10 * np.log10(p_out / p_in)
    assert np.all(np.abs(gain[(f > 800) & (f < 1400)]) < 0.5)
    assert np.all(gain[f > 3500] < -20) and np.all(gain[(f > 0) & (f < 150)] < -20)


def test_inputs_not_modified(rng):
    x = rng.standard_normal(3000)
    copy = x.copy()
    simulate.apply_ir(x, np.array([0.0, 1.0, 0.5]), SR)
    simulate.BUILTIN_DEVICES["laptop"].record(x, SR, rng=rng)
    simulate.band_limit(x, SR, low_hz=100)
    np.testing.assert_array_equal(x, copy)

"""Random recording chains (simulate.draw_device_chain / apply_device_chain): exact replay and each stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal
from conftest import tone, white

from micmatch import simulate
from micmatch.errors import AudioError, ParameterError

SR = 16000


def _only(params: dict, *keep: str) -> dict:
    """A copy of a drawn chain with every stage but ``keep`` switched off (level 0 dB)."""
    out = dict(params)
    for stage in ("ir", "high_pass", "low_pass", "noise", "dynamics", "clip_ceiling_db"):
        if stage not in keep:
            out[stage] = None
    if "level_db" not in keep:
        out["level_db"] = 0.0
    return out


def _rms_db(x: np.ndarray) -> float:
    return 10.0 * np.log10(np.mean(np.square(x)))


def test_draw_is_json_and_replays_bit_identically(rng):
    x = white(rng, SR, 0.5, level=0.05)
    before = x.copy()
    params = simulate.draw_device_chain(np.random.default_rng(7), SR)
    again = simulate.draw_device_chain(np.random.default_rng(7), SR)
    assert params == again
    replayed = json.loads(json.dumps(params))
    y1 = simulate.apply_device_chain(x, SR, params)
    y2 = simulate.apply_device_chain(x, SR, replayed)
    assert np.array_equal(y1, y2)
    np.testing.assert_array_equal(x, before)  # input untouched
    other = simulate.apply_device_chain(x, SR, simulate.draw_device_chain(np.random.default_rng(8), SR))
    assert np.max(np.abs(other - y1)) > 1e-3


def test_draws_stay_inside_their_ranges():
    g = np.random.default_rng(0)
    modes = set()
    for _ in range(50):
        p = simulate.draw_device_chain(g, 8000)
        assert 60 <= p["high_pass"]["freq_hz"] <= 400 and 1 <= p["high_pass"]["order"] <= 3
        assert p["low_pass"]["freq_hz"] <= 0.9 * 4000  # kept below Nyquist at 8 kHz
        assert -78 <= p["noise"]["level_db"] <= -54
        assert -3 <= p["clip_ceiling_db"] <= 0
        modes.add(p["dynamics"]["mode"])
    assert modes == {"agc", "compressor"}


@pytest.mark.parametrize(("freq", "side"), [(50.0, "high_pass"), (100.0, "high_pass"), (6000.0, "low_pass")])
def test_band_limit_attenuates_outside_the_band_as_butterworth(freq, side):
    spec = {"high_pass": {"freq_hz": 200.0, "order": 2}, "low_pass": {"freq_hz": 3000.0, "order": 6}}
    x = tone(freq, SR, 1.0, amplitude=0.5)
    y = simulate.butterworth_band_limit(x, SR, **spec)
    fc, order = spec[side]["freq_hz"], spec[side]["order"]
    # Reference: scipy's digital Butterworth magnitude at the tone (both sides), and the analog bound.
    sos = np.concatenate([scipy.signal.butter(2, 200.0, "highpass", fs=SR, output="sos"),
                          scipy.signal.butter(6, 3000.0, "lowpass", fs=SR, output="sos")])
    _, h = scipy.signal.sosfreqz(sos, worN=[freq], fs=SR)
    expected_db = 20 * np.log10(np.abs(h[0]))
    mid = slice(SR // 4, 3 * SR // 4)  # away from the ends
    measured_db = _rms_db(y[mid]) - _rms_db(x[mid])
    assert measured_db == pytest.approx(expected_db, abs=0.3)  # 0.3 dB: a tone's leakage at the clip ends
    # The stated amount: at least the analog Butterworth attenuation, 10 log10(1 + r^(2 order)) with r the
    # distance from the corner (bilinear warping only adds attenuation towards Nyquist).
    ratio = fc / freq if side == "high_pass" else freq / fc
    assert measured_db <= -10.0 * np.log10(1.0 + ratio ** (2 * order)) + 0.3


def test_band_limit_passes_the_band():
    x = tone(1000.0, SR, 1.0)
    y = simulate.butterworth_band_limit(x, SR, high_pass={"freq_hz": 200.0, "order": 2},
                                        low_pass={"freq_hz": 3000.0, "order": 6})
    assert _rms_db(y[4000:12000]) - _rms_db(x[4000:12000]) == pytest.approx(0.0, abs=0.3)


@pytest.mark.parametrize("slope", [0.0, -3.0, -6.0])
def test_noise_floor_level_and_slope(slope):
    params = simulate.draw_device_chain(np.random.default_rng(3), SR)
    params = _only(params, "noise")
    params["noise"] = {"level_db": -60.0, "slope_db_per_octave": slope, "seed": 11}
    silence = np.zeros(2 * SR)
    y = simulate.apply_device_chain(silence, SR, params)
    assert _rms_db(y) == pytest.approx(-60.0, abs=1.0)
    # Slope: power density one octave apart (500 Hz vs 1 kHz, and 1 vs 2 kHz) differs by the slope, +-1.5 dB
    # (Welch estimate over 2 s of noise, octave-wide averages).
    f, pxx = scipy.signal.welch(y, SR, nperseg=1024)

    def band(lo):
        m = (f >= lo) & (f < lo * 1.25)
        return 10 * np.log10(np.mean(pxx[m]))

    assert band(2000.0) - band(1000.0) == pytest.approx(slope, abs=1.5)
    assert band(1000.0) - band(500.0) == pytest.approx(slope, abs=1.5)


def test_soft_clip_bounds_peaks_and_passes_small_signals():
    x = np.linspace(-4.0, 4.0, 1001)
    y = simulate.soft_clip(x, ceiling_db=-3.0)
    c = 10 ** (-3 / 20)
    assert np.max(np.abs(y)) < c
    small = np.linspace(-0.05, 0.05, 101)
    # tanh(u) = u - u^3/3 + ...: relative error below (0.05 / c) ** 2 / 3 < 0.2 %.
    np.testing.assert_allclose(simulate.soft_clip(small, ceiling_db=-3.0), small, rtol=2e-3, atol=0)


def test_chain_output_peaks_stay_below_the_ceiling(rng):
    x = white(rng, SR, 0.5, level=0.5)  # loud enough to hit the clipper
    for seed in range(5):
        p = simulate.draw_device_chain(np.random.default_rng(seed), SR, level_db=(6.0, 12.0))
        y = simulate.apply_device_chain(x, SR, p)
        assert np.max(np.abs(y)) < 10 ** (p["clip_ceiling_db"] / 20)


def test_compressor_reduces_loud_parts_by_its_ratio():
    # A tone at -6 dBFS RMS (after a quiet second) against a -30 dB threshold with ratio 4 settles at
    # threshold + (level - threshold) / 4 = -24 dBFS; the quiet part (below threshold) is left alone.
    quiet, loud = tone(1000.0, SR, 1.0, amplitude=10 ** (-40 / 20) * np.sqrt(2)), \
        tone(1000.0, SR, 1.0, amplitude=10 ** (-6 / 20) * np.sqrt(2))
    x = np.concatenate([quiet, loud])
    dyn = {"mode": "compressor", "threshold_db": -30.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 100.0}
    gain = simulate.dynamics_gain_db(x, SR, dyn)
    assert np.max(np.abs(gain[: SR - 200])) < 0.01
    assert gain[-SR // 2] == pytest.approx(-(1 - 1 / 4) * (-6.0 + 30.0), abs=0.2)


def test_agc_brings_level_to_target_and_holds_in_pauses():
    x = np.concatenate([tone(500.0, SR, 2.0, amplitude=10 ** (-40 / 20) * np.sqrt(2)), np.zeros(SR)])
    dyn = {"mode": "agc", "target_db": -20.0, "max_gain_db": 24.0, "attack_ms": 40.0, "release_ms": 300.0,
           "gate_db": -60.0}
    gain = simulate.dynamics_gain_db(x, SR, dyn)
    assert gain[2 * SR - 100] == pytest.approx(20.0, abs=0.3)  # -40 dBFS brought to -20
    # In the silent pause the gate holds the gain: it does not climb to max_gain_db.
    assert gain[-1] == pytest.approx(gain[2 * SR - 100], abs=0.5)
    capped = simulate.dynamics_gain_db(x, SR, {**dyn, "max_gain_db": 10.0})
    assert np.max(capped) <= 10.0 + 1e-9


def test_ir_stage_and_recording_level(rng):
    x = white(rng, SR, 0.3, level=0.01)
    p = _only(simulate.draw_device_chain(np.random.default_rng(0), SR), "ir", "level_db")
    h = np.zeros(64)
    h[10] = 0.5  # a delayed pure gain: output is 0.5 * x * level
    y = simulate.apply_device_chain(x, SR, p, ir=h)
    np.testing.assert_allclose(y, x * 0.5 * 10 ** (p["level_db"] / 20), rtol=1e-12, atol=1e-15)


def test_bad_parameters_raise_one_line_errors(rng):
    x = white(rng, SR, 0.1)
    p = simulate.draw_device_chain(np.random.default_rng(0), SR)
    with pytest.raises(ParameterError, match="version"):
        simulate.apply_device_chain(x, SR, {**p, "version": 99})
    with pytest.raises(ParameterError, match="drawn for sample_rate=16000"):
        simulate.apply_device_chain(x, 8000, p)
    with pytest.raises(ParameterError, match="mode='limiter'"):
        simulate.apply_device_chain(x, SR, {**p, "dynamics": {"mode": "limiter"}})
    with pytest.raises(ParameterError, match="high_pass_hz"):
        simulate.draw_device_chain(rng, SR, high_pass_hz=(400.0, 60.0))
    with pytest.raises(ParameterError, match="agc_probability"):
        simulate.draw_device_chain(rng, SR, agc_probability=2.0)
    with pytest.raises(AudioError, match="sample_rate"):
        simulate.draw_device_chain(rng, 0)

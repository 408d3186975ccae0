"""Conditioning vectors of the device converter: response differences as one dB value per mel band."""

from __future__ import annotations

import numpy as np
import pytest

from micmatch import augment, simulate
from micmatch import conditioning as cond
from micmatch.errors import ConfigMismatchError, ParameterError, UnknownDeviceError
from micmatch.features import LogMelConfig, band_gain_db
from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig

CFG = LogMelConfig(sample_rate=8000, n_fft=256, hop_length=128, n_mels=40)


@pytest.mark.parametrize("k", [0.25, 1.0, 3.0])
def test_pure_gain_ir_gives_flat_20_log10_k(k):
    h = np.zeros(300)
    h[37] = k  # a delayed pure gain: delay must not matter
    np.testing.assert_allclose(cond.ir_band_response(h, config=CFG), 20 * np.log10(k), atol=1e-9)
    delta = np.zeros(10)
    delta[0] = 1.0
    np.testing.assert_allclose(cond.ir_difference(h, delta, config=CFG), 20 * np.log10(k), atol=1e-9)
    np.testing.assert_allclose(cond.ir_difference(h, config=CFG), 20 * np.log10(k), atol=1e-9)


def test_ir_band_response_matches_features_of_white_noise(rng):
    # The offset an IR adds to log-mel features of long white noise equals its band response (+-0.5 dB: the
    # noise spectrum's estimation error averaged over ~120 frames per band).
    from micmatch.features import log_mel

    h = rng.standard_normal(64) * np.exp(-np.arange(64) / 8.0)
    x = rng.standard_normal(8000 * 20)
    y = simulate.apply_ir(x, h, 8000)
    diff = log_mel(y, 8000, config=CFG).mean(axis=-1) - log_mel(x, 8000, config=CFG).mean(axis=-1)
    # Compare as power means rather than log means to match the band average's definition.
    lin = 10 * np.log10(np.mean(10 ** (log_mel(y, 8000, config=CFG) / 10), axis=-1)
                        / np.mean(10 ** (log_mel(x, 8000, config=CFG) / 10), axis=-1))
    expected = cond.ir_band_response(h, config=CFG)
    np.testing.assert_allclose(lin[1:], expected[1:], atol=0.5)  # band 0 holds DC, where the window leaks
    assert np.ptp(diff) > 3.0  # the IR is not flat: the check has something to find


def test_responses_json_difference(tmp_path):
    sc = SpectralConfig(sample_rate=8000, n_fft=512)
    f = sc.frequencies
    a = -6.0 * np.log2(np.maximum(f, 62.5) / 62.5) / 6.0  # -1 dB per octave
    rs = ResponseSet(sc, [DeviceResponse("ref", np.zeros(sc.n_bins)), DeviceResponse("tilt", a),
                          DeviceResponse("loud", np.full(sc.n_bins, 4.0))])
    path = rs.save(tmp_path / "r.json")
    np.testing.assert_allclose(cond.responses_difference(path, "loud", "ref", config=CFG), 4.0, atol=1e-9)
    d = cond.responses_difference(rs, "tilt", "ref", config=CFG)
    np.testing.assert_allclose(d, band_gain_db(a, 8000, 512, config=CFG), atol=1e-12)
    assert np.all(np.diff(d) <= 1e-9)  # a falling response falls across bands
    assert set(cond.all_band_responses(path, config=CFG)) == {"ref", "tilt", "loud"}
    with pytest.raises(UnknownDeviceError, match="'phone' is not in the responses"):
        cond.responses_difference(rs, "phone", "ref", config=CFG)
    with pytest.raises(ConfigMismatchError, match="sample_rate"):
        cond.responses_difference(rs, "loud", "ref", config=LogMelConfig(sample_rate=16000, n_fft=256, hop_length=128))


def test_synthetic_differences_equal_the_augmentation_offsets():
    params = augment.draw_synthetic_response(np.random.default_rng(0), 5, range_db=(0.0, 10.0))
    d = cond.synthetic_differences(params, config=CFG)
    assert d.shape == (5, 40)
    np.testing.assert_allclose(d, augment.synthetic_response_offsets(params, CFG))
    assert np.abs(d).max() <= 10.0 + 1e-9
    d2 = cond.draw_synthetic_differences(np.random.default_rng(0), 5, config=CFG, range_db=(0.0, 10.0))
    np.testing.assert_array_equal(d, d2)


def test_device_chain_band_response_includes_band_limits_and_ir():
    p = simulate.draw_device_chain(np.random.default_rng(1), 8000)
    p["high_pass"] = {"freq_hz": 300.0, "order": 2}
    p["low_pass"] = {"freq_hz": 3000.0, "order": 6}
    h = np.zeros(16)
    h[3] = 2.0
    r = cond.device_chain_band_response(p, config=CFG, ir=h)
    centres = CFG.band_frequencies()
    inside = (centres > 800) & (centres < 2000)
    np.testing.assert_allclose(r[inside], 20 * np.log10(2.0), atol=0.2)  # pass band: the IR's gain only
    assert r[centres < 100].max() < 20 * np.log10(2.0) - 15  # two octaves below a 2nd-order corner: >= 24 dB down
    assert r[-1] < 20 * np.log10(2.0) - 20
    assert r.min() >= -cond.MAX_BAND_DB


def test_bad_ir_raises():
    with pytest.raises(ParameterError, match="all zeros"):
        cond.ir_band_response(np.zeros(8), config=CFG)
    with pytest.raises(ParameterError, match="1-D"):
        cond.ir_band_response(np.ones((2, 8)), config=CFG)
    ir = simulate.ImpulseResponse("x", np.ones(4), 16000, 0)
    with pytest.raises(ConfigMismatchError, match="16000 Hz"):
        cond.ir_band_response(ir, config=CFG)

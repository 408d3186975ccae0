"""Augmentations: draw/apply replay, parameter ranges, analytic effects, error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import pink, tone, white
from hypothesis import given, settings
from hypothesis import strategies as st

from micmatch import augment as A
from micmatch.audio import save
from micmatch.errors import AudioError
from micmatch.features import LogMelConfig, log_mel

CFG = LogMelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)


def _replayed(params: dict) -> dict:
    """The params as a log file would return them."""
    return json.loads(json.dumps(params))


# ---------------------------------------------------------------------------------------------------------------
# Synthetic frequency-response differences (seed 002 section 3.3)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lo=st.integers(1, 6), extra=st.integers(0, 4),
       db_lo=st.floats(0.0, 5.0), db_extra=st.floats(0.0, 15.0))
def test_synthetic_response_follows_its_parameters(seed, lo, extra, db_lo, db_extra):
    hi, db_hi = lo + extra, db_lo + db_extra
    params = A.draw_synthetic_response(np.random.default_rng(seed), 6, n_bands=(lo, hi), range_db=(db_lo, db_hi))
    for pos, val in zip(params["positions"], params["values_db"]):
        assert lo + 1 <= len(pos) == len(val) <= hi + 1
        np.testing.assert_allclose(pos, np.linspace(0, 1, len(pos)))
        mags = np.abs(val)
        assert np.all((mags >= db_lo - 1e-12) & (mags <= db_hi + 1e-12))
    # The curve interpolates linearly between boundaries: at a boundary it is the boundary value, midway the mean.
    p, v = np.array(params["positions"][0]), np.array(params["values_db"][0])
    mid = (p[:-1] + p[1:]) / 2
    curve = A.synthetic_response_db({"positions": [p], "values_db": [v]}, np.concatenate([p, mid]))[0]
    np.testing.assert_allclose(curve[: p.size], v, atol=1e-12)
    np.testing.assert_allclose(curve[p.size :], (v[:-1] + v[1:]) / 2, atol=1e-12)


def test_synthetic_response_replays_bit_identically(rng):
    a = A.draw_synthetic_response(np.random.default_rng(7), 4)
    b = A.draw_synthetic_response(np.random.default_rng(7), 4)
    assert a == b
    audio = np.stack([pink(rng, 16000, 0.5) for _ in range(4)])
    out1 = A.apply_synthetic_response(audio, 16000, a)
    out2 = A.apply_synthetic_response(audio, 16000, _replayed(b))
    assert np.array_equal(out1, out2)
    feats = log_mel(audio, 16000, config=CFG)
    assert np.array_equal(A.apply_synthetic_response_features(feats, a, config=CFG),
                          A.apply_synthetic_response_features(feats, _replayed(a), config=CFG))
    # Both signs occur (random sign per boundary).
    values = np.concatenate(A.draw_synthetic_response(np.random.default_rng(1), 50)["values_db"])
    assert (values > 0).any() and (values < 0).any()


def test_synthetic_response_on_waveforms_matches_the_feature_offset(rng):
    params = A.draw_synthetic_response(np.random.default_rng(3), 2, n_bands=4, range_db=(2.0, 6.0))
    audio = np.stack([white(rng, 16000, 3.0) for _ in range(2)])
    filtered = A.apply_synthetic_response(audio, 16000, params)
    assert filtered.shape == audio.shape and filtered.dtype == audio.dtype
    measured = log_mel(filtered, 16000, config=CFG).mean(-1) - log_mel(audio, 16000, config=CFG).mean(-1)
    expected = A.synthetic_band_db(params, CFG)
    # Same curve in both domains: within 0.5 dB per band (white-noise level estimates, band averaging).
    assert np.abs(measured[:, 1:] - expected[:, 1:]).max() < 0.5
    feats = np.zeros((2, 3, 40, 5))
    np.testing.assert_allclose(A.apply_synthetic_response_features(feats, params, config=CFG)[:, 1, :, 0], expected)


def test_synthetic_response_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(A.AugmentError, match="n_bands=\\(5, 2\\)"):
        A.draw_synthetic_response(rng, 2, n_bands=(5, 2))
    with pytest.raises(A.AugmentError, match="range_db=\\(3.0, 1.0\\)"):
        A.draw_synthetic_response(rng, 2, range_db=(3.0, 1.0))
    with pytest.raises(A.AugmentError, match="batch_size=0"):
        A.draw_synthetic_response(rng, 0)
    with pytest.raises(A.AugmentError, match="positions"):
        A.synthetic_response_db({"values_db": [[0.0]]}, np.zeros(3))
    params = A.draw_synthetic_response(rng, 2)
    with pytest.raises(A.AugmentError, match="batch of 2 items"):
        A.apply_synthetic_response(np.zeros((3, 1000)), 16000, params)
    with pytest.raises(A.AugmentError, match="params lack 'values_db'"):
        A.apply_synthetic_response(np.zeros((2, 1000)), 16000, {})
    with pytest.raises(A.AugmentError, match="config.n_mels=40"):
        A.apply_synthetic_response_features(np.zeros((2, 20, 5)), params, config=CFG)


# ---------------------------------------------------------------------------------------------------------------
# mixup


def test_mixup_log_and_linear_domains_and_labels():
    rng = np.random.default_rng(0)
    params = A.draw_mixup(rng, 4, alpha=0.4)
    assert sorted(params["perm"]) == [0, 1, 2, 3] and all(0 <= v <= 1 for v in params["lam"])
    x = np.stack([np.full((3, 2), v) for v in (-10.0, -20.0, -30.0, -40.0)])
    lam, perm = np.array(params["lam"]), np.array(params["perm"])
    log_mix = A.apply_mixup(x, params)
    np.testing.assert_allclose(log_mix[:, 0, 0], lam * x[:, 0, 0] + (1 - lam) * x[perm, 0, 0])
    lin = A.apply_mixup(x, _replayed(params), domain="linear")
    p = 10 ** (x[:, 0, 0] / 10)
    np.testing.assert_allclose(lin[:, 0, 0], 10 * np.log10(lam * p + (1 - lam) * p[perm]))
    # In the linear domain the mix is dominated by the louder item: never below the log-domain mix.
    assert np.all(lin >= log_mix - 1e-9)
    y = A.mix_labels(np.array([0, 1, 2, 0]), params, n_classes=3)
    np.testing.assert_allclose(y.sum(axis=1), 1.0)
    np.testing.assert_allclose(y[0, 0], lam[0] + (1 - lam[0]) * (perm[0] in (0, 3)))
    np.testing.assert_allclose(A.mix_labels(np.eye(3)[[0, 1, 2, 0]], params), y)


def test_mixup_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(A.AugmentError, match="alpha=0"):
        A.draw_mixup(rng, 2, alpha=0)
    params = A.draw_mixup(rng, 2)
    with pytest.raises(A.AugmentError, match="domain='power'"):
        A.apply_mixup(np.zeros((2, 3)), params, domain="power")
    with pytest.raises(A.AugmentError, match="pass n_classes"):
        A.mix_labels(np.array([0, 1]), params)
    with pytest.raises(A.AugmentError, match="0..n_classes-1 = 0..1"):
        A.mix_labels(np.array([0, 2]), params, n_classes=2)


# ---------------------------------------------------------------------------------------------------------------
# FilterAugment and parametric EQ


def test_filter_augment_ranges_and_application():
    params = A.draw_filter_augment(np.random.default_rng(5), 8, n_bands=(3, 5), gain_db=6.0)
    for e, g in zip(params["edges"], params["gains_db"]):
        assert 3 <= len(g) <= 5 and len(e) == len(g) + 1 and e[0] == 0.0 and e[-1] == 1.0
        assert np.all(np.diff(e) >= 0) and np.all(np.abs(g) <= 6.0)
    x = np.zeros((8, 40, 7))
    out = A.apply_filter_augment(x, _replayed(params))
    off = A.filter_augment_band_db(params, 40)
    np.testing.assert_allclose(out, off[:, :, None] * np.ones(7))
    # Step mode: every band takes one of the drawn gains, the lowest band the first and the highest the last.
    for o, g in zip(off, params["gains_db"]):
        assert set(np.round(o, 12)) <= set(np.round(g, 12)) and o[0] == g[0] and o[-1] == g[-1]
    lin = A.draw_filter_augment(np.random.default_rng(5), 2, mode="linear")
    off = A.filter_augment_band_db(lin, 40)
    np.testing.assert_allclose(off[:, 0], [g[0] for g in lin["gains_db"]])
    np.testing.assert_allclose(off[:, -1], [g[-1] for g in lin["gains_db"]])
    with pytest.raises(A.AugmentError, match="mode='smooth'"):
        A.draw_filter_augment(np.random.default_rng(5), 2, mode="smooth")
    with pytest.raises(A.AugmentError, match="gain_db=-1"):
        A.draw_filter_augment(np.random.default_rng(5), 2, gain_db=-1)


def test_parametric_eq_changes_a_tone_by_the_drawn_gain(rng):
    params = {"sample_rate": 16000, "sections": [[{"freq_hz": 1000.0, "gain_db": 6.0, "q": 1.0}]]}
    x = tone(1000.0, 16000, 1.0)[None, :]
    y = A.apply_parametric_eq(x, 16000, params)
    gain = 20 * np.log10(np.std(y[0, 4000:-4000]) / np.std(x[0, 4000:-4000]))
    assert abs(gain - 6.0) < 0.05  # a peaking EQ has exactly its gain at its centre frequency
    far = A.apply_parametric_eq(tone(100.0, 16000, 1.0)[None, :], 16000, params)
    assert abs(20 * np.log10(np.std(far[0, 4000:-4000]) / np.std(tone(100.0, 16000)[4000:-4000]))) < 0.3
    drawn = A.draw_parametric_eq(np.random.default_rng(2), 5, 16000, n_filters=(1, 3), gain_db=4.0)
    for sec in drawn["sections"]:
        assert 1 <= len(sec) <= 3
        for s in sec:
            assert 100.0 <= s["freq_hz"] <= 7200.0 and abs(s["gain_db"]) <= 4.0 and 0.5 <= s["q"] <= 3.0
    audio = np.stack([white(rng, 16000, 0.3) for _ in range(5)])
    assert np.array_equal(A.apply_parametric_eq(audio, 16000, drawn),
                          A.apply_parametric_eq(audio, 16000, _replayed(drawn)))
    with pytest.raises(A.AugmentError, match="drawn for sample_rate=16000"):
        A.apply_parametric_eq(audio, 8000, drawn)
    with pytest.raises(A.AugmentError, match="lies above 0.45 x sample_rate=200"):
        A.draw_parametric_eq(np.random.default_rng(2), 1, 200)


# ---------------------------------------------------------------------------------------------------------------
# Device impulse responses


def _ir_folder(tmp_path):
    folder = tmp_path / "irs"
    # A delayed two-tap lowpass at 44.1 kHz and a delayed impulse at 48 kHz (an integer delay at 16 kHz).
    h = np.zeros(256)
    h[40], h[41] = 0.6, 0.4
    save(folder / "lowpass.wav", h, 44100, subtype="FLOAT")
    d = np.zeros(128)
    d[18] = 0.9
    save(folder / "delta.wav", d, 48000, subtype="FLOAT")
    return folder


def test_device_ir_keeps_level_length_and_alignment(tmp_path, rng):
    aug = A.DeviceIRAugment(_ir_folder(tmp_path), p=1.0)
    assert [p.endswith(n) for p, n in zip(aug.irs, ["delta.wav", "lowpass.wav"])] == [True, True]
    audio = np.stack([pink(rng, 16000, 0.5) for _ in range(4)]).astype(np.float32)
    params = {"ir": [aug.irs[0], aug.irs[1], None, aug.irs[0]]}
    out = aug.apply(audio, 16000, params)
    assert out.shape == audio.shape and out.dtype == np.float32
    np.testing.assert_allclose(np.sqrt(np.mean(out**2, axis=1)), np.sqrt(np.mean(audio**2, axis=1)), rtol=1e-4)
    # The delayed impulse (resampled to 16 kHz) becomes the identity once its delay is compensated (up to the
    # resampler's band limit near Nyquist, where pink noise has little energy).
    assert np.corrcoef(out[0], audio[0])[0, 1] > 0.995
    assert np.array_equal(out[2], audio[2])
    # The lowpass removes high-frequency energy relative to the original.
    hi = lambda x: np.abs(np.fft.rfft(x)[len(x) // 4 :]).sum()  # noqa: E731
    assert hi(out[1]) < hi(audio[1])
    replay, drawn = aug(audio, 16000, rng=np.random.default_rng(4))
    assert np.array_equal(replay, aug.apply(audio, 16000, _replayed(drawn)))


def test_device_ir_probability_and_errors(tmp_path):
    folder = _ir_folder(tmp_path)
    files = [str(f) for f in sorted(folder.iterdir())]
    drawn = A.draw_device_ir(np.random.default_rng(0), 2000, files, p=0.4)
    rate = np.mean([f is not None for f in drawn["ir"]])
    assert abs(rate - 0.4) < 0.04  # binomial sd is about 0.011
    assert set(drawn["ir"]) == {None, *files}
    assert all(v is None for v in A.draw_device_ir(np.random.default_rng(0), 20, files, p=0.0)["ir"])
    with pytest.raises(A.AugmentError, match="p=1.5"):
        A.draw_device_ir(np.random.default_rng(0), 2, files, p=1.5)
    with pytest.raises(A.AugmentError, match="irs is empty"):
        A.draw_device_ir(np.random.default_rng(0), 2, [])
    with pytest.raises(AudioError, match="impulse response file not found"):
        A.DeviceIRAugment([str(tmp_path / "nope.wav")])
    with pytest.raises(AudioError, match="folder not found"):
        A.DeviceIRAugment(tmp_path / "nothing")


@pytest.mark.data
def test_device_ir_with_micirp(data_dir, rng):
    aug = A.DeviceIRAugment(data_dir / "micirp" / "ir", p=1.0)
    assert len(aug.irs) == 44
    audio = np.stack([pink(rng, 16000, 1.0) for _ in range(3)])
    out, params = aug(audio, 16000, rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.std(out, axis=1), np.std(audio, axis=1), rtol=1e-3)
    # Delay compensated: the output stays correlated with the input at lag 0 far more than at a large lag.
    lag0 = np.abs(np.sum(out[0] * audio[0]))
    assert lag0 > 3 * np.abs(np.sum(out[0, 400:] * audio[0, :-400]))


# ---------------------------------------------------------------------------------------------------------------
# Freq-MixStyle


def test_freq_mixstyle_mixes_frequency_statistics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 2, 10, 30)) * rng.uniform(1, 5, size=(4, 1, 10, 1)) + rng.normal(size=(4, 1, 10, 1)) * 10
    params = A.draw_freq_mixstyle(rng, 4, p=1.0, alpha=0.3)
    assert params["apply"] is True
    out = A.apply_freq_mixstyle(x, _replayed(params))
    lam, perm = np.array(params["lam"])[:, None], np.array(params["perm"])
    mu = x.mean(axis=(1, 3))
    sig = np.sqrt(x.var(axis=(1, 3)) + A.MIXSTYLE_EPS)
    np.testing.assert_allclose(out.mean(axis=(1, 3)), lam * mu + (1 - lam) * mu[perm], atol=1e-9)
    np.testing.assert_allclose(np.sqrt(out.var(axis=(1, 3))), (lam * sig + (1 - lam) * sig[perm])
                               * np.sqrt(x.var(axis=(1, 3)) / sig**2), rtol=1e-6)
    off = dict(params, apply=False)
    assert np.array_equal(A.apply_freq_mixstyle(x, off), x)
    never = [A.draw_freq_mixstyle(np.random.default_rng(s), 2, p=0.0)["apply"] for s in range(20)]
    assert not any(never)
    with pytest.raises(A.AugmentError, match=r"must be \(batch, ..., n_mels, n_frames\)"):
        A.apply_freq_mixstyle(np.zeros((4, 10)), params)
    with pytest.raises(A.AugmentError, match="alpha=-1"):
        A.draw_freq_mixstyle(rng, 2, alpha=-1)

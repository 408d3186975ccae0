"""Log-mel features and normalizations: librosa references, device-offset properties, fitted normalizers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import pink, white
from hypothesis import given, settings
from hypothesis import strategies as st

from micmatch import features as F
from micmatch.errors import ConfigMismatchError, ProfileError, UnknownDeviceError
from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig

librosa = pytest.importorskip("librosa")

CFG = F.LogMelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)


# ---------------------------------------------------------------------------------------------------------------
# librosa references (float64). Tolerances: the filterbank and PCEN follow the same formulas in the same order,
# so they agree to rounding (1e-12); log-mel goes through different FFT libraries (pocketfft in both but other
# call paths), so 1e-9 dB absolute.


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax,htk,norm", [
    (22050, 1024, 80, 0.0, None, False, "slaney"),
    (44100, 2048, 128, 20.0, 16000.0, True, None),
    (8000, 256, 40, 0.0, None, False, "slaney"),
    (48000, 4096, 128, 50.0, 20000.0, False, "slaney"),
])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    ours = F.mel_filterbank(sr, n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
                              dtype=np.float64)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * ref.max())


@pytest.mark.parametrize("htk", [False, True])
def test_mel_scale_matches_librosa_and_inverts(htk):
    f = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 22050.0])
    np.testing.assert_allclose(F.hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk), rtol=1e-12)
    np.testing.assert_allclose(F.mel_to_hz(F.hz_to_mel(f, htk=htk), htk=htk), f, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("power", [2.0, 1.0])
def test_log_mel_matches_librosa(rng, power):
    y = pink(rng, 16000, 0.7)
    ours = F.log_mel(y, 16000, n_fft=512, hop_length=128, n_mels=40, power=power)
    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=128, n_mels=40, power=power,
                                         pad_mode="constant", dtype=np.float64)
    ref = (librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None) if power == 2.0
           else librosa.amplitude_to_db(mel, ref=1.0, amin=1e-10, top_db=None))
    assert ours.shape == ref.shape == (40, 1 + y.size // 128)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


def test_log_mel_batches_and_keeps_float32(rng):
    batch = np.stack([white(rng, 16000, 0.5) for _ in range(3)]).astype(np.float32)
    out = F.log_mel(batch, 16000, config=CFG)
    assert out.dtype == np.float32 and out.shape == (3, 40, 63)
    np.testing.assert_allclose(out[1], F.log_mel(batch[1], 16000, config=CFG), atol=1e-4)


@pytest.mark.parametrize("preset", sorted(F.PCEN_PRESETS))
def test_pcen_matches_librosa(rng, preset):
    mel = F.mel_spectrogram(pink(rng, 16000, 1.0), 16000, config=CFG) * 2.0**31
    ours = F.pcen(mel, 16000, hop_length=128, **F.PCEN_PRESETS[preset])
    ref = librosa.pcen(mel, sr=16000, hop_length=128, **F.PCEN_PRESETS[preset])
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


def test_pcen_refuses_db_input():
    with pytest.raises(F.FeatureError, match="negative values"):
        F.pcen(-np.ones((4, 10)), 16000)
    with pytest.raises(F.FeatureError, match="time_constant=0.0 must be positive"):
        F.pcen(np.ones((4, 10)), 16000, time_constant=0.0)


def test_config_errors():
    with pytest.raises(F.FeatureError, match="fmin=0.0, fmax=9000"):
        F.LogMelConfig(sample_rate=16000, fmax=9000.0)
    with pytest.raises(F.FeatureError, match="power=3"):
        F.LogMelConfig(power=3)
    with pytest.raises(F.FeatureError, match="hop_length=0"):
        F.LogMelConfig(hop_length=0)
    with pytest.raises(F.FeatureError, match="amin=0"):
        F.LogMelConfig(amin=0)
    with pytest.raises(F.FeatureError, match="n_mels=0"):
        F.mel_filterbank(16000, 512, n_mels=0)
    with pytest.raises(F.FeatureError, match="norm='l2'"):
        F.mel_filterbank(16000, 512, norm="l2")
    with pytest.raises(ConfigMismatchError, match="config.sample_rate=16000"):
        F.log_mel(np.zeros(1000), 8000, config=CFG)
    with pytest.raises(F.FeatureError, match="not both"):
        F.log_mel(np.zeros(1000), 16000, config=CFG, n_mels=20)
    assert F.LogMelConfig.from_json(json.loads(json.dumps(CFG.to_json()))) == CFG


# ---------------------------------------------------------------------------------------------------------------
# Device offsets: the core property of the normalizations


def _room_set(rng, n_rec=4, n_mels=40, n_frames=50):
    """Recordings whose own long-term spectra differ (a 'room' per recording)."""
    base = rng.normal(-40.0, 6.0, size=(n_rec, n_mels, n_frames))
    rooms = rng.normal(0.0, 5.0, size=(n_rec, n_mels, 1))
    return base + rooms


offsets = st.lists(st.floats(-30.0, 30.0, allow_nan=False), min_size=40, max_size=40).map(np.array)


@settings(max_examples=25, deadline=None)
@given(offset=offsets, seed=st.integers(0, 2**32 - 1))
def test_device_offset_is_removed_by_per_device_standardization_and_mean_subtraction(offset, seed):
    rng = np.random.default_rng(seed)
    clean = _room_set(rng)
    device = clean + offset[:, None]
    # Spectrogram-wise mean subtraction: exactly the same output with and without the device.
    np.testing.assert_allclose(F.spectrogram_mean_subtraction(device), F.spectrogram_mean_subtraction(clean),
                               atol=1e-9)
    # Per-device standardization fitted on each device's own set: the device cancels.
    a = F.PerDeviceStandardizer().fit(clean, ["a"] * 4, config=CFG)
    b = F.PerDeviceStandardizer().fit(device, ["b"] * 4, config=CFG)
    np.testing.assert_allclose(b.transform(device, ["b"] * 4, config=CFG),
                               a.transform(clean, ["a"] * 4, config=CFG), atol=1e-9)
    # Cepstral mean subtraction with every coefficient is the same operation in a rotated basis.
    np.testing.assert_allclose(F.cepstral_mean_subtraction(device), F.cepstral_mean_subtraction(clean), atol=1e-9)


def test_per_device_standardization_keeps_rooms_mean_subtraction_does_not(rng):
    clean = _room_set(rng)
    rooms = clean.mean(axis=-1)  # each recording's long-term spectrum (its room)
    std = F.PerDeviceStandardizer(scale=False).fit(clean, ["d"] * 4, config=CFG)
    kept = std.transform(clean, ["d"] * 4, config=CFG).mean(axis=-1)
    # Differences between recordings of the same device survive per-device standardization unchanged...
    np.testing.assert_allclose(kept[1:] - kept[0], rooms[1:] - rooms[0], atol=1e-9)
    assert np.abs(rooms[1:] - rooms[0]).max() > 5.0
    # ...and are erased by spectrogram-wise mean subtraction.
    gone = F.spectrogram_mean_subtraction(clean).mean(axis=-1)
    np.testing.assert_allclose(gone, 0.0, atol=1e-9)


def test_cepstral_mean_subtraction_inverts_to_mean_subtraction_and_truncates(rng):
    x = _room_set(rng)[0]
    ceps = F.cepstral_mean_subtraction(x)
    back = F.dct_matrix(40).T @ ceps
    np.testing.assert_allclose(back, F.spectrogram_mean_subtraction(x), atol=1e-9)
    short = F.cepstral_mean_subtraction(x, n_ceps=13)
    np.testing.assert_allclose(short, ceps[:13], atol=1e-12)
    with pytest.raises(F.FeatureError, match="n_ceps=41"):
        F.cepstral_mean_subtraction(x, n_ceps=41)


def test_median_filter_residual_matches_scipy_and_removes_slow_tilt(rng):
    import scipy.signal

    x = _room_set(rng)[:2]
    out = F.median_filter_residual(x)
    np.testing.assert_allclose(out[1], x[1] - scipy.signal.medfilt2d(x[1], (7, 21)), atol=1e-12)
    # A constant far inside the window (away from the zero-padded edges) is removed exactly.
    flat = np.full((1, 40, 60), -30.0)
    assert np.abs(F.median_filter_residual(flat)[0, 3:-3, 10:-10]).max() == 0.0
    with pytest.raises(F.FeatureError, match=r"size\[0\] \(mel bands\)=6 must be a positive odd integer"):
        F.median_filter_residual(x, size=(6, 21))


def test_rasta_matches_direct_recursion_and_removes_constants(rng):
    x = rng.normal(size=(3, 30))
    out = F.rasta(x, pole=0.98)
    num = F.RASTA_NUMERATOR
    expect = np.zeros_like(x)
    for t in range(4, 30):
        expect[:, t] = sum(num[k] * x[:, t - k] for k in range(5)) + 0.98 * expect[:, t - 1]
    np.testing.assert_allclose(out, expect, atol=1e-12)
    # The numerator sums to zero: a per-band constant (device) leaves the output unchanged.
    np.testing.assert_allclose(F.rasta(x + 17.0), out, atol=1e-9)
    with pytest.raises(F.FeatureError, match="pole=1.0"):
        F.rasta(x, pole=1.0)
    with pytest.raises(F.FeatureError, match="n_frames=4"):
        F.rasta(x[:, :4])


def test_feature_validation():
    with pytest.raises(F.FeatureError, match=r"shape=\(5,\)"):
        F.spectrogram_mean_subtraction(np.zeros(5))
    with pytest.raises(F.FeatureError, match="NaN or infinite"):
        F.spectrogram_mean_subtraction(np.full((2, 3), np.nan))
    x = np.zeros((2, 3))
    F.spectrogram_mean_subtraction(x)
    assert x.flags.writeable and not x.any()  # untouched


# ---------------------------------------------------------------------------------------------------------------
# Spectrum correction as a per-band offset


def _responses():
    config = SpectralConfig(sample_rate=16000, n_fft=512, hop_length=128)
    f = config.frequencies
    ref = DeviceResponse("ref", np.zeros(config.n_bins), method="builtin")
    phone = DeviceResponse("phone", np.where(f < 1000.0, -12.0, 3.0), method="builtin")
    return ResponseSet(config, [ref, phone])


def test_correction_offset_averages_gain_through_bands():
    offset = F.correction_band_db(responses=_responses(), device="phone", reference="ref", config=CFG)
    centres = CFG.band_frequencies()
    # Correction = reference - device: +12 dB well below 1 kHz, -3 dB well above.
    np.testing.assert_allclose(offset[centres < 700.0], 12.0, atol=1e-9)
    np.testing.assert_allclose(offset[centres > 1500.0], -3.0, atol=1e-9)
    edge = offset[(centres > 900.0) & (centres < 1100.0)]
    assert np.all((edge > -3.0) & (edge < 12.0))
    # A Correction object gives the same offset as the responses it came from.
    from micmatch.correct import correction_curve

    curve = correction_curve(_responses(), "phone", "ref")
    np.testing.assert_allclose(F.correction_band_db(curve, config=CFG), offset, atol=1e-12)
    # A flat gain stays that gain, and the offset is what a device's filter would add to log-mel features.
    flat = F.curve_band_db(np.full(257, 4.5), 16000, 512, config=CFG)
    np.testing.assert_allclose(flat, 4.5, atol=1e-12)


def test_correction_offset_removes_a_simulated_device(rng):
    from micmatch.simulate import DeviceModel, Section

    model = DeviceModel("tilt", (Section("lowshelf", 500.0, -8.0), Section("highshelf", 4000.0, 5.0)))
    config = SpectralConfig(sample_rate=16000, n_fft=512, hop_length=128)
    true_db = model.magnitude_db(config.frequencies, 16000)
    rs = ResponseSet(config, [DeviceResponse("ref", np.zeros(257), method="builtin"),
                              DeviceResponse("tilt", true_db, method="builtin")])
    clean = white(rng, 16000, 2.0)
    recorded = model.record(clean, 16000)
    offset = F.correction_band_db(responses=rs, device="tilt", reference="ref", config=CFG)
    corrected = F.apply_band_db(F.log_mel(recorded, 16000, config=CFG), offset)
    # Long-term band levels agree to a fraction of a dB (white noise, smooth shelves).
    err = corrected.mean(axis=-1) - F.log_mel(clean, 16000, config=CFG).mean(axis=-1)
    assert np.abs(err[1:]).max() < 0.5


def test_correction_offset_errors():
    rs = _responses()
    with pytest.raises(UnknownDeviceError, match="'tablet'"):
        F.correction_band_db(responses=rs, device="tablet", reference="ref", config=CFG)
    with pytest.raises(F.FeatureError, match="pass a correction"):
        F.correction_band_db(config=CFG)
    with pytest.raises(ConfigMismatchError, match="sample_rate=16000 but the features at 8000"):
        F.curve_band_db(np.zeros(257), 16000, 512,
                       config=F.LogMelConfig(sample_rate=8000, n_fft=256, hop_length=64, n_mels=20))
    with pytest.raises(F.FeatureError, match=r"gain_db.shape=\(10,\)"):
        F.curve_band_db(np.zeros(10), 16000, 512, config=CFG)
    with pytest.raises(F.FeatureError, match="offset has 3 bands"):
        F.apply_band_db(np.zeros((40, 5)), np.zeros(3))


# ---------------------------------------------------------------------------------------------------------------
# Fitted normalizers


def test_global_normalizer_gmsvn_and_gms(rng, tmp_path):
    train = _room_set(rng)
    g = F.GlobalNormalizer("gmsvn").fit(train, config=CFG)
    z = g.transform(train, config=CFG)
    flat = np.moveaxis(z, 1, 0).reshape(40, -1)
    np.testing.assert_allclose(flat.mean(axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(flat.std(axis=1), 1.0, atol=1e-9)
    gms = F.GlobalNormalizer("gms").fit(list(train), config=CFG)
    np.testing.assert_allclose(np.moveaxis(gms.transform(train, config=CFG), 1, 0).reshape(40, -1).std(axis=1),
                               np.moveaxis(train, 1, 0).reshape(40, -1).std(axis=1), atol=1e-9)
    # Fitting in two parts equals fitting at once (the statistics are sums).
    parts = F.GlobalNormalizer("gmsvn").fit(train[:2], config=CFG).fit(train[2:], config=CFG)
    np.testing.assert_allclose(parts.mean, g.mean, atol=1e-9)
    np.testing.assert_allclose(parts.std, g.std, atol=1e-9)
    # Round trip through JSON.
    path = g.save(tmp_path / "norm.json")
    back = F.GlobalNormalizer.load(path)
    np.testing.assert_allclose(back.transform(train, config=CFG), z, atol=1e-12)
    assert isinstance(F.load_feature_stats(path), F.GlobalNormalizer)


def test_normalizers_refuse_other_configurations(rng, tmp_path):
    train = _room_set(rng)
    g = F.GlobalNormalizer().fit(train, config=CFG)
    other_rate = F.LogMelConfig(sample_rate=22050, n_fft=512, hop_length=128, n_mels=40)
    with pytest.raises(ConfigMismatchError, match="sample_rate=22050 but the GlobalNormalizer was fitted on "
                                                  "sample_rate=16000"):
        g.transform(train, config=other_rate)
    other_hop = F.LogMelConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40)
    p = F.PerDeviceStandardizer().fit(train, list("aabb"), config=CFG)
    path = p.save(tmp_path / "dev.json")
    with pytest.raises(ConfigMismatchError, match="hop_length=256"):
        F.PerDeviceStandardizer.load(path).transform(train, list("aabb"), config=other_hop)
    with pytest.raises(ConfigMismatchError, match="n_mels=20"):
        g.transform(train[:, :20], config=CFG)
    with pytest.raises(ConfigMismatchError, match="n_mels=20"):
        p.transform(train[:, :20], list("aabb"), config=CFG)
    with pytest.raises(ConfigMismatchError, match="sample_rate"):
        g.fit(train, config=other_rate)


def test_per_device_standardizer_errors_and_round_trip(rng, tmp_path):
    train = _room_set(rng)
    p = F.PerDeviceStandardizer().fit(list(train), list("aabb"), config=CFG)
    assert p.devices == ["a", "b"]
    out = p.transform(list(train), list("aabb"), config=CFG)
    assert isinstance(out, list) and len(out) == 4
    back = F.load_feature_stats(p.save(tmp_path / "p.json"))
    np.testing.assert_allclose(back.transform(train, list("aabb"), config=CFG), np.stack(out), atol=1e-12)
    with pytest.raises(UnknownDeviceError, match="device 'c' was not in the fitting set"):
        p.transform(train, list("aabc"), config=CFG)
    with pytest.raises(F.FeatureError, match="4 spectrograms but 3 device labels"):
        p.fit(train, list("aab"), config=CFG)
    with pytest.raises(F.FeatureError, match="4 spectrograms but 2 device labels"):
        p.transform(train, list("ab"), config=CFG)
    with pytest.raises(F.FeatureError, match="not fitted"):
        F.PerDeviceStandardizer().transform(train, list("aabb"), config=CFG)
    with pytest.raises(F.FeatureError, match="nothing to save"):
        F.GlobalNormalizer().save(tmp_path / "x.json")
    with pytest.raises(F.FeatureError, match="not fitted"):
        _ = F.GlobalNormalizer().mean
    with pytest.raises(F.FeatureError, match="mode='l2'"):
        F.GlobalNormalizer("l2")
    with pytest.raises(F.FeatureError, match="no features"):
        F.GlobalNormalizer().fit([], config=CFG)
    with pytest.raises(F.FeatureError, match=r"must be \(n_recordings"):
        F.GlobalNormalizer().fit(train[0], config=CFG)
    with pytest.raises(F.FeatureError, match="must include sample_rate"):
        F.GlobalNormalizer().fit(train, config={"n_mels": 40})
    with pytest.raises(ProfileError, match="holds a 'per_device' normalizer"):
        F.GlobalNormalizer.load(tmp_path / "p.json")


def test_normalizer_files_that_are_not_ours(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        F.load_feature_stats(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ProfileError, match="not a micmatch normalizer"):
        F.load_feature_stats(bad)
    bad.write_text(json.dumps({"format": F.FORMAT, "format_version": 99}))
    with pytest.raises(ProfileError, match="format_version=99"):
        F.load_feature_stats(bad)
    bad.write_text(json.dumps({"format": F.FORMAT, "format_version": 1, "kind": "magic"}))
    with pytest.raises(ProfileError, match="unknown normalizer kind 'magic'"):
        F.load_feature_stats(bad)
    bad.write_text(json.dumps({"format": F.FORMAT, "format_version": 1, "kind": "global"}))
    with pytest.raises(ProfileError, match="invalid global normalizer"):
        F.load_feature_stats(bad)
    bad.write_text(json.dumps({"format": F.FORMAT, "format_version": 1, "kind": "per_device"}))
    with pytest.raises(ProfileError, match="invalid per-device normalizer"):
        F.load_feature_stats(bad)
    with pytest.raises(ProfileError, match="cannot read normalizer"):
        F.load_feature_stats(tmp_path / "missing.json")


def test_refitting_with_other_band_counts_is_refused(rng):
    g = F.GlobalNormalizer().fit(_room_set(rng), config=CFG)
    with pytest.raises(ConfigMismatchError, match="n_mels=40 and 20"):
        g.fit(_room_set(rng, n_mels=20), config=CFG)


def test_numpy_side_imports_without_torch():
    import subprocess
    import sys

    code = ("import sys; import micmatch.features, micmatch.augment; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_old_names_of_the_band_db_functions_and_the_statistics_reader_still_work():
    # Kept for one release: band_gain_db, correction_offset_db, apply_band_offset, load_normalizer.
    assert F.band_gain_db is F.curve_band_db and F.correction_offset_db is F.correction_band_db
    assert F.apply_band_offset is F.apply_band_db and F.load_normalizer is F.load_feature_stats

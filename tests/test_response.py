"""response: the JSON format round-trips exactly, statistics merge exactly whatever the split, and every bad
file or combination raises the error that says what is wrong."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from micmatch.errors import ConfigMismatchError, ParameterError, ProfileError, UnknownDeviceError
from micmatch.estimate import estimate_responses
from micmatch.audio import file_fingerprint
from micmatch.response import DeviceResponse, LogSpectrumStats, ResponseSet, SpectralConfig

SR = 8000
N_FFT = 256
HOP = 64


def _clips(seed: int, n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # Different lengths and levels so that files weigh differently in the frame-weighted mean.
    return [rng.standard_normal(int(rng.integers(800, 3000))) * rng.uniform(0.01, 0.3) for _ in range(n)]


@pytest.fixture(scope="module")
def responses() -> ResponseSet:
    return estimate_responses({"a": _clips(1), "b": _clips(2)}, SR, n_fft=N_FFT, hop_length=HOP)


def test_json_round_trip_is_exact(tmp_path, responses):
    a = responses["a"]
    measured = DeviceResponse("m", a.response_db * 0.37 + 1 / 3, method="sweep",
                              meta={"source": "sweep.wav", "level_db": -12.5})
    responses = ResponseSet(responses.config, [*responses.values(), measured])
    path = responses.save(tmp_path / "r.json")
    back = ResponseSet.load(path)
    assert back.config == responses.config
    assert list(back) == list(responses)
    for name in responses:
        x, y = responses[name], back[name]
        assert (x.method, x.meta) == (y.method, y.meta)
        np.testing.assert_array_equal(y.response_db, x.response_db)
        if x.stats is not None:
            np.testing.assert_array_equal(y.stats.sum_db, x.stats.sum_db)
            np.testing.assert_array_equal(y.stats.sum_sq_db, x.stats.sum_sq_db)
            assert (y.stats.n_frames, y.stats.n_files) == (x.stats.n_frames, x.stats.n_files)
    assert back["m"].stats is None
    # Saving what was loaded writes the same document.
    assert json.loads(back.save(tmp_path / "again.json").read_text()) == json.loads(path.read_text())


def test_json_layout(tmp_path, responses):
    doc = json.loads(responses.save(tmp_path / "r.json").read_text())
    assert doc["format"] == "micmatch.responses" and doc["format_version"] == 2
    assert doc["config"] == {"sample_rate": SR, "n_fft": N_FFT, "hop_length": HOP, "window": "hann",
                             "floor_db": -160.0, "gate_db": -80.0, "relative_gate_db": 30.0, "channels": "mix",
                             "resample": False}
    assert len(doc["frequencies_hz"]) == N_FFT // 2 + 1 and doc["frequencies_hz"][-1] == SR / 2
    dev = doc["devices"]["a"]
    assert dev["method"] == "unaligned" and dev["stats"]["n_files"] == 6
    assert len(dev["std_db"]) == N_FFT // 2 + 1


@settings(max_examples=25, deadline=None)
@given(split=st.lists(st.booleans(), min_size=6, max_size=6))
def test_merge_equals_estimate_on_union(split):
    clips = _clips(3)
    whole = estimate_responses({"d": clips}, SR, n_fft=N_FFT, hop_length=HOP)
    first = [c for c, s in zip(clips, split) if s]
    second = [c for c, s in zip(clips, split) if not s]
    parts = [estimate_responses({"d": group}, SR, n_fft=N_FFT, hop_length=HOP) for group in (first, second) if group]
    merged = parts[0] if len(parts) == 1 else parts[0].merge(parts[1])
    m, w = merged["d"], whole["d"]
    assert (m.stats.n_frames, m.stats.n_files) == (w.stats.n_frames, w.stats.n_files)
    # Sums of the same per-file float64 terms in another order: equal up to float64 rounding (~1e-16 relative).
    np.testing.assert_allclose(m.stats.sum_db, w.stats.sum_db, rtol=1e-12)
    np.testing.assert_allclose(m.stats.sum_sq_db, w.stats.sum_sq_db, rtol=1e-12)
    np.testing.assert_allclose(m.response_db, w.response_db, rtol=0, atol=1e-10)


def test_merge_keeps_devices_of_both_and_adding_same_name_merges(responses):
    other = estimate_responses({"b": _clips(4), "c": _clips(5)}, SR, n_fft=N_FFT, hop_length=HOP)
    merged = responses.merge(other)
    assert sorted(merged) == ["a", "b", "c"]
    assert merged["b"].stats.n_files == 12
    assert merged["b"].stats.n_frames == responses["b"].stats.n_frames + other["b"].stats.n_frames
    assert responses["b"].stats.n_files == 6  # the inputs are left as they were


def test_stats_addition_and_moments():
    s = LogSpectrumStats(np.array([2.0, -4.0]), np.array([2.0, 10.0]), 2, 1)
    t = s + LogSpectrumStats(np.array([3.0, 0.0]), np.array([9.0, 0.0]), 1, 1)
    np.testing.assert_allclose(t.mean_db, [5 / 3, -4 / 3])
    np.testing.assert_allclose(t.std_db, np.sqrt([11 / 3 - 25 / 9, 10 / 3 - 16 / 9]))
    assert (t.n_frames, t.n_files) == (3, 2)
    with pytest.raises(ConfigMismatchError, match="cannot merge statistics of 2 and 3 bins"):
        s + LogSpectrumStats.empty(3)
    with pytest.raises(ValueError, match="below the silence gate"):
        _ = LogSpectrumStats.empty(2).mean_db
    with pytest.raises(ValueError, match="1-D arrays of the same length"):
        LogSpectrumStats(np.zeros(2), np.zeros(3), 1)


def test_unknown_device_lists_known(responses):
    with pytest.raises(UnknownDeviceError, match=r"unknown device 'z'; known devices: a, b"):
        responses["z"]
    with pytest.raises(UnknownDeviceError, match="known devices: a, b"):
        responses.relative_db("a", "z")
    with pytest.raises(LookupError):  # generic handlers keep working
        responses["z"]
    # The Mapping protocol answers without raising.
    assert "z" not in responses and "a" in responses
    assert responses.get("z") is None and responses.get("a") is responses["a"]


def test_relative_db(responses):
    expected = responses["a"].response_db - responses["b"].response_db
    np.testing.assert_array_equal(responses.relative_db("a", "b"), expected)
    np.testing.assert_array_equal(responses.relative_db("a", "a"), 0.0)


@pytest.mark.parametrize("setting, message", [
    (dict(n_fft=512), "n_fft 256 in the existing set, 512 requested"),
    (dict(sample_rate=16000), "sample_rate 8000 in the existing set, 16000 requested"),
    (dict(hop_length=32), "hop_length 64 in the existing set, 32 requested"),
    (dict(gate_db=-60.0), "gate_db -80.0 in the existing set, -60.0 requested"),
    (dict(relative_gate_db=None), "relative_gate_db 30.0 in the existing set, off requested"),
    (dict(floor_db=-120.0), "floor_db -160.0 in the existing set, -120.0 requested"),
    (dict(channels="first"), "channels mix in the existing set, first requested"),
    (dict(resample=True), "resample false in the existing set, true requested"),
])
def test_merge_refuses_every_other_setting_naming_it(responses, setting, message):
    base = dict(n_fft=N_FFT, hop_length=HOP)
    sr = setting.pop("sample_rate", SR)
    other = estimate_responses({"c": _clips(6)}, sr, **{**base, **setting})
    with pytest.raises(ConfigMismatchError, match=f"cannot combine responses: {message}"):
        responses.merge(other)
    with pytest.raises(ConfigMismatchError, match=message.replace("the existing set", "old.json")):
        responses.config.check_compatible(other.config, source="old.json")


def test_config_mismatch_on_merge(responses):
    with pytest.raises(ConfigMismatchError, match="has 257 bins; this set has 129"):
        ResponseSet(responses.config, [DeviceResponse("x", np.zeros(257))])


def test_merge_needs_statistics_of_the_same_method(responses):
    measured = DeviceResponse("a", np.zeros(N_FFT // 2 + 1), method="sweep")
    with pytest.raises(ConfigMismatchError, match="only estimates with statistics of the same method merge"):
        responses["a"].merge(measured)


def _doc(tmp_path, responses) -> dict:
    return json.loads(responses.save(tmp_path / "ok.json").read_text())


def _load(tmp_path, doc) -> ResponseSet:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return ResponseSet.load(path)


def test_corrupt_json(tmp_path, responses):
    text = responses.save(tmp_path / "ok.json").read_text()
    with pytest.raises(ProfileError, match=r"bad\.json: not valid JSON"):
        _load(tmp_path, text[: len(text) // 2])
    with pytest.raises(ProfileError, match=r"cannot read responses file"):
        ResponseSet.load(tmp_path / "missing.json")
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProfileError, match=r"binary\.json: not valid JSON"):
        ResponseSet.load(path)


def test_wrong_format_and_version(tmp_path, responses):
    doc = _doc(tmp_path, responses)
    with pytest.raises(ProfileError, match='not a micmatch responses file'):
        _load(tmp_path, {**doc, "format": "something.else"})
    with pytest.raises(ProfileError, match="not a micmatch responses file"):
        _load(tmp_path, [1, 2, 3])
    with pytest.raises(ProfileError, match=r"format_version=3 is not supported by this micmatch \(reads versions 1, 2"):
        _load(tmp_path, {**doc, "format_version": 3})
    with pytest.raises(ProfileError, match="format_version=None is not supported"):
        _load(tmp_path, {k: v for k, v in doc.items() if k != "format_version"})


def test_version_1_files_load_but_refuse_merges(tmp_path, responses):
    """A file written before channels, resampling and input files were recorded still loads; merging into it is
    refused, naming the setting it lacks."""
    doc = _doc(tmp_path, responses)
    old = {**doc, "format_version": 1, "config": {k: v for k, v in doc["config"].items()
                                                  if k not in ("channels", "resample")}}
    del old["files"]
    back = _load(tmp_path, old)
    assert back.config.channels is None and back.config.resample is None and back.files == []
    np.testing.assert_array_equal(back["a"].response_db, responses["a"].response_db)
    with pytest.raises(ConfigMismatchError, match="channels is not recorded in old.json"):
        back.merge(responses, source="old.json")
    assert json.loads(back.save(tmp_path / "again.json").read_text())["format_version"] == 2
    with pytest.raises(ProfileError, match="invalid 'files' list"):
        _load(tmp_path, {**doc, "files": [{"path": "x"}]})


def test_fingerprints_and_files_counted_twice(tmp_path, rng):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    for p in (a, b):
        sf.write(p, 0.1 * rng.standard_normal(4000), SR)
    fa = file_fingerprint(a, device="d")
    assert fa["path"] == str(a.resolve()) and fa["size"] == a.stat().st_size and fa["hashed"] == "whole"
    assert fa["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest() and fa["device"] == "d"
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (3 * 4096 + 1))  # 3 MiB + 256 bytes
    data = big.read_bytes()
    fb = file_fingerprint(big, rule="v1")  # the rule of earlier releases, still used to compare with old files
    assert fb["hashed"] == "head-tail"
    assert fb["sha256"] == hashlib.sha256(data[: 1 << 20] + data[-(1 << 20):]).hexdigest()
    first = estimate_responses({"d": [a]}, SR, n_fft=N_FFT, hop_length=HOP)
    assert [f["path"] for f in first.files] == [str(a.resolve())]
    copy = tmp_path / "copy_of_a.wav"
    shutil.copy(a, copy)
    again = estimate_responses({"d": [b, copy]}, SR, n_fft=N_FFT, hop_length=HOP)
    with pytest.raises(ConfigMismatchError, match="1 file\\(s\\) are already counted in old.json .first: .*copy_of_a"):
        first.merge(again, source="old.json")
    merged = first.merge(estimate_responses({"d": [b]}, SR, n_fft=N_FFT, hop_length=HOP))
    assert len(merged.files) == 2 and merged["d"].stats.n_files == 2
    back = ResponseSet.load(merged.save(tmp_path / "m.json"))
    assert back.files == merged.files


def test_bad_config_and_grid(tmp_path, responses):
    doc = _doc(tmp_path, responses)
    with pytest.raises(ProfileError, match="invalid config"):
        _load(tmp_path, {**doc, "config": {**doc["config"], "n_fft": 255}})
    with pytest.raises(ProfileError, match="invalid config"):
        _load(tmp_path, {**doc, "config": {"n_fft": 256}})
    with pytest.raises(ProfileError, match="frequencies_hz does not match sample_rate and n_fft"):
        _load(tmp_path, {**doc, "frequencies_hz": doc["frequencies_hz"][:-1]})
    with pytest.raises(ProfileError, match="missing 'devices' object"):
        _load(tmp_path, {k: v for k, v in doc.items() if k != "devices"})


def test_bad_devices(tmp_path, responses):
    doc = _doc(tmp_path, responses)
    a = doc["devices"]["a"]
    short = {**a, "response_db": a["response_db"][:-1], "stats": None}
    with pytest.raises(ProfileError, match=r"device 'a' is invalid \(128 bins, expected 129\)"):
        _load(tmp_path, {**doc, "devices": {"a": short}})
    shifted = {**a, "response_db": [v + 0.5 for v in a["response_db"]]}
    with pytest.raises(ProfileError, match="device 'a' is invalid .*response_db disagrees with its statistics"):
        _load(tmp_path, {**doc, "devices": {"a": shifted}})
    with pytest.raises(ProfileError, match="device 'a' is invalid .*method='guess' must be one of"):
        _load(tmp_path, {**doc, "devices": {"a": {**a, "method": "guess"}}})
    with pytest.raises(ProfileError, match="device 'a' is invalid"):
        _load(tmp_path, {**doc, "devices": {"a": {"method": "unaligned"}}})
    with pytest.raises(ProfileError, match="device 'a' is invalid"):
        _load(tmp_path, {**doc, "devices": {"a": "not an object"}})
    with pytest.raises(ProfileError, match="device 'a' is invalid .*NaN"):
        _load(tmp_path, '{"format": "micmatch.responses", "format_version": 1, "config": %s, "devices": '
                        '{"a": {"method": "sweep", "response_db": [NaN]}}}' % json.dumps(doc["config"]))


def test_spectral_config_validation():
    assert SpectralConfig(8000, 256, 64).n_bins == 129
    with pytest.raises(ValueError, match="n_fft=255 must be even"):
        SpectralConfig(8000, 255, 64)
    with pytest.raises(ValueError, match="hop_length=512 must not exceed n_fft=256"):
        SpectralConfig(8000, 256, 512)
    with pytest.raises(ValueError, match="sample_rate=0 must be a positive integer"):
        SpectralConfig(0, 256, 64)
    with pytest.raises(ValueError, match="window='hamming': only 'hann' is supported"):
        SpectralConfig(8000, 256, 64, window="hamming")


def test_device_response_validation():
    with pytest.raises(ValueError, match="response_db must be 1-D"):
        DeviceResponse("x", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="response_db contains NaN"):
        DeviceResponse("x", np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="method='guess' must be one of"):
        DeviceResponse("x", np.zeros(3), method="guess")


def test_save_is_atomic(tmp_path, responses, monkeypatch):
    path = responses.save(tmp_path / "r.json")
    before = path.read_bytes()
    import micmatch.response as response_module

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(response_module.json, "dumps", broken)
    with pytest.raises(KeyboardInterrupt):
        responses.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_sampled_fingerprint_reads_little_and_tells_files_apart(tmp_path):
    from micmatch.audio import SAMPLED_WHOLE, fingerprint_rule

    big = tmp_path / "big.bin"
    data = bytes(range(256)) * (3 * 4096 + 1)  # 3 MiB + 256 bytes
    big.write_bytes(data)
    fp = file_fingerprint(big)
    assert fp["hashed"] == "sampled" and fp["size"] == len(data) and fingerprint_rule(fp) == "sampled"
    # Another file differs from the first only at its header, its end, or one byte: each changes the hash.
    for where in (0, len(data) - 1):
        other = bytearray(data)
        other[where] ^= 1
        (tmp_path / "other.bin").write_bytes(bytes(other))
        assert file_fingerprint(tmp_path / "other.bin")["sha256"] != fp["sha256"]
    (tmp_path / "copy.bin").write_bytes(data)
    assert file_fingerprint(tmp_path / "copy.bin")["sha256"] == fp["sha256"]
    # Small files are hashed whole, the same under both rules; large ones name their older rule.
    small = tmp_path / "small.bin"
    small.write_bytes(data[:SAMPLED_WHOLE])
    assert file_fingerprint(small) == file_fingerprint(small, rule="v1")
    assert fingerprint_rule(file_fingerprint(big, rule="v1")) == "v1"
    with pytest.raises(ParameterError, match="rule='md5' must be one of"):
        file_fingerprint(big, rule="md5")

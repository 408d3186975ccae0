"""estimate: the unaligned estimate's analytic truths (a gain k is 20 log10 k dB, self-correction is flat), files
versus arrays, parallel equals serial, bad files in a batch, sample-rate checks, device labels, channel policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import pink, white
from hypothesis import given, settings
from hypothesis import strategies as st

from micmatch import audio
from micmatch.correct import correction_curve
from micmatch.errors import AudioError, ConfigMismatchError, CorpusError
from micmatch.estimate import array_stats, estimate_responses, file_stats, label_devices, profile_files
from micmatch.parallel import FileFailure
from micmatch.audio import file_fingerprint
from micmatch.response import SpectralConfig

SR = 8000
N_FFT = 256
HOP = 64
CONFIG = SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop_length=HOP)


def _noise_clips(seed: int, n: int = 4, seconds: float = 0.5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [pink(rng, SR, seconds, level=0.05) for _ in range(n)]


@settings(max_examples=30, deadline=None)
@given(k=st.floats(0.05, 8.0))
def test_known_gain_shows_as_20_log10_k(k):
    clips = _noise_clips(11)
    rs = estimate_responses({"dev": [c * k for c in clips], "ref": clips}, SR, n_fft=N_FFT, hop_length=HOP,
                            gate_db=None, relative_gate_db=None)
    rel = rs.relative_db("dev", "ref")
    # The hot path is float32 (METHODS.md section 9): FFT rounding is ~1e-7 of a frame's largest bin, which in
    # the weakest bins of pink noise (near Nyquist, 30 dB down) is up to ~1e-5 dB of their log power. Over the
    # bins that carry most of the energy the error is below 1e-6 dB. Gates are off so both count the same frames.
    np.testing.assert_allclose(rel, 20 * np.log10(k), atol=1e-4)
    np.testing.assert_allclose(np.median(rel), 20 * np.log10(k), atol=1e-6)


@pytest.mark.parametrize("k", [0.25, 0.5, 2.0, 4.0])
def test_power_of_two_gain_is_exact_to_1e_6_db(k):
    # Scaling by a power of two is exact in float32, so only the float32 log rounding remains (averaged out).
    clips = _noise_clips(11)
    rs = estimate_responses({"dev": [c * k for c in clips], "ref": clips}, SR, n_fft=N_FFT, hop_length=HOP,
                            gate_db=None, relative_gate_db=None)
    np.testing.assert_allclose(rs.relative_db("dev", "ref"), 20 * np.log10(k), atol=1e-6)


def test_known_gain_with_default_gates_on_steady_noise():
    # Steady noise: every frame lies within a few dB of the loudest, so the default gates keep every frame of
    # both devices and the gain still shows exactly.
    clips = _noise_clips(12)
    rs = estimate_responses({"dev": [c * 0.3 for c in clips], "ref": clips}, SR, n_fft=N_FFT, hop_length=HOP)
    assert rs["dev"].stats.n_frames == rs["ref"].stats.n_frames
    np.testing.assert_allclose(rs.relative_db("dev", "ref"), 20 * np.log10(0.3), atol=1e-4)  # float32, as above


def test_self_correction_is_flat():
    clips = _noise_clips(13)
    rs = estimate_responses({"a": clips, "a_again": [c.copy() for c in clips]}, SR, n_fft=N_FFT, hop_length=HOP)
    gain = correction_curve(rs, "a", "a_again").gain_db
    assert np.abs(gain).max() < 0.01
    np.testing.assert_array_equal(correction_curve(rs, "a", "a").gain_db, 0.0)


def _write(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> Path:
    return audio.save(path, x.astype(np.float32), sr, subtype=subtype)


def test_file_stats_equal_array_stats(tmp_path):
    x = _noise_clips(14, n=1, seconds=3.0)[0]
    path = _write(tmp_path / "x.wav", x)
    from_file = file_stats(path, CONFIG)
    from_array = array_stats(audio.load(path)[0], CONFIG)
    assert from_file.n_frames == from_array.n_frames and from_file.n_files == 1
    # Same float32 samples; block boundaries only regroup the per-frame float64 sums.
    np.testing.assert_allclose(from_file.sum_db, from_array.sum_db, rtol=1e-9)


def test_long_file_is_read_in_blocks_with_the_same_result(tmp_path, monkeypatch):
    import micmatch.estimate as est

    x = _noise_clips(15, n=1, seconds=4.0)[0]
    path = _write(tmp_path / "x.wav", x, subtype="PCM_16")
    whole = file_stats(path, CONFIG)
    monkeypatch.setattr(est, "BLOCK_FRAMES", 7)  # blocks of 448 samples: dozens of blocks
    blocked = file_stats(path, CONFIG)
    assert blocked.n_frames == whole.n_frames
    # The same frames, but grouped into other FFT batches: float32 FFT results may differ in the last bit with
    # the batch layout, so per-bin means agree to ~1e-6 dB, not bit for bit.
    np.testing.assert_allclose(blocked.sum_db / blocked.n_frames, whole.sum_db / whole.n_frames, atol=1e-5)


def test_pcm16_raw_path_equals_float_path(tmp_path):
    x = _noise_clips(16, n=1, seconds=2.0)[0]
    path = _write(tmp_path / "x.wav", x, subtype="PCM_16")
    raw = file_stats(path, CONFIG)  # int16 samples, 1/32768 folded into the window
    decoded = array_stats(audio.load(path, dtype="float64")[0], CONFIG)
    assert raw.n_frames == decoded.n_frames
    np.testing.assert_allclose(raw.sum_db / raw.n_frames, decoded.sum_db / decoded.n_frames, atol=1e-3)


def _corpus(tmp_path: Path) -> tuple[list[Path], list[str]]:
    paths, labels = [], []
    for dev, gain in (("phone", 0.5), ("studio", 1.0)):
        for i, clip in enumerate(_noise_clips(20, n=3, seconds=0.6)):
            paths.append(_write(tmp_path / dev / f"{i}.wav", clip * gain, subtype="PCM_16"))
            labels.append(dev)
    return paths, labels


def test_profile_files_parallel_is_bit_identical(tmp_path):
    paths, labels = _corpus(tmp_path)
    one, f1 = profile_files(paths, labels, CONFIG, jobs=1)
    two, f2 = profile_files(paths, labels, CONFIG, jobs=2)
    assert f1 == f2 == []
    assert list(one) == list(two) == ["phone", "studio"]
    for name in one:
        np.testing.assert_array_equal(one[name].stats.sum_db, two[name].stats.sum_db)
        np.testing.assert_array_equal(one[name].stats.sum_sq_db, two[name].stats.sum_sq_db)
        assert one[name].stats.n_files == 3
    # The same clips at half the level, through 16-bit files: quantisation noise (-101 dBFS) is far below the
    # clips' weakest bins, so the relative response is -6.02 dB to within 0.01 dB.
    np.testing.assert_allclose(one.relative_db("phone", "studio")[1:], 20 * np.log10(0.5), atol=0.01)


def test_profile_files_records_each_fingerprint_with_its_device(tmp_path):
    """Fingerprints are taken in the workers beside the statistics: the same records, in input order, as hashing
    each file in the main process."""
    paths, labels = _corpus(tmp_path)
    expected = [file_fingerprint(p, device=d) for p, d in zip(paths, labels)]
    for jobs in (1, 2):
        rs, _ = profile_files(paths, labels, CONFIG, jobs=jobs)
        assert rs.files == expected


def test_bad_files_are_reported_and_the_rest_estimated(tmp_path):
    paths, labels = _corpus(tmp_path)
    silent = _write(tmp_path / "phone" / "silent.wav", np.zeros(SR))
    short = _write(tmp_path / "phone" / "short.wav", np.full(N_FFT - 1, 0.1))
    garbage = tmp_path / "phone" / "garbage.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(200)))
    nan = _noise_clips(30, n=1)[0].astype(np.float32)
    nan[100] = np.nan
    import soundfile as sf

    nan_path = tmp_path / "phone" / "nan.wav"
    sf.write(str(nan_path), nan, SR, subtype="FLOAT")
    bad = [silent, short, garbage, nan_path]
    rs, failures = profile_files(paths + bad, labels + ["phone"] * 4, CONFIG, jobs=1)
    assert [f.path for f in failures] == [str(p) for p in bad]
    assert all(isinstance(f, FileFailure) for f in failures)
    messages = [str(f) for f in failures]
    assert "silent.wav: silent: no frame is above the silence gate" in messages[0]
    assert "short.wav: 255 samples is shorter than one analysis frame (n_fft=256)" in messages[1]
    assert "garbage.wav: cannot read audio" in messages[2]
    assert "nan.wav: contains NaN or infinite samples" in messages[3]
    assert all("\n" not in m for m in messages)
    assert rs["phone"].stats.n_files == 3 and rs["studio"].stats.n_files == 3


def test_array_errors():
    with pytest.raises(AudioError, match="clip: silent: no frame is above the silence gate"):
        array_stats(np.zeros(2000), CONFIG, name="clip")
    with pytest.raises(AudioError, match="audio: 100 samples is shorter than one analysis frame"):
        array_stats(np.full(100, 0.1), CONFIG)
    with pytest.raises(ValueError, match="channels='all' must be one of"):
        array_stats(np.ones(1000), CONFIG, channels="all")
    with pytest.raises(AudioError, match="device 'x': no recordings were given"):
        estimate_responses({"x": []}, SR, n_fft=N_FFT, hop_length=HOP)
    with pytest.raises(ValueError, match="2 paths but 1 device labels"):
        profile_files(["a.wav", "b.wav"], ["x"], CONFIG)


def test_sample_rate_mismatch_and_resample(tmp_path):
    rng = np.random.default_rng(5)
    x16 = white(rng, 16000, 2.0, level=0.05)
    path = _write(tmp_path / "at16k.wav", x16, sr=16000)
    with pytest.raises(ConfigMismatchError, match=r"at16k\.wav: sample rate 16000 Hz differs from the analysis "
                                                  r"rate 8000 Hz; pass --resample"):
        file_stats(path, CONFIG)
    streamed = file_stats(path, CONFIG, resample=True)
    oneshot = array_stats(audio.resample(x16.astype(np.float32), 16000, SR), CONFIG)
    assert abs(streamed.n_frames - oneshot.n_frames) <= 1
    f = CONFIG.frequencies
    band = (f > 50) & (f < 0.45 * SR)
    # Streaming and one-shot soxr differ only in the first/last few samples: per-bin means within 0.05 dB.
    np.testing.assert_allclose(streamed.mean_db[band], oneshot.mean_db[band], atol=0.05)
    rs, failures = profile_files([path], ["d"], CONFIG)
    assert len(rs) == 0 and "at16k.wav: sample rate 16000 Hz" in str(failures[0])


def test_channel_policies(tmp_path):
    rng = np.random.default_rng(6)
    left, right = pink(rng, SR, 1.0, level=0.1), white(rng, SR, 1.0, level=0.02)
    stereo = _write(tmp_path / "st.wav", np.stack([left, right]))
    each = file_stats(stereo, CONFIG, channels="each")
    first = file_stats(stereo, CONFIG, channels="first")
    mix = file_stats(stereo, CONFIG, channels="mix")
    solo_left = file_stats(_write(tmp_path / "l.wav", left), CONFIG)
    solo_right = file_stats(_write(tmp_path / "r.wav", right), CONFIG)
    solo_mix = array_stats(np.stack([left, right]).astype(np.float32).mean(axis=0), CONFIG)
    np.testing.assert_allclose(first.sum_db, solo_left.sum_db, rtol=1e-12)
    assert each.n_frames == solo_left.n_frames + solo_right.n_frames and each.n_files == 1
    np.testing.assert_allclose(each.sum_db, solo_left.sum_db + solo_right.sum_db, rtol=1e-9)
    np.testing.assert_allclose(mix.sum_db / mix.n_frames, solo_mix.sum_db / solo_mix.n_frames, atol=1e-4)
    # Arrays follow the same policies.
    arr = np.stack([left, right])
    np.testing.assert_allclose(array_stats(arr, CONFIG, channels="first").sum_db, solo_left.sum_db, rtol=1e-9)
    assert array_stats(arr, CONFIG, channels="each").n_frames == each.n_frames


# Device labels -------------------------------------------------------------------------------------------------


def test_labels_from_dir(tmp_path):
    paths = [tmp_path / "phone" / "a.wav", tmp_path / "studio" / "x" / "b.wav"]
    labels, problems = label_devices(paths, "dir")
    assert labels == ["phone", "x"] and problems == []


def test_labels_from_regex(tmp_path):
    paths = [Path("takes/t1_phone.wav"), Path("takes/t2_studio.wav"), Path("takes/readme.wav")]
    labels, problems = label_devices(paths, r"regex:_(?P<device>[a-z]+)\.wav$")
    assert labels == ["phone", "studio", None]
    assert problems == [r"takes/readme.wav: regex '_(?P<device>[a-z]+)\\.wav$' does not match this path"]
    labels, _ = label_devices(paths[:2], r"regex:(t\d)_([a-z]+)")  # no named group: the first group
    assert labels == ["t1", "t2"]
    with pytest.raises(CorpusError, match="needs a group that captures the device"):
        label_devices(paths, r"regex:_[a-z]+\.wav")
    with pytest.raises(CorpusError, match=r"regex '\(' is invalid"):
        label_devices(paths, "regex:(")


def test_labels_from_csv(tmp_path):
    (tmp_path / "audio").mkdir()
    table = tmp_path / "devices.csv"
    table.write_text("filename,device\naudio/a.wav,phone\nb.wav,studio\n,ignored\n")
    paths = [tmp_path / "audio" / "a.wav", tmp_path / "elsewhere" / "b.wav", tmp_path / "c.wav"]
    labels, problems = label_devices(paths, f"csv:{table}")
    assert labels == ["phone", "studio", None]
    assert problems == [f"{paths[2]}: not listed in {table}"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,dev\na.wav,x\n")
    with pytest.raises(CorpusError, match=r"bad\.csv: needs columns 'filename' \(or 'path'\) and 'device'"):
        label_devices(paths, f"csv:{bad}")
    with pytest.raises(CorpusError, match=r"missing\.csv: cannot read device CSV"):
        label_devices(paths, f"csv:{tmp_path / 'missing.csv'}")
    table2 = tmp_path / "by_path.csv"
    table2.write_text("path,device\naudio/a.wav,laptop\n")
    assert label_devices(paths[:1], f"csv:{table2}")[0] == ["laptop"]


def test_labels_from_name_and_unknown_spec(tmp_path):
    assert label_devices(["a.wav", "b.wav"], "name:phone") == (["phone", "phone"], [])
    with pytest.raises(CorpusError, match="device_from='name:' needs a device name"):
        label_devices(["a.wav"], "name:")
    with pytest.raises(CorpusError, match="device_from='folder' must be 'dir', 'regex:PATTERN', 'csv:FILE'"):
        label_devices(["a.wav"], "folder")


def test_estimation_never_modifies_inputs(tmp_path):
    clips = _noise_clips(40)
    copies = [c.copy() for c in clips]
    estimate_responses({"a": clips}, SR, n_fft=N_FFT, hop_length=HOP)
    for c, d in zip(clips, copies):
        np.testing.assert_array_equal(c, d)
    path = _write(tmp_path / "x.wav", clips[0], subtype="PCM_16")
    raw = path.read_bytes()
    file_stats(path, CONFIG)
    assert path.read_bytes() == raw

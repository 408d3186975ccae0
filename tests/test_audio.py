"""audio: round trips per format/subtype, channel modes, resampling on request only, block reading, bad files,
validation messages, atomic writes, inputs left untouched."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from micmatch import audio
from micmatch.errors import AudioError

SR = 8000

# Quantisation step of each subtype. libsndfile writes floats scaled by 2**(bits-1) - 1 and reads integers divided
# by 2**(bits-1), so a PCM round trip is within one step (half a step of rounding plus the scale asymmetry);
# FLOAT is bit-exact.
SUBTYPE_TOL = {"PCM_16": 1.0 / 32768, "PCM_24": 1.0 / 2**23, "FLOAT": 0.0}


def _signal(rng, channels: int, n: int = 3000) -> np.ndarray:
    return (rng.uniform(-0.9, 0.9, size=(channels, n))).astype(np.float32)


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"),
                                         ("flac", "PCM_16"), ("flac", "PCM_24")])
@pytest.mark.parametrize("channels", [1, 2])
def test_save_load_round_trip(tmp_path, rng, ext, subtype, channels):
    x = _signal(rng, channels)
    path = audio.save(tmp_path / f"x.{ext}", x, SR, subtype=subtype)
    meta = audio.info(path)
    assert (meta.sample_rate, meta.channels, meta.frames, meta.subtype) == (SR, channels, x.shape[1], subtype)
    y, sr = audio.load(path, dtype="float64")
    assert sr == SR and y.shape == x.shape and y.dtype == np.float64
    np.testing.assert_allclose(y, x, rtol=0, atol=SUBTYPE_TOL[subtype] + 1e-12)


def test_mono_1d_is_saved_as_one_channel(tmp_path, rng):
    x = _signal(rng, 1)[0]
    y, _ = audio.load(audio.save(tmp_path / "m.wav", x, SR, subtype="FLOAT"))
    assert y.shape == (1, x.size)
    np.testing.assert_array_equal(y[0], x)


def test_channel_modes(tmp_path, rng):
    x = _signal(rng, 3)
    path = audio.save(tmp_path / "s.wav", x, SR, subtype="FLOAT")
    keep, _ = audio.load(path, channels="keep")
    first, _ = audio.load(path, channels="first")
    mix, _ = audio.load(path, channels="mix")
    np.testing.assert_array_equal(keep, x)
    np.testing.assert_array_equal(first, x[:1])
    # float32 mean of three channels: a few ulps of rounding.
    np.testing.assert_allclose(mix, x.mean(axis=0, keepdims=True), atol=1e-7)
    with pytest.raises(ValueError, match="channels='both' must be one of"):
        audio.load(path, channels="both")


def test_no_resampling_unless_asked(tmp_path):
    x = tone(1000.0, SR, 0.5)
    path = audio.save(tmp_path / "t.wav", x, SR, subtype="FLOAT")
    y, sr = audio.load(path)
    assert sr == SR and y.shape[-1] == x.size


@pytest.mark.parametrize("target", [16000, 11025])
def test_resample_on_request_keeps_tone_frequency(tmp_path, target):
    x = tone(1000.0, SR, 1.0)
    path = audio.save(tmp_path / "t.wav", x, SR, subtype="FLOAT")
    y, sr = audio.load(path, sample_rate=target, dtype="float64")
    assert sr == target
    # soxr keeps the duration: length ratio equals the rate ratio to within one sample.
    assert abs(y.shape[-1] - x.size * target / SR) <= 1
    spec = np.abs(np.fft.rfft(y[0] * np.hanning(y.shape[-1])))
    peak_hz = np.argmax(spec) * target / y.shape[-1]
    assert abs(peak_hz - 1000.0) <= target / y.shape[-1]  # within one FFT bin (1 Hz here)


def test_resample_function_rejects_bad_rates_and_copies(rng):
    x = rng.standard_normal((2, 1000))
    same = audio.resample(x, SR, SR)
    assert same is not x
    np.testing.assert_array_equal(same, x)
    with pytest.raises(AudioError, match="orig_sr=0 must be a positive integer"):
        audio.resample(x, 0, SR)
    with pytest.raises(AudioError, match="target_sr=8000.5 must be a positive integer"):
        audio.resample(x, SR, 8000.5)


@pytest.mark.parametrize("subtype,dtype", [("PCM_16", "float32"), ("PCM_16", "int16"), ("FLOAT", "float32")])
@pytest.mark.parametrize("channels", ["each", "keep", "mix", "first"])
def test_iter_blocks_concatenate_to_load(tmp_path, rng, subtype, dtype, channels):
    x = _signal(rng, 2, n=10007)
    path = audio.save(tmp_path / "b.wav", x, SR, subtype=subtype)
    blocks = list(audio.iter_blocks(path, block_frames=1000, channels=channels, dtype=dtype))
    assert all(b.shape[-1] == 1000 for b in blocks[:-1]) and blocks[-1].shape[-1] == 7
    joined = np.concatenate(blocks, axis=-1)
    if dtype == "int16":
        raw, _ = sf.read(str(path), dtype="int16", always_2d=True)
        expected = raw.T if channels in ("each", "keep") else raw.T[:1] if channels == "first" else raw.T.mean(axis=0)[None]
        np.testing.assert_allclose(joined, expected, atol=1e-3)
    else:
        np.testing.assert_array_equal(joined, audio.load(path, channels=channels)[0])


def test_iter_blocks_overlap(tmp_path, rng):
    x = _signal(rng, 1, n=5000)
    path = audio.save(tmp_path / "o.wav", x, SR, subtype="FLOAT")
    blocks = list(audio.iter_blocks(path, block_frames=1000, overlap=200))
    for a, b in zip(blocks, blocks[1:]):
        np.testing.assert_array_equal(a[:, -200:], b[:, :200])
    # Removing the overlaps gives the file back.
    joined = np.concatenate([blocks[0]] + [b[:, 200:] for b in blocks[1:]], axis=-1)
    np.testing.assert_array_equal(joined, x)
    with pytest.raises(ValueError, match="block_frames=100 must exceed overlap=100"):
        list(audio.iter_blocks(path, block_frames=100, overlap=100))


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[: len(data) // 2])
    return out


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_truncated_wav_is_refused(tmp_path, rng, subtype):
    cut = _truncate(audio.save(tmp_path / "x.wav", _signal(rng, 2), SR, subtype=subtype))
    with pytest.raises(AudioError, match=r"cut_x\.wav: truncated"):
        audio.load(cut)
    with pytest.raises(AudioError, match=r"cut_x\.wav: truncated"):
        list(audio.iter_blocks(cut, block_frames=512))


def test_truncated_flac_is_refused(tmp_path, rng):
    cut = _truncate(audio.save(tmp_path / "x.flac", _signal(rng, 1, n=20000), SR))
    with pytest.raises(AudioError, match=r"cut_x\.flac: (truncated|cannot decode)"):
        audio.load(cut)


def test_garbage_and_missing_files(tmp_path, rng):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match=r"noise\.wav: cannot read audio"):
        audio.load(bad)
    with pytest.raises(AudioError, match=r"nothere\.wav: cannot read audio"):
        audio.info(tmp_path / "nothere.wav")
    with pytest.raises(AudioError, match=r"nothere\.wav: no such file or directory"):
        audio.find_audio_files([tmp_path / "nothere.wav"])


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros((0, 1)), SR)
    with pytest.raises(AudioError, match=r"empty\.wav: file holds no samples"):
        audio.load(path)


def test_nan_in_float_file_is_refused(tmp_path, rng):
    x = _signal(rng, 1, n=4000)
    x[0, 3500] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), x.T, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN or infinite samples"):
        audio.load(path)
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN or infinite samples"):
        list(audio.iter_blocks(path, block_frames=1000))


def test_validate_audio_messages(rng):
    x = rng.standard_normal(100)
    assert audio.validate_audio(x, SR) is not None
    with pytest.raises(AudioError, match=r"audio\.shape=\(100, 2\) looks like \(samples, channels\); pass audio\.T"):
        audio.validate_audio(rng.standard_normal((100, 2)), SR)
    with pytest.raises(AudioError, match=r"audio\.dtype=int16 must be floating point"):
        audio.validate_audio(np.zeros(100, dtype=np.int16), SR)
    bad = x.copy()
    bad[7] = np.inf
    with pytest.raises(AudioError, match="clip contains NaN or infinite values"):
        audio.validate_audio(bad, SR, name="clip")
    with pytest.raises(AudioError, match="audio has 100 samples; at least 512 are needed"):
        audio.validate_audio(x, SR, min_samples=512)
    with pytest.raises(AudioError, match="sample_rate=-1 must be a positive integer"):
        audio.validate_audio(x, -1)
    with pytest.raises(AudioError, match="at least one dimension"):
        audio.validate_audio(np.float64(1.0))


def test_save_refuses_bad_shapes_and_formats(tmp_path, rng):
    with pytest.raises(AudioError, match=r"audio\.shape=\(1, 2, 30\) must be \(channels, n_samples\)"):
        audio.save(tmp_path / "a.wav", rng.standard_normal((1, 2, 30)), SR)
    with pytest.raises(AudioError, match="format FLAC cannot hold subtype FLOAT"):
        audio.save(tmp_path / "a.flac", rng.standard_normal(30) * 0.1, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="unknown audio format 'xyz'"):
        audio.save(tmp_path / "a.xyz", rng.standard_normal(30) * 0.1, SR)
    assert list(tmp_path.iterdir()) == []


def test_save_warns_when_pcm_clips(tmp_path):
    x = np.array([0.0, 1.5, -2.0, 0.5], dtype=np.float32)
    with pytest.warns(UserWarning, match="beyond full scale are clipped"):
        audio.save(tmp_path / "c.wav", x, SR, subtype="PCM_16")


def test_atomic_save_leaves_nothing_when_writing_fails(tmp_path, rng, monkeypatch):
    target = tmp_path / "out.wav"

    def broken(path, *args, **kwargs):
        Path(path).write_bytes(b"RIFF half")  # a partial file, as an interrupted write would leave
        raise KeyboardInterrupt

    monkeypatch.setattr(sf, "write", broken)
    with pytest.raises(KeyboardInterrupt):
        audio.save(target, _signal(rng, 1), SR)
    assert list(tmp_path.iterdir()) == []


def test_atomic_save_keeps_previous_file_on_failure(tmp_path, rng, monkeypatch):
    target = audio.save(tmp_path / "out.wav", _signal(rng, 1), SR)
    before = target.read_bytes()

    def broken(path, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        audio.save(target, _signal(rng, 1), SR)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_atomic_output_has_ordinary_permissions(tmp_path, rng):
    # Outputs are readable by others as a plain write would leave them (umask applied), not private temp files.
    umask = os.umask(0o022)
    try:
        path = audio.save(tmp_path / "perm.wav", _signal(rng, 1), SR)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_inputs_are_never_modified(tmp_path, rng):
    x = _signal(rng, 2)
    copy = x.copy()
    path = audio.save(tmp_path / "in.wav", x, SR, subtype="PCM_16")
    np.testing.assert_array_equal(x, copy)
    raw = path.read_bytes()
    y, _ = audio.load(path, sample_rate=16000, channels="mix")
    list(audio.iter_blocks(path, block_frames=500))
    audio.resample(x, SR, 16000)
    audio.validate_audio(x, SR)
    np.testing.assert_array_equal(x, copy)
    assert path.read_bytes() == raw


def test_find_audio_files_walks_folders_sorted_unique(tmp_path, rng):
    for rel in ["b/2.wav", "a/1.flac", "a/sub/3.wav", "a/notes.txt"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".txt":
            p.write_text("x")
        else:
            audio.save(p, _signal(rng, 1, n=100), SR)
    found = audio.find_audio_files([tmp_path / "a", tmp_path / "b", tmp_path / "a" / "1.flac"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/1.flac", "a/sub/3.wav", "b/2.wav"]

"""Block-wise features of files equal the whole-signal features; the features file reads back.

Tolerance: the block-wise path runs in float64 like :func:`micmatch.features.log_mel` and stores float32, so
values (dB, |x| <= ~150) agree to float32 rounding, 1e-4 dB.
"""

from __future__ import annotations

import numpy as np
import pytest

from micmatch import extract as E
from micmatch import features as F
from micmatch.audio import save
from micmatch.errors import AudioError, FeatureError, ParameterError

CFG = F.LogMelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks far smaller than the file and frame groups of a few frames, so every boundary case is crossed."""
    monkeypatch.setattr(E, "READ_BLOCK", 1000)
    monkeypatch.setattr(E, "FRAME_BLOCK", 7)


@pytest.mark.parametrize("n", [1, 127, 128, 511, 512, 5000, 20011])
def test_blockwise_log_mel_equals_whole_signal(tmp_path, rng, small_blocks, n):
    x = rng.normal(0.0, 0.1, size=(2, n)).astype(np.float32)
    save(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    mono = x.astype(np.float64).mean(axis=0)
    got, n_audio = E.file_log_mel(tmp_path / "a.wav", CFG)
    np.testing.assert_allclose(got, F.log_mel(mono, 16000, config=CFG), atol=1e-4)
    assert n_audio == n and got.dtype == np.float32
    for length in (300, 7000):
        fixed, n_audio = E.file_log_mel(tmp_path / "a.wav", CFG, n_samples=length)
        expected = F.log_mel(np.pad(mono[:length], (0, max(0, length - n))), 16000, config=CFG)
        np.testing.assert_allclose(fixed, expected, atol=1e-4)
        assert n_audio == min(n, length) and fixed.shape[-1] == E.n_frames_for(length, CFG)
    first, _ = E.file_mel(tmp_path / "a.wav", CFG, channels="first")
    np.testing.assert_allclose(first, F.mel_spectrogram(x[0].astype(np.float64), 16000, config=CFG),
                               rtol=1e-5, atol=1e-12)


def test_frames_and_samples_agree():
    for frames in (1, 2, 80):
        assert E.n_frames_for(E.samples_for_frames(frames, CFG), CFG) == frames
    with pytest.raises(ParameterError, match="frames=0 must be a positive integer"):
        E.samples_for_frames(0, CFG)


def test_resampling_and_errors(tmp_path, rng):
    save(tmp_path / "b.wav", rng.normal(0.0, 0.1, 8000), 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="sample_rate=8000 differs"):
        E.file_log_mel(tmp_path / "b.wav", CFG)
    out, n_audio = E.file_log_mel(tmp_path / "b.wav", CFG, resample=True)
    assert n_audio == 16000 and out.shape == (40, E.n_frames_for(16000, CFG))
    with pytest.raises(FeatureError, match="channels='each'"):
        E.file_mel(tmp_path / "b.wav", CFG, channels="each")


def test_save_and_load_both_layouts(tmp_path, rng):
    items = [rng.normal(size=(40, 9)).astype(np.float32), rng.normal(size=(40, 9)).astype(np.float32)]
    E.save_features(tmp_path / "f.npz", items, layout="fixed", files=["a", "b"], devices=["x", "y"],
                    labels=["2", "10"], config=CFG, normalization="none", settings={}, lengths=[9, 5])
    fs = E.load_features(tmp_path / "f.npz")
    assert fs.features.shape == (2, 40, 9) and fs.classes == ["2", "10"] and list(fs.label_index) == [0, 1]
    np.testing.assert_array_equal(fs.clip(1), items[1])
    items[1] = items[1][:, :4]
    E.save_features(tmp_path / "g.npz", items, layout="ragged", files=["a", "b"], devices=["x", "y"],
                    labels=None, config=CFG, normalization="none", settings={})
    fs = E.load_features(tmp_path / "g.npz")
    assert fs.features.shape == (40, 13) and list(fs.offsets) == [0, 9, 13] and fs.labels == ["", ""]
    np.testing.assert_array_equal(fs.clip(1), items[1])
    with pytest.raises(FeatureError, match="one shape for every clip"):
        E.save_features(tmp_path / "h.npz", items, layout="fixed", files=["a", "b"], devices=["x", "y"],
                        labels=None, config=CFG, normalization="none", settings={})

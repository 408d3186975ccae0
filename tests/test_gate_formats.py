"""The absolute silence gate reads the same level whatever a file's sample format: every WAV subtype against its
float twin (the decoded samples analysed as a float array), on the C kernel and on the numpy path.

A 16-bit file is decoded as raw integers with the 1/32768 scale folded into the analysis window; its gate once
applied that scale twice and sat about 90 dB too low, so quiet 16-bit files counted frames their 24-bit twins
gated."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from micmatch import logstats, spectral
from micmatch.errors import AudioError
from micmatch.estimate import array_stats, file_stats
from micmatch.response import SpectralConfig

SR = 8000
N_FFT = 256
HOP = 128
SUBTYPES = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]
PATHS = ["kernel", "numpy"]


@pytest.fixture(params=PATHS)
def path_kind(request, monkeypatch):
    if request.param == "kernel":
        if logstats._logpower is None:
            pytest.skip("the C kernel is not built here (python setup.py build_ext --inplace)")
    else:
        monkeypatch.setattr(logstats, "_logpower", None)
    return request.param


def _stepped_noise(levels_dbfs, seconds=0.25, seed=5) -> np.ndarray:
    """White noise segments at the given RMS levels (dBFS), one after another."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    parts = [rng.standard_normal(n) * 10 ** (lvl / 20) for lvl in levels_dbfs]
    return np.clip(np.concatenate(parts), -1.0, 1.0 - 2**-15)


def _write(tmp_path, x, subtype) -> tuple:
    p = tmp_path / f"x_{subtype}.wav"
    sf.write(p, x, SR, subtype=subtype)
    decoded, _ = sf.read(p, dtype="float64")  # the float twin: exactly the samples the file holds
    return p, decoded


def _frame_levels(x):
    w = spectral.hann(N_FFT)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    return 10 * np.log10(np.maximum(np.sum((frames * w) ** 2, axis=1) / np.sum(w * w), 1e-30))


@pytest.mark.parametrize("gate_db", [-80.0, -45.0])
@pytest.mark.parametrize("subtype", SUBTYPES)
def test_gate_matches_float_twin(tmp_path, subtype, gate_db, path_kind):
    x = _stepped_noise([-20, -40, -60, -70, -90, -110])
    p, twin = _write(tmp_path, x, subtype)
    config = SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, gate_db=gate_db, relative_gate_db=None)
    from_file = file_stats(p, config)
    from_twin = array_stats(twin, config)
    expected = int(np.sum(_frame_levels(twin) >= gate_db))
    assert from_file.n_frames == from_twin.n_frames == expected
    # Same frames, same samples: the means agree to float32 rounding of the log power (~1e-4 dB in quiet bins).
    np.testing.assert_allclose(from_file.mean_db, from_twin.mean_db, atol=2e-3)


@pytest.mark.parametrize("subtype", [s for s in SUBTYPES if s != "PCM_U8"])
def test_noise_below_the_gate_is_silent_in_every_format(tmp_path, subtype, path_kind):
    # -95 dBFS noise: below the -80 dBFS default gate however it is stored (in 16 bits it rounds to 0 and +-1 LSB,
    # still below -80 dBFS). Not 8 bits: libsndfile truncates towards minus infinity there, so the stored file
    # holds half its samples at -1 LSB (-42 dBFS) and is genuinely above the gate (the twin test covers it).
    p, _ = _write(tmp_path, _stepped_noise([-95], seconds=1.0), subtype)
    config = SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, relative_gate_db=None)
    with pytest.raises(AudioError, match="silent"):
        file_stats(p, config)


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_noise_at_minus_40_dbfs_is_gated_by_a_minus_35_gate(tmp_path, subtype, path_kind):
    p, _ = _write(tmp_path, _stepped_noise([-40], seconds=1.0), subtype)
    config = SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, gate_db=-35.0, relative_gate_db=None)
    with pytest.raises(AudioError, match="silent"):
        file_stats(p, config)
    config = SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, gate_db=-45.0, relative_gate_db=None)
    assert file_stats(p, config).n_frames == spectral.n_frames(SR, N_FFT, HOP)  # nothing gated

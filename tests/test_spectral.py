"""spectral: STFT against librosa, exact inverse, the streaming statistics against the float64 reference for any
chunking, silence gates, the windowed response truth against simulation, fractional-octave smoothing, dB."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from conftest import tone, white
from hypothesis import given, settings
from hypothesis import strategies as st

from micmatch import logstats, spectral

SR = 16000


@pytest.mark.parametrize("n_fft,hop", [(512, 128), (256, 64), (1024, 512), (400, 100)])
@pytest.mark.parametrize("n", [3000, 1001])
@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")  # librosa's note on short input; values still compared
def test_stft_matches_librosa(rng, n_fft, hop, n):
    librosa = pytest.importorskip("librosa")
    x = rng.standard_normal(n)
    ours = spectral.stft(x, n_fft=n_fft, hop_length=hop)
    ref = librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True, pad_mode="constant")
    assert ours.shape == ref.shape and ours.dtype == np.complex128
    # float64 FFTs of the same frames (pocketfft in both): differences are rounding, ~1e-13 of values ~30.
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)


def test_stft_batches_equal_stacked(rng):
    x = rng.standard_normal((2, 3, 2000))
    batched = spectral.stft(x, n_fft=256, hop_length=64)
    stacked = np.stack([[spectral.stft(x[i, j], n_fft=256, hop_length=64) for j in range(3)] for i in range(2)])
    np.testing.assert_array_equal(batched, stacked)
    assert spectral.stft(x.astype(np.float32), n_fft=256).dtype == np.complex64


@pytest.mark.parametrize("n_fft,hop", [(512, 128), (512, 256), (256, 64), (400, 100)])
@pytest.mark.parametrize("n", [5000, 777, 100])
def test_istft_inverts_stft(rng, n_fft, hop, n):
    x = rng.standard_normal((2, n))
    y = spectral.istft(spectral.stft(x, n_fft=n_fft, hop_length=hop), n_fft=n_fft, hop_length=hop, length=n)
    assert y.shape == x.shape
    # float64 overlap-add divided by the window-square sum: exact up to rounding.
    np.testing.assert_allclose(y, x, rtol=0, atol=1e-10)


def _reference_stats(x: np.ndarray, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray, int]:
    p = spectral.log_power_frames(x, n_fft=n_fft, hop_length=hop)
    return p.sum(axis=1), (p * p).sum(axis=1), p.shape[1]


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 6000), max_size=8), seed=st.integers(0, 2**32 - 1))
def test_accumulator_matches_reference_for_any_chunking(cuts, seed):
    n_fft, hop = 256, 64
    x = np.random.default_rng(seed).standard_normal(6000).astype(np.float32) * 0.1
    acc = logstats.LogPowerAccumulator(n_fft=n_fft, hop_length=hop, gate_db=None)
    edges = [0, *sorted(cuts), x.size]
    for a, b in zip(edges, edges[1:]):
        acc.update(x[a:b])
    s, q, n = _reference_stats(x, n_fft, hop)
    assert acc.n_frames == n == spectral.n_frames(x.size, n_fft, hop) and acc.n_gated == 0
    # Per-chunk work is float32: the per-frame log power agrees with the float64 reference to ~1e-4 dB, so the
    # per-bin means (what a response is) agree to 1e-3 dB; sums scale with the frame count. The 0 Hz and Nyquist
    # bins are real-valued and can come arbitrarily close to zero in a frame, where the float32 FFT's absolute
    # rounding (~1e-7 of the frame's level) dominates their log: they get 0.05 dB on means, 0.5 dB^2 on squares.
    inner = slice(1, -1)
    np.testing.assert_allclose(acc.sum_db[inner] / n, s[inner] / n, atol=1e-3)
    np.testing.assert_allclose(acc.sum_sq_db[inner] / n, q[inner] / n, rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(acc.sum_db / n, s / n, atol=0.05)
    np.testing.assert_allclose(acc.sum_sq_db / n, q / n, rtol=1e-4, atol=0.5)


@pytest.mark.parametrize("relative_gate_db", [None, 30.0])
@pytest.mark.parametrize("gate_db", [None, -60.0])
def test_c_kernel_matches_numpy_path(relative_gate_db, gate_db):
    """The fused C kernel and the numpy fallback do the same arithmetic (same floor, same gates)."""
    if logstats._logpower is None:
        pytest.skip("micmatch was built without its C kernel (no C compiler at install time)")
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(40000) * 0.3, np.zeros(9000), rng.standard_normal(20000) * 0.002,
                        rng.standard_normal(30000) * 0.05]).astype(np.float32)
    out = []
    for use_kernel in (True, False):
        acc = logstats.LogPowerAccumulator(n_fft=512, hop_length=128, gate_db=gate_db,
                                           relative_gate_db=relative_gate_db, use_kernel=use_kernel)
        for part in np.array_split(x, 7):
            acc.update(part)
        out.append(acc.result())
    (s1, q1, n1, g1), (s2, q2, n2, g2) = out
    assert (n1, g1) == (n2, g2) and n1 > 0
    if gate_db is not None or relative_gate_db is not None:
        assert g1 > 0  # the silent and quiet stretches were gated
    # Both are float32 per frame (kernel: polynomial log, ~1e-7 relative; numpy: libm log): 1e-4 dB on means.
    np.testing.assert_allclose(s1 / n1, s2 / n2, atol=1e-4)
    np.testing.assert_allclose(q1 / n1, q2 / n2, rtol=1e-6, atol=1e-2)


def test_accumulator_chunking_changes_nothing_but_rounding(rng):
    x = (rng.standard_normal(20000) * 0.1).astype(np.float32)
    whole = logstats.LogPowerAccumulator(n_fft=512, hop_length=128, gate_db=None)
    whole.update(x)
    pieces = logstats.LogPowerAccumulator(n_fft=512, hop_length=128, gate_db=None)
    for part in np.array_split(x, 37):
        pieces.update(part)
    assert whole.n_frames == pieces.n_frames
    np.testing.assert_allclose(pieces.sum_db, whole.sum_db, rtol=1e-10)


def test_accumulator_int16_scale_is_folded_into_window(rng):
    ints = (rng.standard_normal(8000) * 3000).clip(-32768, 32767).astype(np.int16)
    acc = logstats.LogPowerAccumulator(n_fft=512, hop_length=128, gate_db=None, scale=1 / 32768)
    acc.update(ints[:3001])
    acc.update(ints[3001:])
    s, _, n = _reference_stats(ints / 32768.0, 512, 128)
    assert acc.n_frames == n
    np.testing.assert_allclose(acc.sum_db / n, s / n, atol=1e-3)  # float32 per frame, as above


def test_full_scale_bin_centred_sine_reads_0_db():
    n_fft = 512
    x = np.sin(2 * np.pi * 32 * np.arange(4096) / n_fft)  # exactly on bin 32
    p = spectral.log_power_frames(x, n_fft=n_fft, hop_length=128)
    np.testing.assert_allclose(p[32], 0.0, atol=1e-9)


def test_floor_applies_to_digital_silence():
    p = spectral.log_power_frames(np.zeros(2048), n_fft=512, hop_length=128, floor_db=-123.0)
    np.testing.assert_array_equal(p, -123.0)


def _frame_levels(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Windowed RMS of each frame re full scale (dB), straight from the gate's definition."""
    w = spectral.hann(n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    ms = np.sum((frames * w) ** 2, axis=1) / np.sum(w * w)
    return 10 * np.log10(np.maximum(ms, 1e-30))


def _gate_signal() -> np.ndarray:
    # 1 s of a -6 dBFS-peak tone, 1 s of digital silence, 1 s of the tone 50 dB lower (still above -80 dBFS).
    loud = tone(1000.0, SR, 1.0, amplitude=0.5)
    quiet = tone(1000.0, SR, 1.0, amplitude=0.5 * 10 ** (-50 / 20))
    return np.concatenate([loud, np.zeros(SR), quiet])


def test_absolute_gate_counts_frames_above_it():
    n_fft, hop = 512, 128
    x = _gate_signal()
    acc = logstats.LogPowerAccumulator(n_fft=n_fft, hop_length=hop, gate_db=-80.0)
    acc.update(x.astype(np.float32))
    levels = _frame_levels(x, n_fft, hop)
    expected = int(np.sum(levels >= -80.0))
    assert acc.n_frames == expected
    assert acc.n_frames + acc.n_gated == levels.size
    # Every frame wholly inside the silence is gated; every frame wholly inside either tone counts.
    full_in_silence = (SR - n_fft) // hop + 1
    assert levels.size - full_in_silence - 6 <= acc.n_frames <= levels.size - full_in_silence


def test_relative_gate_keeps_only_frames_near_the_loudest():
    n_fft, hop = 512, 128
    x = _gate_signal()
    acc = logstats.LogPowerAccumulator(n_fft=n_fft, hop_length=hop, gate_db=-80.0, relative_gate_db=30.0)
    for part in np.array_split(x.astype(np.float32), 7):
        acc.update(part)
    levels = _frame_levels(x, n_fft, hop)
    bins = np.floor(levels / logstats.LEVEL_STEP_DB)
    keep = (levels >= -80.0) & (bins >= bins.max() - 30.0 / logstats.LEVEL_STEP_DB)
    assert acc.n_frames == int(keep.sum())
    frames_in_loud = (SR - n_fft) // hop + 1
    assert frames_in_loud <= acc.n_frames <= frames_in_loud + n_fft // hop  # the quiet tone is gated out
    # Only loud frames were summed: the mean at the tone's bin is the tone's level (-6 dB re full scale, Hann
    # leakage at 1000 Hz = bin 32 exactly at 16 kHz / 512 -> -6.02 dB).
    np.testing.assert_allclose(acc.sum_db[32] / acc.n_frames, 20 * np.log10(0.5), atol=0.5)


def test_windowed_power_response_matches_long_white_noise_simulation():
    n_fft = 256
    rng = np.random.default_rng(7)
    # An IR longer than n_fft (decaying noise tail behind a peak): the truth must not truncate it.
    ir = rng.standard_normal(600) * np.exp(-np.arange(600) / 120.0)
    ir[20] += 3.0
    noise = rng.standard_normal(4_000_000)
    y = scipy.signal.oaconvolve(noise, ir)[: noise.size]
    frames = np.lib.stride_tricks.sliding_window_view(y[1000:], n_fft)[:: n_fft // 2]
    w = spectral.hann(n_fft)
    power = np.mean(np.abs(np.fft.rfft(frames * w, axis=1)) ** 2, axis=0) / np.sum(w * w)
    simulated = 10 * np.log10(power)
    truth = spectral.windowed_power_response_db(ir, n_fft)
    # ~31000 half-overlapping frames: the simulated per-bin mean power has a relative std of about 0.6%
    # (0.025 dB), so 0.1 dB is four standard deviations for the worst of 129 bins; a systematic error (e.g. the
    # IR truncated to n_fft) would show as a bias well above the 0.01 dB allowed for the mean difference.
    np.testing.assert_allclose(truth, simulated, atol=0.1)
    assert abs(np.mean(truth - simulated)) < 0.01


def test_windowed_power_response_of_unit_impulse_is_flat():
    np.testing.assert_allclose(spectral.windowed_power_response_db(np.array([1.0]), 512), 0.0, atol=1e-9)
    np.testing.assert_allclose(spectral.windowed_power_response_db(np.array([0, 0, 0.5]), 512),
                               20 * np.log10(0.5), atol=1e-9)


@pytest.mark.parametrize("fraction", [1 / 12, 1 / 3, 1.0])
def test_smoothing_keeps_a_constant(fraction):
    f = spectral.frequencies(SR, 512)
    out = spectral.smooth_fractional_octave(np.full(f.size, -7.5), f, fraction)
    np.testing.assert_allclose(out, -7.5, atol=1e-12)


@pytest.mark.parametrize("fraction", [1 / 6, 1 / 3, 1.0])
def test_smoothing_is_the_mean_over_the_band(fraction):
    f = spectral.frequencies(SR, 512)
    v = 3.0 + 0.25 * np.arange(f.size)  # linear in bin
    out = spectral.smooth_fractional_octave(v, f, fraction)
    half = 2 ** (fraction / 2)
    for k in range(1, f.size):
        in_band = (f >= f[k] / half) & (f <= f[k] * half)
        # The mean of a linear curve over a band is its value at the band's centre: exact up to rounding.
        assert out[k] == pytest.approx(v[in_band].mean(), abs=1e-9)
    assert out[0] == v[0]  # 0 Hz is kept as it is


def test_smoothing_options_and_errors(rng):
    f = spectral.frequencies(SR, 64)
    v = rng.standard_normal(f.size)
    same = spectral.smooth_fractional_octave(v, f, None)
    assert same is not v
    np.testing.assert_array_equal(same, v)
    np.testing.assert_array_equal(spectral.smooth_fractional_octave(v, f, 0), v)
    with pytest.raises(ValueError, match="values have 33 bins but freqs has 32"):
        spectral.smooth_fractional_octave(v, f[:-1], 1 / 3)


def test_db_conversions():
    np.testing.assert_allclose(spectral.db_to_gain([0.0, 20.0, -6.0206]), [1.0, 10.0, 0.5], rtol=1e-5)
    np.testing.assert_allclose(spectral.gain_to_db([1.0, 10.0, -0.5]), [0.0, 20.0, -6.0206], atol=1e-4)
    assert spectral.gain_to_db(0.0, floor_db=-90.0) == -90.0
    g = np.array([0.3, 2.0])
    np.testing.assert_allclose(spectral.db_to_gain(spectral.gain_to_db(g)), g, rtol=1e-12)


def test_grid_helpers():
    np.testing.assert_allclose(spectral.frequencies(8000, 8), [0, 1000, 2000, 3000, 4000])
    assert spectral.n_frames(100, 256, 64) == 0
    assert spectral.n_frames(256, 256, 64) == 1
    assert spectral.n_frames(1000, 256, 64) == 1 + (1000 - 256) // 64
    w = spectral.hann(8)
    np.testing.assert_allclose(w, scipy.signal.get_window("hann", 8), atol=1e-15)  # periodic Hann


def test_white_noise_statistics_are_flat(rng):
    # Mean log power of white noise is flat across bins (excluding DC/Nyquist, which are real-valued).
    x = white(rng, SR, 4.0, level=0.1).astype(np.float32)
    acc = logstats.LogPowerAccumulator(n_fft=256, hop_length=128, gate_db=None)
    acc.update(x)
    mean = acc.sum_db[1:-1] / acc.n_frames
    # ~500 frames of a chi-square(2) log: std of the per-bin mean about 5.6/sqrt(500) = 0.25 dB.
    assert np.ptp(mean) < 2.0

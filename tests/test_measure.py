"""Sweeps and impulses: analytic truths, real measured microphone responses, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from micmatch.errors import AudioError, MeasurementError
from micmatch.measure import measure_impulses, measure_sweep
from micmatch.response import ResponseSet
from micmatch.simulate import load_ir
from micmatch.sweep import deconvolve, exponential_sweep, harmonic_advance_s


def true_response_db(h: np.ndarray, n_fft: int) -> np.ndarray:
    """|H| of the whole impulse response at the n_fft grid frequencies k * sr / n_fft.

    The IR is zero-padded to 8 n_fft and every 8th bin is kept, so the truth is the full IR's own magnitude (not
    a windowed one), whatever its length. MicIRP IRs hold over 99.99% of their energy in the first 4096 samples
    after the start of the measurement window, so an n_fft = 8192 window (5.4 Hz bins at 44.1 kHz, so 9 bins lie
    below the 50 Hz edge) captures them without truncation error.
    """
    n = max(8 * n_fft, -(-h.shape[-1] // n_fft) * n_fft)
    step = n // n_fft
    return 20.0 * np.log10(np.abs(np.fft.rfft(h, n=n))[::step])


def record(sweep, h, rng, *, sample_rate, snr_db=40.0, clip=False):
    """The sweep through IR ``h`` (optionally a tanh soft clipper), after a random start delay of up to 1 s, with
    white noise at ``snr_db`` below the recorded signal's RMS and 0.5 s of extra recording at the end."""
    y = scipy.signal.fftconvolve(sweep, h)
    if clip:
        limit = 2.0 * np.abs(y).max()  # mild: peaks are compressed by 0.7 dB
        y = limit * np.tanh(y / limit)
    delay = int(rng.integers(0, sample_rate))
    rec = np.concatenate([np.zeros(delay), y, np.zeros(sample_rate // 2)])
    noise = rng.standard_normal(rec.shape[-1]) * np.sqrt(np.mean(y * y)) * 10.0 ** (-snr_db / 20.0)
    return rec + noise, delay


def band_rms(a, b, freqs, lo, hi):
    band = (freqs >= lo) & (freqs <= hi)
    return float(np.sqrt(np.mean((a[band] - b[band]) ** 2)))


# -- the test signal -----------------------------------------------------------------------------------------------

def test_sweep_instantaneous_frequency_is_exponential():
    sr = 16000
    x = exponential_sweep(sr, duration_s=2.0, f_start_hz=50.0, f_end_hz=5000.0, level_db=0.0, fade_in_s=0.0,
                          fade_out_s=0.0, silence_after_s=0.0)
    phase = np.unwrap(np.angle(scipy.signal.hilbert(x)))
    inst = np.diff(phase) * sr / (2 * np.pi)
    t = (np.arange(inst.shape[0]) + 0.5) / sr
    expected = 50.0 * np.exp(t / 2.0 * np.log(100.0))
    middle = slice(sr // 4, -sr // 4)  # the Hilbert transform is inexact near the ends
    # 1% tolerance: the discrete phase difference and the analytic signal agree to well under 1% mid-sweep
    np.testing.assert_allclose(inst[middle], expected[middle], rtol=0.01)


def test_sweep_level_fades_and_silences():
    sr = 8000
    x = exponential_sweep(sr, duration_s=1.0, level_db=-6.0, fade_in_s=0.1, fade_out_s=0.1, silence_before_s=0.25,
                          silence_after_s=0.5)
    assert x.shape == (int(1.75 * sr),)
    assert np.all(x[: sr // 4] == 0) and np.all(x[-sr // 2 :] == 0)
    assert np.abs(x).max() == pytest.approx(10 ** (-6 / 20), rel=1e-3)
    assert abs(x[sr // 4]) < 1e-12  # fade starts at zero


@pytest.mark.parametrize("kwargs, match", [
    ({"duration_s": 0.01}, "duration_s=0.01 must be at least 0.1"),
    ({"f_start_hz": 500.0, "f_end_hz": 100.0}, "need 0 < f_start_hz < f_end_hz"),
    ({"level_db": 3.0}, "level_db=3.0 must be at most 0"),
    ({"fade_in_s": 0.8, "fade_out_s": 0.8}, "must be non-negative and fit"),
    ({"silence_after_s": -1.0}, "must be non-negative"),
])
def test_sweep_bad_options(kwargs, match):
    with pytest.raises(MeasurementError, match=match):
        exponential_sweep(8000, **{"duration_s": 1.0, **kwargs})


def test_sweep_bad_rate():
    with pytest.raises(MeasurementError, match="sample_rate=0 must be a positive integer"):
        exponential_sweep(0)


def test_harmonic_advance():
    assert harmonic_advance_s(1, duration_s=5.0, f_start_hz=20.0, f_end_hz=20000.0) == 0.0
    assert harmonic_advance_s(2, duration_s=5.0, f_start_hz=20.0, f_end_hz=20000.0) == pytest.approx(
        5.0 * np.log(2) / np.log(1000))
    with pytest.raises(MeasurementError, match="order=0 must be a positive integer"):
        harmonic_advance_s(0, duration_s=1.0, f_start_hz=20.0, f_end_hz=200.0)


# -- deconvolution ---------------------------------------------------------------------------------------------

def test_deconvolve_recovers_a_known_filter_at_its_lag():
    sr = 16000
    sw = exponential_sweep(sr, duration_s=1.0, f_start_hz=20.0, f_end_hz=7800.0, silence_after_s=0.0)
    h = np.array([0.0, 0.5, 0.25, -0.125])
    rec = np.concatenate([np.zeros(300), np.convolve(sw, h), np.zeros(100)])
    resp, zero = deconvolve(rec, sw)
    assert resp.shape == (rec.shape[-1] + sw.shape[-1] - 1,)
    lag = int(np.argmax(np.abs(resp))) - zero
    assert lag == 301  # 300 samples of delay + the filter's own one-sample delay
    # in-band the regularised inverse is exact to about 0.1% of the peak (a short filter is not band-limited,
    # so a little of it lies outside the sweep's band and is lost)
    np.testing.assert_allclose(resp[zero + 300 : zero + 304], h, atol=0.01)


def test_sweep_measurement_of_a_pure_gain_is_flat_and_finds_the_delay():
    sr = 16000
    sw = exponential_sweep(sr, duration_s=2.0)
    rec = np.concatenate([np.zeros(4321), 0.5 * sw, np.zeros(2000)])
    m = measure_sweep(rec, sw, sr, n_fft=1024)
    assert m.onset_samples == [4321]
    f = m.frequencies
    band = (f >= 50) & (f <= 0.45 * sr)
    # the whole sweep is inside the recording with no noise: -6.02 dB everywhere in band to 0.01 dB
    np.testing.assert_allclose(m.response_db[band], 20 * np.log10(0.5), atol=0.01)


def test_sweep_response_set_round_trip(tmp_path):
    sr = 16000
    sw = exponential_sweep(sr, duration_s=1.0)
    m = measure_sweep(np.concatenate([np.zeros(100), sw]), sw, sr, n_fft=512)
    rs = m.to_response_set("dev")
    assert rs.config.n_fft == 512 and rs["dev"].method == "sweep"
    back = ResponseSet.load(rs.save(tmp_path / "r.json"))
    np.testing.assert_allclose(back["dev"].response_db, m.response_db, atol=1e-5)
    merged = back.merge(rs)  # a repeated measurement merges to the mean of the dB responses
    np.testing.assert_allclose(merged["dev"].response_db, m.response_db, atol=1e-5)
    assert merged["dev"].stats.n_frames == 2


# -- real measured microphones ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, sample_rate", [("Sony_C37Fet", 44100), ("EV_RE20_HPF", 48000),
                                               ("Altec_639", 44100)])
def test_sweep_recovers_a_real_microphone(data_dir, rng, name, sample_rate):
    ir = load_ir(data_dir / "micirp" / "ir" / f"{name}.wav", sample_rate)
    sw = exponential_sweep(sample_rate, duration_s=10.0)
    rec, delay = record(sw, ir.ir, rng, sample_rate=sample_rate)
    m = measure_sweep(rec, sw, sample_rate, n_fft=8192)
    assert m.onset_samples[0] == delay + ir.delay
    truth = true_response_db(ir.ir, 8192)
    assert band_rms(m.response_db, truth, m.frequencies, 50.0, 0.45 * sample_rate) < 0.5


@pytest.mark.parametrize("name, sample_rate", [("Sony_C37Fet", 44100), ("EV_RE20_HPF", 48000)])
def test_sweep_through_soft_clipping_stays_within_1db(data_dir, rng, name, sample_rate):
    ir = load_ir(data_dir / "micirp" / "ir" / f"{name}.wav", sample_rate)
    sw = exponential_sweep(sample_rate, duration_s=10.0)
    rec, _ = record(sw, ir.ir, rng, sample_rate=sample_rate, clip=True)
    m = measure_sweep(rec, sw, sample_rate, n_fft=8192)
    truth = true_response_db(ir.ir, 8192)
    assert band_rms(m.response_db, truth, m.frequencies, 50.0, 0.45 * sample_rate) < 1.0


def test_harmonics_are_windowed_out(rng):
    """A strong square-law distortion puts a second-harmonic response 0.35 s before the linear one; the measured
    response must not see it (it would add a -20 dB copy, visible as ripple)."""
    sr = 16000
    # the band ends at 3.8 kHz so that the second harmonic (up to 7.6 kHz) stays below Nyquist and does not alias
    sw = exponential_sweep(sr, duration_s=4.0, f_start_hz=20.0, f_end_hz=3800.0, level_db=0.0)
    y = sw + 0.1 * sw**2
    rec = np.concatenate([np.zeros(1000), y, np.zeros(4000)])
    m = measure_sweep(rec, sw, sr, n_fft=2048, resolution_cycles=None)
    f = m.frequencies
    # Above 200 Hz (below it the square law's slowly varying DC term, 0.05 x the sweep's envelope, leaks in):
    # a -20 dB copy of the response inside the window would ripple by +-0.8 dB; windowed out, it is flat to 0.05 dB
    band = (f >= 200) & (f <= 3500)
    assert np.abs(m.response_db[band]).max() < 0.05
    # the same measurement with a window whose flat part reaches back over the second harmonic is not flat
    lag2 = int(harmonic_advance_s(2, duration_s=4.0, f_start_hz=20.0, f_end_hz=3800.0) * sr)
    wide = measure_sweep(rec, sw, sr, n_fft=65536, pre_s=(2 * lag2 + 400) / sr, resolution_cycles=None)
    assert np.abs(wide.response_db[(wide.frequencies >= 200) & (wide.frequencies <= 3500)]).max() > 0.3


# -- impulses ---------------------------------------------------------------------------------------------------

def test_impulses_average_several_clicks(data_dir, rng):
    sr = 44100
    ir = load_ir(data_dir / "micirp" / "ir" / "Sony_C37Fet.wav", sr)
    clicks = np.zeros(3 * sr)
    positions = [5000, 40000, 90000]
    for p in positions:
        clicks[p] = 0.5
    rec = scipy.signal.fftconvolve(clicks, ir.ir)[: clicks.shape[-1]]
    rec = rec + rng.standard_normal(rec.shape[-1]) * 1e-4
    m = measure_impulses(rec, sr, n_fft=8192)
    assert m.meta["n_clicks"] == 3
    assert m.onset_samples == [p + ir.delay for p in positions]
    truth = true_response_db(ir.ir, 8192) + 20 * np.log10(0.5)
    assert band_rms(m.response_db, truth, m.frequencies, 50.0, 0.45 * sr) < 0.5
    assert m.to_response_set("sony")["sony"].method == "impulse"


# -- bad input --------------------------------------------------------------------------------------------------

def test_no_sweep_in_recording(rng):
    sr = 16000
    sw = exponential_sweep(sr, duration_s=2.0)
    with pytest.raises(MeasurementError, match="no sweep found in the recording.*expected a recording of the sweep"):
        measure_sweep(rng.standard_normal(5 * sr) * 0.1, sw, sr)


def test_silent_recording():
    sr = 16000
    sw = exponential_sweep(sr, duration_s=1.0)
    with pytest.raises(MeasurementError, match="recording is silent.*expected a recording of the sweep"):
        measure_sweep(np.zeros(3 * sr), sw, sr)
    with pytest.raises(MeasurementError, match="sweep is silent"):
        measure_sweep(np.ones(3 * sr) * 0.1, np.zeros(sr), sr)
    with pytest.raises(MeasurementError, match="recording is silent.*expected one or more recorded clicks"):
        measure_impulses(np.zeros(sr), sr)


def test_recording_cut_short_or_started_late():
    sr = 16000
    sw = exponential_sweep(sr, duration_s=2.0, silence_after_s=0.0)
    with pytest.raises(MeasurementError, match="ends .* before the sweep does"):
        measure_sweep(np.concatenate([np.zeros(500), sw[: sr]]), sw, sr)
    with pytest.raises(MeasurementError, match="starts .* after the sweep began"):
        measure_sweep(np.concatenate([sw[sr // 2 :], np.zeros(sr)]), sw, sr)


def test_no_click_in_recording(rng):
    sr = 16000
    with pytest.raises(MeasurementError, match="no impulse found in the recording.*expected one or more short clicks"):
        measure_impulses(rng.standard_normal(2 * sr) * 0.1, sr)
    click = np.zeros(sr)
    click[sr - 10] = 1.0
    with pytest.raises(MeasurementError, match="every click is closer"):
        measure_impulses(click + rng.standard_normal(sr) * 1e-5, sr)


def test_bad_n_fft_and_audio():
    sr = 16000
    sw = exponential_sweep(sr, duration_s=1.0)
    with pytest.raises(MeasurementError, match="n_fft=1001 must be an even integer"):
        measure_sweep(sw, sw, sr, n_fft=1001)
    with pytest.raises(MeasurementError, match="pre_s gives"):
        measure_sweep(sw, sw, sr, n_fft=64, pre_s=0.01)
    with pytest.raises(AudioError, match="contains NaN"):
        measure_sweep(np.full(100, np.nan), sw, sr)

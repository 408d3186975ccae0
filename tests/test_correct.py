"""correct: exact reconstruction at unity gain, sample alignment of the FIR path, equality with lfilter, files equal
arrays, a known curve re-measured after correction, regularisation, reference-free forms, FIR designs, overs,
formats, and the exports other tools load."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from conftest import pink

from micmatch import audio
from micmatch.correct import (
    Correction,
    apply_correction,
    correct_file,
    correction_curve,
)
from micmatch.errors import AudioError, ConfigMismatchError
from micmatch.estimate import estimate_responses
from micmatch.exports import export, export_csv, export_equalizerapo, export_ir_wav
from micmatch.fir import design_fir, fir_response_db
from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig
from micmatch.simulate import DeviceModel, Section
from micmatch.spectral import frequencies

SR = 8000
N_FFT = 512


def _flat(n_fft: int = N_FFT, sr: int = SR) -> Correction:
    return Correction("a", "b", sr, n_fft, np.zeros(n_fft // 2 + 1))


def _curve(db_fn, n_fft: int = N_FFT, sr: int = SR) -> Correction:
    return Correction("a", "b", sr, n_fft, db_fn(frequencies(sr, n_fft)))


def _phone_like(f: np.ndarray) -> np.ndarray:
    """A smooth target with a low cut, a presence bump and a high roll-off (about -25..+6 dB)."""
    lf = np.maximum(f, 1.0)
    return (-12 * np.exp(-lf / 300) + 6 * np.exp(-((np.log2(lf / 2500)) ** 2) / 0.3)
            - 10 * (1 / (1 + (3000 / lf) ** 4)))


@pytest.mark.parametrize("n", [100, 511, 512, 4097, 300_000])
def test_stft_path_reconstructs_at_unity_gain(rng, n):
    x = (rng.standard_normal((2, n)) * 0.3).astype(np.float32)
    y = apply_correction(x, SR, _flat(), method="stft")
    assert y.shape == x.shape and y.dtype == np.float32
    # float32 FFT/overlap-add of values ~1: rounding ~1e-7, well inside 1e-6.
    np.testing.assert_allclose(y, x, rtol=0, atol=1e-6)


def test_fir_path_is_sample_aligned():
    corr = _curve(_phone_like)
    x = np.zeros(4000, dtype=np.float32)
    x[1234] = 1.0
    y = apply_correction(x, SR, corr, method="fir")
    assert y.shape == x.shape
    assert int(np.argmax(np.abs(y))) == 1234  # a linear-phase FIR's peak is its centre tap, removed as delay


def test_fir_path_cross_correlation_peaks_at_lag_zero(rng):
    corr = _curve(lambda f: 4 * np.sin(f / 700))
    x = (rng.standard_normal(20000) * 0.1).astype(np.float32)
    y = apply_correction(x, SR, corr, method="fir")
    lags = scipy.signal.correlation_lags(x.size, y.size)
    xc = scipy.signal.correlate(y, x, method="fft")
    assert lags[np.argmax(np.abs(xc))] == 0


@pytest.mark.parametrize("design", ["firls", "firwin2"])
def test_fir_path_equals_lfilter_without_the_delay(rng, design):
    corr = _curve(_phone_like)
    taps = design_fir(corr, n_taps=257, design=design)
    d = (257 - 1) // 2
    x = (rng.standard_normal((2, 5000)) * 0.2).astype(np.float32)
    ours = apply_correction(x, SR, corr, method="fir", n_taps=257, design=design)
    padded = np.concatenate([x.astype(np.float64), np.zeros((2, d))], axis=-1)
    ref = scipy.signal.lfilter(taps, [1.0], padded, axis=-1)[:, d:]
    # Overlap-save in float32 against float64 direct filtering: errors ~1e-7 x sqrt(taps) x signal level.
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5)


def test_minimum_phase_has_the_magnitude_and_no_bulk_delay():
    corr = _curve(_phone_like)
    lin = design_fir(corr, n_taps=1025)
    mp = design_fir(corr, n_taps=1025, phase="minimum")
    f = np.linspace(150, 0.45 * SR, 200)
    # Homomorphic minimum phase of the full-length filter: same magnitude to within the cepstral aliasing
    # (a few hundredths of a dB for a smooth target).
    np.testing.assert_allclose(fir_response_db(mp, f, SR), fir_response_db(lin, f, SR), atol=0.1)
    assert int(np.argmax(np.abs(mp))) < 20 and int(np.argmax(np.abs(lin))) == 512
    x = np.zeros(3000, dtype=np.float32)
    x[1000] = 1
    y = apply_correction(x, SR, corr, method="fir", phase="minimum")
    assert 1000 <= int(np.argmax(np.abs(y))) < 1020  # causal: nothing before the impulse but rounding
    assert np.abs(y[:1000]).max() < 1e-6


def test_firls_is_at_least_as_accurate_as_firwin2():
    corr = _curve(_phone_like, n_fft=2048)
    f = corr.frequencies
    band = (f >= 200) & (f <= 0.45 * SR)
    errs = {}
    for design in ("firls", "firwin2"):
        taps = design_fir(corr, n_taps=1025, design=design)
        errs[design] = np.abs(fir_response_db(taps, f[band], SR) - corr.gain_db[band]).max()
    assert errs["firls"] <= errs["firwin2"]
    assert errs["firls"] < 0.1


@pytest.mark.parametrize("method", ["stft", "fir"])
def test_correct_file_equals_apply_correction(tmp_path, rng, method):
    corr = _curve(_phone_like)
    x = (rng.standard_normal((2, 300_000)) * 0.05).astype(np.float32)  # more than two 131072-sample blocks
    src = audio.save(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    result = correct_file(src, tmp_path / "out" / "in.wav", corr, method=method)
    y, sr = audio.load(result.output)
    expected = apply_correction(x, SR, corr, method=method)
    assert sr == SR and result.action == "ok"
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-7)


def _noise_clips(seed: int, n: int = 6, seconds: float = 2.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [pink(rng, SR, seconds, level=0.05) for _ in range(n)]


@pytest.mark.parametrize("method", ["stft", "fir"])
def test_correct_toward_b_then_remeasure_gives_b(method):
    shelf = DeviceModel("b", (Section("highshelf", 1500.0, 6.0),))
    # Both devices recorded the same clips (the estimate does not use the pairing, it only removes the clips'
    # sampling noise from the comparison, as in the DCASE setting).
    a_recs = _noise_clips(1)
    b_recs = [shelf.record(c, SR) for c in a_recs]
    kw = {"n_fft": N_FFT, "hop_length": 128}
    rs = estimate_responses({"a": a_recs, "b": b_recs}, SR, **kw)
    corr = correction_curve(rs, "a", "b")
    f = rs.frequencies
    band = (f >= 100) & (f <= 0.45 * SR)
    truth = shelf.magnitude_db(f, SR)
    # The shelf is smooth over a 512-point window's resolution, so the mean-log estimate is within a few
    # hundredths of a dB of it; 0.1 dB RMS leaves room for the log of sums of leaked power.
    assert np.sqrt(np.mean((corr.gain_db[band] - truth[band]) ** 2)) < 0.1
    corrected = [apply_correction(c, SR, corr, method=method) for c in a_recs]
    again = estimate_responses({"a_corrected": corrected, "b": b_recs}, SR, **kw)
    residual = again.relative_db("a_corrected", "b")[band]
    assert np.sqrt(np.mean(residual**2)) < 0.1


def test_unaligned_estimate_with_different_clips_per_device():
    shelf = DeviceModel("b", (Section("highshelf", 1500.0, 6.0),))
    a_recs = _noise_clips(1, n=8, seconds=4.0)
    b_recs = [shelf.record(c, SR) for c in _noise_clips(2, n=8, seconds=4.0)]  # other clips
    rs = estimate_responses({"a": a_recs, "b": b_recs}, SR, n_fft=N_FFT, hop_length=128)
    f = rs.frequencies
    band = (f >= 100) & (f <= 0.45 * SR)
    err = rs.relative_db("b", "a")[band] - shelf.magnitude_db(f, SR)[band]
    # Per bin the mean log power of noise has a std of 5.6 dB / sqrt(frames); ~1000 independent frames per
    # device give ~0.25 dB per bin for the difference of two devices, plus a level offset of a few tenths of a
    # dB (clips are normalised by their RMS, which the lowest bins of pink noise dominate).
    assert np.sqrt(np.mean(err**2)) < 0.5


def test_clamps_and_floors():
    cfg = SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop_length=128)
    f = cfg.frequencies
    a = -60 * (f > 3000) + 10 * np.sin(f / 300)  # a device that recorded nothing above 3 kHz
    b = np.zeros_like(f)
    rs = ResponseSet(cfg, [DeviceResponse("a", a, method="model"), DeviceResponse("b", b, method="model")])
    c = correction_curve(rs, "a", "b")
    assert c.gain_db.max() <= 20.0 and c.gain_db.min() >= -30.0
    assert c.gain_db.max() == 20.0  # the 60 dB hole is clamped at the default boost limit
    c2 = correction_curve(rs, "a", "b", max_boost_db=6.0, max_cut_db=3.0)
    assert c2.gain_db.max() == 6.0 and c2.gain_db.min() == -3.0
    # The floor: a response is floored at its max minus dynamic_range_db before the ratio.
    c3 = correction_curve(rs, "a", "b", dynamic_range_db=15.0, max_boost_db=100.0)
    np.testing.assert_allclose(c3.gain_db[f > 3000], 0 - (a.max() - 15.0))
    assert c.settings["max_boost_db"] == 20.0 and c.settings["max_cut_db"] == 30.0
    with pytest.raises(ValueError, match="must be non-negative"):
        correction_curve(rs, "a", "b", max_boost_db=-1.0)


def test_smoothing_option_smooths():
    cfg = SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop_length=128)
    rng = np.random.default_rng(3)
    rs = ResponseSet(cfg, [DeviceResponse("a", rng.standard_normal(cfg.n_bins), method="model"),
                           DeviceResponse("b", np.zeros(cfg.n_bins), method="model")])
    raw = correction_curve(rs, "a", "b").gain_db
    smooth = correction_curve(rs, "a", "b", smoothing_octaves=1 / 3).gain_db
    assert np.std(np.diff(smooth[10:])) < 0.5 * np.std(np.diff(raw[10:]))


def test_reference_free_forms():
    cfg = SpectralConfig(sample_rate=SR, n_fft=N_FFT, hop_length=128)
    f = cfg.frequencies
    a = 3 * np.cos(f / 500) - 4
    b = 2 * np.sin(f / 900) + 1
    rs = ResponseSet(cfg, [DeviceResponse("a", a, method="model"), DeviceResponse("b", b, method="model")])
    np.testing.assert_allclose(correction_curve(rs, "a", ":mean").gain_db, (b - a) / 2, atol=1e-12)
    flat = correction_curve(rs, "a", ":flat").gain_db
    band = (f >= 100) & (f <= 0.45 * SR)
    np.testing.assert_allclose(flat, a[band].mean() - a, atol=1e-12)
    assert abs(flat[band].mean()) < 1e-12


def test_correction_validation_errors(rng):
    with pytest.raises(ConfigMismatchError, match="gain_db has 10 bins; n_fft=512 needs 257"):
        Correction("a", "b", SR, N_FFT, np.zeros(10))
    with pytest.raises(ValueError, match="gain_db contains NaN"):
        Correction("a", "b", SR, N_FFT, np.full(257, np.nan))
    x = (rng.standard_normal(2000) * 0.1).astype(np.float32)
    with pytest.raises(ConfigMismatchError, match="audio is at 16000 Hz but the correction was estimated at 8000 Hz"):
        apply_correction(x, 16000, _flat())
    with pytest.raises(ValueError, match="method='eq' must be one of"):
        apply_correction(x, SR, _flat(), method="eq")
    with pytest.raises(ValueError, match="hop_length=200 must divide n_fft=512 at least 4 times"):
        apply_correction(x, SR, _flat(), hop_length=200)
    with pytest.raises(ValueError, match="n_taps=1024 must be an odd integer"):
        design_fir(_flat(), n_taps=1024)
    with pytest.raises(ValueError, match="design='remez' must be one of"):
        design_fir(_flat(), design="remez")
    with pytest.raises(ValueError, match="phase='mixed' must be one of"):
        design_fir(_flat(), phase="mixed")
    with pytest.raises(AudioError, match=r"audio\.shape=\(2000, 2\) looks like \(samples, channels\)"):
        apply_correction(np.zeros((2000, 2), dtype=np.float32), SR, _flat())


def test_apply_correction_never_modifies_input(rng):
    x = (rng.standard_normal(3000) * 0.1).astype(np.float32)
    copy = x.copy()
    for method in ("stft", "fir"):
        apply_correction(x, SR, _curve(_phone_like), method=method)
    np.testing.assert_array_equal(x, copy)


# Files: overs, formats, refusal to overwrite ------------------------------------------------------------------


def _hot_file(tmp_path, subtype="PCM_16", ext="wav"):
    t = np.arange(SR) / SR
    x = (0.9 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return audio.save(tmp_path / f"hot.{ext}", x, SR, subtype=subtype), x


def test_overs_float_writes_float_with_warning(tmp_path):
    src, x = _hot_file(tmp_path)
    boost = _curve(lambda f: np.full(f.size, 6.0))
    with pytest.warns(UserWarning, match=r"hot\.wav: corrected peak \+5\.1 dBFS exceeds full scale; written as 32-bit"):
        r = correct_file(src, tmp_path / "o" / "hot.wav", boost, overs="float")
    assert r.action == "float" and r.peak == pytest.approx(0.9 * 10 ** (6 / 20), rel=1e-3)
    assert sf.info(str(r.output)).subtype == "FLOAT"
    y, _ = audio.load(r.output)
    assert np.abs(y).max() == pytest.approx(r.peak, rel=1e-6)


def test_overs_scale_lowers_to_minus_0_1_dbfs(tmp_path):
    src, _ = _hot_file(tmp_path)
    boost = _curve(lambda f: np.full(f.size, 6.0))
    with pytest.warns(UserWarning, match="scaled by -5.2 dB"):
        r = correct_file(src, tmp_path / "o" / "hot.wav", boost, overs="scale")
    assert r.action == "scaled" and sf.info(str(r.output)).subtype == "PCM_16"
    y, _ = audio.load(r.output)
    assert 20 * np.log10(np.abs(y).max()) == pytest.approx(-0.1, abs=0.01)


def test_overs_clip_counts(tmp_path):
    src, _ = _hot_file(tmp_path)
    boost = _curve(lambda f: np.full(f.size, 6.0))
    with pytest.warns(UserWarning, match=r"hot\.wav: \d+ samples clipped at full scale"):
        r = correct_file(src, tmp_path / "o" / "hot.wav", boost, overs="clip")
    assert r.action == "clipped"
    n = int(re.search(r"(\d+) samples clipped", r.message).group(1))
    assert n > 1000
    with pytest.raises(ValueError, match="overs='wrap' must be one of"):
        correct_file(src, tmp_path / "o2.wav", boost, overs="wrap")


def test_overs_float_falls_back_to_scale_for_flac(tmp_path):
    src, _ = _hot_file(tmp_path, subtype="PCM_24", ext="flac")
    boost = _curve(lambda f: np.full(f.size, 6.0))
    with pytest.warns(UserWarning, match="scaled by"):
        r = correct_file(src, tmp_path / "o" / "hot.flac", boost, overs="float")
    assert r.action == "scaled"
    info = sf.info(str(r.output))
    assert (info.format, info.subtype) == ("FLAC", "PCM_24")


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("wav", "PCM_24"), ("flac", "PCM_16"), ("wav", "FLOAT")])
def test_output_keeps_format_and_subtype(tmp_path, rng, ext, subtype):
    x = (rng.standard_normal((2, 3000)) * 0.05).astype(np.float32)
    src = audio.save(tmp_path / f"x.{ext}", x, SR, subtype=subtype)
    raw = src.read_bytes()
    r = correct_file(src, tmp_path / "out" / f"x.{ext}", _curve(_phone_like))
    a, b = sf.info(str(src)), sf.info(str(r.output))
    assert (b.format, b.subtype, b.channels, b.frames, b.samplerate) == (a.format, a.subtype, 2, 3000, SR)
    assert src.read_bytes() == raw  # the input is only read
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"x.{ext}"]  # no staging files left


def test_output_over_input_is_refused(tmp_path, rng):
    src = audio.save(tmp_path / "x.wav", (rng.standard_normal(3000) * 0.05).astype(np.float32), SR)
    raw = src.read_bytes()
    with pytest.raises(AudioError, match=r"x\.wav: output would overwrite the input"):
        correct_file(src, tmp_path / "." / "x.wav", _flat())
    assert src.read_bytes() == raw


def test_correct_file_sample_rate_mismatch(tmp_path, rng):
    src = audio.save(tmp_path / "x16.wav", (rng.standard_normal(3000) * 0.05).astype(np.float32), 16000)
    with pytest.raises(ConfigMismatchError, match=r"x16\.wav is at 16000 Hz but the correction was estimated at 8000"):
        correct_file(src, tmp_path / "o.wav", _flat())
    assert not (tmp_path / "o.wav").exists()


# Exports ------------------------------------------------------------------------------------------------------


def test_export_csv(tmp_path):
    corr = _curve(_phone_like)
    path = export_csv(corr, tmp_path / "c.csv")
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["frequency_hz", "gain_db"]
    table = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(table[:, 0], corr.frequencies, atol=5e-4)
    np.testing.assert_allclose(table[:, 1], corr.gain_db, atol=5e-5)  # printed with 4 decimals


@pytest.mark.parametrize("n_taps", [1025, 257])
def test_export_wav_ir(tmp_path, n_taps):
    corr = _curve(_phone_like)
    path = export_ir_wav(corr, tmp_path / "ir.wav", n_taps=n_taps)
    h, sr = audio.load(path, dtype="float64")
    assert sr == SR and h.shape == (1, n_taps) and sf.info(str(path)).subtype == "FLOAT"
    assert int(np.argmax(np.abs(h[0]))) == (n_taps - 1) // 2
    np.testing.assert_allclose(h[0], design_fir(corr, n_taps=n_taps), atol=1e-7)  # float32 storage


def test_export_equalizerapo_parses_back_to_the_curve(tmp_path):
    corr = _curve(_phone_like)
    text = export_equalizerapo(corr, tmp_path / "eq.txt").read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# micmatch correction a -> b at 8000 Hz")
    preamp = re.fullmatch(r"Preamp: (-?\d+\.\d) dB", lines[1])
    assert preamp is not None
    assert lines[2].startswith("GraphicEQ: ")
    pairs = [p.split() for p in lines[2][len("GraphicEQ: "):].split("; ")]
    freqs = np.array([float(a) for a, _ in pairs])
    gains = np.array([float(b) for _, b in pairs])
    assert np.all(np.diff(freqs) > 0) and freqs[0] == 20 and freqs[-1] < SR / 2
    # Gains are printed with one decimal: within 0.05 dB of the curve at the printed frequency (which is itself
    # rounded to 1 Hz; the curve changes by < 0.01 dB per Hz here).
    np.testing.assert_allclose(gains, corr.interpolate_db(freqs), atol=0.06)
    assert float(preamp.group(1)) == pytest.approx(-max(0.0, corr.interpolate_db(freqs).max()), abs=0.1)


def test_export_dispatch(tmp_path):
    corr = _flat()
    assert export(corr, tmp_path / "a.csv", "csv").read_text().startswith("frequency_hz,gain_db\n")
    assert export(corr, tmp_path / "a.txt", "equalizerapo").read_text().count("GraphicEQ:") == 1
    assert sf.info(str(export(corr, tmp_path / "a.wav", "wav", n_taps=65))).frames == 65
    with pytest.raises(ValueError, match="format='xml' must be one of"):
        export(corr, tmp_path / "a.xml", "xml")


def test_interrupted_correction_leaves_no_file(tmp_path, rng, monkeypatch):
    import micmatch.render as correct_module

    src = audio.save(tmp_path / "in" / "x.wav", (rng.standard_normal(300_000) * 0.05).astype(np.float32), SR)
    real = correct_module.stream_with_context

    def interrupted(*args, **kwargs):
        for i, block in enumerate(real(*args, **kwargs)):
            if i == 1:
                raise KeyboardInterrupt  # as Ctrl-C half way through the file
            yield block

    monkeypatch.setattr(correct_module, "stream_with_context", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        correct_file(src, out / "x.wav", _flat())
    assert list(out.iterdir()) == []  # neither a partial output nor the staging file


def test_nan_input_file_is_refused_without_output(tmp_path, rng):
    x = (rng.standard_normal(5000) * 0.05).astype(np.float32)
    x[4000] = np.nan
    src = tmp_path / "nan.wav"
    sf.write(str(src), x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN or infinite samples"):
        correct_file(src, tmp_path / "out" / "nan.wav", _flat())
    assert list((tmp_path / "out").iterdir()) == []

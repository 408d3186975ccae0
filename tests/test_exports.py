"""Parametric EQ fitting and the exports audio tools read; correct's batch options (FIR cache, jobs, resample)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from click.testing import CliRunner

from micmatch import audio, fir
from micmatch.cli import main
from micmatch.correct import Correction, resample_correction
from micmatch.errors import ParameterError
from micmatch.fir import design_fir, fir_response_db
from micmatch.parametric import (
    Biquad,
    camilladsp_yaml,
    equalizerapo_text,
    fit_parametric,
)
from micmatch.simulate import BUILTIN_DEVICES

SR = 44100


def _curve(filters, n_fft=4096, sr=SR) -> Correction:
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    g = np.full(f.shape, 1.5)
    for flt in filters:
        g += flt.response_db(f, sr)
    return Correction("d", "r", sr, n_fft, g, {"band_hz": [30.0, 18000.0]})


@pytest.mark.parametrize("kind,f0,gain,q", [("peak", 1000.0, 6.0, 2.0), ("lowshelf", 200.0, -4.0, 0.7071),
                                            ("highshelf", 6000.0, 5.0, 0.7071)])
def test_biquads_match_scipy_and_their_gain(kind, f0, gain, q):
    flt = Biquad(kind, f0, gain, q)
    b, a = flt.coefficients(SR)
    f = np.array([20.0, f0, 20000.0])
    _, h = scipy.signal.freqz(b, a, worN=f, fs=SR)
    np.testing.assert_allclose(flt.response_db(f, SR), 20 * np.log10(np.abs(h)), atol=1e-9)
    at = {"peak": 1, "lowshelf": 0, "highshelf": 2}[kind]
    # Peak: full gain at f0; shelves: full gain far below / above the corner (within 0.2 dB at 20 Hz / 20 kHz).
    assert flt.response_db(f, SR)[at] == pytest.approx(gain, abs=0.2 if kind != "peak" else 1e-9)


def test_fit_recovers_a_parametric_curve():
    truth = [Biquad("lowshelf", 150.0, -5.0, 0.7071), Biquad("peak", 2500.0, 6.0, 1.5),
             Biquad("peak", 700.0, -3.0, 2.0), Biquad("highshelf", 9000.0, 4.0, 0.7071)]
    eq = fit_parametric(_curve(truth), n_filters=6)
    assert eq.rms_error_db < 0.3 and len(eq.filters) <= 6
    f = np.geomspace(30, 18000, 300)
    assert np.sqrt(np.mean((eq.response_db(f) - _curve(truth).interpolate_db(f)) ** 2)) < 0.3
    assert eq.preamp_db <= 0.0 and eq.preamp_db == pytest.approx(eq.gain_db - max(0, eq.response_db(
        np.geomspace(20, SR / 2 * 0.999, 512)).max()))
    with pytest.raises(ParameterError, match="n_filters=0"):
        fit_parametric(_curve(truth), n_filters=0)


def test_equalizerapo_and_camilladsp_text():
    eq = fit_parametric(_curve([Biquad("peak", 1000.0, 6.0, 2.0), Biquad("lowshelf", 100.0, 3.0, 0.7071)]),
                        n_filters=3)
    apo = equalizerapo_text(eq)
    assert re.search(r"^Preamp: -?\d+\.\d dB$", apo, flags=re.MULTILINE)
    lines = re.findall(r"^Filter (\d+): ON (PK|LSC|HSC) Fc (\d+) Hz Gain (-?\d+\.\d) dB Q (\d+\.\d\d)$", apo,
                       flags=re.MULTILINE)
    assert len(lines) == len(eq.filters) and [int(n) for n, *_ in lines] == list(range(1, len(lines) + 1))
    yml = camilladsp_yaml(eq)
    assert "filters:" in yml and "pipeline:" in yml and yml.count("type: Biquad") == len(eq.filters)
    assert re.search(r"type: (Peaking|Lowshelf)\n\s+freq: [\d.]+\n\s+gain: -?[\d.]+\n\s+q: [\d.]+", yml)


def test_fir_design_is_cached_and_read_only():
    corr = _curve([Biquad("peak", 1000.0, 6.0, 2.0)], n_fft=1024)
    fir._FIR_CACHE.clear()
    a = design_fir(corr, n_taps=255)
    assert design_fir(corr, n_taps=255) is a and not a.flags.writeable
    assert design_fir(corr, n_taps=257) is not a
    np.testing.assert_array_equal(a, fir.design_fir_uncached(corr, n_taps=255))


def test_resampled_correction_keeps_the_curve():
    corr = _curve([Biquad("peak", 1000.0, 6.0, 2.0)], n_fft=2048, sr=48000)
    r = resample_correction(corr, 44100)
    assert r.sample_rate == 44100 and r.n_fft == 1882
    f = np.array([100.0, 1000.0, 5000.0])
    np.testing.assert_allclose(r.interpolate_db(f), corr.interpolate_db(f), atol=0.05)
    taps = design_fir(r, n_taps=1025)
    assert fir_response_db(taps, np.array([1000.0]), 44100)[0] == pytest.approx(7.5, abs=0.2)


# ---------------------------------------------------------------------------------------------------------------
# Commands


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("exp") / "recordings"
    rng = np.random.default_rng(0)
    for name in ("phone", "studio"):
        for i in range(3):
            x = rng.standard_normal(SR // 2) * 0.05
            y = BUILTIN_DEVICES[name].record(x, SR, rng=np.random.default_rng(i))
            audio.save(root / name / f"clip{i}.wav", y.astype(np.float32), SR, subtype="PCM_16")
    out = root.parent / "responses.json"
    res = CliRunner().invoke(main, ["profile", str(root), "-o", str(out), "--n-fft", "1024", "--hop", "256"])
    assert res.exit_code == 0, res.output
    return root, out


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_export_parametric_and_ir_at_another_rate(profile, tmp_path):
    _, rs = profile
    common = ["export", rs, "--device", "phone", "--reference", "studio", "--smooth", "0.1667"]
    res = run(*common, "--format", "parametric", "--filters", "8", "-o", tmp_path / "p.txt")
    assert res.exit_code == 0, res.output
    text = (tmp_path / "p.txt").read_text()
    assert "Preamp:" in text and 1 <= text.count("Filter ") <= 8
    assert run(*common, "--format", "parametric", "-o", tmp_path / "p.yml").exit_code == 0
    assert "type: Biquad" in (tmp_path / "p.yml").read_text()
    res = run(*common, "--format", "wav", "--sample-rate", "48000", "--n-taps", "511", "-o", tmp_path / "ir.wav")
    assert res.exit_code == 0, res.output
    assert sf.info(tmp_path / "ir.wav").samplerate == 48000 and sf.info(tmp_path / "ir.wav").frames == 511


def test_export_with_a_target_curve_reference(profile, tmp_path):
    _, rs = profile
    curve = tmp_path / "flat.csv"
    curve.write_text("frequency,raw\n20,0\n20000,0\n", encoding="utf-8")
    res = run("export", rs, "--device", "phone", "--reference", curve, "--format", "csv", "-o", tmp_path / "c.csv")
    assert res.exit_code == 0, res.output
    g = np.loadtxt(tmp_path / "c.csv", delimiter=",", skiprows=1)
    # Towards a flat curve: the phone's +5 dB presence peak near 2.8 kHz becomes a cut there.
    near = (g[:, 0] > 2400) & (g[:, 0] < 3200)
    assert g[near, 1].mean() < g[(g[:, 0] > 800) & (g[:, 0] < 1200), 1].mean() - 2


def test_correct_jobs_resample_and_one_overs_warning(profile, tmp_path):
    root, rs = profile
    src = tmp_path / "in"
    for i in range(3):
        x, _ = audio.load(root / "phone" / f"clip{i}.wav")
        audio.save(src / f"hot{i}.wav", np.clip(x * 30, -0.99, 0.99), SR, subtype="PCM_16")
    x48 = scipy.signal.resample_poly(audio.load(root / "phone" / "clip0.wav")[0][0], 160, 147)
    audio.save(src / "at48k.wav", (x48 * 0.5).astype(np.float32), 48000, subtype="PCM_16")
    common = ["correct", src, "--responses", rs, "--device", "phone", "--reference", "studio", "--method", "fir"]
    res = run(*common, "-o", tmp_path / "o1")
    assert res.exit_code == 1 and "at48k.wav" in res.output and "48000" in res.output
    res = run(*common, "--jobs", "2", "--resample", "-o", tmp_path / "o2")
    assert res.exit_code == 0, res.output
    assert res.output.count("exceeded full scale") == 1  # one line for the batch
    for i in range(3):
        assert sf.info(tmp_path / "o2" / f"hot{i}.wav").subtype == "PCM_16"  # the format is kept
    assert sf.info(tmp_path / "o2" / "at48k.wav").samplerate == 48000

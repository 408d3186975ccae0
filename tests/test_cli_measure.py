"""micmatch sweep / measure / pair: files in, responses out, clear one-line errors, nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from click.testing import CliRunner

from micmatch.audio import load, save
from micmatch.cli import main
from micmatch.response import ResponseSet


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def sweep_file(tmp_path):
    result = run("sweep", "-o", tmp_path / "sweep.wav", "--duration", 2, "--sample-rate", 16000)
    assert result.exit_code == 0, result.output
    return tmp_path / "sweep.wav"


def test_sweep_writes_the_test_signal(sweep_file):
    x, sr = load(sweep_file)
    assert sr == 16000 and x.shape == (1, 3 * 16000)  # 2 s sweep + 1 s silence after
    assert np.abs(x).max() == pytest.approx(10 ** (-6 / 20), abs=1e-3)


def test_measure_sweep_and_append(tmp_path, sweep_file):
    sw, sr = load(sweep_file, dtype="float64")
    lowpassed = scipy.signal.lfilter(*scipy.signal.butter(2, 2000, fs=sr), sw[0])
    rec = np.concatenate([np.zeros(7000), lowpassed, np.zeros(4000)])
    save(tmp_path / "rec.wav", rec, sr, subtype="FLOAT")
    out = tmp_path / "responses.json"
    r = run("measure", tmp_path / "rec.wav", "--sweep", sweep_file, "--device", "lp", "-o", out, "--n-fft", 1024,
            "--plot", tmp_path / "lp.png")
    assert r.exit_code == 0, r.output
    rs = ResponseSet.load(out)
    f = rs.frequencies
    # a 2nd-order Butterworth low-pass at 2 kHz: 0 dB at 200 Hz, -3 dB at 2 kHz, about -24 dB at 8 kHz
    assert rs["lp"].response_db[np.argmin(np.abs(f - 200))] == pytest.approx(0.0, abs=0.1)
    assert rs["lp"].response_db[np.argmin(np.abs(f - 2000))] == pytest.approx(-3.0, abs=0.2)
    assert (tmp_path / "lp.png").stat().st_size > 1000
    r = run("measure", tmp_path / "rec.wav", "--sweep", sweep_file, "--device", "flat2", "-o", out, "--n-fft", 1024,
            "--append")
    assert r.exit_code == 0, r.output
    assert set(ResponseSet.load(out)) == {"lp", "flat2"}


def test_measure_impulse(tmp_path, rng):
    sr = 16000
    x = rng.standard_normal(2 * sr) * 1e-4
    x[[3000, 12000, 25000]] += 0.8
    save(tmp_path / "clicks.wav", x, sr, subtype="FLOAT")
    r = run("measure", tmp_path / "clicks.wav", "--impulse", "--device", "clap", "-o", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    rs = ResponseSet.load(tmp_path / "r.json")
    assert rs["clap"].method == "impulse" and rs["clap"].meta["n_clicks"] == 3


def test_measure_errors_leave_nothing(tmp_path, sweep_file, rng):
    out = tmp_path / "r.json"
    save(tmp_path / "noise.wav", rng.standard_normal(4 * 16000) * 0.1, 16000)
    r = run("measure", tmp_path / "noise.wav", "--sweep", sweep_file, "--device", "x", "-o", out)
    assert r.exit_code == 1 and "no sweep found" in r.output and "expected a recording of the sweep" in r.output
    save(tmp_path / "silent.wav", np.zeros(16000), 16000)
    r = run("measure", tmp_path / "silent.wav", "--sweep", sweep_file, "--device", "x", "-o", out)
    assert r.exit_code == 1 and "silent" in r.output
    save(tmp_path / "r44.wav", rng.standard_normal(4410) * 0.1, 44100)
    r = run("measure", tmp_path / "r44.wav", "--sweep", sweep_file, "--device", "x", "-o", out)
    assert r.exit_code == 1 and "at 44100 Hz but" in r.output
    r = run("measure", tmp_path / "r44.wav", "--device", "x", "-o", out)
    assert r.exit_code == 2 and "exactly one of --sweep FILE or --impulse" in r.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary files left


def test_pair_command(tmp_path, rng):
    sr = 8000
    x = rng.standard_normal(10 * sr) * 0.1
    dev = np.concatenate([np.zeros(3000), 0.5 * x])
    save(tmp_path / "ref.wav", x, sr, subtype="FLOAT")
    save(tmp_path / "phone.wav", dev, sr, subtype="FLOAT")
    save(tmp_path / "other.wav", rng.standard_normal(10 * sr) * 0.1, sr, subtype="FLOAT")
    out = tmp_path / "pairs.json"
    r = run("pair", tmp_path / "ref.wav", tmp_path / "phone.wav", "-o", out, "--reference-name", "studio",
            "--n-fft", 512, "--hop", 128, "--plot", tmp_path / "pairs.png")
    assert r.exit_code == 0, r.output
    rs = ResponseSet.load(out)
    assert rs.relative_db("phone", "studio")[1:-1] == pytest.approx(np.full(255, 20 * np.log10(0.5)), abs=0.05)
    assert (tmp_path / "pairs.alignment-0-phone.png").exists()
    # a bad pair is reported, the good one still written, exit status 1
    out2 = tmp_path / "pairs2.json"
    r = run("pair", tmp_path / "ref.wav", tmp_path / "phone.wav", tmp_path / "other.wav", "-o", out2,
            "--device-name", "phone", "--device-name", "other", "--n-fft", 512)
    assert r.exit_code == 1 and "other.wav" in r.output and "same sound" in r.output
    assert set(ResponseSet.load(out2)) == {"reference", "phone"}


def test_pair_errors(tmp_path, rng):
    sr = 8000
    x = rng.standard_normal(4 * sr) * 0.1
    save(tmp_path / "ref.wav", x, sr)
    save(tmp_path / "dev16.wav", np.repeat(x, 2), 2 * sr)
    out = tmp_path / "p.json"
    r = run("pair", tmp_path / "ref.wav", tmp_path / "dev16.wav", "-o", out)
    assert r.exit_code == 1 and "share one sample rate" in r.output and "nothing was written" in r.output
    assert not out.exists()
    r = run("pair", tmp_path / "ref.wav", tmp_path / "dev16.wav", "-o", out, "--device-name", "a", "--device-name", "b")
    assert r.exit_code == 2 and "once per file" in r.output
    r = run("pair", tmp_path / "ref.wav", tmp_path / "dev16.wav", "-o", out, "--device-name", "reference")
    assert r.exit_code == 2 and "also the reference name" in r.output


def test_help_shows_examples():
    for cmd in ("sweep", "measure", "pair"):
        r = run(cmd, "--help")
        assert r.exit_code == 0 and "micmatch " + cmd in r.output

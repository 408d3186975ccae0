"""``micmatch train`` and ``micmatch correct --model`` end to end on tiny synthetic pairs."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

pytest.importorskip("torch")

from conftest import pink
from test_normalizers import EQ, SR

from micmatch.cli import main


@pytest.fixture
def pair_files(tmp_path, rng):
    x = pink(rng, SR, 5.0)
    dev = np.concatenate([np.zeros(200), EQ.record(x, SR), np.zeros(50)])  # starts 25 ms later
    sf.write(tmp_path / "ref.wav", x, SR, subtype="FLOAT")
    sf.write(tmp_path / "dev.wav", dev, SR, subtype="FLOAT")
    return tmp_path


def _train(args):
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


def test_train_then_correct_with_model(pair_files):
    d = pair_files
    r = _train(["ratio-net", "--reference", str(d / "ref.wav"), "--device", str(d / "dev.wav"), "-o",
                str(d / "m.mmm"), "--epochs", "3", "--hidden", "32", "--compute", "cpu"])
    assert r.exit_code == 0, r.output
    assert "validation LSD" in r.output and (d / "m.mmm").is_file()
    r = CliRunner().invoke(main, ["correct", str(d / "dev.wav"), "--model", str(d / "m.mmm"), "-o", str(d / "out")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    y, sr = sf.read(d / "out" / "dev.wav")
    assert sr == SR and y.shape == sf.read(d / "dev.wav")[0].shape and np.isfinite(y).all()


def test_pairs_csv_and_eq_net(pair_files):
    d = pair_files
    (d / "pairs.csv").write_text("reference,device\nref.wav,dev.wav\n")
    r = _train(["eq-net", "--pairs", str(d / "pairs.csv"), "-o", str(d / "eq.mmm"), "--epochs", "1",
                "--channels", "2", "--autoencoder-epochs", "0", "--compute", "cpu"])
    assert r.exit_code == 0, r.output
    assert (d / "eq.mmm").is_file()


def test_different_sounds_fail_in_one_line_and_write_nothing(pair_files, rng):
    d = pair_files
    sf.write(d / "other.wav", pink(rng, SR, 5.0), SR, subtype="FLOAT")
    r = _train(["ratio-net", "--reference", str(d / "ref.wav"), "--device", str(d / "other.wav"), "-o",
                str(d / "m.mmm"), "--epochs", "1", "--hidden", "8"])
    assert r.exit_code == 1
    err = r.stderr if hasattr(r, "stderr") else r.output
    assert "same sound" in err and len(err.strip().splitlines()) == 1
    assert not (d / "m.mmm").exists() and not list(d.glob(".m.mmm*"))


def test_short_pair_fails_and_writes_nothing(tmp_path, rng):
    x = pink(rng, SR, 1.0)
    sf.write(tmp_path / "ref.wav", x, SR, subtype="FLOAT")
    sf.write(tmp_path / "dev.wav", x, SR, subtype="FLOAT")
    r = _train(["ratio-net", "--reference", str(tmp_path / "ref.wav"), "--device", str(tmp_path / "dev.wav"),
                "-o", str(tmp_path / "m.mmm")])
    assert r.exit_code == 1 and "at least 2 s" in r.output
    assert not (tmp_path / "m.mmm").exists()


def test_correct_with_model_at_wrong_rate_and_bad_model(pair_files, tmp_path):
    from micmatch.learn.normalizer import Normalizer
    from micmatch.learn.ratio_net import RatioNet

    model = Normalizer("ratio-net", RatioNet(129, hidden=8), 16000, {"n_fft": 256, "hop_length": 64}, {})
    model.save(tmp_path / "m16.mmm")
    r = CliRunner().invoke(main, ["correct", str(pair_files / "dev.wav"), "--model", str(tmp_path / "m16.mmm"),
                                  "-o", str(tmp_path / "out")])
    assert r.exit_code == 1 and "trained at 16000 Hz" in r.output
    assert not (tmp_path / "out" / "dev.wav").exists()
    (tmp_path / "junk.mmm").write_bytes(b"junk")
    r = CliRunner().invoke(main, ["correct", str(pair_files / "dev.wav"), "--model", str(tmp_path / "junk.mmm"),
                                  "-o", str(tmp_path / "out")])
    assert r.exit_code == 1 and "not a micmatch model file" in r.output


def test_correct_without_model_still_needs_responses(pair_files, tmp_path):
    r = CliRunner().invoke(main, ["correct", str(pair_files / "dev.wav"), "-o", str(tmp_path / "out")])
    assert r.exit_code == 2 and "--responses" in r.output

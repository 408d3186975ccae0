"""``micmatch train converter``: simulated and recorded corpora, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from micmatch.audio import save
from micmatch.cli import main
from micmatch.learn.converter_model import Converter
from micmatch.response import DeviceResponse, ResponseSet, SpectralConfig

SR = 8000
FAST = ["--epochs", "1", "--n-mels", "16", "--compute", "cpu"]


@pytest.fixture
def clips(tmp_path, rng):
    folder = tmp_path / "clips"
    for i in range(6):
        save(folder / f"c{i}.wav", (rng.standard_normal(int(SR * 0.3)) * 0.05).astype(np.float32), SR)
    (folder / "broken.wav").write_bytes(b"RIFF....not audio")
    irs = tmp_path / "irs"
    for i in range(3):
        h = np.zeros(32, dtype=np.float32)
        h[1], h[2 + i] = 1.0, 0.4
        save(irs / f"mic{i}.wav", h, SR, subtype="FLOAT")
    return folder, irs


def _run(*args):
    return CliRunner().invoke(main, ["train", "converter", *map(str, args)])


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_train_on_simulated_devices(clips, tmp_path):
    folder, irs = clips
    out = tmp_path / "conv.pt"
    result = _run("--data", folder, "--irs", irs, "--devices", "2", "-o", out, *FAST)
    # The bad file is reported, not fatal: the model is written, and the exit code says a clip was skipped.
    assert result.exit_code == 1, result.output
    assert "wrote" in result.output and "broken.wav" in result.output
    assert "epoch 1/1: generator" in result.output  # one log line per epoch
    model = Converter.load(out)
    assert model.feature_config.sample_rate == SR and model.config.n_mels == 16
    assert len(model.info["simulated_devices"]) == 2 and model.info["n_clips"] == 6
    assert set(model.info["domains"]) <= {"reference", *model.info["simulated_devices"]}
    assert model.config.norm == "instance"
    result = _run("--data", folder, "--irs", irs, "--devices", "2", "--generator-norm", "none", "-o", out, *FAST)
    assert result.exit_code == 1, result.output
    assert Converter.load(out).config.norm == "none"
    result = _run("--data", folder, "--irs", irs, "--devices", "2", "--form", "stochastic", "-o", out, *FAST)
    assert result.exit_code == 1, result.output
    stochastic = Converter.load(out)
    assert stochastic.config.form == "stochastic" and set(stochastic.floors) == set(stochastic.info["domains"])


def test_train_on_recorded_devices_with_responses(tmp_path, rng):
    data = tmp_path / "rec"
    for dev in ("phone", "studio"):
        for i in range(3):
            save(data / dev / f"{i}.wav", (rng.standard_normal(int(SR * 0.3)) * 0.05).astype(np.float32), SR)
    sc = SpectralConfig(sample_rate=SR, n_fft=256, hop_length=128)
    rs = ResponseSet(sc, [DeviceResponse("phone", np.linspace(-6, 6, sc.n_bins)),
                          DeviceResponse("studio", np.zeros(sc.n_bins))])
    rs.save(tmp_path / "r.json")
    out = tmp_path / "c.pt"
    result = _run("--data", data, "--responses", tmp_path / "r.json", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    model = Converter.load(out)
    assert model.info["domains"] == ["phone", "studio"]
    assert model.band_responses["phone"][-1] > model.band_responses["phone"][0] + 6  # the rising response
    rs2 = ResponseSet(sc, [DeviceResponse("studio", np.zeros(sc.n_bins))])
    rs2.save(tmp_path / "r2.json")
    result = _run("--data", data, "--responses", tmp_path / "r2.json", "-o", out, *FAST)
    assert result.exit_code == 1
    assert "device folder(s) phone have no response" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(("extra", "message"), [
    ((), "pass --irs DIR to simulate devices, or --responses"),
    (("--config", "huge"), "Invalid value for '--config'"),
])
def test_bad_invocations(clips, tmp_path, extra, message):
    folder, _ = clips
    result = _run("--data", folder, "-o", tmp_path / "c.pt", *extra)
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "c.pt").exists()


def test_irs_and_responses_together_are_refused(clips, tmp_path):
    folder, irs = clips
    (tmp_path / "r.json").write_text("{}")
    result = _run("--data", folder, "--irs", irs, "--responses", tmp_path / "r.json", "-o", tmp_path / "c.pt")
    assert result.exit_code == 1 and "pass one or the other" in result.output

"""The processed files of `correct` (STFT and FIR), `correct --model` and `match` stay the same across refactors.

The inputs are generated here from a fixed seed; the model file and the expected outputs were recorded once
(``MICMATCH_RECORD_REGRESSION=1 pytest tests/test_regression_outputs.py`` records them again, on purpose only).
Outputs are 16-bit WAV files: the test allows one least significant bit of difference per sample, since a float
computation reordered by a refactor may round a sample that lay on a quantization boundary the other way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from scipy import signal

from micmatch.cli import main

DATA = Path(__file__).parent / "data" / "regression"
EXPECTED = DATA / "outputs.npz"
MODEL = DATA / "ratio-net.mmm"
RECORD = os.environ.get("MICMATCH_RECORD_REGRESSION") == "1"
SR = 16000


def _inputs(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(4242)
    n = 3 * SR
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    ref = np.fft.irfft(spec, n)
    ref = 0.1 * ref / np.std(ref)
    sos = signal.butter(2, [300, 3000], btype="bandpass", fs=SR, output="sos")
    dev = 0.5 * ref + 0.5 * signal.sosfilt(sos, ref) + 1e-4 * rng.standard_normal(n)
    paths = {}
    for device, audio in (("studio", ref), ("phone", dev)):
        d = root / "rec" / device
        d.mkdir(parents=True)
        sf.write(d / f"{device}.wav", audio.astype(np.float32), SR, subtype="PCM_16")
        paths[device] = d / f"{device}.wav"
    return paths


def _run(args: list[str]) -> None:
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output


def _outputs(tmp_path: Path) -> dict[str, np.ndarray]:
    paths = _inputs(tmp_path)
    responses = tmp_path / "responses.json"
    _run(["profile", str(tmp_path / "rec"), "-o", str(responses), "--device-from", "dir", "--n-fft", "1024"])
    out: dict[str, np.ndarray] = {}
    for method in ("stft", "fir"):
        _run(["correct", str(paths["phone"]), "--responses", str(responses), "--device", "phone",
              "--reference", "studio", "--method", method, "-o", str(tmp_path / method)])
        out[f"correct-{method}"] = sf.read(tmp_path / method / "phone.wav", dtype="int16")[0]
    if RECORD:
        pytest.importorskip("torch")
        MODEL.unlink(missing_ok=True)
        _run(["train", "ratio-net", "--reference", str(paths["studio"]), "--device", str(paths["phone"]),
              "-o", str(MODEL), "--epochs", "2", "--hidden", "16", "--compute", "cpu"])
    if _has_torch():
        _run(["correct", str(paths["phone"]), "--model", str(MODEL), "-o", str(tmp_path / "model")])
        out["correct-model"] = sf.read(tmp_path / "model" / "phone.wav", dtype="int16")[0]
    _run(["match", str(paths["phone"]), str(paths["studio"]), "-o", str(tmp_path / "match.wav")])
    out["match"] = sf.read(tmp_path / "match.wav", dtype="int16")[0]
    return out


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_processed_outputs_are_unchanged(tmp_path):
    got = _outputs(tmp_path)
    if RECORD:
        np.savez_compressed(EXPECTED, **got)
    expected = np.load(EXPECTED)
    keys = set(expected.files) if _has_torch() else set(expected.files) - {"correct-model"}
    assert set(got) == keys
    for key in sorted(keys):
        a = got[key].astype(np.int32)
        b = expected[key].astype(np.int32)
        assert a.shape == b.shape, key
        assert np.abs(a - b).max() <= 1, f"{key}: output changed (max {np.abs(a - b).max()} LSB)"
        assert np.mean(a != b) < 1e-3, f"{key}: {np.mean(a != b):.2%} of samples changed by one LSB"
        assert np.abs(b).max() > 100, f"{key}: recorded output is near silent"

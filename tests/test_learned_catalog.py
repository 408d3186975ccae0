"""Every case of the learned-half catalog (tests/catalog_learned_cases.py): its exit code and one clear line
(never a traceback), every input unchanged (hashes before and after), no staging file left, nothing written by a
failing command, and every audio file written finite."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import soundfile as sf
from catalog_learned_cases import CASES, _noise
from click.testing import CliRunner

from micmatch.cli import main
from micmatch.outputs import is_staging
from micmatch.simulate import BUILTIN_DEVICES

torch = pytest.importorskip("torch")

SR = 8000
#: The stderr lines a command may print: its own one-liners, a batch summary, and click's usage message.
ALLOWED_LINE = re.compile(r"^(micmatch: (error|warning): |\d+ file\(s\) could not be used|\d+ of \d+ file\(s\) failed|"
                          r"wrote |Usage: |Try '|Error: |$)")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


class Workspace:
    """A calibration pair, a second reference, a pairs CSV, two untrained normalizers, a responses file, clips and
    impulse responses for the converter: inputs under ``in/``, outputs under ``out/``."""

    def __init__(self, root):
        from micmatch.learn.eq_net import EQNet
        from micmatch.learn.normalizer import Normalizer
        from micmatch.learn.ratio_net import RatioNet

        self.root = root
        inp = root / "in"
        inp.mkdir()
        x = _noise(2.0, seed=1)
        self.ref, self.dev, self.ref2 = inp / "ref.wav", inp / "dev.wav", inp / "ref2.wav"
        sf.write(self.ref, x, SR, subtype="PCM_16")
        sf.write(self.dev, BUILTIN_DEVICES["phone"].record(x, SR, rng=np.random.default_rng(0)), SR, subtype="PCM_16")
        sf.write(self.ref2, _noise(2.0, seed=2), SR, subtype="PCM_16")
        self.pairs = inp / "pairs.csv"
        self.pairs.write_text("reference,device\nref.wav,dev.wav\n")
        torch.manual_seed(0)
        ratio = RatioNet(129, hidden=8)
        self.model = Normalizer("ratio-net", ratio, SR, {"n_fft": 256, "hop_length": 64,
                                                         "architecture": ratio.config}).save(inp / "model.mmm")
        Normalizer("eq-net", EQNet(window=1024, channels=2, taps=16, local_taps=16, pool=16, latent_units=8), SR,
                   {"window": 1024, "hop_length": 512, "n_fft": 256}).save(inp / "eq.mmm")
        rng = np.random.default_rng(3)
        for name in ("phone", "studio"):
            (inp / "rec" / name).mkdir(parents=True)
            for i in range(2):
                y = BUILTIN_DEVICES[name].record(rng.standard_normal(SR // 2) * 0.05, SR, rng=rng)
                sf.write(inp / "rec" / name / f"c{i}.wav", y, SR, subtype="PCM_16")
        self.responses = inp / "responses.json"
        assert run("profile", inp / "rec", "-o", self.responses, "--n-fft", 256, "--hop", 64).exit_code == 0
        self.clips, self.irs = inp / "clips", inp / "irs"
        self.clips.mkdir()
        self.irs.mkdir()
        for i in range(4):
            sf.write(self.clips / f"c{i}.wav", _noise(0.3, seed=20 + i, level=0.05), SR, subtype="PCM_16")
        for i in range(2):
            h = np.zeros(32, dtype=np.float32)
            h[1], h[2 + i] = 1.0, 0.4
            sf.write(self.irs / f"mic{i}.wav", h, SR, subtype="FLOAT")
        (root / "out").mkdir()

    def out(self, rel: str):
        return self.root / "out" / rel

    def hashes(self) -> dict[str, str]:
        return {str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((self.root / "in").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("learned"))


def test_catalog_ids_are_unique_and_cover_every_root_cause():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_learned_case(case, workspace):
    if case.when is not None and not case.when():
        pytest.skip("not meaningful on this machine")
    ws = workspace
    if case.setup is not None:
        case.setup(ws)
    before = ws.hashes()
    result = run(*case.argv(ws))
    err = result.stderr
    assert "Traceback" not in err, err
    assert result.exit_code == case.exit_code, (result.stdout, err)
    if case.stderr is None:
        assert "error" not in err.lower(), err
    else:
        assert re.search(case.stderr, err), err
    if not case.log_lines:  # every line one of micmatch's one-liners or click's usage message
        for line in err.splitlines():
            assert ALLOWED_LINE.match(line), f"unexpected stderr line: {line!r}"
    assert ws.hashes() == before, "an input was modified"
    staging = [p for p in ws.root.rglob("*") if is_staging(p)]
    assert not staging, f"staging files left: {staging}"
    for rel in case.absent:
        assert not (ws.root / rel).exists(), f"{rel} was written by a failing command"
    for p in (ws.root / "out").rglob("*"):
        if p.suffix in (".wav", ".flac") and p.is_file():
            y, _ = sf.read(p, dtype="float32")
            assert np.all(np.isfinite(y)), f"{p} holds non-finite samples"
    if case.check is not None:
        case.check(ws, result)


def test_converter_path_that_is_a_folder_says_so(tmp_path):
    """``umc:FOLDER`` (a converter path naming a folder) is named as a folder, not as a missing file."""
    from micmatch.errors import ModelError
    from micmatch.learn.converter_model import Converter

    with pytest.raises(ModelError, match=r": is a folder; give the converter model file"):
        Converter.load(tmp_path)


def test_a_model_written_by_the_previous_format_still_loads():
    from pathlib import Path

    from micmatch.learn.normalizer import Normalizer

    path = Path(__file__).parent / "data/regression/ratio-net.mmm"
    assert b'"format": 1' in path.read_bytes()[:2000]
    assert Normalizer.load(path).sample_rate == 16000


def test_a_non_finite_model_output_writes_nothing(workspace, tmp_path, monkeypatch):
    """Weights can be finite and still overflow: the output is checked block by block and nothing is written."""
    from micmatch.errors import ModelError
    from micmatch.learn.normalizer import Normalizer, correct_file_with_model

    model = Normalizer.load(workspace.model)
    with torch.no_grad():
        model.model.body[-1].bias.fill_(float("inf"))  # tanh(inf) = 1: finite; make the input NaN instead
        model.model.feature_std.fill_(0.0)
    out = tmp_path / "o.wav"
    with pytest.raises(ModelError, match=r"dev\.wav: the model's output is not finite"):
        correct_file_with_model(workspace.dev, out, model)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if is_staging(p)]

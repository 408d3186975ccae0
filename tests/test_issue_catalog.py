"""Every case of the hostile-use catalog (tests/catalog_issue_cases.py) gives its expected exit code and one clear
line (never a traceback), and leaves inputs and outputs as promised; OS errors in a batch are one line per file."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf
from catalog_issue_cases import CASES, ELSEWHERE
from click.testing import CliRunner

from micmatch import parallel
from micmatch.cli import main
from micmatch.simulate import BUILTIN_DEVICES

SR = 8000
#: The stderr lines a command may print: its own one-liners, a batch summary, and click's usage message.
ALLOWED_LINE = re.compile(r"^(micmatch: (error|warning): |micmatch: interrupted|\d+ file\(s\) could not be used|"
                          r"Usage: |Try '|Error: |$)")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


class Workspace:
    """Recordings of two devices, their responses file and a sweep, plus builders of the bad inputs."""

    fast: ClassVar[list] = ["--n-fft", 256, "--hop", 64]

    def __init__(self, root):
        self.root = root
        self.rec = root / "rec"
        rng = np.random.default_rng(3)
        clips = [rng.standard_normal(SR // 2) * 0.05 for _ in range(3)]
        for name in ("phone", "studio"):
            (self.rec / name).mkdir(parents=True)
            for i, x in enumerate(clips):
                y = BUILTIN_DEVICES[name].record(x, SR, rng=np.random.default_rng(i))
                sf.write(self.rec / name / f"c{i}.wav", y, SR, subtype="PCM_16")
        self.responses = root / "responses.json"
        assert run("profile", self.rec, "-o", self.responses, *self.fast).exit_code == 0
        self.sweep = root / "sweep.wav"
        assert run("sweep", "-o", self.sweep, "--duration", 0.5, "--sample-rate", SR).exit_code == 0
        self.snapshot = {str(p.relative_to(root)): p.read_bytes() for p in self.rec.rglob("*.wav")}
        self.profile_band_warning = ""

    def copy(self, src: str, dst: str, *staging_names: str) -> None:
        target = self.root / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / src, target)
        for name in staging_names:  # half-written outputs of an earlier, killed run
            (target.parent / name).write_bytes((self.root / src).read_bytes()[: 2000])

    def noise(self, name: str, level_dbfs: float, subtype: str) -> None:
        x = np.random.default_rng(9).standard_normal(SR) * 10 ** (level_dbfs / 20)
        sf.write(self.root / name, x, SR, subtype=subtype)

    def random_bytes(self, rel: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8).tobytes())

    def dc_folder(self) -> None:
        for i in range(3):
            self.copy(f"rec/phone/c{i}.wav", f"dcrec/phone/c{i}.wav")
        sf.write(self.root / "dcrec/phone/dc.wav", np.full(SR // 2, 0.3), SR, subtype="PCM_16")

    def nan_normalizer(self) -> None:
        norm = self.root / "norm.json"
        r = run("features", self.rec, "-o", self.root / "fit.npz", "--normalization", "gms", "--save-normalizer",
                norm, "--n-mels", 16, *self.fast)
        assert r.exit_code == 0, r.output
        doc = json.loads(norm.read_text())

        def poison(node):
            if isinstance(node, dict):
                return any(poison(v) for v in node.values())
            if isinstance(node, list) and node and isinstance(node[0], float):
                node[0] = float("nan")
                return True
            return isinstance(node, list) and any(poison(v) for v in node)

        assert poison(doc)
        (self.root / "nan_norm.json").write_text(json.dumps(doc))

    def band_profile(self) -> None:
        rng = np.random.default_rng(4)
        for name, rate in (("lo", 8000), ("hi", 48000)):
            (self.root / "band" / name).mkdir(parents=True)
            for i in range(2):
                sf.write(self.root / "band" / name / f"{i}.wav", rng.standard_normal(rate // 2) * 0.05, rate,
                         subtype="PCM_16")
        r = run("profile", self.root / "band", "-o", self.root / "band.json", "--resample", "--sample-rate", 48000)
        assert r.exit_code == 0, r.output
        self.profile_band_warning = r.stderr

    def symlink_layout(self) -> None:
        self.copy("rec/phone/c0.wav", "links/laptop/a.wav")
        self.copy("rec/studio/c0.wav", "links/studio/s.wav")
        os.symlink(self.root / "links/studio/s.wav", self.root / "links/laptop/b.wav")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("catalog"))


def test_catalog_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 25 and ELSEWHERE


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_issue_case(case, workspace, monkeypatch):
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 1.0)
    if case.setup is not None:
        case.setup(workspace)
    result = run(*case.argv(workspace))
    err = result.stderr
    assert "Traceback" not in err and result.exception is None or isinstance(result.exception, SystemExit), err
    assert result.exit_code == case.exit_code, (result.stdout, err)
    if case.stderr is None:
        assert "error" not in err.lower(), err
    else:
        assert re.search(case.stderr, err), err
    # Every line is one of micmatch's one-liners or click's usage message: no traceback, no library chatter.
    for line in err.splitlines():
        assert ALLOWED_LINE.match(line), f"unexpected stderr line: {line!r}"
    if case.check is not None:
        case.check(workspace, result)


def test_os_errors_are_one_line_per_file_and_the_batch_goes_on(workspace, tmp_path, monkeypatch):
    """Disk full while writing one output: that file is one line, the others are written, exit 1."""
    from micmatch import outputs

    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("c1.wav"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)
    out = tmp_path / "out"
    r = run("correct", workspace.rec / "phone", "--responses", workspace.responses, "--device", "phone",
            "--reference", "studio", "-o", out)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("micmatch: error:")]
    assert r.exit_code == 1 and len(errors) == 1 and "c1.wav: cannot write: no space left on the device" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["c0.wav", "c2.wav"]  # no staging file left either


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_names_the_os_reason(workspace, tmp_path):
    src = tmp_path / "dev"
    src.mkdir()
    shutil.copyfile(workspace.rec / "phone/c0.wav", src / "a.wav")
    shutil.copyfile(workspace.rec / "phone/c1.wav", src / "b.wav")
    (src / "b.wav").chmod(0)
    r = run("profile", tmp_path, "-o", tmp_path / "r.json", *Workspace.fast)
    assert r.exit_code == 1 and "b.wav: cannot read audio (Permission denied)" in r.stderr
    assert "System error" not in r.stderr

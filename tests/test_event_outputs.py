"""Event mode outputs: --report, --skip-existing, --learned without its module, --reference checks, the progress
over the whole job, and no staging file left behind (synthetic, seeded)."""

from __future__ import annotations

import json
import sys

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from micmatch.cli import main
from micmatch.eventmode import event
from test_event import device, source, write


def _two(tmp_path, seed=31):
    x = source(seed, 30)
    return [write(tmp_path / "a.wav", device(x, start_s=0, seconds=20)),
            write(tmp_path / "b.wav", device(x, start_s=6, seconds=20, b=(1.0, 0.4), seed=1))]


def test_report_writes_the_figures_and_an_index(tmp_path):
    files = _two(tmp_path)
    report = tmp_path / "report"
    r = CliRunner().invoke(main, ["event", *map(str, files), "-o", str(tmp_path / "out"), "--report", str(report)])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in report.iterdir())
    assert names == ["corrections.png", "index.md", "seams.png", "timeline.png"]
    index = (report / "index.md").read_text()
    for png in ("timeline.png", "corrections.png", "seams.png"):
        assert f"]({png})" in index
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "median frame LSD" in index


def test_matplotlib_is_not_imported_without_a_report(tmp_path):
    files = _two(tmp_path, seed=32)
    before = "matplotlib" in sys.modules
    event(files, tmp_path / "out")
    assert before or "matplotlib" not in sys.modules


def test_skip_existing_leaves_a_complete_run_alone(tmp_path):
    files = _two(tmp_path, seed=33)
    out = tmp_path / "out"
    args = ["event", *map(str, files), "-o", str(out), "--skip-existing"]
    assert CliRunner().invoke(main, args).exit_code == 0
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "skipped (--skip-existing)" in r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp
    (out / "b.wav").unlink()  # an incomplete run is done again
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "skipped" not in r.stderr and (out / "b.wav").is_file()


def test_learned_without_its_module_is_one_line(tmp_path, monkeypatch):
    files = _two(tmp_path, seed=34)
    monkeypatch.setitem(sys.modules, "micmatch.learn.event_residual", None)  # import fails as when it is absent
    r = CliRunner().invoke(main, ["event", *map(str, files), "-o", str(tmp_path / "out"), "--learned"])
    assert r.exit_code != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "--learned" in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_reference_that_is_no_file_is_one_line(tmp_path):
    files = _two(tmp_path, seed=35)
    r = CliRunner().invoke(main, ["event", *map(str, files), "-o", str(tmp_path / "out"), "--reference", "nope.wav"])
    assert r.exit_code != 0 and len(r.stderr.strip().splitlines()) == 1 and "consensus" in r.stderr
    r = CliRunner().invoke(main, ["event", *map(str, files), "-o", str(tmp_path / "out"), "--reference", "consensus"])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "out" / "event.json").read_text())
    assert "consensus" in saved["reference_reason"]


def test_progress_runs_over_the_whole_job_and_nothing_is_left_behind(tmp_path):
    x = source(36, 40)
    files = [write(tmp_path / "a.wav", device(x, start_s=0, seconds=25)),
             write(tmp_path / "b.wav", np.stack([device(x, start_s=5, seconds=30, b=(1.0, 0.4), seed=1)] * 2)),
             write(tmp_path / "c.wav", device(x, start_s=12, seconds=20, rate=22050, seed=2), rate=22050)]
    seen = []
    out = tmp_path / "out"
    res = event(files, out, progress=lambda f, what: seen.append((f, what)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and abs(fractions[-1] - 1.0) < 1e-9
    assert {w for _, w in seen} == {"reading", "synchronising", "placing", "correcting", "stems", "writing"}
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav", "c.wav", "event.json"]  # no staging file
    infos = [sf.info(str(p)) for p in res.stems.values()]
    assert {i.samplerate for i in infos} == {res.sample_rate} and {i.frames for i in infos} == {res.n_samples}


def test_learned_passes_the_module_function_to_the_event(tmp_path, monkeypatch):
    """``--learned`` imports ``fit_event_devices`` from ``micmatch.learn.event_residual`` inside the command and
    hands it to the event; what it returns lands in event.json."""
    import types

    calls = []

    def fit_event_devices(pairs, sample_rate, progress=None):
        calls.append((sorted(pairs), sample_rate))
        return {}

    module = types.ModuleType("micmatch.learn.event_residual")
    module.fit_event_devices = fit_event_devices
    monkeypatch.setitem(sys.modules, "micmatch.learn.event_residual", module)
    files = _two(tmp_path, seed=37)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["event", *map(str, files), "-o", str(out), "--learned"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "event.json").read_text())
    other = "a" if saved["reference"] == "b" else "b"
    assert calls == [([other], saved["sample_rate"])]
    assert saved["recordings"][other]["learned"] == {"kept": False, "figures": {},
                                                     "reason": "the learned correction returned no fit for it"}


def test_an_unreadable_recording_is_left_out_in_one_line_and_the_rest_go_on(tmp_path):
    files = _two(tmp_path, seed=38)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["event", *map(str, files), str(broken), "-o", str(out)])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if "broken" in ln]
    assert len(lines) == 1 and "left out" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav", "event.json"]
    r = CliRunner().invoke(main, ["event", str(files[0]), str(broken), "-o", str(tmp_path / "out2")])
    assert r.exit_code != 0 and len(r.stderr.strip().splitlines()) == 1 and "broken.wav" in r.stderr

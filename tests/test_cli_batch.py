"""The CLI's shared helpers and batch runner, and the shape of the cli package (light import, no cycle)."""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

import micmatch

from micmatch.cli import batch, common
from micmatch.errors import AudioError, MicmatchError

CLI_DIR = Path(common.__file__).parent

#: Libraries that ``import micmatch.cli`` must not load (each command imports what it needs when it runs).
HEAVY = ("torch", "matplotlib", "dask", "distributed", "scipy.signal", "scipy.stats")


@dataclass
class _Result:
    input: Path
    peak: float
    action: str


def _work(src, dst, *, fail=(), warn=(), peaks=None):
    name = Path(src).name
    if name in fail:
        raise AudioError(f"{src}: refused on purpose")
    if name in warn:
        warnings.warn(f"{name}: a note", UserWarning, stacklevel=1)
    if dst is not None:
        Path(dst).write_text(name)
    peak = (peaks or {}).get(name, 0.5)
    return _Result(Path(src), peak, "ok" if peak <= 1 else "scaled")


def _pairs(tmp_path, names):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return [(tmp_path / n, out / n) for n in names]


def test_run_batch_reports_each_failure_and_goes_on(tmp_path, capsys):
    pairs = _pairs(tmp_path, ["a.wav", "b.wav", "c.wav"])
    seen = []
    outcome = batch.run_batch(pairs, functools.partial(_work, fail=("b.wav",)), progress=False,
                              on_result=lambda s, d, r: seen.append(s.name))
    err = capsys.readouterr().err
    assert err == f"micmatch: error: {tmp_path / 'b.wav'}: refused on purpose\n"  # the path once
    assert seen == ["a.wav", "c.wav"]
    assert (outcome.n_planned, outcome.n_skipped, outcome.n_failed, outcome.n_done) == (3, 0, 1, 2)
    assert outcome.exit_code == 1
    assert [d.read_text() for _, d, _ in outcome.results] == ["a.wav", "c.wav"]
    outcome.report_failures()
    assert capsys.readouterr().err == "1 of 3 file(s) failed\n"
    with pytest.raises(SystemExit) as stop:
        batch.exit_with(outcome)
    assert stop.value.code == 1


def test_run_batch_skip_existing_keeps_outputs(tmp_path):
    pairs = _pairs(tmp_path, ["a.wav", "b.wav"])
    pairs[0][1].write_text("kept")
    outcome = batch.run_batch(pairs, _work, skip_existing=True, progress=False)
    assert pairs[0][1].read_text() == "kept"
    assert pairs[1][1].read_text() == "b.wav"
    assert (outcome.n_planned, outcome.n_skipped, outcome.n_run, outcome.exit_code) == (2, 1, 1, 0)
    assert outcome.skipped_note() == " (1 already there, skipped)"
    assert batch.run_batch(pairs, _work, progress=False).skipped_note() == ""


def test_plan_batch_without_outputs_runs_everything(tmp_path):
    plan = batch.plan_batch([(tmp_path / "a.wav", None)], skip_existing=True)
    assert plan.todo == plan.pairs
    outcome = plan.run(_work, progress=False)
    assert outcome.results[0][1] is None and outcome.n_done == 1


def test_run_batch_prints_captured_warnings_per_file(tmp_path, capsys):
    pairs = _pairs(tmp_path, ["a.wav", "b.wav"])
    batch.run_batch(pairs, functools.partial(_work, warn=("b.wav",)), progress=False)
    assert capsys.readouterr().err == "micmatch: warning: b.wav: a note\n"


def test_run_batch_summarizes_overs_once_per_kind(tmp_path, capsys):
    pairs = _pairs(tmp_path, ["a.wav", "b.wav", "c.wav"])
    batch.run_batch(pairs, functools.partial(_work, peaks={"a.wav": 2.0, "c.wav": 4.0}), summarize_overs=True,
                    progress=False)
    assert capsys.readouterr().err == (
        "micmatch: warning: 2 file(s) exceeded full scale after correction (peak up to +12.0 dBFS) and were scaled "
        f"down as a whole to keep their format; e.g. {tmp_path / 'a.wav'}\n")


def test_run_batch_in_worker_processes_matches_one_process(tmp_path, capsys):
    pairs = _pairs(tmp_path, [f"{i}.wav" for i in range(6)])
    work = functools.partial(_work, fail=("3.wav",), warn=("4.wav",))
    one = batch.run_batch(pairs, work, progress=False)
    err_one = capsys.readouterr().err
    two = batch.run_batch(pairs, work, jobs=2, progress=False)
    assert capsys.readouterr().err == err_one
    assert [r[:2] for r in one.results] == [r[:2] for r in two.results]
    assert two.n_failed == 1


def test_output_paths_plans_relative_names_and_refuses_collisions(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for p in (src / "a.wav", src / "sub" / "b.wav"):
        p.write_bytes(b"")
    out = tmp_path / "out"
    pairs = common.output_paths((str(src),), out)
    assert sorted((s.name, d.relative_to(out).as_posix()) for s, d in pairs) == [("a.wav", "a.wav"),
                                                                                  ("b.wav", "sub/b.wav")]
    with pytest.raises(AudioError, match="would overwrite the output of"):
        common.output_paths((str(src / "a.wav"), str(src)), out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioError, match="no audio files found in"):
        common.output_paths((str(tmp_path / "empty"),), out)


def test_file_error_names_the_file_once():
    assert common.file_error("x.wav", MicmatchError("x.wav: bad")) == "x.wav: bad"
    assert common.file_error("x.wav", MicmatchError("bad")) == "x.wav: bad"
    assert common.file_error("x.wav", PermissionError(13, "Permission denied")) == "x.wav: Permission denied"


@pytest.mark.parametrize("callback, value, match", [
    (common.even_n_fft, 1023, "must be an even integer"),
    (common.odd_n_taps, 1024, "must be an odd integer"),
    (common.finite_level, float("inf"), "must be a finite level"),
    (common.relative_gate, -1.0, "finite number of dB >= 0"),
    (common.band_range, (200.0, 100.0), "needs 0 <= LO < HI"),
])
def test_option_callbacks_refuse_bad_values(callback, value, match):
    with pytest.raises(click.BadParameter, match=match):
        callback(None, None, value)


def test_option_callbacks_pass_good_values():
    assert common.even_n_fft(None, None, 2048) == 2048
    assert common.odd_n_taps(None, None, 1025) == 1025
    assert common.band_range(None, None, None) is None
    assert common.band_range(None, None, (0.0, 100.0)) == (0.0, 100.0)


def test_every_torch_command_names_its_device_compute():
    from micmatch.cli import main

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, f"{path} {name}")
        else:
            yield path, cmd

    compute = {path: [p for p in cmd.params if "--compute" in getattr(p, "opts", ())] for path, cmd in
               walk(main, "micmatch")}
    assert {p for p, found in compute.items() if found} >= {"micmatch correct", "micmatch train ratio-net",
                                                             "micmatch train eq-net", "micmatch train converter"}
    for found in compute.values():
        for option in found:
            assert list(option.type.choices) == list(common.COMPUTE_CHOICES)


def test_commands_are_registered_in_one_list():
    from micmatch.cli import COMMANDS, main, train

    assert sorted(main.commands) == sorted(c.name for c in COMMANDS)
    assert "converter" in train.train.commands


def _cli_imports(path: Path) -> set[str]:
    """Modules of micmatch.cli that ``path`` imports at module level."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("micmatch.cli"):
            names = [node.module] if node.module != "micmatch.cli" else [f"micmatch.cli.{a.name}" for a in node.names]
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("micmatch.cli"))
    return found


#: Imports between command modules still to be switched to micmatch.cli.common (cli/match.py borrows core's).
PENDING: dict[str, set[str]] = {}


def test_command_modules_import_only_the_shared_helpers():
    assert _cli_imports(CLI_DIR / "common.py") == set()
    assert _cli_imports(CLI_DIR / "batch.py") == {"micmatch.cli.common"}
    for path in CLI_DIR.glob("*.py"):
        if path.name != "__init__.py":
            others = _cli_imports(path) - {"micmatch.cli.common", "micmatch.cli.batch"} - PENDING.get(path.name, set())
            assert not others, f"{path.name} imports {sorted(others)}"


def test_import_micmatch_cli_stays_light():
    code = ("import json, sys\nimport micmatch.cli\n"
            f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    src = str(Path(micmatch.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []

"""The core commands (profile, correct, export, plot, demo): outputs, one-line errors naming the file, batches that
go on past bad files and exit 1 at the end, usage errors that exit 2, and an example in every --help."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from micmatch import audio
from micmatch.cli import main
from micmatch.response import ResponseSet
from micmatch.simulate import BUILTIN_DEVICES

SR = 8000
FAST = ["--n-fft", "256", "--hop", "64"]


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("micmatch: error:")]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """recordings/<device>/<clip>.wav for two devices (16-bit, 8 kHz), the same noise clips through each."""
    root = tmp_path_factory.mktemp("cli") / "recordings"
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(SR) * 0.05 for _ in range(3)]
    for name in ("phone", "studio"):
        model = BUILTIN_DEVICES[name]
        for i, x in enumerate(clips):
            y = model.record(x, SR, rng=np.random.default_rng(i))
            audio.save(root / name / f"clip{i}.wav", y.astype(np.float32), SR, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def profile_json(recordings) -> Path:
    out = recordings.parent / "responses.json"
    result = run("profile", recordings, "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    return out


def test_profile_device_from_dir(profile_json):
    rs = ResponseSet.load(profile_json)
    assert sorted(rs) == ["phone", "studio"]
    assert rs["phone"].stats.n_files == 3 and rs.config.n_fft == 256 and rs.config.sample_rate == SR


def test_profile_device_from_regex_and_csv(recordings, tmp_path):
    out = tmp_path / "r.json"
    result = run("profile", recordings, "-o", out, *FAST, "--device-from", r"regex:/(?P<device>[a-z]+)/clip\d\.wav$")
    assert result.exit_code == 0, result.output
    assert sorted(ResponseSet.load(out)) == ["phone", "studio"]
    table = tmp_path / "devices.csv"
    rows = [f"{p},{'A' if p.parent.name == 'phone' else 'B'}" for p in sorted(recordings.rglob("*.wav"))]
    table.write_text("path,device\n" + "\n".join(rows) + "\n")
    result = run("profile", recordings, "-o", out, *FAST, "--device-from", f"csv:{table}")
    assert result.exit_code == 0, result.output
    rs = ResponseSet.load(out)
    assert sorted(rs) == ["A", "B"] and rs["A"].stats.n_files == 3
    assert "A: 3/3 files" in result.stdout


def test_profile_batch_with_bad_files(recordings, tmp_path):
    batch = tmp_path / "batch"
    for p in recordings.rglob("*.wav"):
        dst = batch / p.parent.name / p.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(p.read_bytes())
    good = (batch / "phone" / "clip0.wav").read_bytes()
    (batch / "phone" / "truncated.wav").write_bytes(good[: len(good) // 2])
    sf.write(str(batch / "phone" / "empty.wav"), np.zeros((0, 1)), SR)
    sf.write(str(batch / "phone" / "zeros.wav"), np.zeros(SR), SR, subtype="PCM_16")
    nan = np.full(SR, 0.1, dtype=np.float32)
    nan[10] = np.nan
    sf.write(str(batch / "studio" / "nan.wav"), nan, SR, subtype="FLOAT")
    sf.write(str(batch / "studio" / "short.wav"), np.full(100, 0.1), SR)
    before = {p: p.read_bytes() for p in batch.rglob("*.wav")}
    out = tmp_path / "r.json"
    result = run("profile", batch, "-o", out, *FAST)
    assert result.exit_code == 1
    errors = _error_lines(result)
    expected = {"truncated.wav": "truncated", "empty.wav": "no samples", "zeros.wav": "silent",
                "nan.wav": "NaN or infinite", "short.wav": "shorter than one analysis frame"}
    assert len(errors) == len(expected)
    for name, why in expected.items():
        assert sum(name in line and why in line for line in errors) == 1, (name, errors)
    assert "5 file(s) could not be used" in result.stderr
    rs = ResponseSet.load(out)  # the good files were still profiled
    assert rs["phone"].stats.n_files == 3 and rs["studio"].stats.n_files == 3
    assert {p: p.read_bytes() for p in batch.rglob("*.wav")} == before  # inputs untouched


def test_profile_jobs_2_writes_the_same_statistics(recordings, profile_json, tmp_path):
    out = tmp_path / "r2.json"
    assert run("profile", recordings, "-o", out, *FAST, "--jobs", "2").exit_code == 0
    one = json.loads(profile_json.read_text())["devices"]
    two = json.loads(out.read_text())["devices"]
    assert one == two


def test_profile_sample_rate_mismatch_per_file(recordings, tmp_path):
    mixed = tmp_path / "mixed"
    for p in (recordings / "phone").glob("*.wav"):
        (mixed / "phone").mkdir(parents=True, exist_ok=True)
        (mixed / "phone" / p.name).write_bytes(p.read_bytes())
    audio.save(mixed / "phone" / "z16k.wav", np.random.default_rng(1).standard_normal(16000).astype(np.float32)
               * 0.05, 16000)
    result = run("profile", mixed, "-o", tmp_path / "r.json", *FAST)
    assert result.exit_code == 1
    (line,) = _error_lines(result)
    assert "z16k.wav: sample rate 16000 Hz differs from the analysis rate 8000 Hz" in line
    result = run("profile", mixed, "-o", tmp_path / "r.json", *FAST, "--resample")
    assert result.exit_code == 0 and ResponseSet.load(tmp_path / "r.json")["phone"].stats.n_files == 4


def test_profile_merge_refuses_other_settings_and_skips_counted_files(recordings, profile_json, tmp_path):
    first = tmp_path / "first.json"
    assert run("profile", recordings / "phone", "-o", first, *FAST).exit_code == 0
    assert json.loads(first.read_text())["config"]["channels"] == "mix"
    for extra, message in [(["--n-fft", "256", "--hop", "128"], "hop_length 64 in {}, 128 requested"),
                           ([*FAST, "--channels", "first"], "channels mix in {}, first requested"),
                           ([*FAST, "--gate-db", "-70"], "gate_db -80.0 in {}, -70.0 requested"),
                           ([*FAST, "--resample"], "resample false in {}, true requested")]:
        out = tmp_path / "refused.json"
        result = run("profile", recordings / "studio", "-o", out, *extra, "--merge", first)
        assert result.exit_code == 1
        (line,) = _error_lines(result)
        assert message.format(first) in line and not out.exists()
    # The phone files again and the studio files: the phone files are skipped (counted), the studio ones added.
    merged = tmp_path / "merged.json"
    result = run("profile", recordings, "-o", merged, *FAST, "--merge", first)
    assert result.exit_code == 0, result.output
    assert f"skipped 3 file(s) already counted in {first}" in result.stderr
    rs, whole = ResponseSet.load(merged), ResponseSet.load(profile_json)
    assert len(rs.files) == 6 and {f["device"] for f in rs.files} == {"phone", "studio"}
    for name in ("phone", "studio"):
        assert rs[name].stats.n_files == 3 and rs[name].stats.n_frames == whole[name].stats.n_frames
    # A copy of a counted file under another name is the same content: skipped too; within one run as well.
    copy = tmp_path / "more" / "phone" / "copy.wav"
    copy.parent.mkdir(parents=True)
    copy.write_bytes((recordings / "phone" / "clip0.wav").read_bytes())
    result = run("profile", copy.parent, "-o", tmp_path / "again.json", *FAST, "--merge", merged)
    assert result.exit_code == 0 and "skipped 1 file(s) already counted" in result.stderr
    assert ResponseSet.load(tmp_path / "again.json")["phone"].stats.n_files == 3
    result = run("profile", recordings / "phone", copy.parent, "-o", tmp_path / "twice.json", *FAST)
    assert result.exit_code == 0 and "skipped 1 input file(s) listed twice" in result.stderr
    assert ResponseSet.load(tmp_path / "twice.json")["phone"].stats.n_files == 3


def test_correct_writes_outputs_with_input_names(recordings, profile_json, tmp_path):
    out = tmp_path / "matched"
    before = {p: p.read_bytes() for p in recordings.rglob("*.wav")}
    result = run("correct", recordings / "phone", "--responses", profile_json, "--device", "phone",
                 "--reference", "studio", "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["clip0.wav", "clip1.wav", "clip2.wav"]
    for p in out.iterdir():
        i, o = sf.info(str(recordings / "phone" / p.name)), sf.info(str(p))
        assert (o.frames, o.samplerate, o.subtype) == (i.frames, i.samplerate, i.subtype)
    assert {p: p.read_bytes() for p in recordings.rglob("*.wav")} == before
    result = run("correct", recordings / "phone" / "clip0.wav", "--responses", profile_json, "--device", "phone",
                 "--reference", "studio", "--method", "fir", "-o", tmp_path / "fir")
    assert result.exit_code == 0 and (tmp_path / "fir" / "clip0.wav").is_file()


def test_correct_unknown_device_is_one_line(recordings, profile_json, tmp_path):
    result = run("correct", recordings / "phone", "--responses", profile_json, "--device", "tablet",
                 "--reference", "studio", "-o", tmp_path / "o")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "micmatch: error: unknown device 'tablet'; known devices: phone, studio"]
    assert not (tmp_path / "o").exists()


def test_correct_batch_reports_bad_files_and_goes_on(recordings, profile_json, tmp_path):
    batch = tmp_path / "in"
    batch.mkdir()
    (batch / "a.wav").write_bytes((recordings / "phone" / "clip0.wav").read_bytes())
    audio.save(batch / "b16k.wav", np.zeros(16000, dtype=np.float32) + 0.01, 16000)
    (batch / "c.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    result = run("correct", batch, "--responses", profile_json, "--device", "phone", "--reference", "studio",
                 "-o", tmp_path / "out")
    assert result.exit_code == 1
    errors = _error_lines(result)
    assert len(errors) == 2
    assert "b16k.wav is at 16000 Hz but the correction was estimated at 8000 Hz" in errors[0]
    assert "c.wav: cannot read audio" in errors[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav"]
    assert "corrected 1/3 file(s)" in result.stdout


@pytest.mark.parametrize("content,why", [("{not json", "not valid JSON"),
                                         ('{"format": "micmatch.responses", "format_version": 99}',
                                          "format_version=99 is not supported")])
def test_corrupt_or_wrong_version_profile_is_one_line(recordings, tmp_path, content, why):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    for args in (["correct", recordings / "phone", "--responses", bad, "--device", "phone", "--reference", "studio",
                  "-o", tmp_path / "o"],
                 ["export", bad, "--device", "phone", "--reference", "studio", "--format", "csv", "-o",
                  tmp_path / "c.csv"],
                 ["plot", bad, "-o", tmp_path / "p.png"]):
        result = run(*args)
        assert result.exit_code == 1
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("micmatch: error:") and "bad.json" in line and why in line


def test_export_formats(profile_json, tmp_path):
    common = ["export", profile_json, "--device", "phone", "--reference", "studio"]
    assert run(*common, "--format", "csv", "-o", tmp_path / "c.csv").exit_code == 0
    with (tmp_path / "c.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["frequency_hz", "gain_db"] and len(rows) == 1 + 129
    rs = ResponseSet.load(profile_json)
    from micmatch.correct import correction_curve

    np.testing.assert_allclose(np.array(rows[1:], dtype=float)[:, 1],
                               correction_curve(rs, "phone", "studio", limit_band="auto").gain_db, atol=5e-5)
    assert run(*common, "--format", "wav", "-o", tmp_path / "ir.wav", "--n-taps", "255").exit_code == 0
    h, sr = audio.load(tmp_path / "ir.wav")
    assert sr == SR and h.shape == (1, 255) and int(np.argmax(np.abs(h))) == 127
    assert run(*common, "--format", "equalizerapo", "-o", tmp_path / "eq.txt").exit_code == 0
    assert "GraphicEQ: 20 " in (tmp_path / "eq.txt").read_text()


def test_plot_writes_png(profile_json, tmp_path):
    result = run("plot", profile_json, "-o", tmp_path / "r.png", "--reference", "studio")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = run("plot", profile_json, "-o", tmp_path / "r.png", "--reference", "tablet")
    assert result.exit_code == 1 and "unknown device 'tablet'" in result.stderr


@pytest.mark.parametrize("args,option", [
    (["profile", "DIR", "-o", "out.json", "--n-fft", "1001"], "--n-fft"),
    (["profile", "DIR", "-o", "out.json", "--hop", "0"], "--hop"),
    (["profile", "DIR", "-o", "out.json", "--hop", "4096"], "--hop"),
    (["profile", "DIR", "-o", "out.json", "--jobs", "0"], "--jobs"),
    (["export", "r.json", "--device", "a", "--reference", "b", "--format", "wav", "-o", "x.wav", "--n-taps", "100"],
     "--n-taps"),
    (["export", "r.json", "--device", "a", "--reference", "b", "--format", "csv", "-o", "x.csv",
      "--max-cut-db", "-1"], "--max-cut-db"),
    (["plot", "r.json", "-o", "r.xyz"], "-o"),
])
def test_bad_options_are_usage_errors(recordings, profile_json, args, option):
    args = [str(profile_json) if a == "r.json" else str(recordings) if a == "DIR" else a for a in args]
    result = run(*args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}" in result.stderr


def test_demo_runs_and_corrects_every_device(tmp_path):
    out = tmp_path / "demo"
    result = run("demo", "-o", out, "--clips", "6")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert {r["device"] for r in report["devices"]} == set(BUILTIN_DEVICES) - {"studio"}
    for row in report["devices"]:
        assert row["lsd_after_db"] < row["lsd_before_db"], row
    text = (out / "report.md").read_text()
    assert "| phone |" in text and "LSD before" in text
    for name in ("responses.json", "responses.png", "spectrograms_phone.png"):
        assert (out / name).is_file()
    corrected = sorted(p.name for p in (out / "corrected" / "phone").iterdir())
    assert corrected == sorted(p.name for p in (out / "recordings" / "phone").iterdir())  # nothing else left


@pytest.mark.parametrize("command", ["profile", "correct", "export", "plot", "demo"])
def test_help_shows_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and f"micmatch {command}" in result.output


def test_profile_merge_recognises_files_listed_by_the_older_fingerprint_rule(tmp_path, rng):
    # A responses file written by an earlier release lists a 400 KiB file hashed whole (rule v1).
    folder = tmp_path / "phone"
    folder.mkdir()
    sf.write(folder / "long.wav", 0.1 * rng.standard_normal(25 * SR), SR)  # 400 KiB of PCM16
    sf.write(folder / "short.wav", 0.1 * rng.standard_normal(SR), SR)
    old = tmp_path / "old.json"
    assert run("profile", folder / "long.wav", "--device-from", "name:phone", "-o", old, *FAST).exit_code == 0
    doc = json.loads(old.read_text())
    (entry,) = doc["files"]
    assert entry["hashed"] == "sampled"
    entry.update(audio.file_fingerprint(folder / "long.wav", rule="v1"))
    assert entry["hashed"] == "whole"
    old.write_text(json.dumps(doc))
    result = run("profile", folder, "-o", tmp_path / "new.json", *FAST, "--merge", old)
    assert result.exit_code == 0, result.output
    assert f"skipped 1 file(s) already counted in {old}" in result.stderr
    assert ResponseSet.load(tmp_path / "new.json")["phone"].stats.n_files == 2


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_profile_sums_up_dc_warnings_in_one_line_with_any_jobs(tmp_path, rng, jobs):
    folder = tmp_path / "rec" / "phone"
    folder.mkdir(parents=True)
    n = SR // 2
    for i in range(4):  # three files whose quiet half (-40 dBFS) sits on an offset of 0.5; one clean file
        offset = 0.5 if i < 3 else 0.0
        x = offset + np.concatenate([rng.standard_normal(n) * 0.1, rng.standard_normal(n) * 0.01])
        sf.write(folder / f"clip{i}.wav", np.clip(x, -0.99, 0.99), SR, subtype="PCM_16")
    result = run("profile", tmp_path / "rec", "-o", tmp_path / f"r{jobs}.json", *FAST, "--jobs", jobs)
    assert result.exit_code == 0, result.output
    assert result.stderr == ("micmatch: warning: 3 of 4 files had frames dominated by a DC offset; those frames "
                             "were not counted; -v lists them\n")
    verbose = run("-v", "profile", tmp_path / "rec", "-o", tmp_path / f"v{jobs}.json", *FAST, "--jobs", jobs)
    lines = verbose.stderr.splitlines()
    assert [line.split(": ")[2].rsplit("/", 1)[-1] for line in lines[:3]] == ["clip0.wav", "clip1.wav", "clip2.wav"]
    assert all("frames are dominated by a DC offset (0 Hz)" in line and "\n" not in line for line in lines[:3])
    assert lines[3:] == ["micmatch: warning: 3 of 4 files had frames dominated by a DC offset; those frames were "
                         "not counted"]

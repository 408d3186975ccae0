"""Catalog of hostile-but-realistic uses and what micmatch must answer: each case is a command line built in a
workspace, the expected exit code, a regular expression every error line must match (one line, naming the file or
option), and an optional check of the files afterwards. tests/test_issue_catalog.py runs every case.

Cases that need several processes or signals live beside their machinery and are listed in ``ELSEWHERE``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Case:
    id: str
    #: What the command line is, from the workspace (an object with the paths below).
    argv: Callable[[object], list]
    exit_code: int
    #: Regex that stderr must match (searched); None: no error line at all.
    stderr: str | None
    #: Check of the workspace afterwards: raises AssertionError when wrong.
    check: Callable[[object, object], None] | None = None
    #: Prepare the workspace (write a bad file...) before the command; what it writes under ``in/`` is an input too.
    setup: Callable[[object], None] | None = None
    #: Files (relative to the workspace) that must not exist afterwards: the command's outputs when it fails.
    absent: tuple[str, ...] = ()


def _responses_doc(ws) -> dict:
    return json.loads(Path(ws.responses).read_text())


def _write_doc(path: Path, doc: dict, allow_nan: bool = True) -> None:
    path.write_text(json.dumps(doc, allow_nan=allow_nan))


def _bad_responses(name: str, edit: Callable[[dict], None]):
    def setup(ws):
        doc = _responses_doc(ws)
        edit(doc)
        # json.dumps cannot write 10**400 as a float nor objects as numbers: write the text as given
        _write_doc(ws.root / name, doc)

    return setup


def _set_config(key, value):
    def edit(doc):
        doc["config"][key] = value

    return edit


def _set_response(value):
    def edit(doc):
        dev = next(iter(doc["devices"].values()))
        dev["response_db"][0] = value
        dev["stats"] = None

    return edit


def _input_unchanged(rel: str):
    def check(ws, result):
        assert (ws.root / rel).read_bytes() == ws.snapshot[rel], f"{rel} was modified"

    return check


def _no_output(rel: str):
    def check(ws, result):
        assert not (ws.root / rel).exists(), f"{rel} was written"

    return check


def _stdout_has(*texts: str):
    def check(ws, result):
        for text in texts:
            assert text in result.stdout, result.stdout

    return check


def _exists(rel: str):
    def check(ws, result):
        assert (ws.root / rel).exists(), f"{rel} was not written"

    return check


def _csv_zero_above(rel: str, hz: float):
    def check(ws, result):
        rows = np.loadtxt(ws.root / rel, delimiter=",", skiprows=1)
        above = rows[rows[:, 0] > hz + 1, 1]
        assert above.size and np.all(above == 0.0), "the correction is not 0 dB above the device's band"
        assert "band ends at 4000 Hz" in ws.profile_band_warning

    return check


def _labels(expected: dict):
    def check(ws, result):
        doc = json.loads((ws.root / "lab.json").read_text())
        got = {name: dev["stats"]["n_files"] for name, dev in doc["devices"].items()}
        assert got == expected, got

    return check


def _same_estimate_as_without_dc(ws, result):
    doc = json.loads((ws.root / "dc.json").read_text())
    ref = json.loads(Path(ws.responses).read_text())
    np.testing.assert_allclose(doc["devices"]["phone"]["response_db"], ref["devices"]["phone"]["response_db"],
                               atol=1e-9)


R = "micmatch: error: .*"  # then the file or option the line names
CASES = [
    # 1. Inputs can be overwritten
    Case("profile-output-is-input",
         lambda ws: ["profile", ws.rec / "phone/c0.wav", "--device-from", "name:phone", "-o", ws.rec / "phone/c0.wav",
                     *ws.fast], 1, R + r"-o .*c0\.wav: is an input", _input_unchanged("rec/phone/c0.wav")),
    Case("features-output-is-input",
         lambda ws: ["features", ws.rec / "phone/c1.wav", "-o", ws.rec / "phone/c1.wav", "--n-mels", 16, *ws.fast],
         1, R + r"-o .*c1\.wav: is an input", _input_unchanged("rec/phone/c1.wav")),
    Case("profile-output-inside-input-folder",
         lambda ws: ["profile", ws.rec, "-o", ws.rec / "phone/r.json", *ws.fast], 1,
         R + r"-o .*r\.json: is inside the input folder", _no_output("rec/phone/r.json")),
    Case("correct-output-is-input-folder",
         lambda ws: ["correct", ws.rec / "phone", "--responses", ws.responses, "--device", "phone", "--reference",
                     "studio", "-o", ws.rec / "phone"], 1, R + r"-o .*phone: is the input folder",
         _input_unchanged("rec/phone/c0.wav")),
    Case("export-output-is-the-responses-file",
         lambda ws: ["export", ws.responses, "--device", "phone", "--reference", "studio", "--format", "csv",
                     "-o", ws.responses], 1, R + r"is an input"),
    Case("stale-staging-file-is-not-a-recording",
         lambda ws: ["profile", ws.root / "stale", "-o", ws.root / "stale.json", *ws.fast], 0, None,
         _stdout_has("1 device(s)", "dev: 1/1 files"),
         setup=lambda ws: ws.copy("rec/phone/c0.wav", "stale/dev/c0.wav", ".c1.wav.1a2b3c4d.stage.wav",
                                  ".c2.wav.4242-1a2b3c4d.mmstage")),
    # 3. The absolute gate on 16-bit files
    Case("pcm16-noise-below-gate-is-silent",
         lambda ws: ["profile", ws.root / "quiet16.wav", "--device-from", "name:q", "-o", ws.root / "q.json",
                     "--relative-gate-db", 0, *ws.fast], 1, R + r"quiet16\.wav: silent",
         setup=lambda ws: ws.noise("quiet16.wav", -95, "PCM_16")),
    Case("pcm16-gate-minus-35-gates-minus-40-noise",
         lambda ws: ["profile", ws.root / "m40.wav", "--device-from", "name:q", "-o", ws.root / "q.json",
                     "--gate-db", -35, *ws.fast], 1, R + r"m40\.wav: silent",
         setup=lambda ws: ws.noise("m40.wav", -40, "PCM_16")),
    # 5. No upper bounds
    Case("n-fft-huge", lambda ws: ["profile", ws.rec, "-o", ws.root / "x.json", "--n-fft", 1073741824], 2,
         r"'--n-fft': 1073741824 must be an even integer between 16 and"),
    Case("n-fft-longer-than-every-input", lambda ws: ["profile", ws.rec, "-o", ws.root / "x.json", "--n-fft", 65536],
         2, r"'--n-fft': 65536 is longer than every input \(the longest has 4000 samples at 8000 Hz\)",
         _no_output("x.json")),
    Case("n-taps-huge",
         lambda ws: ["correct", ws.rec / "phone", "--responses", ws.responses, "--device", "phone", "--reference",
                     "studio", "--method", "fir", "--n-taps", 10000001, "-o", ws.root / "out"], 2,
         r"'--n-taps': 10000001 must be an odd integer between 3 and"),
    Case("sweep-duration-huge", lambda ws: ["sweep", "-o", ws.root / "s.wav", "--duration", 1e9], 1,
         R + r"--duration 1e\+09 at 48000 Hz needs about .* of memory", _no_output("s.wav")),
    Case("sweep-duration-negative", lambda ws: ["sweep", "-o", ws.root / "s.wav", "--duration", -1], 2,
         r"'--duration'"),
    # 6. Silent wrong answers
    Case("dc-only-file-is-reported-and-does-not-shift-the-estimate",
         lambda ws: ["profile", ws.root / "dcrec", "-o", ws.root / "dc.json", *ws.fast], 1,
         R + r"dc\.wav: DC only", _same_estimate_as_without_dc,
         setup=lambda ws: ws.dc_folder()),
    Case("response-db-1e308",
         lambda ws: ["export", ws.root / "big.json", "--device", "phone", "--reference", "studio", "--format", "csv",
                     "-o", ws.root / "x.csv"], 1, R + r"big\.json: device '\w+' is invalid \(response_db\[0\]=1e\+308",
         setup=_bad_responses("big.json", _set_response(1e308))),
    Case("sample-rate-not-integer",
         lambda ws: ["plot", ws.root / "sr.json", "-o", ws.root / "x.png"], 1,
         R + r"sr\.json: invalid config \(config\.sample_rate=16000\.7 must be an integer\)",
         setup=_bad_responses("sr.json", _set_config("sample_rate", 16000.7))),
    Case("n-fft-infinity",
         lambda ws: ["plot", ws.root / "inf.json", "-o", ws.root / "x.png"], 1,
         R + r"inf\.json: invalid config \(config\.n_fft=inf must be an integer\)",
         setup=_bad_responses("inf.json", _set_config("n_fft", float("inf")))),
    Case("int-10-to-the-400",
         lambda ws: ["plot", ws.root / "huge.json", "-o", ws.root / "x.png"], 1,
         R + r"huge\.json: invalid config \(config\.hop_length=\d+\.\.\. is outside",
         setup=_bad_responses("huge.json", _set_config("hop_length", 10**400))),
    Case("frequencies-hold-objects",
         lambda ws: ["plot", ws.root / "obj.json", "-o", ws.root / "x.png"], 1,
         R + r"obj\.json: frequencies_hz must hold only numbers",
         setup=_bad_responses("obj.json", lambda d: d.__setitem__("frequencies_hz", [{"a": 1}] * 3))),
    Case("normalizer-with-nan",
         lambda ws: ["features", ws.rec, "-o", ws.root / "f.npz", "--normalization", "gms", "--normalizer",
                     ws.root / "nan_norm.json", "--n-mels", 16, *ws.fast], 1,
         R + r"nan_norm\.json: .* is NaN, infinite or too large", _no_output("f.npz"),
         setup=lambda ws: ws.nan_normalizer()),
    Case("relative-gate-negative", lambda ws: ["profile", ws.rec, "-o", ws.root / "x.json", "--relative-gate-db", -5],
         2, r"'--relative-gate-db': -5\.0 must be a finite number of dB >= 0"),
    Case("gate-nan", lambda ws: ["profile", ws.rec, "-o", ws.root / "x.json", "--gate-db", "nan"], 2,
         r"'--gate-db': nan must be a finite level"),
    Case("features-negative-duration",
         lambda ws: ["features", ws.rec, "-o", ws.root / "f.npz", "--duration-s", -1], 2, r"'--duration-s'"),
    Case("band-below-analysis-band",
         lambda ws: ["export", ws.root / "band.json", "--device", "lo", "--reference", "hi", "--format", "csv",
                     "-o", ws.root / "band.csv"], 0, None, _csv_zero_above("band.csv", 4000.0),
         setup=lambda ws: ws.band_profile()),
    Case("symlink-label-from-the-path-as-given",
         lambda ws: ["profile", ws.root / "links", "-o", ws.root / "lab.json", *ws.fast], 0, None,
         _labels({"laptop": 2, "studio": 1}), setup=lambda ws: ws.symlink_layout()),
    # 7. Tracebacks instead of one line
    Case("output-under-a-regular-file",
         lambda ws: ["profile", ws.rec, "-o", ws.root / "afile/sub/r.json", *ws.fast], 1,
         R + r"-o .*afile/sub/r\.json: cannot write under .*afile: it is a file, not a folder",
         setup=lambda ws: (ws.root / "afile").write_text("x")),
    Case("correct-output-under-a-regular-file",
         lambda ws: ["correct", ws.rec / "phone", "--responses", ws.responses, "--device", "phone", "--reference",
                     "studio", "-o", ws.root / "afile2/out"], 1, R + r"it is a file, not a folder",
         setup=lambda ws: (ws.root / "afile2").write_text("x")),
    Case("scheduler-unreachable",
         lambda ws: ["profile", ws.rec, "-o", ws.root / "x.json", "--scheduler", "tcp://127.0.0.1:1", *ws.fast], 1,
         R + r"--scheduler tcp://127\.0\.0\.1:1: cannot connect to the dask scheduler"),
    Case("measure-plot-txt",
         lambda ws: ["measure", ws.sweep, "--sweep", ws.sweep, "--device", "d", "-o", ws.root / "m.json",
                     "--n-fft", 256, "--plot", ws.root / "p.txt"], 2, r"p\.txt: use a \.png, \.svg, \.pdf file name",
         _no_output("p.txt")),
    Case("random-bytes-wav",
         lambda ws: ["profile", ws.root / "junk", "-o", ws.root / "x.json", *ws.fast], 1,
         R + r"junk/dev/noise\.wav: cannot read audio \(Format not recognised\.\)",
         setup=lambda ws: ws.random_bytes("junk/dev/noise.wav")),
    Case("random-bytes-beside-good-files",
         lambda ws: ["profile", ws.root / "junk2", "-o", ws.root / "x2.json", *ws.fast], 1,
         R + r"junk2/phone/zz\.wav: cannot read audio",
         _exists("x2.json"),
         setup=lambda ws: (ws.copy("rec/phone/c0.wav", "junk2/phone/c0.wav"), ws.random_bytes("junk2/phone/zz.wav"))),
]

#: Cases from the issue tested elsewhere, with the test that covers each.
ELSEWHERE = {
    "concurrent --append keeps all six devices": "tests/test_outputs.py::test_six_concurrent_appenders_all_keep_"
                                                "their_device",
    "correct -o a subfolder of its input, run twice": "tests/test_outputs.py::test_correct_into_a_subfolder_of_its_"
                                                      "input_does_not_correct_its_own_outputs",
    "SIGINT/SIGTERM/SIGKILL mid-batch, rerun with --skip-existing": "tests/test_outputs.py::test_interrupted_batch_"
                                                                    "resumes_with_identical_outputs",
    "worker pool killed with SIGTERM leaves no orphan": "tests/test_parallel.py::test_worker_pool_stops_on_"
                                                        "termination_without_orphans",
    "measure --plot failing after the work keeps the measurement": "tests/test_outputs.py::test_measure_plot_with_"
                                                                   "a_bad_suffix_fails_before_the_work",
    "gate on every sample format against its float twin": "tests/test_gate_formats.py",
    "disk full and unreadable (chmod 000) files in a batch": "tests/test_issue_catalog.py::test_os_errors_are_one_"
                                                             "line_per_file_and_the_batch_goes_on",
}

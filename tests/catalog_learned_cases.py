"""Catalog of hostile-but-realistic uses of the learned half and the newer commands (train, correct --model, model
files, match on files and folders, features labels, curve CSVs) and what micmatch must answer. Each case is a
command line built in a workspace (tests/test_learned_catalog.py), the expected exit code, a regular expression
the error lines must match, and an optional check; the runner also checks, for every case, that no input changed
(hashes before and after), that no staging file is left, and that every audio file written is finite.

Grouped by the root causes of the report they come from: 1 the output rule in train, 2 model files checked whole,
3 exceptions instead of one line, 4 labels, 5 NaN and infinity, 6 smaller gaps.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from catalog_issue_cases import Case as BaseCase


@dataclass(frozen=True)
class Case(BaseCase):
    """A case of the hostile-use catalog, with what the learned half needs on top."""

    #: Training commands print progress lines of their own on stderr.
    log_lines: bool = False
    #: Run only when this holds (a CUDA check is meaningless on a machine that has CUDA).
    when: Callable[[], bool] | None = None


# Model files edited as a careful forger would: the field changed, the checksum recomputed (or not) -------------
def _split(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[15:23])[0]
    return json.loads(data[23 : 23 + n]), data[23 + n :]


def _assemble(header: dict, payload: bytes, *, reseal: bool = True) -> bytes:
    from micmatch.learn import modelfile

    header = dict(header)
    if reseal:
        try:
            body = json.dumps({k: v for k, v in header.items() if k != modelfile.CHECKSUM_KEY}, sort_keys=True,
                              separators=(",", ":"), allow_nan=False).encode()
            header[modelfile.CHECKSUM_KEY] = hashlib.sha256(body + b"\0" + payload).hexdigest()
        except ValueError:  # NaN in the header: no canonical form; the finite check must catch it first
            pass
    text = json.dumps(header, allow_nan=True).encode()
    return modelfile.MAGIC + struct.pack("<Q", len(text)) + text + payload


def _edited_model(name: str, edit: Callable[[dict], None], *, source: str = "in/model.mmm", reseal: bool = True):
    def setup(ws):
        header, payload = _split((ws.root / source).read_bytes())
        edit(header)
        (ws.root / "in" / name).write_bytes(_assemble(header, payload, reseal=reseal))

    return setup


def _set(path: str, value):
    def edit(header):
        node = header
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


def _nan_weights(name: str):
    def setup(ws):
        import io

        import torch

        header, payload = _split((ws.root / "in/model.mmm").read_bytes())
        state = torch.load(io.BytesIO(payload), weights_only=True)
        state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
        buf = io.BytesIO()
        torch.save(state, buf)
        header["weights_bytes"] = len(buf.getvalue())
        (ws.root / "in" / name).write_bytes(_assemble(header, buf.getvalue()))

    return setup


def _truncated(name: str):
    def setup(ws):
        data = (ws.root / "in/model.mmm").read_bytes()
        (ws.root / "in" / name).write_bytes(data[: len(data) // 2])

    return setup


# Checks ------------------------------------------------------------------------------------------------------------
def _exists(*rels: str):
    def check(ws, result):
        for rel in rels:
            assert (ws.root / rel).exists(), f"{rel} was not written"

    return check


def _stderr_has(*texts: str):
    def check(ws, result):
        for text in texts:
            assert text in result.stderr, result.stderr

    return check


def _write(rel: str, text: str | bytes):
    def setup(ws):
        p = ws.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))

    return setup


def _audio(rel: str, x: np.ndarray, sr: int = 8000, subtype: str = "PCM_16"):
    def setup(ws):
        p = ws.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, x.T if x.ndim == 2 else x, sr, subtype=subtype)

    return setup


def _both(*setups):
    def setup(ws):
        for s in setups:
            s(ws)

    return setup


def _all(*checks):
    def check(ws, result):
        for c in checks:
            c(ws, result)

    return check


def _noise(seconds: float, channels: int = 1, seed: int = 0, level: float = 0.1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((channels, int(8000 * seconds))) * level
    return x[0] if channels == 1 else x


def _cuda_missing() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return not torch.cuda.is_available()


R = "micmatch: error: .*"
TRAIN = ["--epochs", 1, "--compute", "cpu"]
RATIO = ["train", "ratio-net", "--hidden", 8]
CONVERTER = ["train", "converter", "--epochs", 1, "--n-mels", 16, "--compute", "cpu", "--devices", 2]
CORRECT = ["correct"]
FAST = ["--n-fft", 256, "--hop", 64]

CASES = [
    # 1. train does not apply the output rule
    Case("train-ratio-net-output-is-the-device-recording",
         lambda ws: [*RATIO, "--reference", ws.ref, "--device", ws.dev, "-o", ws.dev, *TRAIN], 1,
         R + r"-o .*dev\.wav: is an input"),
    Case("train-eq-net-output-is-the-reference",
         lambda ws: ["train", "eq-net", "--reference", ws.ref, "--device", ws.dev, "-o", ws.ref, *TRAIN], 1,
         R + r"-o .*ref\.wav: is an input"),
    Case("train-output-is-the-pairs-csv",
         lambda ws: [*RATIO, "--pairs", ws.pairs, "-o", ws.pairs, *TRAIN], 1, R + r"-o .*pairs\.csv: is an input"),
    Case("train-output-is-a-wav-listed-in-the-pairs-csv",
         lambda ws: [*RATIO, "--pairs", ws.pairs, "-o", ws.dev, *TRAIN], 1, R + r"-o .*dev\.wav: is an input"),
    Case("train-init-model-is-the-output",
         lambda ws: [*RATIO, "--reference", ws.ref, "--device", ws.dev, "--init", ws.model, "-o", ws.model, *TRAIN],
         1, R + r"-o .*model\.mmm: is an input"),
    Case("train-converter-output-inside-data",
         lambda ws: [*CONVERTER, "--data", ws.clips, "--irs", ws.irs, "-o", ws.clips / "c0.wav"], 1,
         R + r"-o .*c0\.wav: is inside the input folder"),
    # 2. model files checked whole
    Case("model-max-gain-nan",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/nan_gain.mmm", "-o", ws.out("nan-gain")], 1,
         R + r"nan_gain\.mmm: invalid model header \(architecture\.max_gain_db=nan is not finite\)",
         setup=_edited_model("nan_gain.mmm", _set("architecture.max_gain_db", float("nan"))),
         absent=("out/nan-gain",)),
    Case("model-sample-rate-edited-without-checksum",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/sr.mmm", "-o", ws.out("sr")], 1,
         R + r"sr\.mmm: the header and weights do not match the checksum",
         setup=_edited_model("sr.mmm", _set("sample_rate", 16000), reseal=False), absent=("out/sr",)),
    Case("model-sample-rate-zero",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/sr0.mmm", "-o", ws.out("sr0")], 1,
         R + r"sr0\.mmm: invalid model header \(sample_rate=0 must lie in",
         setup=_edited_model("sr0.mmm", _set("sample_rate", 0)), absent=("out/sr0",)),
    Case("model-hop-zero",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/hop0.mmm", "-o", ws.out("hop0")], 1,
         R + r"hop0\.mmm: invalid model header \(config\.hop_length=0 must lie in",
         setup=_edited_model("hop0.mmm", _set("config.hop_length", 0)), absent=("out/hop0",)),
    Case("model-hop-1e9",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/hop9.mmm", "-o", ws.out("hop9")], 1,
         R + r"hop9\.mmm: invalid model header \(config\.hop_length=1000000000 must lie in",
         setup=_edited_model("hop9.mmm", _set("config.hop_length", 10**9)), absent=("out/hop9",)),
    Case("model-hop-not-integer",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/hopf.mmm", "-o", ws.out("hopf")], 1,
         R + r"hopf\.mmm: invalid model header \(config\.hop_length=128\.5 must be an integer\)",
         setup=_edited_model("hopf.mmm", _set("config.hop_length", 128.5)), absent=("out/hopf",)),
    Case("model-n-fft-edited",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/nfft.mmm", "-o", ws.out("nfft")], 1,
         R + r"nfft\.mmm: invalid model header \(architecture\.n_bins=129 must lie in \[513, 513\]\)",
         setup=_edited_model("nfft.mmm", _set("config.n_fft", 1024)), absent=("out/nfft",)),
    Case("eq-net-window-edited",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/win.mmm", "-o", ws.out("win")], 1,
         R + r"win\.mmm: invalid model header \(config\.hop_length=512 must lie in \[2048, 2048\]\)",
         setup=_edited_model("win.mmm", _set("config.window", 4096), source="in/eq.mmm"), absent=("out/win",)),
    Case("model-weights-all-nan",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/nanw.mmm", "-o", ws.out("nanw")], 1,
         R + r"nanw\.mmm: weight '[\w.]+' holds NaN or infinite values",
         setup=_nan_weights("nanw.mmm"), absent=("out/nanw",)),
    Case("model-truncated",
         lambda ws: [*CORRECT, ws.dev, "--model", ws.root / "in/cut.mmm", "-o", ws.out("cut")], 1,
         R + r"cut\.mmm: truncated model file", setup=_truncated("cut.mmm"), absent=("out/cut",)),
    Case("model-bad-on-a-folder-batch",
         lambda ws: [*CORRECT, ws.root / "in/batch", "--model", ws.root / "in/hop0b.mmm", "-o", ws.out("batch")], 1,
         R + r"hop0b\.mmm: invalid model header",
         setup=_both(_edited_model("hop0b.mmm", _set("config.hop_length", 0)),
                     _audio("in/batch/a.wav", _noise(0.5)), _audio("in/batch/b.wav", _noise(0.5, seed=1))),
         absent=("out/batch/a.wav", "out/batch/b.wav")),
    Case("model-path-is-a-folder",
         lambda ws: [*RATIO, "--reference", ws.ref, "--device", ws.dev, "--init", ws.root / "in", "-o",
                     ws.out("f.mmm"), *TRAIN], 2, r"'--init'.*is a directory", absent=("out/f.mmm",)),
    # 3. exceptions instead of one line
    Case("match-six-channel-target",
         lambda ws: ["match", ws.root / "in/six.wav", ws.ref, "-o", ws.out("six.wav")], 0, None,
         _exists("out/six.wav"), setup=_audio("in/six.wav", _noise(1.0, channels=6, seed=3))),
    Case("match-folder-with-a-six-channel-file-goes-on",
         lambda ws: ["match", ws.root / "in/mix6", ws.ref, "-o", ws.out("mix6")], 0, None,
         _exists("out/mix6/a.wav", "out/mix6/six.wav"),
         setup=_both(_audio("in/mix6/a.wav", _noise(1.0, seed=4)), _audio("in/mix6/six.wav", _noise(1.0, 6, 5)))),
    Case("match-reference-folder-without-audio",
         lambda ws: ["match", ws.dev, ws.root / "in/emptyref", "-o", ws.out("e.wav")], 1,
         R + r"emptyref: no audio files in this reference folder", setup=_write("in/emptyref/notes.txt", "x"),
         absent=("out/e.wav",)),
    Case("pairs-csv-not-utf8",
         lambda ws: [*RATIO, "--pairs", ws.root / "in/latin1.csv", "-o", ws.out("l.mmm"), *TRAIN], 1,
         R + r"latin1\.csv: not UTF-8 text", setup=_write("in/latin1.csv", "reference,device\nr\xe9f.wav,d.wav\n"
                                                           .encode("latin-1")), absent=("out/l.mmm",)),
    Case("label-csv-not-utf8",
         lambda ws: ["features", ws.root / "in/lab", "-o", ws.out("f.npz"), "--label-from",
                     f"csv:{ws.root / 'in/lab/latin1.csv'}", "--device-from", "name:d", "--n-mels", 16, *FAST], 1,
         R + r"latin1\.csv: not UTF-8 text",
         setup=_both(_audio("in/lab/a.wav", _noise(0.5)),
                     _write("in/lab/latin1.csv", "filename,label\na.wav,caf\xe9\n".encode("latin-1"))),
         absent=("out/f.npz",)),
    Case("train-converter-cuda-without-cuda",
         lambda ws: ["train", "converter", "--data", ws.clips, "--irs", ws.irs, "-o", ws.out("c.mmm"), "--compute",
                     "cuda"], 1, R + r"no CUDA device is available", absent=("out/c.mmm",), when=_cuda_missing),
    Case("train-ratio-net-hidden-and-context-huge",
         lambda ws: [*RATIO[:2], "--reference", ws.ref, "--device", ws.dev, "-o", ws.out("h.mmm"), "--hidden",
                     1 << 20, "--context", 256, *TRAIN], 1,
         R + r"--hidden 1048576 --context 256 needs about .* of memory", absent=("out/h.mmm",)),
    Case("train-ratio-net-hidden-beyond-range",
         lambda ws: [*RATIO[:2], "--reference", ws.ref, "--device", ws.dev, "-o", ws.out("h2.mmm"), "--hidden",
                     10**12, *TRAIN], 2, r"'--hidden'", absent=("out/h2.mmm",)),
    Case("pairs-csv-lists-a-folder",
         lambda ws: [*RATIO, "--pairs", ws.root / "in/pf/pairs.csv", "-o", ws.out("pf.mmm"), *TRAIN], 1,
         R + r"sub: is a folder, not a recording",
         setup=_both(_write("in/pf/pairs.csv", "reference,device\nsub,sub\n"), _write("in/pf/sub/x.txt", "x")),
         absent=("out/pf.mmm",)),
    # 4. labels
    Case("label-csv-one-file-two-labels",
         lambda ws: ["features", ws.root / "in/lab2", "-o", ws.out("f2.npz"), "--label-from",
                     f"csv:{ws.root / 'in/lab2/labels.csv'}", "--device-from", "name:d", "--n-mels", 16, *FAST], 1,
         R + r"labels\.csv: a\.wav is listed twice with different labels, 'dog' and 'cat'",
         setup=_both(_audio("in/lab2/a.wav", _noise(0.5)),
                     _write("in/lab2/labels.csv", "filename,label\na.wav,dog\na.wav,cat\n")), absent=("out/f2.npz",)),
    Case("label-csv-ambiguous-bare-name",
         lambda ws: ["features", ws.root / "in/lab3/x", "-o", ws.out("f3.npz"), "--label-from",
                     f"csv:{ws.root / 'in/lab3/labels.csv'}", "--device-from", "name:d", "--n-mels", 16, *FAST], 1,
         R + r"a\.wav: not listed by its path in .*labels\.csv, and its name matches several rows: p/a\.wav "
             r"\(dog\), q/a\.wav \(cat\)",
         setup=_both(_audio("in/lab3/x/a.wav", _noise(0.5)),
                     _write("in/lab3/labels.csv", "filename,label\np/a.wav,dog\nq/a.wav,cat\n")),
         absent=("out/f3.npz",)),
    Case("label-csv-unique-bare-name-still-matches",
         lambda ws: ["features", ws.root / "in/lab4/x", "-o", ws.out("f4.npz"), "--label-from",
                     f"csv:{ws.root / 'in/lab4/labels.csv'}", "--device-from", "name:d", "--n-mels", 16, *FAST], 0,
         None, _exists("out/f4.npz"),
         setup=_both(_audio("in/lab4/x/a.wav", _noise(0.5)), _write("in/lab4/labels.csv", "filename,label\n"
                                                                                          "p/a.wav,dog\n"))),
    # 5. NaN and infinity
    Case("reference-weights-nan",
         lambda ws: ["match", ws.dev, ws.ref, ws.ref2, "-o", ws.out("w.wav"), "--reference-weights", "nan,1"], 2,
         r"--reference-weights: 'nan,1' must be finite numbers >= 0", absent=("out/w.wav",)),
    Case("reference-weights-inf",
         lambda ws: ["match", ws.dev, ws.ref, ws.ref2, "-o", ws.out("w.wav"), "--reference-weights", "inf,1"], 2,
         r"--reference-weights: 'inf,1' must be finite", absent=("out/w.wav",)),
    Case("band-infinite",
         lambda ws: ["match", ws.dev, ws.ref, "-o", ws.out("b.wav"), "--band", 10, "inf"], 2,
         r"'--band': inf is not a finite number", absent=("out/b.wav",)),
    Case("correct-band-nan",
         lambda ws: ["correct", ws.dev, "--responses", ws.responses, "--device", "phone", "--reference", "studio",
                     "-o", ws.out("cb"), "--band", "nan", 1000], 2, r"'--band'", absent=("out/cb",)),
    Case("strength-nan",
         lambda ws: ["match", ws.dev, ws.ref, "-o", ws.out("s.wav"), "--strength", "nan"], 2,
         r"'--strength': nan is not a finite number", absent=("out/s.wav",)),
    Case("train-long-term-weight-infinite",
         lambda ws: [*RATIO, "--reference", ws.ref, "--device", ws.dev, "-o", ws.out("lt.mmm"), "--long-term-weight",
                     "inf", *TRAIN], 2, r"'--long-term-weight': inf is not a finite number", absent=("out/lt.mmm",)),
    Case("curve-csv-nan-frequency",
         lambda ws: ["match", ws.dev, ws.root / "in/nanf.csv", "-o", ws.out("c.wav")], 1,
         R + r"nanf\.csv: line 3: frequency nan must be a finite number of Hz",
         setup=_write("in/nanf.csv", "frequency,raw\n100,0\nnan,1\n1000,2\n"), absent=("out/c.wav",)),
    Case("curve-csv-huge-gain-parametric-export",
         lambda ws: ["export", ws.responses, "--device", "phone", "--reference", ws.root / "in/huge.csv", "--format",
                     "parametric", "-o", ws.out("p.txt")], 1,
         R + r"huge\.csv: line 2: gain 1e\+300 must be a finite number of dB",
         setup=_write("in/huge.csv", "frequency,raw\n100,1e300\n1000,0\n"), absent=("out/p.txt",)),
    # 6. smaller gaps
    Case("match-empty-folder",
         lambda ws: ["match", ws.root / "in/empty", ws.ref, "-o", ws.out("empty")], 1,
         R + r"no audio files found in: .*empty", setup=lambda ws: (ws.root / "in/empty").mkdir()),
    Case("match-report-name-clash",
         lambda ws: ["match", ws.root / "in/clash", ws.ref, "-o", ws.out("clash"), "--report", ws.out("rep")], 0,
         None, _exists("out/rep/phone.wav/summary.json", "out/rep/phone.flac/summary.json"),
         setup=_both(_audio("in/clash/phone.wav", _noise(1.0, seed=6)),
                     _audio("in/clash/phone.flac", _noise(1.0, seed=7)))),
    Case("match-short-target-says-loudness-was-left",
         lambda ws: ["match", ws.root / "in/short.wav", ws.ref, "-o", ws.out("short.wav")], 0,
         None, _stderr_has("short.wav: the target is too short (0.30 s, under 0.4 s) to measure its loudness"),
         setup=_audio("in/short.wav", _noise(0.3, seed=8))),
    Case("train-converter-skips-silent-and-one-sample-clips",
         lambda ws: [*CONVERTER, "--data", ws.root / "in/clips2", "--irs", ws.irs, "-o", ws.out("c2.mmm")], 1,
         r"micmatch: warning: 2 clip\(s\) of --data were skipped",
         _all(_stderr_has("skipped ", "silent.wav: silent", "one.wav: 1 sample(s)"), _exists("out/c2.mmm")),
         setup=_both(*(_audio(f"in/clips2/c{i}.wav", _noise(0.3, seed=10 + i, level=0.05)) for i in range(4)),
                     _audio("in/clips2/silent.wav", np.zeros(2400)), _audio("in/clips2/one.wav", np.full(1, 0.1))),
         log_lines=True),
    Case("correct-model-refuses-responses-options",
         lambda ws: ["correct", ws.dev, "--model", ws.model, "--responses", ws.responses, "--device", "phone",
                     "--method", "fir", "-o", ws.out("m")], 2,
         r"--responses, --device, --method cannot be used with --model", absent=("out/m",)),
    Case("features-n-fft-16-with-40-mels",
         lambda ws: ["features", ws.dev, "-o", ws.out("m.npz"), "--n-fft", 16, "--hop", 8, "--n-mels", 40], 1,
         R + r"--n-mels 40 with --n-fft 16 at 8000 Hz leaves \d+ of 40 mel bands without any FFT bin",
         absent=("out/m.npz",)),
    Case("features-output-wav",
         lambda ws: ["features", ws.dev, "-o", ws.out("f.wav"), "--n-mels", 16, *FAST], 2,
         r"f\.wav: features are written as a NumPy \.npz archive", absent=("out/f.wav",)),
    Case("profile-antiphase-stereo",
         lambda ws: ["profile", ws.root / "in/anti", "-o", ws.out("anti.json"), *FAST], 1,
         R + r"a\.wav: its channels cancel when mixed to mono \(antiphase\)",
         setup=lambda ws: _audio("in/anti/dev/a.wav", np.stack([_noise(1.0, seed=9), -_noise(1.0, seed=9)]))(ws),
         absent=("out/anti.json",)),
]

"""Seeded fuzzing of model files: header fields and weights altered (with and without a recomputed checksum),
files truncated, bytes flipped and sections reordered. Every variant either loads and writes finite audio, or
stops with one of micmatch's errors; nothing non-finite is ever written and no staging file is left."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from micmatch.errors import MicmatchError  # noqa: E402
from micmatch.learn import modelfile  # noqa: E402
from micmatch.learn.classifier import DeviceCNN, load_checkpoint, save_checkpoint  # noqa: E402
from micmatch.learn.converter_model import Converter, ConverterConfig  # noqa: E402
from micmatch.learn.eq_net import EQNet  # noqa: E402
from micmatch.learn.normalizer import Normalizer, correct_file_with_model  # noqa: E402
from micmatch.learn.ratio_net import RatioNet  # noqa: E402

SR = 8000
N_VARIANTS = 750
#: Values a hostile edit puts into a header field.
HOSTILE = [float("nan"), float("inf"), -float("inf"), 0, -1, 1, 2, 3, 128.5, 1e9, 10**30, 1e300, -1e300, "16000",
           None, True, [], {}, [1, 2], 8000, 16000, 64, 65, 255, 256, 257, 4096, 0.5]


def _split(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[15:23])[0]
    return json.loads(data[23 : 23 + n]), data[23 + n :]


def _assemble(header: dict, payload: bytes, *, reseal: bool) -> bytes:
    header = dict(header)
    if reseal:  # what a careful forger does: the checksum recomputed over the edited header and weights
        try:
            body = json.dumps({k: v for k, v in header.items() if k != modelfile.CHECKSUM_KEY}, sort_keys=True,
                              separators=(",", ":"), allow_nan=False).encode()
            header[modelfile.CHECKSUM_KEY] = hashlib.sha256(body + b"\0" + payload).hexdigest()
        except (ValueError, TypeError):
            pass
        header["weights_bytes"] = len(payload)
    text = json.dumps(header, allow_nan=True).encode()
    return modelfile.MAGIC + struct.pack("<Q", len(text)) + text + payload


def _paths(node, prefix=()):
    """Every leaf of a JSON tree, as key paths."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list) and node and len(node) < 8:
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))
    else:
        yield prefix


def _set(tree, path, value):
    node = tree
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    header, payload = _split(data)
    kind = int(rng.integers(8))
    if kind <= 2:  # one header field edited; sealed again two times in three
        header = copy.deepcopy(header)
        leaves = [p for p in _paths(header) if p and p[0] not in ("sha256", "weights_sha256", "weights_bytes")]
        _set(header, leaves[int(rng.integers(len(leaves)))], HOSTILE[int(rng.integers(len(HOSTILE)))])
        return _assemble(header, payload, reseal=kind != 2)
    if kind == 3:  # weights altered (NaN, infinity, huge, scaled), sealed again
        state = torch.load(io.BytesIO(payload), weights_only=True)
        name = sorted(state)[int(rng.integers(len(state)))]
        t = state[name].clone()
        if t.is_floating_point() and t.numel():
            flat = t.view(-1)
            idx = torch.as_tensor(rng.integers(0, flat.numel(), size=max(1, flat.numel() // 4)))
            flat[idx] = float(rng.choice([np.nan, np.inf, -np.inf, 1e38, 1e6, 0.0]))
        state[name] = t
        buf = io.BytesIO()
        torch.save(state, buf)
        return _assemble(header, buf.getvalue(), reseal=True)
    if kind == 4:  # a weight dropped, renamed or reshaped, sealed again
        state = torch.load(io.BytesIO(payload), weights_only=True)
        name = sorted(state)[int(rng.integers(len(state)))]
        op = int(rng.integers(3))
        if op == 0:
            del state[name]
        elif op == 1:
            state["x" + name] = state.pop(name)
        else:
            state[name] = torch.zeros(3, 5)
        buf = io.BytesIO()
        torch.save(state, buf)
        return _assemble(header, buf.getvalue(), reseal=True)
    if kind == 5:  # truncated anywhere
        return data[: int(rng.integers(0, len(data)))]
    if kind == 6:  # bytes flipped
        b = bytearray(data)
        for i in rng.integers(0, len(b), size=int(rng.integers(1, 6))):
            b[i] ^= int(rng.integers(1, 256))
        return bytes(b)
    # reordered: the weights before the header, or two halves swapped
    if rng.integers(2):
        text = json.dumps(header).encode()
        return modelfile.MAGIC + struct.pack("<Q", len(text)) + payload + text
    cut = int(rng.integers(1, len(data)))
    return data[cut:] + data[:cut]


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    ratio = RatioNet(129, hidden=8)
    files = {
        "ratio": Normalizer("ratio-net", ratio, SR, {"n_fft": 256, "hop_length": 64, "architecture": ratio.config})
        .save(d / "ratio.mmm"),
        "eq": Normalizer("eq-net", EQNet(window=256, channels=2, taps=16, local_taps=16, pool=16, latent_units=8),
                         SR, {"window": 256, "hop_length": 128, "n_fft": 256}).save(d / "eq.mmm"),
        "converter": Converter(ConverterConfig(n_mels=16, channels=8, n_blocks=1, film_channels=4, film_hidden=8))
        .save(d / "conv.mmm"),
        "classifier": save_checkpoint(d / "cls.mmm", DeviceCNN(3, 8), sample_rate=SR),
    }
    # A file of the previous format (the checksum covers the weights only): its header edits meet the field checks.
    files["legacy"] = Path(__file__).parent / "data/regression/ratio-net.mmm"
    audio = d / "in.wav"
    sf.write(audio, np.random.default_rng(1).standard_normal(SR // 4) * 0.1, SR, subtype="PCM_16")
    sf.write(d / "in16.wav", np.random.default_rng(1).standard_normal(SR // 2) * 0.1, 2 * SR, subtype="PCM_16")
    return {k: v.read_bytes() for k, v in files.items()}, audio


def _exercise(kind: str, path, audio, out) -> str:
    if kind == "legacy":
        kind, audio = "ratio", audio.with_name("in16.wav")
    if kind in ("ratio", "eq"):
        model = Normalizer.load(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            correct_file_with_model(audio, out, model, overs="float")
        y, _ = sf.read(out, dtype="float32")
        assert np.all(np.isfinite(y)), f"non-finite samples written from {path}"
        return "written"
    if kind == "converter":
        model = Converter.load(path)
        model.convert(np.full((1, model.config.n_mels, 6), -40.0, np.float32),
                      np.zeros(model.config.n_mels, np.float32))
        return "loaded"
    load_checkpoint(path)
    return "loaded"


def test_originals_load_and_run(originals, tmp_path):
    files, audio = originals
    for kind, data in files.items():
        (tmp_path / kind).write_bytes(data)
        assert _exercise(kind, tmp_path / kind, audio, tmp_path / f"{kind}.wav") in ("written", "loaded")


def test_fuzzed_model_files_stop_with_one_line_or_write_finite_audio(originals, tmp_path):
    files, audio = originals
    rng = np.random.default_rng(2026)
    kinds = sorted(files)
    outcomes = {"refused": 0, "written": 0, "loaded": 0}
    for i in range(N_VARIANTS):
        kind = kinds[i % len(kinds)]
        path, out = tmp_path / f"v{i}.mmm", tmp_path / f"v{i}.wav"
        path.write_bytes(_mutate(files[kind], rng))
        try:
            outcomes[_exercise(kind, path, audio, out)] += 1
        except MicmatchError as exc:
            message = str(exc)
            assert message and "\n" not in message, (kind, i, message)
            assert not out.exists(), f"variant {i} failed but left {out}"
            outcomes["refused"] += 1
        path.unlink()
        out.unlink(missing_ok=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging files left"
    assert outcomes["refused"] > N_VARIANTS // 2, outcomes


def test_header_edit_without_reseal_is_caught_by_the_checksum(originals, tmp_path):
    files, _ = originals
    header, payload = _split(files["ratio"])
    header["sample_rate"] = 16000  # a plausible edit: every field check passes, only the checksum sees it
    (tmp_path / "m.mmm").write_bytes(_assemble(header, payload, reseal=False))
    with pytest.raises(MicmatchError, match="m.mmm: the header and weights do not match the checksum"):
        Normalizer.load(tmp_path / "m.mmm")

"""Seeded fuzzing of the two kinds of user files micmatch reads: audio (mutated WAV bytes through info, load and
the statistics path) and JSON (mutated responses and normalizer files). Every variant must either work or raise
one of micmatch's own errors (a MicmatchError, which the CLI prints as one line): never a foreign exception, and
never chatter from the decoders on stderr. 1,300 variants; a few seconds."""

from __future__ import annotations

import copy
import io
import json
import struct
import warnings

import numpy as np
import pytest
import soundfile as sf

from micmatch import audio
from micmatch.errors import MicmatchError
from micmatch.estimate import file_stats
from micmatch.features import load_normalizer
from micmatch.response import ResponseSet, SpectralConfig

SEED = 20261124
N_WAV = 700
N_JSON = 450
N_NORMALIZER = 150
HOSTILE = [float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 10**400, -(10**400), 16000.7, -1, 0, True,
           None, "text", [], {}, [1, "a"], {"a": 1}, [[1.0]], 2**63, 1e-320, ""]


def _base_wavs(rng) -> list[bytes]:
    out = []
    for subtype, channels, n in (("PCM_16", 1, 4000), ("PCM_24", 2, 3000), ("FLOAT", 1, 2000), ("PCM_U8", 1, 3000),
                                 ("PCM_32", 1, 300), ("DOUBLE", 2, 2500)):
        buf = io.BytesIO()
        x = rng.standard_normal((n, channels)) * 0.1
        sf.write(buf, x, 8000, subtype=subtype, format="WAV")
        out.append(buf.getvalue())
    return out


def _mutate_wav(data: bytes, rng) -> bytes:
    b = bytearray(data)
    kind = rng.integers(7)
    if kind == 0:  # truncated
        return bytes(b[: rng.integers(0, len(b))])
    if kind == 1:  # flipped bytes in the header
        for _ in range(rng.integers(1, 6)):
            b[rng.integers(0, min(64, len(b)))] = rng.integers(0, 256)
        return bytes(b)
    if kind == 2:  # a header field set to an extreme value (sizes, channels, rate, block align, bits)
        offset = int(rng.choice([4, 16, 20, 22, 24, 28, 32, 34, 40]))
        value = int(rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFF, 3, 7, 48000, 2**31 + 5]))
        fmt = "<H" if offset in (20, 22, 32, 34) else "<I"
        b[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value & (0xFFFF if fmt == "<H" else 0xFFFFFFFF))
        return bytes(b)
    if kind == 3:  # random bytes
        return rng.integers(0, 256, rng.integers(0, 6000), dtype=np.uint8).tobytes()
    if kind == 4:  # garbage appended (an odd chunk after the data)
        return bytes(b) + rng.integers(0, 256, rng.integers(1, 300), dtype=np.uint8).tobytes()
    if kind == 5:  # flipped bytes anywhere (data values can become NaN/inf in float files)
        for _ in range(rng.integers(1, 40)):
            b[rng.integers(0, len(b))] = rng.integers(0, 256)
        return bytes(b)
    return bytes(b[:44]) if rng.random() < 0.5 else b"RIFF" + bytes(rng.integers(0, 256, 40, dtype=np.uint8))


def _exercise_wav(path) -> None:
    meta = audio.info(path)
    audio.load(path, channels="mix")
    for _ in audio.iter_blocks(path, block_frames=1024, channels="mix", dtype="int16" if meta.is_pcm16 else "float32"):
        pass
    config = SpectralConfig(sample_rate=meta.sample_rate, n_fft=256, hop_length=128)
    file_stats(path, config)


def test_fuzzed_wav_files_raise_only_micmatch_errors(tmp_path, capfd):
    rng = np.random.default_rng(SEED)
    bases = _base_wavs(rng)
    path = tmp_path / "fuzz.wav"
    foreign, outcomes = [], {"ok": 0, "refused": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(N_WAV):
            data = _mutate_wav(bases[i % len(bases)], rng)
            path.write_bytes(data)
            try:
                _exercise_wav(path)
                outcomes["ok"] += 1
            except MicmatchError as exc:
                assert "\n" not in str(exc)
                outcomes["refused"] += 1
            except Exception as exc:  # noqa: BLE001 - the point of the test
                foreign.append(f"variant {i}: {type(exc).__name__}: {exc}")
    assert not foreign, "\n".join(foreign[:10])
    assert outcomes["ok"] > 50 and outcomes["refused"] > 50, outcomes  # both kinds were exercised
    assert capfd.readouterr().err == ""  # no decoder chatter


def _leaves(doc, path=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(doc, list) and doc:
        for i in (0, len(doc) - 1):
            yield from _leaves(doc[i], (*path, i))
    yield path


def _set(doc, path, value):
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _delete(doc, path) -> None:
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]


def _mutate_doc(base: dict, rng) -> object:
    """One or two leaves (or subtrees) replaced by hostile values, or removed."""
    doc = copy.deepcopy(base)
    paths = list(_leaves(doc))
    for _ in range(rng.integers(1, 3)):
        path = paths[rng.integers(len(paths))]
        try:  # a path made stale by the first mutation is skipped
            if path and rng.random() < 0.15:
                _delete(doc, path)
            else:
                doc = _set(doc, path, copy.deepcopy(HOSTILE[rng.integers(len(HOSTILE))]))
        except (KeyError, IndexError, TypeError):
            pass
    return doc


@pytest.fixture(scope="module")
def responses_doc(tmp_path_factory) -> dict:
    from micmatch.estimate import estimate_responses

    rng = np.random.default_rng(1)
    clips = [rng.standard_normal(2000) * 0.1 for _ in range(2)]
    rs = estimate_responses({"a": clips, "b": [c * 0.5 for c in clips]}, 8000, n_fft=32, hop_length=16)
    return json.loads(json.dumps(rs.to_json()))


def test_fuzzed_responses_json_raises_only_micmatch_errors(responses_doc, tmp_path):
    rng = np.random.default_rng(SEED + 1)
    foreign = []
    refused = 0
    for i in range(N_JSON):
        doc = _mutate_doc(responses_doc, rng)
        try:
            if i % 5 == 0:  # through the file reader too, sometimes with the text cut short
                text = json.dumps(doc, allow_nan=True, default=str)
                if i % 10 == 0:
                    text = text[: rng.integers(0, len(text))]
                p = tmp_path / "r.json"
                p.write_text(text)
                rs = ResponseSet.load(p)
            else:
                rs = ResponseSet.from_json(doc)
            for dev in rs.values():  # what loads is usable: finite and on the grid
                assert np.isfinite(dev.response_db).all() and dev.response_db.size == rs.config.n_bins
        except MicmatchError as exc:
            assert "\n" not in str(exc)
            refused += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            foreign.append(f"variant {i}: {type(exc).__name__}: {exc}")
    assert not foreign, "\n".join(foreign[:10])
    assert refused > N_JSON // 3


def test_fuzzed_normalizer_json_raises_only_micmatch_errors(tmp_path):
    from micmatch import features as F

    rng = np.random.default_rng(SEED + 2)
    cfg = F.LogMelConfig(sample_rate=8000, n_fft=256, hop_length=128, n_mels=8)
    items = [F.log_mel(rng.standard_normal(4000) * 0.1, 8000, config=cfg) for _ in range(2)]
    base_path = tmp_path / "norm.json"
    F.GlobalNormalizer("gmsvn").fit(items, config=cfg).save(base_path)
    base = json.loads(base_path.read_text())
    foreign, refused = [], 0
    p = tmp_path / "n.json"
    for i in range(N_NORMALIZER):
        doc = _mutate_doc(base, rng)
        p.write_text(json.dumps(doc, allow_nan=True, default=str))
        try:
            norm = load_normalizer(p)
            out = norm.transform(items, config=cfg)
            assert all(np.isfinite(o).all() for o in out), f"variant {i}: non-finite features"
        except MicmatchError as exc:
            assert "\n" not in str(exc)
            refused += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            foreign.append(f"variant {i}: {type(exc).__name__}: {exc}")
    assert not foreign, "\n".join(foreign[:10])
    assert refused > N_NORMALIZER // 3

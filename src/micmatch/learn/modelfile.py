"""The one file format of every trained model (normalizers, converters, classifiers): JSON header + weights.

Layout (one file)::

    b"MICMATCH-MODEL\\n"            magic line (15 bytes)
    8 bytes, little-endian          length H of the header
    H bytes                         header, UTF-8 JSON: method, sample rate, STFT settings, architecture, training
                                    summary, micmatch version, the size of the weights, and the SHA-256 of the
                                    header (canonical JSON, without that field) followed by the weights
    the rest                        weights: ``torch.save`` of a flat ``{name: tensor}`` dict, read back with
                                    ``torch.load(..., weights_only=True)``

The header's ``kind`` says which model the file holds (:data:`KINDS`); readers name the kind they expect.
A file cut short, edited (header or weights) or replaced piecewise fails the size or checksum test and raises
one :class:`~micmatch.errors.ModelError` line; nothing is ever unpickled. Every number of the header must be
finite and every weight finite; each model family then checks its own fields with :func:`header_int` and
:func:`header_float` (range, integer, consistent with the weights). Files are written atomically.

Files of format 1 (the checksum covered the weights only) still load until the next release: their header is
held to the same field checks.

Converter and classifier files written by micmatch 0.x before this format (a ``torch.save`` dict) still load,
through :func:`read_legacy_file`, until the next release.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
from pathlib import Path

import torch

from micmatch import __version__
from micmatch.outputs import atomic_path
from micmatch.errors import ModelError

MAGIC = b"MICMATCH-MODEL\n"
FORMAT_VERSION = 2
#: Earlier format versions still read (format 1: the checksum covered the weights only). Goes in the next release.
READ_VERSIONS = (1, FORMAT_VERSION)
#: The header field holding the checksum of the header and the weights.
CHECKSUM_KEY = "sha256"
#: The header's ``kind`` of each family of models, and the word used for it in messages.
KINDS = {"micmatch-normalizer": "normalizer", "micmatch-converter": "converter",
         "micmatch-classifier": "classifier"}
#: Largest header accepted (bytes): a corrupt length field must not make us read gigabytes.
MAX_HEADER_BYTES = 1 << 24


def write_model_file(path: str | os.PathLike, header: dict, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write ``header`` (JSON-able) and ``state_dict`` (tensors) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buf)
    payload = buf.getvalue()
    full = {k: v for k, v in header.items() if k not in (CHECKSUM_KEY, "weights_sha256")}
    full.update({"format": FORMAT_VERSION, "micmatch_version": __version__, "weights_bytes": len(payload)})
    full[CHECKSUM_KEY] = _checksum(full, payload)
    text = json.dumps(full, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(payload)
    return Path(path)


def _canonical(header: dict) -> bytes:
    """The header's bytes the checksum covers: compact sorted JSON without the checksum field (NaN refused)."""
    body = {k: v for k, v in header.items() if k != CHECKSUM_KEY}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _checksum(header: dict, payload: bytes) -> str:
    digest = hashlib.sha256(_canonical(header))
    digest.update(b"\0")
    digest.update(payload)
    return digest.hexdigest()


def read_model_file(path: str | os.PathLike, *, kind: str | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a file written by :func:`write_model_file`: ``(header, state_dict)``.

    Parameters
    ----------
    kind : str, optional
        The ``kind`` the header must name (a key of :data:`KINDS`); any kind when omitted. With a kind, files of
        the earlier ``torch.save`` layout of that family are read too (:func:`read_legacy_file`).

    Raises
    ------
    ModelError
        Missing, not a model file, of another kind, truncated, tampered with (checksum), of a newer format, or
        unreadable weights.
    """
    p = Path(path)
    name = KINDS.get(kind, "model") if kind else "model"
    if p.is_dir():
        raise ModelError(f"{p}: is a folder; give the {name} model file")
    if not p.is_file():
        raise ModelError(f"{p}: {name} file not found")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"{p}: cannot read the model file ({exc.strerror})") from None
    if kind is not None and data.startswith(_TORCH_ZIP):
        header, state = read_legacy_file(p, kind=kind)
    else:
        header, state = _parse(p, data)
    if kind is not None and header.get("kind") != kind:
        raise ModelError(f"{p}: not a {name} model (kind={header.get('kind')!r})")
    return header, state


def _parse(p: Path, data: bytes) -> tuple[dict, dict[str, torch.Tensor]]:
    if not data.startswith(MAGIC):
        raise ModelError(f"{p}: not a micmatch model file (it does not start with {MAGIC!r}); train one with "
                         f"'micmatch train'")
    start = len(MAGIC) + 8
    if len(data) < start:
        raise ModelError(f"{p}: truncated model file ({len(data)} bytes)")
    (n_header,) = struct.unpack("<Q", data[len(MAGIC) : start])
    if n_header > MAX_HEADER_BYTES or len(data) < start + n_header:
        raise ModelError(f"{p}: truncated or corrupt model file (header of {n_header} bytes announced, "
                         f"{len(data)} bytes in the file)")
    try:
        header = json.loads(data[start : start + n_header].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{p}: corrupt model header ({str(exc).splitlines()[0] if str(exc) else 'too deep'})") from None
    if not isinstance(header, dict):
        raise ModelError(f"{p}: corrupt model header (not a JSON object)")
    version = header.get("format")
    if isinstance(version, bool) or version not in READ_VERSIONS:
        raise ModelError(f"{p}: model file format {version!r}; this micmatch reads format "
                         f"{FORMAT_VERSION} (upgrade micmatch or retrain)")
    try:
        _check_finite(p, header, "")
    except RecursionError:
        raise ModelError(f"{p}: corrupt model header (nested too deep)") from None
    payload = data[start + n_header :]
    announced = header.get("weights_bytes")
    if isinstance(announced, bool) or len(payload) != announced:
        raise ModelError(f"{p}: truncated model file: {len(payload)} bytes of weights, the header announces "
                         f"{announced!r}")
    if version == 1:
        if hashlib.sha256(payload).hexdigest() != header.get("weights_sha256"):
            raise ModelError(f"{p}: the weights do not match the checksum in the header; the file was modified or "
                             f"corrupted")
    elif _checksum(header, payload) != header.get(CHECKSUM_KEY):
        raise ModelError(f"{p}: the header and weights do not match the checksum in the header; the file was "
                         f"modified or corrupted")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types (zip, pickle, runtime) for corrupt data
        raise ModelError(f"{p}: unreadable weights ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{p}: the weights are not a dict of tensors")
    check_weights(p, state)
    return header, state


def _check_finite(p: Path, node, where: str) -> None:
    """Refuse a header holding NaN or an infinity anywhere (JSON readers accept them; micmatch never writes them)."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ModelError(f"{p}: invalid model header ({where or 'a value'}={node} is not finite)")
    if isinstance(node, dict):
        for k, v in node.items():
            _check_finite(p, v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_finite(p, v, f"{where}[{i}]")


def check_weights(path: str | os.PathLike, state: dict[str, torch.Tensor]) -> None:
    """Raise :class:`ModelError` when a weight tensor holds NaN or an infinity (or is not a number)."""
    for name, tensor in state.items():
        if not (tensor.is_floating_point() or tensor.dtype in (torch.int64, torch.int32, torch.bool)):
            raise ModelError(f"{path}: weight {name!r} has an unexpected type {tensor.dtype}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(f"{path}: weight {name!r} holds NaN or infinite values; retrain the model")


def _field(header: dict, key: str):
    node = header
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def header_int(path: str | os.PathLike, header: dict, key: str, *, lo: int, hi: int,
               multiple_of: int = 1) -> int:
    """The integer at dotted ``key`` of ``header``, checked to lie in ``[lo, hi]`` (and be a multiple of
    ``multiple_of``); otherwise one :class:`ModelError` line naming the file and the field."""
    try:
        value = _field(header, key)
    except KeyError:
        raise ModelError(f"{path}: invalid model header ({key} is missing)") from None
    ok = isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
    if not ok:
        raise ModelError(f"{path}: invalid model header ({key}={value!r} must be an integer)")
    if not lo <= value <= hi or int(value) % multiple_of:
        extra = f" and a multiple of {multiple_of}" if multiple_of > 1 else ""
        raise ModelError(f"{path}: invalid model header ({key}={_short(value)} must lie in [{lo}, {hi}]{extra})")
    return int(value)


def header_float(path: str | os.PathLike, header: dict, key: str, *, lo: float, hi: float,
                 open_low: bool = False) -> float:
    """The finite number at dotted ``key`` of ``header`` in ``[lo, hi]`` (``(lo, hi]`` with ``open_low``)."""
    try:
        value = _field(header, key)
    except KeyError:
        raise ModelError(f"{path}: invalid model header ({key} is missing)") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(f"{path}: invalid model header ({key}={value!r} must be a number)")
    value = float(value) if abs(value) < 1e308 else math.inf
    if not math.isfinite(value) or not (lo < value if open_low else lo <= value) or value > hi:
        left = "(" if open_low else "["
        raise ModelError(f"{path}: invalid model header ({key}={_short(value)} must lie in {left}{lo}, {hi}])")
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "..."


# ----------------------------------------------------------------------------------------------------------------
# Files of the earlier layout. Remove in the next release (their owners retrain or re-save them with this one).

#: ``torch.save`` writes a zip archive.
_TORCH_ZIP = b"PK\x03\x04"
_RETRAIN = "retrain it with this micmatch"


def read_legacy_file(path: str | os.PathLike, *, kind: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a converter or classifier file of the earlier ``torch.save`` layout as ``(header, state_dict)`` in
    this format's terms (read with ``weights_only=True``: nothing is unpickled).

    Raises
    ------
    ModelError
        The file is not one of those layouts, or holds something else; the line says to retrain.
    """
    p = Path(path)
    name = KINDS.get(kind, "model")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several kinds for corrupt or unsafe files
        raise ModelError(f"{p}: not a readable {name} file ({type(exc).__name__}); retrain it") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise ModelError(f"{p}: not a micmatch {name} file of a known layout; retrain it")
    state = payload["state_dict"]
    try:
        if kind == "micmatch-converter":
            old = json.loads(payload["header"])
            if old.get("format") != "micmatch.converter" or old.get("format_version") != 1:
                raise ValueError("format")
            header = {k: v for k, v in old.items() if k not in ("format", "format_version")}
        elif kind == "micmatch-classifier":
            if payload.get("format") != 1:
                raise ValueError("format")
            header = {"model_name": payload["model_name"], "config": dict(payload["config"]),
                      "sample_rate": int(payload["sample_rate"]), "extra": dict(payload.get("extra", {})),
                      "micmatch_version": str(payload["version"])}
        else:
            raise ValueError("kind")
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        raise ModelError(f"{p}: an earlier {name} file this micmatch cannot read; {_RETRAIN}") from None
    header.update(kind=kind, format=FORMAT_VERSION)
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelError(f"{p}: the weights are not a dict of tensors; {_RETRAIN}")
    _check_finite(p, header, "")
    check_weights(p, state)
    return header, state


__all__ = ["FORMAT_VERSION", "KINDS", "MAGIC", "check_weights", "header_float", "header_int", "read_legacy_file",
           "read_model_file", "write_model_file"]

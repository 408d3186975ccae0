"""Model files for learned normalizers: a readable JSON header and weights that load without unpickling code.

Layout (one file)::

    b"MICMATCH-MODEL\\n"            magic line (15 bytes)
    8 bytes, little-endian          length H of the header
    H bytes                         header, UTF-8 JSON: method, sample rate, STFT settings, architecture, training
                                    summary, micmatch version, and the SHA-256 and size of the weights
    the rest                        weights: ``torch.save`` of a flat ``{name: tensor}`` dict, read back with
                                    ``torch.load(..., weights_only=True)``

A file cut short, edited or replaced piecewise fails the size or checksum test and raises one
:class:`~micmatch.errors.ModelError` line; nothing is ever unpickled. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from pathlib import Path

import torch

from micmatch import __version__
from micmatch.outputs import atomic_path
from micmatch.errors import ModelError

MAGIC = b"MICMATCH-MODEL\n"
FORMAT_VERSION = 1
#: Largest header accepted (bytes): a corrupt length field must not make us read gigabytes.
MAX_HEADER_BYTES = 1 << 24


def write_model_file(path: str | os.PathLike, header: dict, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write ``header`` (JSON-able) and ``state_dict`` (tensors) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buf)
    payload = buf.getvalue()
    full = dict(header)
    full.update({"format": FORMAT_VERSION, "micmatch_version": __version__,
                 "weights_sha256": hashlib.sha256(payload).hexdigest(), "weights_bytes": len(payload)})
    text = json.dumps(full, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(payload)
    return Path(path)


def read_model_file(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a file written by :func:`write_model_file`: ``(header, state_dict)``.

    Raises
    ------
    ModelError
        Not a model file, truncated, tampered with (checksum), of a newer format, or unreadable weights.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"{p}: cannot read the model file ({exc.strerror})") from None
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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{p}: corrupt model header ({exc})") from None
    if not isinstance(header, dict):
        raise ModelError(f"{p}: corrupt model header (not a JSON object)")
    if header.get("format") != FORMAT_VERSION:
        raise ModelError(f"{p}: model file format {header.get('format')!r}; this micmatch reads format "
                         f"{FORMAT_VERSION} (upgrade micmatch or retrain)")
    payload = data[start + n_header :]
    if len(payload) != header.get("weights_bytes"):
        raise ModelError(f"{p}: truncated model file: {len(payload)} bytes of weights, the header announces "
                         f"{header.get('weights_bytes')}")
    if hashlib.sha256(payload).hexdigest() != header.get("weights_sha256"):
        raise ModelError(f"{p}: the weights do not match the checksum in the header; the file was modified or "
                         f"corrupted")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types (zip, pickle, runtime) for corrupt data
        raise ModelError(f"{p}: unreadable weights ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{p}: the weights are not a dict of tensors")
    return header, state


__all__ = ["FORMAT_VERSION", "MAGIC", "read_model_file", "write_model_file"]

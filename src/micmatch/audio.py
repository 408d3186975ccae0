"""Audio input and output: load, save (atomically), resample on request, validate, iterate long files in blocks.

Conventions: waveforms are ``(..., n_samples)`` with channels first; a mono signal may be 1-D. Files are read with
soundfile (libsndfile), so every format libsndfile reads is accepted (WAV, FLAC, OGG/Vorbis, AIFF, ...).
Nothing here resamples unless a target ``sample_rate`` is passed explicitly.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from micmatch.errors import AudioError, ParameterError
from micmatch import outputs

#: Channel handling options shared by the API and the CLI.
#: ``mix``: average all channels into one; ``first``: keep channel 0; ``each``: return every channel (``keep`` is
#: the older spelling of ``each`` and still accepted).
CHANNEL_MODES = ("mix", "first", "each")


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about it."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def is_pcm16(self) -> bool:
        return self.subtype == "PCM_16"

    @property
    def is_float(self) -> bool:
        return self.subtype in ("FLOAT", "DOUBLE")


def audio_extensions() -> set[str]:
    """File extensions (lower case, with dot) that libsndfile can read here."""
    exts = {"." + fmt.lower() for fmt in sf.available_formats()}
    exts |= {".aif", ".aiff", ".oga", ".ogg", ".opus", ".wav", ".flac", ".mp3"}
    return exts


def find_audio_files(inputs: Iterable[str | os.PathLike], *,
                     exclude: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Expand files and directories (walked recursively) into a sorted, de-duplicated list of audio files.

    A path that does not exist raises :class:`AudioError`; files given explicitly are kept whatever their extension.
    Staging files of unfinished writes (:mod:`micmatch.outputs`) are never returned, and folders in ``exclude``
    (e.g. an output folder inside an input folder) are not walked. Paths are kept as given (symlinks are not
    resolved), so labels taken from folder names follow the path the user sees.
    """
    exts = audio_extensions()
    skip = [Path(e).resolve() for e in exclude]

    def excluded(p: Path) -> bool:
        parent = p.parent.resolve()
        return any(parent == s or s in parent.parents for s in skip)

    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in exts and not outputs.is_staging(p)
                                and p.is_file() and not excluded(p)))
        elif path.exists():
            found.append(path)
        else:
            raise AudioError(f"{path}: no such file or directory")
    seen: set[str] = set()
    unique = []
    for p in found:
        key = os.path.abspath(p)  # the same path named twice; a symlink is its own entry (its folder is its label)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header. Raises :class:`AudioError` naming the file if it cannot be opened or is empty."""
    path = Path(path)
    try:
        i = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{path}: cannot read audio ({_reason(exc, path)})") from None
    if i.frames <= 0:
        raise AudioError(f"{path}: file holds no samples")
    if i.samplerate <= 0:
        raise AudioError(f"{path}: invalid sample rate {i.samplerate}")
    short = _truncated_chunk(getattr(i, "extra_info", ""))
    if short is not None:
        declared, present = short
        raise AudioError(f"{path}: truncated file: header announces {declared} bytes of audio data, "
                         f"only {present} are present")
    return AudioInfo(path, int(i.samplerate), int(i.channels), int(i.frames), i.format, i.subtype)


#: libsndfile's log line for a data chunk longer than the file ("data : 32000 (should be 15978)"). libsndfile then
#: silently shortens the file to the bytes present, so a cut-off WAV would otherwise read as a shorter, valid one.
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: Chunk sizes that streaming writers leave in place of the real size; they do not mean the file was cut.
_UNKNOWN_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}


def _truncated_chunk(log: str) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of the audio chunk when the file ends before it, from libsndfile's log."""
    for m in _SHORT_CHUNK.finditer(log or ""):
        declared, present = int(m.group(1)), int(m.group(2))
        if present < declared and declared not in _UNKNOWN_SIZES:
            return declared, present
    return None


#: Files up to this size are hashed whole; larger ones by their first and last MIB bytes (and their size), under
#: the rule of earlier releases (``rule="v1"``).
MIB = 1 << 20
#: Fingerprint rules: ``sampled`` (the default) and ``v1`` (the rule of earlier releases, still read and used to
#: recognise files counted in older responses files).
FINGERPRINT_RULES = ("sampled", "v1")
#: ``sampled`` rule: files up to this size are hashed whole (the same hash as under ``v1``) ...
SAMPLED_WHOLE = 256 << 10
#: ... larger ones by their size, their first and last ``SAMPLED_EDGE`` bytes (the header and both ends of the
#: audio) and ``SAMPLED_BLOCKS`` blocks of ``SAMPLED_BLOCK`` bytes spread evenly between them: about 200 KiB hashed
#: whatever the file's length.
SAMPLED_EDGE = 64 << 10
SAMPLED_BLOCKS = 32
SAMPLED_BLOCK = 2 << 10


def _sampled_digest(f, size: int) -> str:
    h = hashlib.sha256(b"micmatch-sampled-1:%d:" % size)
    h.update(f.read(SAMPLED_EDGE))
    inner = size - 2 * SAMPLED_EDGE - SAMPLED_BLOCK
    for i in range(SAMPLED_BLOCKS):
        f.seek(SAMPLED_EDGE + inner * i // (SAMPLED_BLOCKS - 1))
        h.update(f.read(SAMPLED_BLOCK))
    f.seek(size - SAMPLED_EDGE)
    h.update(f.read(SAMPLED_EDGE))
    return h.hexdigest()


def file_fingerprint(path: str | os.PathLike, *, device: str | None = None, rule: str = "sampled") -> dict:
    """What identifies an input file: absolute path, size, modification time and a SHA-256 of its content.

    Under the default ``rule="sampled"``, files up to 256 KiB are hashed whole (``"hashed": "whole"``); larger ones
    by their size, their first and last 64 KiB and 32 blocks of 2 KiB spread evenly between (``"sampled"``):
    about 200 KiB read whatever the length, so fingerprinting costs little beside decoding, and with the size it
    tells copies of one file from different recordings. ``rule="v1"`` is the rule of earlier releases (whole up
    to 2 MiB, else the first and last MiB: ``"head-tail"``), kept to recognise files that older responses files
    list (:func:`fingerprint_rule`). Two fingerprints of one rule name the same content when size and hash agree,
    wherever the file lies; a small file hashed whole has the same fingerprint under both rules.
    """
    if rule not in FINGERPRINT_RULES:
        raise ParameterError(f"rule={rule!r} must be one of {FINGERPRINT_RULES}")
    p = Path(path).resolve()
    with p.open("rb") as f:
        st = os.fstat(f.fileno())
        size = int(st.st_size)
        if size <= (SAMPLED_WHOLE if rule == "sampled" else 2 * MIB):
            digest, how = hashlib.sha256(f.read()).hexdigest(), "whole"
        elif rule == "sampled":
            digest, how = _sampled_digest(f, size), "sampled"
        else:
            h = hashlib.sha256(f.read(MIB))
            f.seek(size - MIB)
            h.update(f.read(MIB))
            digest, how = h.hexdigest(), "head-tail"
    out = {"path": str(p), "size": size, "mtime": float(st.st_mtime), "sha256": digest, "hashed": how}
    if device is not None:
        out["device"] = device
    return out


def fingerprint_key(fp: Mapping) -> tuple:
    """The identity of a fingerprint's content: (size, hash)."""
    return (int(fp["size"]), str(fp["sha256"]))


def fingerprint_rule(fp: Mapping) -> str:
    """The rule a stored fingerprint was made by: ``v1`` for files hashed whole above 256 KiB or head and tail
    (older responses files), else ``sampled`` (a small file hashed whole matches under either rule)."""
    if fp.get("hashed") == "head-tail" or (fp.get("hashed", "whole") == "whole" and int(fp["size"]) > SAMPLED_WHOLE):
        return "v1"
    return "sampled"


def content_keys(stored: Iterable[Mapping]) -> Callable[[str | os.PathLike], list[tuple]]:
    """A function ``path -> keys`` giving the keys (:func:`fingerprint_key`) of a file's content under every rule
    needed to compare it with the ``stored`` fingerprints: the default rule's key first, then the older rule's only
    when a stored fingerprint made by it has this file's size (so files listed by older responses files are still
    recognised, at no cost otherwise)."""
    older_sizes = {int(f["size"]) for f in stored if fingerprint_rule(f) == "v1"}

    def keys(path: str | os.PathLike) -> list[tuple]:
        out = [fingerprint_key(file_fingerprint(path))]
        if out[0][0] in older_sizes:
            out.append(fingerprint_key(file_fingerprint(path, rule="v1")))
        return out

    return keys


def first_sample_rate(paths: Iterable[str | os.PathLike]) -> int:
    """The sample rate of the first readable file (unreadable ones are skipped: a batch reports them later)."""
    first = None
    for p in paths:
        try:
            return info(p).sample_rate
        except AudioError as exc:
            first = first or exc
            continue
    raise AudioError("none of the input files can be read" + (f"; the first: {first}" if first else ""))


def _reason(exc: BaseException, path: Path | None = None) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libsndfile messages repeat the path; keep the reason only.
    text = text.split(": ", 1)[-1] if "Error opening" in text else text
    if path is not None and "System error" in text:  # libsndfile hides the OS's reason (permission, a folder...)
        try:
            with open(path, "rb"):
                pass
        except OSError as os_exc:
            return os_exc.strerror or text
    return text


def _channels(block: np.ndarray, channels: str) -> np.ndarray:
    """(frames, ch) -> (ch', frames) according to the channel mode."""
    if channels in ("each", "keep"):
        return np.ascontiguousarray(block.T)
    if channels == "first":
        return np.ascontiguousarray(block[:, :1].T)
    if channels == "mix":
        if block.shape[1] == 1:
            return np.ascontiguousarray(block.T)
        mixed = block.mean(axis=1, dtype=np.float32 if block.dtype != np.float64 else np.float64)
        return mixed[np.newaxis, :]
    raise ParameterError(f"channels={channels!r} must be one of {CHANNEL_MODES}")


def load(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    channels: str = "each",
    dtype: str | np.dtype = "float32",
) -> tuple[np.ndarray, int]:
    """Load a whole file as ``(channels, n_samples)`` floats in [-1, 1] (PCM) or as stored (float files).

    Parameters
    ----------
    path : path-like
        Any file libsndfile reads.
    sample_rate : int, optional
        Resample to this rate (soxr, high quality). By default the file's own rate is kept.
    channels : {"each", "mix", "first"}
        Keep every channel, average them, or keep the first.
    dtype : float dtype
        ``float32`` (default) or ``float64``.

    Returns
    -------
    audio : np.ndarray [shape=(channels, n_samples)]
    sample_rate : int

    Raises
    ------
    AudioError
        Unreadable, truncated or empty file, or NaN/inf samples; the message names the file.
    """
    if channels not in CHANNEL_MODES and channels != "keep":
        raise ParameterError(f"channels={channels!r} must be one of {CHANNEL_MODES}")
    meta = info(path)
    try:
        data, sr = sf.read(str(meta.path), dtype=str(np.dtype(dtype)), always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{meta.path}: cannot decode audio ({_reason(exc)})") from None
    if data.shape[0] < meta.frames:
        raise AudioError(
            f"{meta.path}: truncated file: header announces {meta.frames} frames, only {data.shape[0]} could be read"
        )
    if data.shape[0] == 0:
        raise AudioError(f"{meta.path}: file holds no samples")
    if meta.is_float and not np.isfinite(data).all():
        raise AudioError(f"{meta.path}: contains NaN or infinite samples")
    audio = _channels(data, channels)
    if sample_rate is not None and sample_rate != sr:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, int(sr)


def iter_blocks(
    path: str | os.PathLike,
    *,
    block_frames: int,
    overlap: int = 0,
    channels: str = "mix",
    dtype: str = "float32",
    meta: AudioInfo | None = None,
) -> Iterator[np.ndarray]:
    """Read a file in blocks of ``block_frames`` samples, consecutive blocks sharing ``overlap`` samples.

    Memory stays bounded by the block size, whatever the file's length. With ``dtype="int16"`` PCM files are
    decoded as raw integers (about 4x faster than float decoding; scale by 1/32768 yourself). Float files are
    checked for NaN/inf block by block.

    Yields
    ------
    block : np.ndarray [shape=(channels, n)]
        ``n == block_frames`` except for the last block, which may be shorter (but still > overlap).

    ``meta`` is the file's :func:`info` when the caller has read it already (the header is then not read again).
    """
    if block_frames <= overlap:
        raise ParameterError(f"block_frames={block_frames} must exceed overlap={overlap}")
    if meta is None:
        meta = info(path)
    step = block_frames - overlap
    n_read_total = 0
    try:
        with sf.SoundFile(str(meta.path)) as f:
            carry = None
            while True:
                want = block_frames if carry is None else step
                data = f.read(want, dtype=dtype, always_2d=True)
                n_read_total += data.shape[0]
                if data.shape[0] == 0:
                    break
                if meta.is_float and not np.isfinite(data).all():
                    raise AudioError(f"{meta.path}: contains NaN or infinite samples")
                block = _channels(data, channels)
                if carry is not None:
                    block = np.concatenate([carry, block], axis=1)
                yield block
                carry = block[:, block.shape[1] - overlap :] if overlap else block[:, :0]
                if data.shape[0] < want:
                    break
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{meta.path}: cannot decode audio ({_reason(exc)})") from None
    if n_read_total < meta.frames:
        raise AudioError(
            f"{meta.path}: truncated file: header announces {meta.frames} frames, only {n_read_total} could be read"
        )


def resample(audio: np.ndarray, orig_sr: int, target_sr: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample ``(..., n_samples)`` audio with soxr. Returns a new array; the input is untouched."""
    import soxr

    _check_rate(orig_sr, "orig_sr")
    _check_rate(target_sr, "target_sr")
    if orig_sr == target_sr:
        return np.array(audio, copy=True)
    x = np.asarray(audio)
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1]).T  # soxr wants (frames, channels)
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    y = soxr.resample(np.ascontiguousarray(flat, dtype=dtype), orig_sr, target_sr, quality=quality)
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    return y.T.reshape(*lead, -1)


def _check_rate(sample_rate, name: str = "sample_rate") -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"{name}={sample_rate!r} must be a positive integer (Hz)")


def validate_audio(
    audio: np.ndarray,
    sample_rate: int | None = None,
    *,
    name: str = "audio",
    min_samples: int = 1,
) -> np.ndarray:
    """Check an in-memory waveform once, at a public entry point, and return it as a float ndarray.

    Requires a float dtype (int arrays are refused: scale them yourself), finite values, at least ``min_samples``
    samples on the last axis and a positive integer ``sample_rate``. A 2-D array shaped like (samples, channels)
    is refused with the fix in the message.
    """
    x = np.asarray(audio)
    if sample_rate is not None:
        _check_rate(sample_rate)
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"{name}.dtype={x.dtype} must be floating point; convert with audio.astype('float32') / 32768")
    if x.ndim == 0:
        raise AudioError(f"{name} must have at least one dimension (samples last)")
    if x.ndim == 2 and x.shape[0] > x.shape[1] and x.shape[1] <= 8:
        raise AudioError(f"{name}.shape={x.shape} looks like (samples, channels); pass {name}.T (time is the last axis)")
    if x.shape[-1] < min_samples:
        raise AudioError(f"{name} has {x.shape[-1]} samples; at least {min_samples} are needed")
    if not np.isfinite(x).all():
        raise AudioError(f"{name} contains NaN or infinite values")
    return x


def to_mono(audio: np.ndarray, sample_rate: int | None = None, *, name: str = "audio",
            min_samples: int = 1) -> np.ndarray:
    """Validated (:func:`validate_audio`) float64 mono: ``(..., n_samples)`` averaged over every leading axis.

    Returns
    -------
    mono : np.ndarray [shape=(n_samples,), dtype=float64]
    """
    x = validate_audio(audio, sample_rate, name=name, min_samples=min_samples).astype(np.float64)
    if x.ndim > 1:
        x = x.reshape(-1, x.shape[-1]).mean(axis=0)
    return x


def save(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    *,
    format: str | None = None,
    subtype: str | None = None,
) -> Path:
    """Write ``(channels, n_samples)`` (or 1-D mono) audio atomically.

    ``format`` defaults to the extension's; ``subtype`` to libsndfile's default for the format. PCM subtypes clip
    samples outside [-1, 1]; a warning says so (use a float subtype to keep them).
    """
    _check_rate(sample_rate)
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    if x.ndim != 2:
        raise AudioError(f"audio.shape={x.shape} must be (channels, n_samples) or (n_samples,)")
    path = Path(path)
    fmt = format or _format_from_suffix(path)
    if subtype is not None and not sf.check_format(fmt, subtype):
        raise AudioError(f"{path}: format {fmt} cannot hold subtype {subtype}")
    if (subtype is None or not subtype.startswith(("FLOAT", "DOUBLE"))) and np.abs(x).max(initial=0.0) > 1.0:
        warnings.warn(f"{path}: samples beyond full scale are clipped by the {subtype or 'default'} subtype",
                      stacklevel=2)
    with outputs.atomic_path(path) as tmp:
        sf.write(str(tmp), x.T, sample_rate, format=fmt, subtype=subtype)
    return path


def _format_from_suffix(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    aliases = {"aif": "AIFF", "aiff": "AIFF", "oga": "OGG", "opus": "OGG"}
    fmt = aliases.get(ext, ext.upper())
    if fmt not in sf.available_formats():
        raise AudioError(f"{path}: unknown audio format {ext!r}; use one of {sorted(sf.available_formats())}")
    return fmt

"""Writing a processed file: blocks streamed through a processor, staged, overs handled, renamed atomically.

Every command that writes processed audio (``correct`` by STFT gain or FIR, ``correct --model``, ``match``) leaves
through :func:`render_file`:

1. the input (a file, read in blocks of bounded size, or an array already in memory) streams through a
   :class:`Processor`: a function of a segment that sees ``left`` samples of context before each block and
   ``right`` after it (:func:`stream_with_context`), so the output does not depend on how the input was cut;
2. the float result is staged in a hidden file beside the output (:func:`micmatch.outputs.staging_path`), and
   its peak decides what happens to samples above full scale;
3. the final file, in the input's format and subtype unless told otherwise, is written through
   :func:`micmatch.outputs.atomic_path`: it appears only when complete.

Samples above full scale ("overs") in an integer output have one vocabulary, :data:`OVERS`: ``scale`` lowers
the whole file so its peak sits at ``ceiling_db``; ``float`` writes 32-bit float instead (formats that hold it;
others fall back to ``scale``); ``clip`` clips and counts the clipped samples.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from micmatch import audio as audio_io
from micmatch.errors import AudioError, ParameterError
from micmatch.outputs import atomic_path, staging_path

#: What to do with samples above full scale in an integer output.
OVERS = ("scale", "float", "clip")
#: Old spellings still accepted; they go in the next release.
OVERS_ALIASES = {"reduce": "scale"}
#: Peak of a file lowered by the ``scale`` policy (dBFS).
DEFAULT_CEILING_DB = -0.1
#: Samples per block read from a file and per block written.
BLOCK_FRAMES = 1 << 17
#: Subtypes that hold samples above full scale (no overs policy needed).
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III")


def resolve_overs(overs: str) -> str:
    """The policy ``overs`` names: one of :data:`OVERS`, or an old spelling of one (:data:`OVERS_ALIASES`)."""
    name = OVERS_ALIASES.get(overs, overs)
    if name not in OVERS:
        raise ParameterError(f"overs={overs!r} must be one of {OVERS}")
    return name


@dataclass(frozen=True)
class Processor:
    """A segment function with its context: ``out[t]`` depends on ``in[t - left : t + right + 1]``.

    Attributes
    ----------
    func : callable
        ``(..., left + block + right)`` float32 -> ``(..., block)``: the output for the segment's middle.
    left, right : int
        Context samples the function needs before and after each block.
    block : int
        Output samples per call.
    """

    func: Callable[[np.ndarray], np.ndarray]
    left: int = 0
    right: int = 0
    block: int = BLOCK_FRAMES


#: The processor that changes nothing.
IDENTITY = Processor(lambda seg: seg)


def stream_with_context(chunks: Iterable[np.ndarray], func: Callable[[np.ndarray], np.ndarray], *, left: int,
                        right: int, block: int) -> Iterator[np.ndarray]:
    """Stream ``(..., n)`` chunks of any sizes through a segment function; the output has the input's length.

    Segments of ``left + block + right`` samples go to ``func`` (zeros before the start and after the end), so
    the result does not depend on how the input was chunked: arrays and files go through the same code.

    Yields
    ------
    out : np.ndarray [shape=(..., m)]
        Consecutive output pieces, float32.
    """
    buf: np.ndarray | None = None
    n_in = 0
    n_out = 0
    for chunk in chunks:
        c = np.asarray(chunk, dtype=np.float32)
        if buf is None:
            buf = np.zeros(c.shape[:-1] + (left,), dtype=np.float32)
        buf = np.concatenate([buf, c], axis=-1)
        n_in += c.shape[-1]
        while buf.shape[-1] >= left + block + right:
            yield func(buf[..., : left + block + right])
            buf = buf[..., block:]
            n_out += block
    if buf is None:
        return
    while n_out < n_in:
        need = left + block + right - buf.shape[-1]
        if need > 0:
            buf = np.concatenate([buf, np.zeros(buf.shape[:-1] + (need,), dtype=np.float32)], axis=-1)
        out = func(buf[..., : left + block + right])
        take = min(block, n_in - n_out)
        yield out[..., :take]
        buf = buf[..., block:]
        n_out += take


def process_array(audio: np.ndarray, processor: Processor) -> np.ndarray:
    """Run ``(..., n_samples)`` audio through ``processor``; float32 of the same shape (input untouched)."""
    x = np.asarray(audio)
    parts = list(stream_with_context([x.astype(np.float32, copy=False)], processor.func, left=processor.left,
                                     right=processor.right, block=processor.block))
    return np.concatenate(parts, axis=-1) if parts else np.zeros_like(x, dtype=np.float32)


@dataclass(frozen=True)
class FileResult:
    """What :func:`render_file` did to one file.

    Attributes
    ----------
    input : Path or None
        The file read (None for an array without a ``name``).
    output : Path
    peak : float
        Largest absolute sample of the processed signal before the overs policy (1.0 = full scale).
    action : {"ok", "float", "scaled", "clipped"}
    message : str
        The warning line ("" when nothing needed saying).
    """

    input: Path | None
    output: Path
    peak: float
    action: str
    message: str = ""


def render_file(
    source: str | os.PathLike | np.ndarray,
    output: str | os.PathLike,
    processor: Processor | None = None,
    *,
    sample_rate: int | None = None,
    format: str | None = None,
    subtype: str | None = None,
    overs: str = "scale",
    ceiling_db: float = DEFAULT_CEILING_DB,
    verb: str = "processed",
    name: str | os.PathLike | None = None,
    warn: bool = True,
) -> FileResult:
    """Stream ``source`` through ``processor`` into ``output``, written atomically with overs handled.

    Parameters
    ----------
    source : path or np.ndarray [shape=(channels, n_samples) or (n_samples,)]
        A file, read in blocks of :data:`BLOCK_FRAMES` (bounded memory, channels kept), or audio in memory.
    output : path
        The file to write; never the input. Nothing appears under it until it is complete.
    processor : Processor, optional
        What to do to each block; None writes ``source`` unchanged (overs policy included).
    sample_rate : int, optional
        Rate of an array ``source`` (required then); a file's own rate otherwise.
    format : str, optional
        libsndfile format of the output: default the input file's format, or for an array the output's extension.
    subtype : str, optional
        Default the input file's subtype, or ``"FLOAT"`` for an array; a subtype the format cannot hold becomes
        the format's default.
    overs : {"scale", "float", "clip"}
        Policy for samples above full scale in an integer subtype (module docstring); ``"reduce"`` is accepted as
        ``"scale"`` for one release.
    ceiling_db : float
        Peak (dBFS) of a file lowered by ``scale``.
    verb : str
        Word for what was done, in messages (``"corrected peak +2.1 dBFS ..."``).
    name : path, optional
        What messages call the input when ``source`` is an array (default: the output).
    warn : bool
        Also issue the message as a :class:`UserWarning`.

    Returns
    -------
    FileResult
    """
    policy = resolve_overs(overs)
    processor = processor or IDENTITY
    output = Path(output)
    if isinstance(source, (str, os.PathLike)):
        meta = audio_io.info(source)
        if output.resolve() == meta.path.resolve():
            raise AudioError(f"{meta.path}: output would overwrite the input; choose another output folder")
        label, rate, channels = meta.path, meta.sample_rate, meta.channels
        out_format, out_subtype = format or meta.format, subtype or meta.subtype
        chunks: Iterable[np.ndarray] = audio_io.iter_blocks(meta.path, block_frames=BLOCK_FRAMES, channels="keep",
                                                            dtype="float32", meta=meta)
    else:
        if sample_rate is None:
            raise ParameterError("sample_rate must be given with an array source")
        x = np.asarray(source, dtype=np.float32)
        x = x[np.newaxis] if x.ndim == 1 else x
        if x.ndim != 2:
            raise AudioError(f"audio.shape={x.shape} must be (channels, n_samples) or (n_samples,)")
        label, rate, channels = Path(name) if name is not None else None, int(sample_rate), x.shape[0]
        out_format = format or audio_io._format_from_suffix(output)
        out_subtype = subtype or "FLOAT"
        chunks = [x]
    if not sf.check_format(out_format, out_subtype):
        out_subtype = sf.default_subtype(out_format)
    said = label if label is not None else output
    peak = 0.0
    # The processed float signal is staged in a hidden file beside the output (its peak decides what happens to
    # overs before the final file is written) and always removed afterwards.
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = staging_path(output.with_name(output.name + ".float"))  # a staging name: find_audio_files skips it
    try:
        with sf.SoundFile(str(stage), "w", samplerate=rate, channels=channels, format="WAV", subtype="FLOAT") as tmp:
            for y in stream_with_context(chunks, processor.func, left=processor.left, right=processor.right,
                                         block=processor.block):
                if not np.all(np.isfinite(y)):  # nothing non-finite is ever written: the stage is removed below
                    raise AudioError(f"{said}: the {verb} audio holds NaN or infinite samples; nothing was written")
                peak = max(peak, float(np.abs(y).max(initial=0.0)))
                tmp.write(y.T)
        action, gain, message = "ok", 1.0, ""
        if peak > 1.0 and out_subtype not in FLOAT_SUBTYPES:
            if policy == "float" and sf.check_format(out_format, "FLOAT"):
                out_subtype, action = "FLOAT", "float"
                message = (f"{said}: {verb} peak {20 * math.log10(peak):+.1f} dBFS exceeds full scale; "
                           f"written as 32-bit float to keep it (use --overs scale or clip to avoid)")
            elif policy in ("float", "scale"):
                gain, action = 10 ** (ceiling_db / 20) / peak, "scaled"
                message = (f"{said}: {verb} peak {20 * math.log10(peak):+.1f} dBFS; scaled by "
                           f"{20 * math.log10(gain):.1f} dB")
            else:
                action = "clipped"
        n_clipped = _copy_final(stage, output, rate, channels, out_format, out_subtype, gain, action == "clipped")
        if action == "clipped":
            message = f"{said}: {n_clipped} samples clipped at full scale"
    finally:
        stage.unlink(missing_ok=True)
    if message and warn:
        warnings.warn(message, stacklevel=2)
    return FileResult(label, output, peak, action, message)


def _copy_final(stage: Path, output: Path, rate: int, channels: int, out_format: str, out_subtype: str,
                gain: float, clip: bool) -> int:
    """Copy the staged float file into ``output`` (atomically), times ``gain``, clipped when asked; returns the
    number of clipped samples."""
    n_clipped = 0
    with atomic_path(output) as final:
        with sf.SoundFile(str(stage)) as src, sf.SoundFile(str(final), "w", samplerate=rate, channels=channels,
                                                           format=out_format, subtype=out_subtype) as dst:
            for blk in src.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):
                if gain != 1.0:
                    blk = blk * np.float32(gain)
                if clip:
                    n_clipped += int(np.count_nonzero(np.abs(blk) > 1.0))
                    blk = np.clip(blk, -1.0, 1.0)
                dst.write(blk)
    return n_clipped

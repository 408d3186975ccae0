"""A trained device normalizer (RatioNet or EQNet) with its settings: apply it to audio, save and load it, correct
a file with it.

:class:`Normalizer` holds either model with its settings: ``apply(audio, sample_rate)`` streams audio of any
length in blocks (the result does not depend on the block size), ``save(path)`` / ``Normalizer.load(path)``
write and read a model file (:mod:`micmatch.learn.modelfile`, kind ``micmatch-normalizer``: JSON header, weights
read with ``weights_only=True``). The models are in :mod:`micmatch.learn.ratio_net` and
:mod:`micmatch.learn.eq_net`, their training in :mod:`micmatch.learn.normalizer_train`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from torch import nn

from micmatch import audio as audio_io
from micmatch.correct import OVERS, _stream_with_context
from micmatch.errors import AudioError, ConfigMismatchError, ModelError, ParameterError
from micmatch.learn.engine import select_device
from micmatch.learn.eq_net import EQNet
from micmatch.learn.modelfile import read_model_file, write_model_file
from micmatch.learn.ratio_net import RatioNet, _log_power_db, _with_context
from micmatch.outputs import staging_path
from micmatch.spectral import hann

METHODS = ("ratio-net", "eq-net")
#: The ``kind`` of normalizer model files.
KIND = "micmatch-normalizer"
#: Samples per block when streaming (multiple of every hop used here).
BLOCK_SAMPLES = 1 << 16


def _overlap_add_func(process: Callable[[np.ndarray], np.ndarray], n: int, hop: int, synthesis: np.ndarray,
                      left: int) -> Callable[[np.ndarray], np.ndarray]:
    """A segment function for the streaming engine: frames of ``n`` samples every ``hop``, ``process``
    ``(n_frames, n) -> (n_frames, n)``, times ``synthesis``, overlap-added; returns the samples after ``left``
    that are covered by full-weight frames (the segment minus ``left`` at both ends)."""
    r = n // hop

    def func(seg: np.ndarray) -> np.ndarray:
        lead = seg.shape[:-1]
        flat = np.ascontiguousarray(seg.reshape(-1, seg.shape[-1]), dtype=np.float32)
        length = seg.shape[-1]
        count = 1 + (length - n) // hop
        outs = []
        for row in flat:
            frames = np.lib.stride_tricks.as_strided(row, shape=(count, n), strides=(hop * 4, 4), writeable=False)
            y = np.asarray(process(np.array(frames)), dtype=np.float32) * synthesis
            acc = np.zeros((count + r - 1) * hop, dtype=np.float32)
            view = acc.reshape(-1, hop)
            blocks = y.reshape(count, r, hop)
            for j in range(r):
                view[j : j + count] += blocks[:, j, :]
            outs.append(acc[left : length - left])
        return np.stack(outs).reshape(*lead, -1)

    return func


def _build(method: str, architecture: dict) -> nn.Module:
    if method == "ratio-net":
        a = dict(architecture)
        return RatioNet(a.pop("n_bins"), **a)
    if method == "eq-net":
        return EQNet(**architecture)
    raise ModelError(f"unknown normalizer method {method!r}; expected one of {METHODS}")


@dataclass
class Normalizer:
    """A trained device normalizer (RatioNet or EQNet) with its settings.

    Attributes
    ----------
    method : {"ratio-net", "eq-net"}
    model : nn.Module
    sample_rate : int
        Rate of the training pairs; audio at another rate is refused unless ``resample=True``.
    config : dict
        STFT or window settings (``n_fft``, ``hop_length``, ``window``), ``architecture`` and ``training``.
    summary : dict
        Training summary (validation LSD, epochs, time).
    """

    method: str
    model: nn.Module
    sample_rate: int
    config: dict
    summary: dict = field(default_factory=dict)

    # Application -----------------------------------------------------------------------------------------------
    def _plan(self, device: torch.device):
        model = self.model.to(device).eval()
        if self.method == "ratio-net":
            n, hop = self.config["n_fft"], self.config["hop_length"]
            k = model.config["context"]
            window = hann(n).astype(np.float32)
            synthesis = (window / np.float32(np.sum(window * window) / hop)).astype(np.float32)

            @torch.no_grad()
            def process(frames: np.ndarray) -> np.ndarray:
                spec = scipy.fft.rfft(frames * window, axis=-1)
                feats = _with_context(_log_power_db(spec).astype(np.float32), k)
                ratio = model(torch.as_tensor(feats, device=device)).cpu().numpy()
                return scipy.fft.irfft(spec * np.power(10.0, ratio / 20.0, dtype=np.float32), n=n, axis=-1)

            left = n - hop + k * hop  # every kept sample lies under frames with full context
            return _overlap_add_func(process, n, hop, synthesis, left), left
        n = self.config["window"]
        hop = n // 2
        synthesis = hann(n).astype(np.float32)  # periodic Hann at 50% overlap sums to 1

        @torch.no_grad()
        def process(frames: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(frames, device=device)
            return torch.cat([model(x[i : i + 64]) for i in range(0, x.shape[0], 64)]).cpu().numpy()

        return _overlap_add_func(process, n, hop, synthesis, n - hop), n - hop

    def _block(self) -> int:
        hop = self.config["hop_length"]
        return hop * max(1, BLOCK_SAMPLES // hop)

    def _apply_array(self, audio: np.ndarray, *, device: torch.device | None = None) -> np.ndarray:
        func, ctx = self._plan(device or torch.device("cpu"))
        parts = list(_stream_with_context([np.asarray(audio, dtype=np.float32)], func, left=ctx, right=ctx,
                                          block=self._block()))
        return np.concatenate(parts, axis=-1)

    def check_sample_rate(self, sample_rate: int, what: str = "audio") -> None:
        if sample_rate != self.sample_rate:
            raise ConfigMismatchError(
                f"{what} is at {sample_rate} Hz but the {self.method} model was trained at {self.sample_rate} Hz; "
                f"resample the audio to {self.sample_rate} Hz (Python: apply(..., resample=True)) or train a model at "
                f"{sample_rate} Hz")

    def apply(self, audio: np.ndarray, sample_rate: int, *, resample: bool = False,
              compute: str = "cpu") -> np.ndarray:
        """Normalize ``(..., n_samples)`` audio; float32 of the same shape (the input is not modified).

        Long audio streams through in blocks with context, so the result does not depend on the block size.
        Audio at another rate is resampled to the model's rate and back (soxr) only with ``resample=True``.
        """
        x = audio_io.validate_audio(audio, sample_rate)
        if sample_rate != self.sample_rate:
            if not resample:
                self.check_sample_rate(sample_rate)
            y = self._apply_array(audio_io.resample(x.astype(np.float32), sample_rate, self.sample_rate),
                                  device=select_device(compute))
            y = audio_io.resample(y, self.sample_rate, sample_rate)
            n = x.shape[-1]
            y = y[..., :n] if y.shape[-1] >= n else np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])])
            return y.astype(np.float32)
        return self._apply_array(x, device=select_device(compute))

    # Files -----------------------------------------------------------------------------------------------------
    def header(self) -> dict:
        return {"kind": KIND, "method": self.method, "sample_rate": int(self.sample_rate),
                "config": self.config, "architecture": self.model.config, "summary": self.summary}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file atomically (JSON header + weights)."""
        return write_model_file(path, self.header(), self.model.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Normalizer:
        """Read a model file; every inconsistency is one :class:`ModelError` line."""
        header, state = read_model_file(path, kind=KIND)
        try:
            model = _build(header["method"], header["architecture"])
            model.load_state_dict(state, strict=True)
            sample_rate = int(header["sample_rate"])
            config = dict(header["config"])
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: the header and the weights do not fit together ({line})") from None
        model.eval()
        return cls(header["method"], model, sample_rate, config, dict(header.get("summary", {})))


def correct_file_with_model(path: str | os.PathLike, output: str | os.PathLike, normalizer: Normalizer, *,
                            resample: bool = False, overs: str = "scale", compute: str = "cpu") -> str:
    """Normalize one audio file into ``output`` (the input's format and subtype), written atomically.

    Files at the model's rate stream in blocks (bounded memory); other rates are resampled whole, only with
    ``resample``. ``overs`` as for :func:`micmatch.correct.correct_file`: ``float`` writes 32-bit float when an
    integer format would clip (WAV/AIFF/CAF), ``scale`` lowers the file to a -0.1 dBFS peak, ``clip`` clips.
    Returns a warning line ("" when nothing needed saying).
    """
    import soundfile as sf

    if overs not in OVERS:
        raise ParameterError(f"overs={overs!r} must be one of {OVERS}")
    meta = audio_io.info(path)
    output = Path(output)
    if output.resolve() == meta.path.resolve():
        raise AudioError(f"{meta.path}: output would overwrite the input; choose another output folder")
    if meta.sample_rate != normalizer.sample_rate and not resample:
        normalizer.check_sample_rate(meta.sample_rate, what=str(meta.path))
    out_subtype = meta.subtype if sf.check_format(meta.format, meta.subtype) else sf.default_subtype(meta.format)
    is_float = out_subtype in ("FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III")
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = staging_path(output.with_name(output.name + ".float"))  # a name find_audio_files skips
    peak = 0.0
    try:
        with sf.SoundFile(str(stage), "w", samplerate=meta.sample_rate, channels=meta.channels, format="WAV",
                          subtype="FLOAT") as tmp:
            if meta.sample_rate == normalizer.sample_rate:
                func, ctx = normalizer._plan(torch.device("cpu") if compute == "cpu" else select_device(compute))
                blocks = audio_io.iter_blocks(meta.path, block_frames=1 << 17, channels="keep", dtype="float32")
                stream = _stream_with_context(blocks, func, left=ctx, right=ctx, block=normalizer._block())
            else:
                x, _ = audio_io.load(meta.path, channels="keep", dtype="float32")
                stream = [normalizer.apply(x, meta.sample_rate, resample=True, compute=compute)]
            for y in stream:
                peak = max(peak, float(np.abs(y).max(initial=0.0)))
                tmp.write(y.T)
        gain, action, message = 1.0, "ok", ""
        if peak > 1.0 and not is_float:
            if overs == "float" and sf.check_format(meta.format, "FLOAT"):
                out_subtype, action = "FLOAT", "float"
                message = (f"{meta.path}: normalized peak {20 * math.log10(peak):+.1f} dBFS exceeds full scale; "
                           f"written as 32-bit float to keep it (use --overs scale or clip to avoid)")
            elif overs in ("float", "scale"):
                gain, action = 10 ** (-0.1 / 20) / peak, "scaled"
                message = f"{meta.path}: normalized peak {20 * math.log10(peak):+.1f} dBFS; scaled to -0.1 dBFS"
            else:
                action = "clipped"
        n_clipped = 0
        with audio_io.atomic_path(output) as final:
            with sf.SoundFile(str(stage)) as src, sf.SoundFile(str(final), "w", samplerate=meta.sample_rate,
                                                               channels=meta.channels, format=meta.format,
                                                               subtype=out_subtype) as dst:
                for blk in src.blocks(blocksize=1 << 17, dtype="float32", always_2d=True):
                    if gain != 1.0:
                        blk = blk * np.float32(gain)
                    if action == "clipped":
                        n_clipped += int(np.count_nonzero(np.abs(blk) > 1.0))
                        blk = np.clip(blk, -1.0, 1.0)
                    dst.write(blk)
        if action == "clipped":
            message = f"{meta.path}: {n_clipped} samples clipped at full scale"
    finally:
        stage.unlink(missing_ok=True)
    if message:
        warnings.warn(message, stacklevel=2)
    return message


__all__ = ["BLOCK_SAMPLES", "KIND", "METHODS", "Normalizer", "correct_file_with_model"]

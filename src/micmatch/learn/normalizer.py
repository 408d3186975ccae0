"""A trained device normalizer (RatioNet or EQNet) with its settings: apply it to audio, save and load it, correct
a file with it.

:class:`Normalizer` holds either model with its settings: ``apply(audio, sample_rate)`` streams audio of any
length in blocks (the result does not depend on the block size), ``save(path)`` / ``Normalizer.load(path)``
write and read a model file (:mod:`micmatch.learn.modelfile`, kind ``micmatch-normalizer``: JSON header, weights
read with ``weights_only=True``). The models are in :mod:`micmatch.learn.ratio_net` and
:mod:`micmatch.learn.eq_net`, their training in :mod:`micmatch.learn.normalizer_train`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from torch import nn

from micmatch import audio as audio_io
from micmatch.errors import AudioError, ConfigMismatchError, ModelError
from micmatch.learn.engine import select_device
from micmatch.learn.eq_net import EQNet
from micmatch.learn.modelfile import header_float, header_int, read_model_file, write_model_file
from micmatch.learn.ratio_net import RatioNet, _log_power_db, _with_context
from micmatch.render import Processor, process_array, render_file
from micmatch.spectral import hann, overlap_add_processor

METHODS = ("ratio-net", "eq-net")
#: The ``kind`` of normalizer model files.
KIND = "micmatch-normalizer"
#: Samples per block when streaming (multiple of every hop used here).
BLOCK_SAMPLES = 1 << 16


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
                return _finite_output(scipy.fft.irfft(spec * np.power(10.0, ratio / 20.0, dtype=np.float32), n=n,
                                                      axis=-1))

            left = n - hop + k * hop  # every kept sample lies under frames with full context
            return overlap_add_processor(process, n, hop, synthesis, trim=left), left
        n = self.config["window"]
        hop = n // 2
        synthesis = hann(n).astype(np.float32)  # periodic Hann at 50% overlap sums to 1

        @torch.no_grad()
        def process(frames: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(np.array(frames), device=device)  # frames is a read-only view
            return _finite_output(torch.cat([model(x[i : i + 64]) for i in range(0, x.shape[0], 64)]).cpu().numpy())

        return overlap_add_processor(process, n, hop, synthesis), n - hop

    def _block(self) -> int:
        hop = self.config["hop_length"]
        return hop * max(1, BLOCK_SAMPLES // hop)

    def _apply_array(self, audio: np.ndarray, *, device: torch.device | None = None) -> np.ndarray:
        func, ctx = self._plan(device or torch.device("cpu"))
        return process_array(np.asarray(audio, dtype=np.float32), Processor(func, ctx, ctx, self._block()))

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
        _check_header(path, header, state)
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


#: Largest sample rate, FFT size and EQNet window a model file may name.
MAX_SAMPLE_RATE = 768_000
MAX_N_FFT = 1 << 16
MAX_WINDOW = 1 << 18


def _check_header(path, header: dict, state: dict) -> None:
    """Every number of a normalizer header in range, and the architecture consistent with the weights' shapes
    (checked before the model is built, so an edited size cannot allocate gigabytes)."""
    if header.get("method") not in METHODS:
        raise ModelError(f"{path}: invalid model header (method={header.get('method')!r} must be one of "
                         f"{', '.join(METHODS)})")
    header_int(path, header, "sample_rate", lo=1000, hi=MAX_SAMPLE_RATE)

    def shape(name: str, expected: tuple) -> None:
        got = tuple(state[name].shape) if name in state else None
        if got != expected:
            raise ModelError(f"{path}: the header and the weights do not fit together (weight {name!r} has shape "
                             f"{got}, the header's architecture needs {expected})")

    if header["method"] == "ratio-net":
        n_fft = header_int(path, header, "config.n_fft", lo=16, hi=MAX_N_FFT, multiple_of=2)
        hop = header_int(path, header, "config.hop_length", lo=1, hi=n_fft // 4)
        if n_fft % hop:
            raise ModelError(f"{path}: invalid model header (config.hop_length={hop} must divide "
                             f"config.n_fft={n_fft})")
        n_bins = header_int(path, header, "architecture.n_bins", lo=n_fft // 2 + 1, hi=n_fft // 2 + 1)
        context = header_int(path, header, "architecture.context", lo=0, hi=256)
        hidden = header_int(path, header, "architecture.hidden", lo=1, hi=1 << 20)
        layers = header_int(path, header, "architecture.layers", lo=1, hi=64)
        header_float(path, header, "architecture.dropout", lo=0.0, hi=0.99)
        header_float(path, header, "architecture.max_gain_db", lo=0.0, hi=200.0, open_low=True)
        shape("feature_mean", ((2 * context + 1) * n_bins,))
        shape("body.0.weight", (hidden, (2 * context + 1) * n_bins))
        shape(f"body.{3 * layers}.weight", (n_bins, hidden))
        return
    window = header_int(path, header, "config.window", lo=16, hi=MAX_WINDOW, multiple_of=2)
    header_int(path, header, "config.hop_length", lo=window // 2, hi=window // 2)
    header_int(path, header, "architecture.window", lo=window, hi=window)
    pool = header_int(path, header, "architecture.pool", lo=1, hi=window)
    if window % pool:
        raise ModelError(f"{path}: invalid model header (architecture.pool={pool} must divide config.window={window})")
    channels = header_int(path, header, "architecture.channels", lo=1, hi=1 << 14)
    taps = header_int(path, header, "architecture.taps", lo=1, hi=window)
    local_taps = header_int(path, header, "architecture.local_taps", lo=1, hi=window)
    latent = header_int(path, header, "architecture.latent_units", lo=1, hi=1 << 16)
    shape("conv_weight", (channels, taps))
    shape("local_weight", (channels, local_taps))
    shape("dense1.weight", (latent, window // pool))


def _finite_output(y: np.ndarray) -> np.ndarray:
    """Stop before a model's non-finite output is written (the render then removes its staging file)."""
    if not np.all(np.isfinite(y)):
        raise ModelError("the model's output is not finite (NaN or infinity); nothing was written; retrain the "
                         "model")
    return y


def correct_file_with_model(path: str | os.PathLike, output: str | os.PathLike, normalizer: Normalizer, *,
                            resample: bool = False, overs: str = "scale", compute: str = "cpu") -> str:
    """Normalize one audio file into ``output`` (the input's format and subtype), written atomically.

    Files at the model's rate stream in blocks (bounded memory); other rates are resampled whole, only with
    ``resample``. ``overs`` as for :func:`micmatch.correct.correct_file`: ``float`` writes 32-bit float when an
    integer format would clip (WAV/AIFF/CAF), ``scale`` lowers the file to a -0.1 dBFS peak, ``clip`` clips.
    Returns a warning line ("" when nothing needed saying).
    """
    meta = audio_io.info(path)
    if meta.sample_rate != normalizer.sample_rate and not resample:
        normalizer.check_sample_rate(meta.sample_rate, what=str(meta.path))
    if Path(output).resolve() == meta.path.resolve():
        raise AudioError(f"{meta.path}: output would overwrite the input; choose another output folder")
    options = {"overs": overs, "verb": "normalized", "warn": False}
    try:
        if meta.sample_rate == normalizer.sample_rate:
            func, ctx = normalizer._plan(torch.device("cpu") if compute == "cpu" else select_device(compute))
            result = render_file(meta.path, output, Processor(func, ctx, ctx, normalizer._block()), **options)
        else:
            x, _ = audio_io.load(meta.path, channels="keep", dtype="float32")
            y = normalizer.apply(x, meta.sample_rate, resample=True, compute=compute)
            result = render_file(y, output, sample_rate=meta.sample_rate, format=meta.format, subtype=meta.subtype,
                                 name=meta.path, **options)
    except ModelError as exc:  # a non-finite output: name the file it stopped on
        raise ModelError(f"{meta.path}: {exc}") from None
    if result.message:
        warnings.warn(result.message, stacklevel=2)
    return result.message


__all__ = ["BLOCK_SAMPLES", "KIND", "METHODS", "Normalizer", "correct_file_with_model"]

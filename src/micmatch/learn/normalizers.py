"""Learned device normalizers trained from a short calibration pair: a spectral-ratio network and an end-to-end
equalization CNN.

* **RatioNet** ("A Frequency Response Normalization Method based on Deep Neural Networks for IoT Devices"): the
  log power of a device recording's STFT frame (optionally with ``context`` frames on each side) in, a log ratio
  per bin out; the device's STFT is multiplied by the ratio and resynthesized with the device's phase. Three
  hidden layers of 1024 units, ReLU and dropout, Adam, as in the paper. The last layer starts at zero, so an
  untrained model is the identity (exact reconstruction). Trained on the frame log-spectral distance (LSD) to
  the reference plus, by default, a long-term-spectrum term. Unlike a static equalizer it changes its gain from
  frame to frame, so it can also lower noise in pauses and reverberant tails; the long-term term keeps those
  frame-wise cuts from shifting the average spectrum (the LSD alone favours the geometric mean of the frames,
  which in reverberant tails lies below the mean power).
* **EQNet** ("End-to-end equalization with convolutional neural networks", DAFx 2018): the waveform in and out.
  Adaptive front end (Conv1D, absolute value, a locally connected (depthwise) Conv1D with softplus, max pooling),
  a latent network of dense layers with softplus, and a synthesis back end (upsampling, multiplication by the
  front end's Conv1D output, and a deconvolution that reuses the first layer's filters, transposed). Windows of
  4096 samples with 50% overlap-add. Trained in two steps: the front and back ends as an autoencoder, then the
  whole network on the pairs, with the mean absolute error on the waveform plus an optional multi-resolution STFT
  loss. The default width (16 filters instead of the paper's 128) keeps CPU training to minutes; the paper's size
  is ``channels=128``. The upsampling repeats values (the authors' later code has no max-position mask).

:class:`Normalizer` holds either model with its settings: ``apply(audio, sample_rate)`` streams audio of any
length in blocks (the result does not depend on the block size), ``save(path)`` / ``Normalizer.load(path)``
write and read a model file (:mod:`micmatch.learn.modelfile`: JSON header, weights read with
``weights_only=True``).
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from torch import nn
from torch.nn import functional as F

from micmatch import audio as audio_io
from micmatch.render import OVERS, stream_with_context as _stream_with_context
from micmatch.errors import (
    AudioError,
    ConfigMismatchError,
    MeasurementError,
    ModelError,
    ParameterError,
)
from micmatch.learn.modelfile import read_model_file, write_model_file
from micmatch.outputs import atomic_path, staging_path
from micmatch.learn.pairs import (
    MIN_PAIR_S,
    VALIDATION_FRACTION,
    AlignedPair,
    check_pairs,
    split_pair,
)
from micmatch.spectral import hann

METHODS = ("ratio-net", "eq-net")
#: Floor of every log power (dB) of the RatioNet's features and loss, re the unnormalised Hann STFT's scale.
FEATURE_FLOOR_DB = -100.0
#: The loss compares log powers floored this far below the reference's loudest bin (as metrics.lsd does).
LSD_RANGE_DB = 120.0
#: Largest gain or cut (dB) a RatioNet may apply to one bin of one frame (a tanh limits its output smoothly).
MAX_GAIN_DB = 40.0
#: Samples per block when streaming (multiple of every hop used here).
BLOCK_SAMPLES = 1 << 16


def default_n_fft(sample_rate: int) -> int:
    """The paper's 20 ms frame rounded up to a power of two (1024 at 44.1 kHz, 256 at 8 kHz)."""
    return 1 << max(5, math.ceil(math.log2(0.02 * sample_rate)))


def select_device(compute: str = "auto") -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``."""
    if compute not in ("auto", "cpu", "cuda"):
        raise ParameterError(f"compute={compute!r} must be 'auto', 'cpu' or 'cuda'")
    if compute == "cuda" and not torch.cuda.is_available():
        raise ParameterError("compute='cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    return torch.device("cuda" if compute == "auto" and torch.cuda.is_available() else
                        ("cpu" if compute == "auto" else compute))


# ----------------------------------------------------------------------------------------------------------------
# Framing shared by training and application


def _log_power_db(spec: np.ndarray | torch.Tensor):
    floor = 10.0 ** (FEATURE_FLOOR_DB / 10.0)
    if isinstance(spec, torch.Tensor):
        return 10.0 * torch.log10(spec.real**2 + spec.imag**2 + floor)
    return 10.0 * np.log10(spec.real**2 + spec.imag**2 + floor)


def _with_context(frames_db: np.ndarray, context: int) -> np.ndarray:
    """``(n_frames, n_bins)`` -> ``(n_frames, (2 context + 1) n_bins)``: each frame with its neighbours (edge
    frames repeated)."""
    if context == 0:
        return frames_db
    padded = np.pad(frames_db, ((context, context), (0, 0)), mode="edge")
    n = frames_db.shape[0]
    return np.concatenate([padded[i : i + n] for i in range(2 * context + 1)], axis=1)


def _frame_spectra(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Complex spectra ``(n_frames, n_bins)`` of Hann frames at offsets 0, hop, ... (no padding)."""
    x = np.ascontiguousarray(audio, dtype=np.float32)
    count = 1 + (x.shape[-1] - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(x, shape=(count, n_fft), strides=(hop * 4, 4), writeable=False)
    return scipy.fft.rfft(frames * hann(n_fft).astype(np.float32), axis=-1)


def _pair_frames(pair: AlignedPair, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Log powers (dB) ``(n_frames, n_bins)`` of the reference and the device, frames as :meth:`apply` sees them
    (zero padding of ``n_fft - hop`` at both ends, so every sample is covered by full-weight frames)."""
    pad = n_fft - hop
    out = []
    for x in (pair.reference, pair.device):
        xp = np.concatenate([np.zeros(pad, np.float32), np.asarray(x, np.float32), np.zeros(pad, np.float32)])
        out.append(_log_power_db(_frame_spectra(xp, n_fft, hop)).astype(np.float32))
    return out[0], out[1]


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


# ----------------------------------------------------------------------------------------------------------------
# RatioNet


class RatioNet(nn.Module):
    """Log power frame(s) in (dB), log ratio per bin out (dB).

    Shape: ``(batch, (2 context + 1) n_bins)`` -> ``(batch, n_bins)``. The input is standardised with the
    training set's per-feature mean and standard deviation (buffers, saved with the weights).
    """

    def __init__(self, n_bins: int, *, context: int = 0, hidden: int = 1024, layers: int = 3, dropout: float = 0.2,
                 max_gain_db: float = MAX_GAIN_DB):
        super().__init__()
        self.config = {"n_bins": int(n_bins), "context": int(context), "hidden": int(hidden), "layers": int(layers),
                       "dropout": float(dropout), "max_gain_db": float(max_gain_db)}
        n_in = (2 * context + 1) * n_bins
        self.register_buffer("feature_mean", torch.zeros(n_in))
        self.register_buffer("feature_std", torch.ones(n_in))
        mods: list[nn.Module] = []
        width = n_in
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        last = nn.Linear(width, n_bins)
        nn.init.zeros_(last.weight)  # an untrained model is the identity: ratio 0 dB everywhere
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*mods, last)

    def forward(self, features_db: torch.Tensor) -> torch.Tensor:
        z = (features_db - self.feature_mean) / self.feature_std
        m = self.config["max_gain_db"]
        return m * torch.tanh(self.body(z) / m)


def _lsd_loss(est_db: torch.Tensor, ref_db: torch.Tensor, floor_db: float) -> torch.Tensor:
    """Mean over frames of the RMS over bins (0 Hz left out) of the floored dB difference."""
    d = torch.clamp(ref_db[:, 1:], min=floor_db) - torch.clamp(est_db[:, 1:], min=floor_db)
    return torch.sqrt(torch.mean(d * d, dim=1) + 1e-6).mean()


def _long_term_loss(est_db: torch.Tensor, ref_db: torch.Tensor) -> torch.Tensor:
    """RMS over bins of the dB difference of the mean power over the batch's frames."""
    def long_term_db(x: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.mean(10.0 ** (x[:, 1:] / 10.0), dim=0) + 1e-10)

    d = long_term_db(est_db) - long_term_db(ref_db)
    return torch.sqrt(torch.mean(d * d) + 1e-6)


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", leave=False, disable=None if enabled else True)


def _prepare(pairs: Sequence[AlignedPair], validation: Sequence[AlignedPair] | None, validation_fraction: float,
             min_duration_s: float) -> tuple[int, list[AlignedPair], list[AlignedPair]]:
    sample_rate = check_pairs(pairs)
    total = sum(p.duration_s for p in pairs)
    if total < min_duration_s:
        raise MeasurementError(f"the training pairs hold {total:.2f} s of sound; training needs at least "
                               f"{min_duration_s:g} s (record a longer calibration pair)")
    if validation is None:
        split = [split_pair(p, validation_fraction=validation_fraction) for p in pairs]
        train, val = [s[0] for s in split], [s[1] for s in split]
    else:
        if check_pairs(validation) != sample_rate:
            raise ConfigMismatchError("validation pairs and training pairs have different sample rates")
        train, val = list(pairs), list(validation)
    return sample_rate, train, val



def _fit_supervised(model: nn.Module, batch_loss: Callable, validate: Callable[[], float], *, n: int,
                    batch_size: int, epochs: int, patience: int, learning_rate: float, gen: torch.Generator,
                    dev: torch.device, best: float, progress: bool, desc: str, min_batch: int = 1) -> tuple:
    """Adam over shuffled batches of ``n`` examples (``batch_loss(idx)``), validated after every epoch, stopped
    early after ``patience`` epochs without a gain of 1e-4 dB, and left holding the best weights.

    Returns ``(best, best_epoch, history)``; ``best`` starts at the score to beat (the untrained model's, or inf).
    """
    best_state, best_epoch, history = copy.deepcopy(model.state_dict()), 0, []
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    with _progress(epochs, progress, desc) as bar:
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n, generator=gen).to(dev)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                if idx.numel() < min_batch:
                    continue
                loss = batch_loss(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            score = validate()
            history.append(round(score, 4))
            if score < best - 1e-4:
                best, best_epoch, best_state = score, epoch, copy.deepcopy(model.state_dict())
            bar.set_postfix(val_lsd=f"{score:.2f} dB", best=f"{best:.2f}")
            bar.update(1)
            if epoch - best_epoch >= patience:
                break
    model.load_state_dict(best_state)
    return best, best_epoch, history


def fit_ratio_net(
    pairs: Sequence[AlignedPair],
    *,
    validation: Sequence[AlignedPair] | None = None,
    n_fft: int | None = None,
    hop_length: int | None = None,
    context: int = 0,
    hidden: int = 1024,
    layers: int = 3,
    dropout: float = 0.2,
    epochs: int = 60,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    long_term_weight: float = 1.0,
    patience: int = 10,
    validation_fraction: float = VALIDATION_FRACTION,
    min_duration_s: float = MIN_PAIR_S,
    seed: int = 0,
    compute: str = "auto",
    init: Normalizer | None = None,
    progress: bool = True,
) -> Normalizer:
    """Train a RatioNet on aligned pairs (device -> reference).

    Parameters
    ----------
    pairs : sequence of AlignedPair
        Aligned recordings (:func:`~micmatch.learn.pairs.align_pair`, or simulated), one sample rate.
    validation : sequence of AlignedPair, optional
        Held-out pairs for early stopping; by default the last ``validation_fraction`` of every pair.
    n_fft, hop_length : int, optional
        STFT frame and hop (samples); default the paper's 20 ms rounded up to a power of two, hop ``n_fft // 4``
        (exact overlap-add resynthesis needs ``n_fft / hop`` to be an integer of at least 4... see :meth:`apply`).
    context : int
        Frames on each side fed to the network with the current one.
    hidden, layers, dropout : int, int, float
        Width, number of hidden layers and dropout (paper: 1024, 3).
    epochs, batch_size, learning_rate : int, int, float
        Adam; the model with the lowest validation LSD is kept (early stopping after ``patience`` epochs
        without improvement).
    long_term_weight : float
        Weight of the long-term-spectrum term (dB RMS over bins of the difference of the mean power over each
        batch's frames), added to the LSD. Default 1: on simulated pairs (speech through a microphone in a
        reverberant room, or with noise and clipping; ``benchmarks/bench_normalizers.py``) the LSD alone left the
        long-term spectrum further from the reference than aligned spectrum correction (1.0-1.2 dB vs 0.8 dB in
        the room), while weights 0.5-2 brought it below (0.5-0.7 dB) for 0.1-0.2 dB of frame LSD. 0 trains on
        the LSD alone.
    seed : int
        Seeds the weights and the batch order.
    compute : {"auto", "cpu", "cuda"}
    init : Normalizer, optional
        A RatioNet to fine-tune (its architecture, STFT and input statistics are kept).

    Returns
    -------
    Normalizer
        ``summary`` holds the validation LSD before (identity) and after training, the epochs run and the time.

    Raises
    ------
    MeasurementError
        Too little material.
    ConfigMismatchError
        Pairs at different rates, or an ``init`` model at another rate or of another method.
    """
    t0 = time.perf_counter()
    sample_rate, train, val = _prepare(pairs, validation, validation_fraction, min_duration_s)
    if init is not None:
        if init.method != "ratio-net":
            raise ConfigMismatchError(f"init model is a {init.method}; fine-tuning a ratio-net needs a ratio-net")
        if init.sample_rate != sample_rate:
            raise ConfigMismatchError(f"init model is at {init.sample_rate} Hz but the pairs at {sample_rate} Hz")
        n_fft, hop_length = init.config["n_fft"], init.config["hop_length"]
    n_fft = n_fft or default_n_fft(sample_rate)
    hop = hop_length or n_fft // 4
    if n_fft % hop or n_fft // hop < 4:
        raise ParameterError(f"hop_length={hop} must divide n_fft={n_fft} at least 4 times (exact overlap-add)")
    if epochs < 1 or batch_size < 1 or patience < 1:
        raise ParameterError(f"epochs={epochs}, batch_size={batch_size} and patience={patience} must be positive")
    dev = select_device(compute)

    def frames(ps):
        r, d = zip(*(_pair_frames(p, n_fft, hop) for p in ps))
        ctx = context if init is None else init.model.config["context"]
        return (np.concatenate(r), np.concatenate(d),
                np.concatenate([_with_context(x, ctx) for x in d]))

    ref_tr, dev_tr, x_tr = frames(train)
    ref_va, dev_va, x_va = frames(val)
    floor_db = float(ref_tr.max()) - LSD_RANGE_DB
    if init is not None:
        model = copy.deepcopy(init.model)
    else:
        torch.manual_seed(seed)
        model = RatioNet(n_fft // 2 + 1, context=context, hidden=hidden, layers=layers, dropout=dropout)
        model.feature_mean.copy_(torch.as_tensor(x_tr.mean(axis=0)))
        model.feature_std.copy_(torch.as_tensor(np.maximum(x_tr.std(axis=0), 1e-3)))
    model.to(dev)
    def t(a):
        return torch.as_tensor(a, device=dev)

    ref_tr_t, dev_tr_t, x_tr_t = t(ref_tr), t(dev_tr), t(x_tr)
    ref_va_t, dev_va_t, x_va_t = t(ref_va), t(dev_va), t(x_va)

    @torch.no_grad()
    def validate() -> float:
        model.eval()
        total = 0.0
        for i in range(0, x_va_t.shape[0], 4096):
            est = dev_va_t[i : i + 4096] + model(x_va_t[i : i + 4096])
            total += float(_lsd_loss(est, ref_va_t[i : i + 4096], floor_db)) * est.shape[0]
        return total / x_va_t.shape[0]

    with torch.no_grad():
        uncorrected = float(_lsd_loss(dev_va_t, ref_va_t, floor_db))
    initial = validate()
    gen = torch.Generator().manual_seed(seed)

    def batch_loss(idx):
        est = dev_tr_t[idx] + model(x_tr_t[idx])
        loss = _lsd_loss(est, ref_tr_t[idx], floor_db)
        if long_term_weight:
            loss = loss + long_term_weight * _long_term_loss(est, ref_tr_t[idx])
        return loss

    best, best_epoch, history = _fit_supervised(
        model, batch_loss, validate, n=x_tr_t.shape[0], batch_size=batch_size, epochs=epochs, patience=patience,
        learning_rate=learning_rate, gen=gen, dev=dev, best=initial, progress=progress, desc="ratio-net",
        min_batch=2)
    model.cpu().eval()
    summary = {"validation_lsd_db": round(best, 4), "validation_lsd_identity_db": round(initial, 4),
               "validation_lsd_uncorrected_db": round(uncorrected, 4), "best_epoch": best_epoch,
               "epochs_run": len(history), "history_lsd_db": history,
               "train_s": round(sum(p.duration_s for p in train), 3),
               "validation_s": round(sum(p.duration_s for p in val), 3),
               "train_time_s": round(time.perf_counter() - t0, 2), "seed": seed, "fine_tuned": init is not None,
               "lsd_note": "frame LSD in the model's STFT (0 Hz left out, floored 120 dB below the loudest bin)"}
    config = {"n_fft": n_fft, "hop_length": hop, "architecture": model.config,
              "training": {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                           "long_term_weight": long_term_weight, "patience": patience}}
    return Normalizer("ratio-net", model, sample_rate, config, summary)


# ----------------------------------------------------------------------------------------------------------------
# EQNet


class EQNet(nn.Module):
    """End-to-end equalizer on waveform windows.

    Shape: ``(batch, window)`` -> ``(batch, window)``. With ``latent=False`` the latent network is bypassed (the
    autoencoder of the first training step). All convolutions run by FFT: on CPU, torch's direct convolutions of
    these sizes are one to two orders of magnitude slower in the backward pass.
    """

    def __init__(self, *, window: int = 4096, channels: int = 16, taps: int = 64, local_taps: int = 128,
                 pool: int = 16, latent_units: int = 64):
        super().__init__()
        if window % pool:
            raise ParameterError(f"window={window} must be a multiple of pool={pool}")
        self.config = {"window": int(window), "channels": int(channels), "taps": int(taps),
                       "local_taps": int(local_taps), "pool": int(pool), "latent_units": int(latent_units)}
        # Front end: Conv1D, `channels` filters of `taps` (no bias: the back end reuses them transposed).
        self.conv_weight = nn.Parameter(torch.randn(channels, taps) / math.sqrt(taps))
        # Locally connected: one filter of `local_taps` per channel (depthwise), softplus.
        self.local_weight = nn.Parameter(torch.randn(channels, local_taps) / math.sqrt(local_taps))
        self.local_bias = nn.Parameter(torch.zeros(channels))
        n_pooled = window // pool
        # Latent network: dense layers along the pooled time axis (64 units, softplus), shared by the channels.
        self.dense1 = nn.Linear(n_pooled, latent_units)
        self.dense2 = nn.Linear(latent_units, n_pooled)

    def forward(self, x: torch.Tensor, *, latent: bool = True) -> torch.Tensor:
        c = self.config
        n = scipy.fft.next_fast_len(x.shape[-1] + max(c["taps"], c["local_taps"]) - 1, real=True)
        w_spec = torch.fft.rfft(torch.flip(self.conv_weight, dims=[-1]), n=n)
        x1 = _correlate(torch.fft.rfft(x, n=n).unsqueeze(1) * w_spec, n, c["taps"], x.shape[-1])
        x2 = F.softplus(_depthwise_same(torch.abs(x1), self.local_weight, self.local_bias, n))
        z = F.max_pool1d(x2, c["pool"])  # (batch, channels, window / pool)
        if latent:
            z = F.softplus(self.dense2(F.softplus(self.dense1(z))))
        u = torch.repeat_interleave(z, c["pool"], dim=-1)
        # Deconvolution with the first layer's filters: the adjoint of the front end's correlation.
        v_spec = torch.fft.rfft(x1 * u, n=n) * torch.fft.rfft(self.conv_weight, n=n)
        start = c["taps"] // 2
        return torch.fft.irfft(v_spec.sum(dim=1), n=n)[..., start : start + x.shape[-1]]


def _correlate(spec: torch.Tensor, n: int, k: int, t: int) -> torch.Tensor:
    """Inverse FFT of (signal spectrum x flipped-filter spectrum), cut to the 'same' correlation output: sample
    ``t`` holds ``sum_j w[j] x[t + j - k // 2]``."""
    start = k - 1 - k // 2
    return torch.fft.irfft(spec, n=n)[..., start : start + t]


def _depthwise_same(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """Per-channel cross-correlation ``sum_j w[c, j] x[c, t + j - K // 2]`` by FFT, output length T.
    ``x`` (batch, C, T), ``weight`` (C, K), ``bias`` (C,)."""
    t, k = x.shape[-1], weight.shape[-1]
    n = n or scipy.fft.next_fast_len(t + k - 1, real=True)
    spec = torch.fft.rfft(x, n=n) * torch.fft.rfft(torch.flip(weight, dims=[-1]), n=n)
    return _correlate(spec, n, k, t) + bias[:, None]


def _stft_mag(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    w = torch.hann_window(n_fft, device=x.device)
    return torch.stft(x, n_fft, n_fft // 4, window=w, return_complex=True).abs()


def _multi_resolution_stft_loss(y: torch.Tensor, target: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Spectral convergence plus log-magnitude L1, averaged over FFT sizes."""
    total = 0.0
    for n in sizes:
        a, b = _stft_mag(y, n), _stft_mag(target, n)
        sc = torch.linalg.norm(b - a) / (torch.linalg.norm(b) + 1e-8)
        lm = torch.mean(torch.abs(torch.log(a + 1e-5) - torch.log(b + 1e-5)))
        total = total + sc + lm
    return total / len(sizes)


def _windows(pairs: Sequence[AlignedPair], window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    refs, devs = [], []
    for p in pairs:
        n = p.reference.shape[-1]
        if n < window:
            continue
        starts = np.arange(0, n - window + 1, hop)
        idx = starts[:, None] + np.arange(window)[None, :]
        refs.append(p.reference[idx])
        devs.append(p.device[idx])
    if not refs:
        raise MeasurementError(f"every training pair is shorter than one window of {window} samples")
    return np.concatenate(refs).astype(np.float32), np.concatenate(devs).astype(np.float32)


def fit_eq_net(
    pairs: Sequence[AlignedPair],
    *,
    validation: Sequence[AlignedPair] | None = None,
    window: int = 4096,
    channels: int = 16,
    taps: int = 64,
    local_taps: int = 128,
    pool: int = 16,
    latent_units: int = 64,
    epochs_autoencoder: int = 5,
    epochs: int = 40,
    batch_size: int = 4,
    learning_rate: float = 1e-3,
    stft_loss_weight: float = 1.0,
    stft_sizes: Sequence[int] = (64, 256, 1024),
    patience: int = 10,
    validation_fraction: float = VALIDATION_FRACTION,
    min_duration_s: float = MIN_PAIR_S,
    seed: int = 0,
    compute: str = "auto",
    init: Normalizer | None = None,
    progress: bool = True,
) -> Normalizer:
    """Train an EQNet on aligned pairs (device -> reference) in two steps.

    Step 1 (``epochs_autoencoder``): front and back ends reconstruct their input (device and reference windows),
    latent network bypassed. Step 2 (``epochs``): the whole network maps device windows to reference windows, MAE
    on the waveform plus ``stft_loss_weight`` times a multi-resolution STFT loss (FFT sizes ``stft_sizes``).
    Early stopping on the validation LSD (frame LSD of the overlap-added output, n_fft of
    :func:`default_n_fft`). Windows of ``window`` samples every ``window / 2`` samples of the training parts.
    ``init`` fine-tunes an EQNet (step 1 skipped). Other parameters as for :func:`fit_ratio_net`.

    The STFT term is on by default: with the waveform MAE alone, tens of epochs left the held-out LSD no better
    than no correction (benchmarks/results/normalizers.md); the MAE fits the loud low frequencies first.
    """
    from micmatch.metrics import log_spectral_distance

    t0 = time.perf_counter()
    sample_rate, train, val = _prepare(pairs, validation, validation_fraction, min_duration_s)
    if init is not None:
        if init.method != "eq-net":
            raise ConfigMismatchError(f"init model is a {init.method}; fine-tuning an eq-net needs an eq-net")
        if init.sample_rate != sample_rate:
            raise ConfigMismatchError(f"init model is at {init.sample_rate} Hz but the pairs at {sample_rate} Hz")
    if epochs < 1 or epochs_autoencoder < 0 or batch_size < 1 or patience < 1:
        raise ParameterError("epochs, batch_size and patience must be positive and epochs_autoencoder >= 0")
    dev = select_device(compute)
    torch.manual_seed(seed)
    if init is not None:
        model = copy.deepcopy(init.model)
        window = model.config["window"]
    else:
        model = EQNet(window=window, channels=channels, taps=taps, local_taps=local_taps, pool=pool,
                      latent_units=latent_units)
    model.to(dev)
    ref_w, dev_w = _windows(train, window, window // 2)
    ref_t, dev_t = torch.as_tensor(ref_w, device=dev), torch.as_tensor(dev_w, device=dev)
    config = {"window": window, "hop_length": window // 2, "n_fft": default_n_fft(sample_rate),
              "architecture": model.config,
              "training": {"epochs_autoencoder": epochs_autoencoder if init is None else 0, "epochs": epochs,
                           "batch_size": batch_size, "learning_rate": learning_rate,
                           "stft_loss_weight": stft_loss_weight, "stft_sizes": list(stft_sizes), "patience": patience}}
    normalizer = Normalizer("eq-net", model, sample_rate, config, {})
    n_fft = config["n_fft"]

    def validate() -> float:
        model.eval()
        scores = []
        for p in val:
            if p.reference.shape[-1] < n_fft:
                continue
            y = normalizer._apply_array(p.device[None, :], device=dev)[0]
            scores.append(log_spectral_distance(p.reference, y, n_fft=n_fft, hop_length=n_fft // 4))
        return float(np.mean(scores)) if scores else float("nan")

    gen = torch.Generator().manual_seed(seed)
    n = ref_t.shape[0]
    history_ae = []
    if init is None and epochs_autoencoder:
        both = torch.cat([dev_t, ref_t])
        front = [p for name, p in model.named_parameters() if not name.startswith("dense")]
        opt = torch.optim.Adam(front, lr=learning_rate)
        with _progress(epochs_autoencoder, progress, "eq-net autoencoder") as bar:
            for _ in range(epochs_autoencoder):
                model.train()
                order = torch.randperm(both.shape[0], generator=gen).to(dev)
                total = 0.0
                for start in range(0, both.shape[0], batch_size):
                    x = both[order[start : start + batch_size]]
                    loss = torch.mean(torch.abs(model(x, latent=False) - x))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * x.shape[0]
                history_ae.append(round(total / both.shape[0], 6))
                bar.set_postfix(mae=f"{history_ae[-1]:.2e}")
                bar.update(1)
    usable = [p for p in val if p.reference.shape[-1] >= n_fft]
    uncorrected = float(np.mean([log_spectral_distance(p.reference, p.device, n_fft=n_fft, hop_length=n_fft // 4)
                                 for p in usable])) if usable else math.nan

    def batch_loss(idx):
        y = model(dev_t[idx])
        loss = torch.mean(torch.abs(y - ref_t[idx]))
        if stft_loss_weight:
            loss = loss + stft_loss_weight * _multi_resolution_stft_loss(y, ref_t[idx], stft_sizes)
        return loss

    best, best_epoch, history = _fit_supervised(
        model, batch_loss, validate, n=n, batch_size=batch_size, epochs=epochs, patience=patience,
        learning_rate=learning_rate, gen=gen, dev=dev, best=math.inf, progress=progress, desc="eq-net")
    model.cpu().eval()
    normalizer.summary = {
        "validation_lsd_db": round(best, 4) if math.isfinite(best) else None,
        "validation_lsd_uncorrected_db": round(uncorrected, 4) if math.isfinite(uncorrected) else None,
        "best_epoch": best_epoch, "epochs_run": len(history), "history_lsd_db": history,
        "history_autoencoder_mae": history_ae, "train_s": round(sum(p.duration_s for p in train), 3),
        "validation_s": round(sum(p.duration_s for p in val), 3),
        "train_time_s": round(time.perf_counter() - t0, 2), "seed": seed, "fine_tuned": init is not None,
        "lsd_note": f"frame LSD of the output audio (n_fft {n_fft}, hop {n_fft // 4}, 0 Hz left out)"}
    return normalizer


# ----------------------------------------------------------------------------------------------------------------
# The normalizer: apply, save, load


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
        return {"kind": "micmatch-normalizer", "method": self.method, "sample_rate": int(self.sample_rate),
                "config": self.config, "architecture": self.model.config, "summary": self.summary}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file atomically (JSON header + weights)."""
        return write_model_file(path, self.header(), self.model.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Normalizer:
        """Read a model file; every inconsistency is one :class:`ModelError` line."""
        header, state = read_model_file(path)
        try:
            if header.get("kind") != "micmatch-normalizer":
                raise ModelError(f"{path}: not a normalizer model (kind={header.get('kind')!r})")
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
        with atomic_path(output) as final:
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


__all__ = [
    "METHODS", "EQNet", "Normalizer", "RatioNet", "correct_file_with_model", "default_n_fft", "fit_eq_net",
    "fit_ratio_net", "select_device",
]

"""A learned correction per event device, over the static one, kept only where held-out audio shows it better.

``event --learned``: after the static (aligned spectrum) correction, each device's overlap with the reference may
still differ from the reference frame by frame (reverberation, noise, level-dependent colouring) in ways no fixed
equalizer can follow. :func:`fit_residual` trains a small spectral-ratio network
(:class:`~micmatch.learn.ratio_net.RatioNet`, trained by :func:`~micmatch.learn.normalizer_train.fit_ratio_net`)
on the statically corrected device against the reference, as a residual: its last layer starts at zero, so before
training it is the identity (0 dB in every bin and frame).

The rule that keeps it from ever losing to the static correction: the last quarter of the pair (at least
:data:`MIN_HELDOUT_S`) is held out and never trained on (the network's early stopping uses the end of the
training part); the frame LSD of the held-out part (:func:`micmatch.learn.heldout.heldout_lsd_db`) is measured for
the static result and for the learned one, and the learned correction is kept only when it is at least
:data:`~micmatch.learn.heldout.KEEP_MARGIN_DB` better. Otherwise the fit is the identity and says why.

Long overlaps are sampled: at most :data:`MAX_TRAIN_S` of training material and :data:`MAX_HELDOUT_S` of held-out
material, in evenly spaced pieces, so a device with an hour of overlap trains in the time of two minutes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from micmatch.errors import AudioError, ConfigMismatchError, MeasurementError, ParameterError
from micmatch.learn import heldout
from micmatch.learn.engine import deterministic
from micmatch.learn.normalizer import Normalizer
from micmatch.pairs import AlignedPair

#: Fraction of the pair held out (its end) for the keep-or-drop decision.
HELDOUT_FRACTION = 0.25
#: Shortest held-out part (s).
MIN_HELDOUT_S = 3.0
#: Shortest training part (s); with the held-out part, pairs under 9 s are not trained on.
MIN_TRAIN_S = 6.0
#: At most this much training material (s) is used, and this much held-out material measured.
MAX_TRAIN_S = 90.0
MAX_HELDOUT_S = 60.0
#: Length (s) of the evenly spaced pieces taken from parts longer than the caps.
PIECE_S = 10.0
#: The network: one frame of context each side, two hidden layers of 256 (small enough to train in seconds on one
#: core; the paper's 3 x 1024 is ``micmatch train ratio-net``).
CONTEXT_FRAMES, HIDDEN, LAYERS, DROPOUT = 1, 256, 2, 0.1
#: Optimiser steps aimed at (epochs are added until about this many batches are seen), epochs at most, patience.
TARGET_STEPS, MIN_EPOCHS, MAX_EPOCHS, PATIENCE = 800, 6, 40, 4
BATCH_SIZE = 256


@dataclass
class EventFit:
    """One device's learned residual correction, or the identity with the reason.

    Attributes
    ----------
    kept : bool
        True when the learned correction beat the static one on the held-out part.
    context : int
        Samples needed on each side of a segment for :meth:`apply` to give, inside it, what it gives on the whole
        signal (exact when the segment starts a multiple of ``hop`` samples from the signal's start).
    figures : dict
        JSON-able: ``heldout_lsd_db`` (``static``, ``learned``), ``train_s``, ``heldout_s``, ``epochs``, ...
    reason : str
        One line: why kept or not, with the figures.
    hop : int
        STFT hop of the network (samples); 1 when not kept.
    normalizer : Normalizer or None
        The trained network (None when there was nothing to train).
    """

    kept: bool
    context: int
    figures: dict
    reason: str
    hop: int = 1
    normalizer: Normalizer | None = field(default=None, repr=False)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """1-D float audio (the statically corrected device) -> float32 of the same length (input untouched); a
        copy of the input when not kept.

        The network works on STFT frames every ``hop`` samples from the start of ``x``: apply it to a whole stem,
        or to blocks that start a multiple of ``hop`` samples apart with ``context`` samples of audio on each side
        (then the blocks' middles join into exactly the whole stem's result).
        """
        a = np.asarray(x)
        if a.ndim != 1:
            raise ParameterError(f"EventFit.apply takes 1-D audio; got shape {a.shape}")
        if not self.kept or self.normalizer is None or a.shape[0] == 0:
            return a.astype(np.float32, copy=True)
        return self.normalizer.apply(a.astype(np.float32, copy=False), self.normalizer.sample_rate, compute="cpu")


def residual_fit(normalizer: Normalizer, *, kept: bool, figures: dict | None = None, reason: str = "") -> EventFit:
    """An :class:`EventFit` around a RatioNet normalizer (its ``context`` and ``hop`` from the model's STFT)."""
    if normalizer.method != "ratio-net":
        raise ConfigMismatchError(f"a residual correction is a ratio-net; got a {normalizer.method}")
    n_fft, hop = normalizer.config["n_fft"], normalizer.config["hop_length"]
    context = n_fft + normalizer.model.config["context"] * hop
    return EventFit(kept, context, dict(figures or {}), reason, hop, normalizer)


def _pieces(start: int, stop: int, most: int, piece: int) -> list[tuple[int, int]]:
    """``[(a, b), ...]``: the whole ``[start, stop)`` when it holds at most ``most`` samples, else evenly spaced
    pieces of ``piece`` samples totalling about ``most``."""
    if stop - start <= most:
        return [(start, stop)]
    k = max(1, most // piece)
    starts = np.linspace(start, stop - piece, k).round().astype(int)
    return [(int(a), int(a) + piece) for a in starts]


def _check(device: np.ndarray, reference: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    from micmatch.audio import validate_audio

    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ParameterError(f"sample_rate={sample_rate!r} must be a positive integer")
    d = validate_audio(np.asarray(device), sample_rate, name="device")
    r = validate_audio(np.asarray(reference), sample_rate, name="reference")
    if d.ndim != 1 or d.shape != r.shape:
        raise ConfigMismatchError(f"device {d.shape} and reference {r.shape} must be 1-D of equal length")
    return d.astype(np.float32), r.astype(np.float32)


def _epochs(train_samples: int, hop: int) -> int:
    steps_per_epoch = max(1, math.ceil(0.8 * train_samples / hop / BATCH_SIZE))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch))))


def fit_residual(device: np.ndarray, reference: np.ndarray, sample_rate: int, *, seed: int = 0,
                 progress: bool | Callable[[], object] | None = None, threads: int = 1) -> EventFit:
    """Train the residual network of one device and keep it only where it beats the static correction.

    Parameters
    ----------
    device : np.ndarray [shape=(n,)]
        The device's overlap with the reference, already statically corrected and on the reference's timeline.
    reference : np.ndarray [shape=(n,)]
        The reference's recording of the same moments.
    sample_rate : int
    seed : int
        Seeds the weights and the batch order (the same inputs and seed give the same fit on one machine).
    progress : bool or callable, optional
        True: a bar of the epochs (hidden when stderr is not a terminal); a callable is called once when done.
    threads : int
        Torch threads while training (restored afterwards); one keeps training from fighting other jobs.

    Returns
    -------
    EventFit
        ``kept=False`` with the reason when the pair is too short, the training failed, or the learned correction
        is not at least :data:`~micmatch.learn.heldout.KEEP_MARGIN_DB` better on the held-out part.
    """
    d, r = _check(device, reference, sample_rate)
    n = d.shape[0]
    cut = heldout.split_point(n, sample_rate, fraction=HELDOUT_FRACTION, min_heldout_s=MIN_HELDOUT_S,
                              min_train_s=MIN_TRAIN_S)
    if cut is None:
        need = MIN_TRAIN_S + MIN_HELDOUT_S
        return EventFit(False, 0, {"pair_s": round(n / sample_rate, 3)},
                        f"overlap of {n / sample_rate:.1f} s is too short for a learned correction (needs at least "
                        f"{need:g} s: {MIN_TRAIN_S:g} s to train on and {MIN_HELDOUT_S:g} s held out)")
    t0 = time.perf_counter()
    piece = int(PIECE_S * sample_rate)
    train_parts = _pieces(0, cut, int(MAX_TRAIN_S * sample_rate), piece)
    held_parts = _pieces(cut, n, int(MAX_HELDOUT_S * sample_rate), piece)
    pairs = [AlignedPair(r[a:b], d[a:b], int(sample_rate), f"train {a}-{b}") for a, b in train_parts]
    train_samples = sum(b - a for a, b in train_parts)
    from micmatch.learn.normalizer_train import fit_ratio_net
    from micmatch.learn.ratio_net import default_n_fft

    hop = default_n_fft(sample_rate) // 4
    epochs = _epochs(train_samples, hop)
    threads_before = torch.get_num_threads()
    try:
        torch.set_num_threads(max(1, int(threads)))
        with deterministic():
            normalizer = fit_ratio_net(pairs, context=CONTEXT_FRAMES, hidden=HIDDEN, layers=LAYERS, dropout=DROPOUT,
                                       epochs=epochs, batch_size=BATCH_SIZE, patience=PATIENCE, seed=seed,
                                       compute="cpu", progress=progress is True, min_duration_s=0.0)
    except (MeasurementError, ParameterError) as exc:
        return EventFit(False, 0, {"pair_s": round(n / sample_rate, 3)}, f"no learned correction: {exc}")
    finally:
        torch.set_num_threads(threads_before)
    fit = residual_fit(normalizer, kept=False)
    static, learned = _heldout_figures(fit, d, r, held_parts, sample_rate)
    keep, reason = heldout.verdict(static, learned)
    s = normalizer.summary
    fit.kept, fit.reason = keep, reason
    fit.figures = {
        "heldout_lsd_db": {"static": round(static, 4), "learned": round(learned, 4)},
        "margin_db": heldout.KEEP_MARGIN_DB, "train_s": round(train_samples / sample_rate, 3),
        "heldout_s": round(sum(b - a for a, b in held_parts) / sample_rate, 3),
        "pair_s": round(n / sample_rate, 3), "epochs": s["epochs_run"], "best_epoch": s["best_epoch"],
        "early_stopping_lsd_db": s["validation_lsd_db"], "time_s": round(time.perf_counter() - t0, 2), "seed": seed,
        "lsd_note": "frame LSD of the held-out part, levels matched, pauses left out (micmatch.learn.heldout)"}
    if callable(progress):
        progress()
    return fit


def _heldout_figures(fit: EventFit, d: np.ndarray, r: np.ndarray, parts, sample_rate: int) -> tuple[float, float]:
    """Held-out LSD of the static result and of the learned one, over the held-out pieces (each applied with
    ``fit.context`` samples of the surrounding audio, as on the whole signal), weighted by length."""
    fit.kept = True  # apply the network while measuring
    static, learned, weights = [], [], []
    for a, b in parts:
        lo = max(0, a - fit.context - (a - fit.context) % fit.hop) if a > fit.context else 0
        hi = min(d.shape[0], b + fit.context)
        y = fit.apply(d[lo:hi])[a - lo : b - lo]
        static.append(heldout.heldout_lsd_db(r[a:b], d[a:b], sample_rate))
        learned.append(heldout.heldout_lsd_db(r[a:b], y, sample_rate))
        weights.append(b - a)
    fit.kept = False
    w = np.asarray(weights, dtype=np.float64)
    return float(np.dot(static, w) / w.sum()), float(np.dot(learned, w) / w.sum())


def fit_event_devices(pairs: dict[str, tuple[np.ndarray, np.ndarray]], sample_rate: int,
                      progress: bool | Callable[[], object] | None = None) -> dict[str, EventFit]:
    """One :func:`fit_residual` per device.

    Parameters
    ----------
    pairs : dict
        ``{name: (device, reference)}``: each device's overlap with the reference, already statically corrected,
        and the reference over the same moments (1-D, equal length, ``sample_rate``).
    progress : bool or callable, optional
        True: a bar of epochs per device; a callable is called once per device fitted.

    Returns
    -------
    dict
        ``{name: EventFit}``, in the order of ``pairs``; a device whose audio is unusable (not finite, lengths
        that differ) gets ``kept=False`` with the reason, and the others go on.
    """
    fits = {}
    for name, (dev, ref) in pairs.items():
        try:
            fits[name] = fit_residual(dev, ref, sample_rate, progress=progress)
        except (AudioError, ConfigMismatchError) as exc:  # one bad device does not stop the others
            fits[name] = EventFit(False, 0, {}, f"{name}: no learned correction: {exc}")
    return fits


__all__ = ["EventFit", "HELDOUT_FRACTION", "MIN_HELDOUT_S", "MIN_TRAIN_S", "fit_event_devices", "fit_residual",
           "residual_fit"]

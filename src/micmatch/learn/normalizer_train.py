"""Training of the learned device normalizers (RatioNet, EQNet) on aligned (reference, device) pairs.

* :func:`fit_ratio_net`: Adam on the frame log-spectral distance (LSD) to the reference plus, by default, a
  long-term-spectrum term, which keeps frame-wise cuts from shifting the average spectrum (the LSD alone favours
  the geometric mean of the frames, which in reverberant tails lies below the mean power).
* :func:`fit_eq_net`: two steps, the front and back ends as an autoencoder, then the whole network on the pairs,
  with the mean absolute error on the waveform plus an optional multi-resolution STFT loss.

Both hold the last part of every pair out for early stopping (:func:`micmatch.learn.engine.fit_supervised`) and
return a :class:`~micmatch.learn.normalizer.Normalizer`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence

import numpy as np
import scipy.fft
import torch

from micmatch.errors import ConfigMismatchError, MeasurementError, ParameterError
from micmatch.learn.engine import fit_supervised, progress_bar, select_device
from micmatch.learn.eq_net import EQNet
from micmatch.learn.normalizer import Normalizer
from micmatch.learn.ratio_net import RatioNet, _log_power_db, _with_context, default_n_fft
from micmatch.pairs import MIN_PAIR_S, VALIDATION_FRACTION, AlignedPair, check_pairs, split_pair
from micmatch.spectral import frame_view, hann

#: The loss compares log powers floored this far below the reference's loudest bin (as metrics.lsd does).
LSD_RANGE_DB = 120.0


def _frame_spectra(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Complex spectra ``(n_frames, n_bins)`` of Hann frames at offsets 0, hop, ... (no padding)."""
    x = np.ascontiguousarray(audio, dtype=np.float32)
    return scipy.fft.rfft(frame_view(x, n_fft, hop) * hann(n_fft).astype(np.float32), axis=-1)


def _pair_frames(pair: AlignedPair, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Log powers (dB) ``(n_frames, n_bins)`` of the reference and the device, frames as :meth:`apply` sees them
    (zero padding of ``n_fft - hop`` at both ends, so every sample is covered by full-weight frames)."""
    pad = n_fft - hop
    out = []
    for x in (pair.reference, pair.device):
        xp = np.concatenate([np.zeros(pad, np.float32), np.asarray(x, np.float32), np.zeros(pad, np.float32)])
        out.append(_log_power_db(_frame_spectra(xp, n_fft, hop)).astype(np.float32))
    return out[0], out[1]


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


def _check_init(init: Normalizer, method: str, sample_rate: int) -> None:
    """A model to fine-tune must be of the method being trained and at the pairs' sample rate."""
    if init.method != method:
        article = "an" if method[0] in "aeiou" else "a"
        raise ConfigMismatchError(f"init model is a {init.method}; fine-tuning {article} {method} needs "
                                  f"{article} {method}")
    if init.sample_rate != sample_rate:
        raise ConfigMismatchError(f"init model is at {init.sample_rate} Hz but the pairs at {sample_rate} Hz")


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
        Aligned recordings (:func:`~micmatch.pairs.align_pair`, or simulated), one sample rate.
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
        _check_init(init, "ratio-net", sample_rate)
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

    best, best_epoch, history = fit_supervised(
        model, batch_loss, validate, n=x_tr_t.shape[0], batch_size=batch_size, epochs=epochs, patience=patience,
        learning_rate=learning_rate, generator=gen, device=dev, best=initial, progress=progress,
        desc="ratio-net", min_batch=2)
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
        _check_init(init, "eq-net", sample_rate)
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
        with progress_bar(epochs_autoencoder, enabled=progress, desc="eq-net autoencoder") as bar:
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

    best, best_epoch, history = fit_supervised(
        model, batch_loss, validate, n=n, batch_size=batch_size, epochs=epochs, patience=patience,
        learning_rate=learning_rate, generator=gen, device=dev, best=math.inf, progress=progress,
        desc="eq-net")
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


__all__ = ["LSD_RANGE_DB", "fit_eq_net", "fit_ratio_net"]

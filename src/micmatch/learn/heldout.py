"""Held-out comparison of a learned correction with the static one: one split, one measure, one verdict.

A learned normalizer earns its place only where it beats the static correction on audio it was not trained on.
Both users of this rule measure the same way:

* :func:`split_point` cuts a pair into a training part (its start) and a held-out part (its end, contiguous, so no
  held-out frame overlaps a training frame);
* :func:`heldout_lsd_db` is the frame log-spectral distance of :func:`micmatch.metrics.log_spectral_distance`
  with the levels matched (the level is the loudness step's job), the band 100 Hz to 16 kHz (at most 0.45 of the
  rate) and the pauses left out (frames more than 40 dB below the reference's loudest), as
  :func:`micmatch.longterm.frame_lsd_db` measures ``match``;
* :func:`static_correction` is the aligned spectrum correction fitted on the training part only;
* :func:`verdict` keeps the learned correction only when it is at least :data:`KEEP_MARGIN_DB` better.

Users: :mod:`micmatch.learn.event_residual` (``event --learned``) and ``micmatch train``. Numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from micmatch.errors import ParameterError
from micmatch.longterm import DISTANCE_BAND_HZ
from micmatch.metrics import log_spectral_distance

#: The learned correction must beat the static one by at least this much (dB of held-out frame LSD) to be kept.
KEEP_MARGIN_DB = 0.1
#: Frames more than this far below the reference's loudest frame are left out of the measure (pauses).
ACTIVE_DB = 40.0


def measure_n_fft(sample_rate: int) -> int:
    """Frame of the held-out measure: about 46 ms rounded to a power of two (2048 at 44.1 kHz, 1024 at 16 kHz)."""
    return 1 << max(7, round(math.log2(0.046 * sample_rate)))


def split_point(n_samples: int, sample_rate: int, *, fraction: float, min_heldout_s: float = 0.0,
                min_train_s: float = 0.0) -> int | None:
    """Index where the held-out part (the last ``fraction`` of the pair, at least ``min_heldout_s``) begins, or
    None when the pair cannot hold both a held-out part of ``min_heldout_s`` and a training part of
    ``min_train_s``."""
    if not 0.0 < fraction < 1.0:
        raise ParameterError(f"fraction={fraction} must lie strictly between 0 and 1")
    held = max(int(round(n_samples * fraction)), int(math.ceil(min_heldout_s * sample_rate)))
    cut = n_samples - held
    if held > n_samples or cut < min_train_s * sample_rate or cut <= 0:
        return None
    return cut


def heldout_lsd_db(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Frame LSD (dB) of ``estimate`` to ``reference`` (1-D, aligned, equal length), levels matched, in the band
    100 Hz to min(16 kHz, 0.45 rate), pauses left out (module docstring)."""
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    scale = math.sqrt(float(np.mean(ref * ref)) / max(float(np.mean(est * est)), 1e-30))
    n_fft = measure_n_fft(sample_rate)
    top = min(DISTANCE_BAND_HZ[1], 0.45 * sample_rate)
    return log_spectral_distance(ref, est * scale, sample_rate, n_fft=n_fft, hop_length=n_fft // 4,
                                 band_hz=(DISTANCE_BAND_HZ[0], top), active_db=ACTIVE_DB)


def static_correction(train_reference: np.ndarray, train_device: np.ndarray, sample_rate: int):
    """The aligned spectrum correction (device -> reference) fitted on an aligned training part, with the
    regularisation of ``micmatch correct`` (clamps, no smoothing); a :class:`~micmatch.correct.Correction`."""
    from micmatch.align import Alignment
    from micmatch.aligned import estimate_pair
    from micmatch.correct import correction_curve
    from micmatch.matching import analysis_n_fft

    n_fft = analysis_n_fft(sample_rate, int(train_reference.shape[-1]))
    res = estimate_pair(train_reference, train_device, sample_rate, n_fft=n_fft, hop_length=n_fft // 4,
                        alignment=Alignment(0.0, 0.0, sample_rate)).responses
    return correction_curve(res, "device", "reference")


def verdict(static_db: float, learned_db: float, *, margin_db: float = KEEP_MARGIN_DB) -> tuple[bool, str]:
    """``(keep, reason)``: keep the learned correction only when its held-out LSD is at least ``margin_db``
    below the static correction's."""
    if not (math.isfinite(static_db) and math.isfinite(learned_db)):
        return False, f"held-out LSD not finite (static {static_db}, learned {learned_db}): learned left out"
    gain = static_db - learned_db
    figures = f"held-out LSD static {static_db:.2f} dB, learned {learned_db:.2f} dB"
    if gain >= margin_db:
        return True, f"{figures}: learned kept ({gain:.2f} dB better)"
    return False, f"{figures}: learned left out (not at least {margin_db:g} dB better)"


def compare_on_pairs(pairs, learned: Callable[[np.ndarray], np.ndarray], *,
                     validation_fraction: float) -> dict | None:
    """Held-out LSD of no correction, the static correction and a learned model, over the held-out ends of
    training pairs (:func:`micmatch.pairs.split_pair`'s split, the part a normalizer's training held out).

    The static correction of each pair is fitted on its training part only; ``learned`` maps a whole device
    recording to its corrected version (so the held-out part has the audio before it as context). Figures are
    weighted by held-out length; pairs whose held-out part is shorter than four measure frames, or whose
    training part gives no static correction, are left out (``pairs_left_out``).

    Returns
    -------
    dict or None
        ``uncorrected_db``, ``static_db``, ``learned_db``, ``heldout_s``, ``pairs``, ``pairs_left_out``,
        ``validation_fraction``; None when no pair could be measured.
    """
    from micmatch.correct import apply_correction
    from micmatch.errors import MeasurementError
    from micmatch.pairs import split_pair

    rows, left_out = [], 0
    for p in pairs:
        train, held = split_pair(p, validation_fraction=validation_fraction)
        sr = p.sample_rate
        if held.reference.shape[-1] < 4 * measure_n_fft(sr):
            left_out += 1
            continue
        try:
            correction = static_correction(train.reference, train.device, sr)
        except MeasurementError:
            left_out += 1
            continue
        cut = train.reference.shape[-1]
        static = apply_correction(held.device.astype(np.float32), sr, correction)
        out = np.asarray(learned(p.device))[cut:]
        rows.append((held.reference.shape[-1] / sr, heldout_lsd_db(held.reference, held.device, sr),
                     heldout_lsd_db(held.reference, static, sr), heldout_lsd_db(held.reference, out, sr)))
    if not rows:
        return None
    a = np.asarray(rows)
    w = a[:, 0] / a[:, 0].sum()
    return {"uncorrected_db": round(float(a[:, 1] @ w), 4), "static_db": round(float(a[:, 2] @ w), 4),
            "learned_db": round(float(a[:, 3] @ w), 4), "heldout_s": round(float(a[:, 0].sum()), 3),
            "pairs": len(rows), "pairs_left_out": left_out, "validation_fraction": validation_fraction,
            "note": "frame LSD of each pair's held-out end, levels matched, pauses left out; static: aligned "
                    "spectrum correction fitted on the training part"}


def comparison_lines(figures: dict | None) -> tuple[str, str | None]:
    """``(report, warning)``: one line with the three held-out figures, and one warning line when the learned
    model is worse than the static correction (None otherwise)."""
    if figures is None:
        return "held-out comparison: no pair has a held-out part long enough to measure", None
    pct = round(100 * figures["validation_fraction"])
    line = (f"held-out LSD (last {pct}% of each pair, {figures['heldout_s']:.1f} s): no correction "
            f"{figures['uncorrected_db']:.2f} dB, static {figures['static_db']:.2f} dB, learned "
            f"{figures['learned_db']:.2f} dB")
    worse = figures["learned_db"] - figures["static_db"]
    if worse <= 0:
        return line, None
    return line, (f"the learned model is {worse:.2f} dB worse than the static correction on the held-out part "
                  f"({figures['learned_db']:.2f} vs {figures['static_db']:.2f} dB); an aligned spectrum correction "
                  f"(micmatch pair, then correct) may serve this device better")


__all__ = ["ACTIVE_DB", "KEEP_MARGIN_DB", "compare_on_pairs", "comparison_lines", "heldout_lsd_db", "measure_n_fft",
           "split_point", "static_correction", "verdict"]

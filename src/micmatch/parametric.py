"""Parametric EQ fitted to a correction: peaking and shelving biquads for EqualizerAPO, CamillaDSP and the like.

:func:`fit_parametric` approximates a :class:`~micmatch.correct.Correction` over a band by a flat gain plus at most
``n_filters`` second-order sections of the audio-EQ-cookbook kind (RBJ): a low shelf, a high shelf and peaking
filters. Greedy then joint: each step adds a filter where the smoothed residual is largest (a shelf when that is
at the band's lowest or highest third of an octave), then every parameter is refined together by bounded least
squares on a log-frequency grid (1/24 octave). benchmarks/bench_parametric.py reports the fit error on pairs of
measured microphone responses.

Exports: :func:`equalizerapo_text` (``Preamp:`` and ``Filter N: ON PK|LSC|HSC Fc .. Hz Gain .. dB Q ..`` lines)
and :func:`camilladsp_yaml` (``Biquad`` filters of type ``Peaking``/``Lowshelf``/``Highshelf`` with ``freq``,
``gain``, ``q``, a ``Gain`` filter for the preamp, and a pipeline applying them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from micmatch.errors import ParameterError

KINDS = ("peak", "lowshelf", "highshelf")
#: Shelf Q: 1/sqrt(2) is the cookbook's shelf slope S = 1 (no overshoot), EqualizerAPO's default.
SHELF_Q = 1.0 / math.sqrt(2.0)
Q_RANGE = (0.2, 10.0)
GAIN_RANGE_DB = 24.0
GRID_PER_OCTAVE = 24


@dataclass(frozen=True)
class Biquad:
    """One parametric filter: ``kind`` in :data:`KINDS`, centre/corner ``freq_hz``, ``gain_db`` and ``q``."""

    kind: str
    freq_hz: float
    gain_db: float
    q: float

    def coefficients(self, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """``(b, a)`` normalised so ``a[0] == 1`` (RBJ audio-EQ cookbook)."""
        return _rbj(self.kind, self.freq_hz, self.gain_db, self.q, sample_rate)

    def response_db(self, freqs_hz: np.ndarray, sample_rate: int) -> np.ndarray:
        b, a = self.coefficients(sample_rate)
        return _biquad_db(b, a, np.asarray(freqs_hz, dtype=np.float64), sample_rate)


@dataclass(frozen=True)
class ParametricEQ:
    """A flat gain plus biquads, fitted to a correction.

    Attributes
    ----------
    filters : tuple of Biquad
    gain_db : float
        Flat gain of the fit (the correction's level part).
    sample_rate : int
    band_hz : (float, float)
        Band the fit was made over.
    rms_error_db : float
        RMS over the fit grid (log-spaced in the band) of fit minus correction.
    """

    filters: tuple[Biquad, ...]
    gain_db: float
    sample_rate: int
    band_hz: tuple[float, float]
    rms_error_db: float

    def response_db(self, freqs_hz: np.ndarray) -> np.ndarray:
        """Gain of the whole EQ (flat gain included) at ``freqs_hz`` (dB)."""
        f = np.asarray(freqs_hz, dtype=np.float64)
        total = np.full(f.shape, self.gain_db)
        for flt in self.filters:
            total += flt.response_db(f, self.sample_rate)
        return total

    @property
    def preamp_db(self) -> float:
        """Flat gain that keeps the EQ's largest gain (20 Hz to Nyquist) at or below 0 dB."""
        f = np.geomspace(20.0, self.sample_rate / 2 * 0.999, 512)
        return self.gain_db - max(0.0, float(self.response_db(f).max()))


def _rbj(kind: str, f0: float, gain_db: float, q: float, fs: float) -> tuple[np.ndarray, np.ndarray]:
    a_ = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f0 / fs
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2.0 * q)
    if kind == "peak":
        b = [1 + alpha * a_, -2 * cw, 1 - alpha * a_]
        a = [1 + alpha / a_, -2 * cw, 1 - alpha / a_]
    elif kind in ("lowshelf", "highshelf"):
        s = 2.0 * math.sqrt(a_) * alpha
        sign = 1.0 if kind == "lowshelf" else -1.0
        b = [a_ * ((a_ + 1) - sign * (a_ - 1) * cw + s), sign * 2 * a_ * ((a_ - 1) - sign * (a_ + 1) * cw),
             a_ * ((a_ + 1) - sign * (a_ - 1) * cw - s)]
        a = [(a_ + 1) + sign * (a_ - 1) * cw + s, -sign * 2 * ((a_ - 1) + sign * (a_ + 1) * cw),
             (a_ + 1) + sign * (a_ - 1) * cw - s]
    else:
        raise ParameterError(f"filter kind {kind!r} must be one of {KINDS}")
    b_, a_arr = np.asarray(b) / a[0], np.asarray(a) / a[0]
    return b_, a_arr


def _biquad_db(b: np.ndarray, a: np.ndarray, f: np.ndarray, fs: float) -> np.ndarray:
    z = np.exp(-2j * np.pi * f / fs)
    num = b[0] + b[1] * z + b[2] * z * z
    den = a[0] + a[1] * z + a[2] * z * z
    return 20.0 * np.log10(np.maximum(np.abs(num), 1e-12) / np.maximum(np.abs(den), 1e-12))


def _model(params: np.ndarray, kinds: list[str], f: np.ndarray, fs: float) -> np.ndarray:
    """Flat gain plus every biquad's gain (dB) at ``f``, all filters at once (the fit calls this thousands of
    times: vectorised over filters, the same cookbook formulas as :func:`_rbj`)."""
    if not kinds:
        return np.full(f.shape, params[0])
    p = params[1:].reshape(-1, 3)
    a_ = 10.0 ** (p[:, 1] / 40.0)
    w0 = 2.0 * np.pi * np.exp(p[:, 0]) / fs
    cw, sw = np.cos(w0), np.sin(w0)
    alpha = sw / (2.0 * np.exp(p[:, 2]))
    code = np.array([KINDS.index(k) for k in kinds])
    sign = np.where(code == 1, 1.0, -1.0)
    s = 2.0 * np.sqrt(a_) * alpha
    shelf_b = np.stack([a_ * ((a_ + 1) - sign * (a_ - 1) * cw + s), sign * 2 * a_ * ((a_ - 1) - sign * (a_ + 1) * cw),
                        a_ * ((a_ + 1) - sign * (a_ - 1) * cw - s)])
    shelf_a = np.stack([(a_ + 1) + sign * (a_ - 1) * cw + s, -sign * 2 * ((a_ - 1) + sign * (a_ + 1) * cw),
                        (a_ + 1) + sign * (a_ - 1) * cw - s])
    peak_b = np.stack([1 + alpha * a_, -2 * cw, 1 - alpha * a_])
    peak_a = np.stack([1 + alpha / a_, -2 * cw, 1 - alpha / a_])
    is_peak = code == 0
    b = np.where(is_peak, peak_b, shelf_b)  # (3, n_filters)
    a = np.where(is_peak, peak_a, shelf_a)
    # |b0 + b1 z + b2 z^2|^2 at z = exp(-jw), in real arithmetic (no complex exponentials per call).
    w = (2.0 * np.pi / fs) * f[:, None]
    c1, c2, s1, s2 = np.cos(w), np.cos(2 * w), np.sin(w), np.sin(2 * w)
    num = (b[0] + b[1] * c1 + b[2] * c2) ** 2 + (b[1] * s1 + b[2] * s2) ** 2
    den = (a[0] + a[1] * c1 + a[2] * c2) ** 2 + (a[1] * s1 + a[2] * s2) ** 2
    ratio = np.prod(np.maximum(num, 1e-24) / np.maximum(den, 1e-300), axis=1)
    return params[0] + 10.0 * np.log10(ratio)


def fit_parametric(correction, *, n_filters: int = 10, band_hz: tuple[float, float] | None = None,
                   tolerance_db: float = 0.2) -> ParametricEQ:
    """Fit a flat gain plus at most ``n_filters`` biquads to ``correction`` over ``band_hz``.

    Parameters
    ----------
    correction : Correction
    n_filters : int
        Largest number of filters (1-30); fewer are used when the fit is within ``tolerance_db`` RMS.
    band_hz : (float, float), optional
        Default: the band the correction acts in (``settings["band_hz"]``), else 20 Hz to 0.9 x Nyquist.

    Returns
    -------
    ParametricEQ
    """
    if not 1 <= n_filters <= 30:
        raise ParameterError(f"n_filters={n_filters} must be between 1 and 30")
    fs = correction.sample_rate
    nyq = fs / 2.0
    if band_hz is None:
        band_hz = tuple(correction.settings.get("band_hz") or (20.0, 0.9 * nyq))
    lo, hi = max(float(band_hz[0]), 10.0), min(float(band_hz[1]), 0.95 * nyq)
    if not lo < hi:
        raise ParameterError(f"band {band_hz} Hz is empty at {fs} Hz")
    n = max(16, int(math.log2(hi / lo) * GRID_PER_OCTAVE))
    f = np.geomspace(lo, hi, n)
    target = correction.interpolate_db(f)
    lf_lo, lf_hi = math.log(max(lo / 2, 5.0)), math.log(min(hi * 1.5, 0.98 * nyq))
    kinds: list[str] = []
    params = np.array([float(np.median(target))])
    lower = [-60.0]
    upper = [60.0]
    for _ in range(n_filters):
        resid = target - _model(params, kinds, f, fs)
        if np.sqrt(np.mean(resid**2)) <= tolerance_db:
            break
        # Where to add: largest residual after 1/6-octave smoothing (a single-bin spike is not worth a filter).
        width = max(1, GRID_PER_OCTAVE // 6)
        sm = np.convolve(resid, np.ones(width) / width, mode="same")
        k = int(np.argmax(np.abs(sm)))
        edge = GRID_PER_OCTAVE // 3
        if k < edge and "lowshelf" not in kinds:
            kind, f0, q = "lowshelf", f[min(edge, n - 1)], SHELF_Q
        elif k >= n - edge and "highshelf" not in kinds:
            kind, f0, q = "highshelf", f[max(n - 1 - edge, 0)], SHELF_Q
        else:
            kind, f0, q = "peak", f[k], 1.4
        g0 = float(np.clip(sm[k], -GAIN_RANGE_DB + 0.5, GAIN_RANGE_DB - 0.5))
        kinds.append(kind)
        params = np.r_[params, math.log(f0), g0, math.log(q)]
        qlo, qhi = (0.4, 1.5) if kind != "peak" else Q_RANGE
        lower += [lf_lo, -GAIN_RANGE_DB, math.log(qlo)]
        upper += [lf_hi, GAIN_RANGE_DB, math.log(qhi)]
        # The new filter (and the flat gain) against the others held fixed: 4 parameters, cheap.
        fixed = _model(np.r_[0.0, params[1:-3]], kinds[:-1], f, fs)
        sub = np.r_[params[0], params[-3:]]
        sub_lo, sub_hi = [lower[0]] + lower[-3:], [upper[0]] + upper[-3:]
        sub = _refine(sub, kinds[-1:], f, fs, target - fixed, sub_lo, sub_hi, max_nfev=40)
        params = np.r_[sub[0], params[1:-3], sub[1:]]
        if len(kinds) % 4 == 0 or len(kinds) == n_filters:  # every few filters, all parameters together
            params = _refine(params, kinds, f, fs, target, lower, upper, max_nfev=40)
    filters = tuple(Biquad(kd, float(math.exp(params[1 + 3 * i])), float(params[2 + 3 * i]),
                           float(math.exp(params[3 + 3 * i]))) for i, kd in enumerate(kinds))
    err = _model(params, kinds, f, fs) - target
    return ParametricEQ(filters, float(params[0]), fs, (lo, hi), float(np.sqrt(np.mean(err**2))))


def _refine(params, kinds, f, fs, target, lower, upper, *, max_nfev: int) -> np.ndarray:
    lo, hi = np.array(lower), np.array(upper)
    x0 = np.clip(params, lo + 1e-9, hi - 1e-9)
    sol = scipy.optimize.least_squares(lambda p: _model(p, kinds, f, fs) - target, x0, bounds=(lo, hi),
                                       method="trf", max_nfev=max_nfev, x_scale="jac")
    return sol.x


_APO = {"peak": "PK", "lowshelf": "LSC", "highshelf": "HSC"}
_CAMILLA = {"peak": "Peaking", "lowshelf": "Lowshelf", "highshelf": "Highshelf"}


def equalizerapo_text(eq: ParametricEQ, *, title: str = "") -> str:
    """EqualizerAPO configuration: a ``Preamp:`` line and one ``Filter N: ON ...`` line per biquad."""
    lines = [f"# {title}" if title else "# micmatch parametric correction",
             (f"# fitted over {eq.band_hz[0]:.0f}-{eq.band_hz[1]:.0f} Hz at {eq.sample_rate} Hz, "
              f"RMS error {eq.rms_error_db:.2f} dB"),
             f"Preamp: {eq.preamp_db:.1f} dB"]
    for i, flt in enumerate(eq.filters, start=1):
        lines.append(f"Filter {i}: ON {_APO[flt.kind]} Fc {flt.freq_hz:.0f} Hz Gain {flt.gain_db:.1f} dB "
                     f"Q {flt.q:.2f}")
    return "\n".join(lines) + "\n"


def camilladsp_yaml(eq: ParametricEQ, *, channels: int = 2, title: str = "") -> str:
    """A CamillaDSP configuration fragment: ``filters`` (a ``Gain`` preamp and ``Biquad`` filters) and a
    ``pipeline`` step applying them to ``channels`` channels (the ``channels`` list of CamillaDSP 3; version 2
    takes one step per channel with ``channel: N``)."""
    names = ["micmatch_preamp"] + [f"micmatch_peq{i}" for i in range(1, len(eq.filters) + 1)]
    lines = [f"# {title}" if title else "# micmatch parametric correction",
             (f"# fitted over {eq.band_hz[0]:.0f}-{eq.band_hz[1]:.0f} Hz, RMS error {eq.rms_error_db:.2f} dB; "
              f"designed for samplerate {eq.sample_rate}"),
             "filters:", f"  {names[0]}:", "    type: Gain", "    parameters:", f"      gain: {eq.preamp_db:.2f}"]
    for name, flt in zip(names[1:], eq.filters):
        lines += [f"  {name}:", "    type: Biquad", "    parameters:", f"      type: {_CAMILLA[flt.kind]}",
                  f"      freq: {flt.freq_hz:.1f}", f"      gain: {flt.gain_db:.2f}", f"      q: {flt.q:.3f}"]
    lines += ["pipeline:", "  - type: Filter", f"    channels: [{', '.join(str(c) for c in range(channels))}]",
              "    names:"] + [f"      - {n}" for n in names]
    return "\n".join(lines) + "\n"


__all__ = ["Biquad", "ParametricEQ", "camilladsp_yaml", "equalizerapo_text", "fit_parametric"]

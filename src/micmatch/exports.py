"""Exporting a correction for other tools: CSV curve, impulse-response WAV, EqualizerAPO and parametric presets.

Every export is written atomically (:func:`micmatch.outputs.atomic_path`).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from micmatch import audio as audio_io
from micmatch.correct import Correction, resample_correction
from micmatch.errors import ParameterError
from micmatch.fir import DEFAULT_N_TAPS, design_fir
from micmatch.outputs import atomic_path

EXPORT_FORMATS = ("csv", "wav", "equalizerapo", "parametric")


def export_csv(correction: Correction, path: str | os.PathLike) -> Path:
    """CSV with columns ``frequency_hz,gain_db`` on the profile's bin grid (written atomically)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["frequency_hz", "gain_db"])
    for f, g in zip(correction.frequencies, correction.gain_db):
        w.writerow([f"{f:.3f}", f"{g:.4f}"])
    return _write_text(path, buf.getvalue())


def export_ir_wav(correction: Correction, path: str | os.PathLike, *, n_taps: int = DEFAULT_N_TAPS,
                  design: str = "firls", phase: str = "linear", sample_rate: int | None = None) -> Path:
    """The correction as an impulse response (32-bit float WAV) for convolution plug-ins.

    A linear-phase IR has its peak at sample ``(n_taps - 1) / 2``: convolution plug-ins that do not compensate
    latency delay the signal by that much; use ``phase="minimum"`` for no bulk delay. ``sample_rate`` redesigns
    the filter for another rate (:func:`resample_correction`, same ``n_taps``).
    """
    if sample_rate is not None:
        correction = resample_correction(correction, sample_rate)
    taps = design_fir(correction, n_taps=n_taps, design=design, phase=phase)
    return audio_io.save(path, taps.astype(np.float32), correction.sample_rate, subtype="FLOAT")


def graphic_eq_points(correction: Correction, *, per_octave: int = 12, f_min: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Log-spaced frequencies (``per_octave`` per octave from ``f_min`` to Nyquist) and the gain there (dB)."""
    nyq = correction.sample_rate / 2.0
    n = int(np.floor(np.log2(nyq / f_min) * per_octave)) + 1
    f = f_min * 2.0 ** (np.arange(n) / per_octave)
    f = f[f < nyq]
    return f, correction.interpolate_db(f)


def export_equalizerapo(correction: Correction, path: str | os.PathLike, *, per_octave: int = 12) -> Path:
    """An EqualizerAPO ``GraphicEQ:`` line (frequency and gain pairs separated by ``;``), plus a preamp line.

    The preamp is minus the largest boost, so the equalizer itself cannot clip.
    """
    f, g = graphic_eq_points(correction, per_octave=per_octave)
    preamp = -max(0.0, float(g.max()))
    pairs = "; ".join(f"{fi:.0f} {gi:.1f}" for fi, gi in zip(f, g))
    text = (f"# micmatch correction {correction.device} -> {correction.reference} at {correction.sample_rate} Hz\n"
            f"Preamp: {preamp:.1f} dB\nGraphicEQ: {pairs}\n")
    return _write_text(path, text)


def export_parametric(correction: Correction, path: str | os.PathLike, *, n_filters: int = 10,
                      band_hz: tuple[float, float] | None = None) -> Path:
    """Peaking and shelving biquads fitted to the correction (:func:`micmatch.parametric.fit_parametric`):
    a CamillaDSP YAML when ``path`` ends in ``.yml``/``.yaml``, else EqualizerAPO ``Preamp:``/``Filter`` lines."""
    from micmatch.parametric import camilladsp_yaml, equalizerapo_text, fit_parametric

    eq = fit_parametric(correction, n_filters=n_filters, band_hz=band_hz)
    title = f"micmatch correction {correction.device} -> {correction.reference} at {correction.sample_rate} Hz"
    path = Path(path)
    text = camilladsp_yaml(eq, title=title) if path.suffix.lower() in (".yml", ".yaml") else \
        equalizerapo_text(eq, title=title)
    return _write_text(path, text)


def export(correction: Correction, path: str | os.PathLike, fmt: str, **options) -> Path:
    """Export in one of :data:`EXPORT_FORMATS`."""
    if fmt == "parametric":
        return export_parametric(correction, path, **options)
    if fmt == "csv":
        return export_csv(correction, path)
    if fmt == "wav":
        return export_ir_wav(correction, path, **options)
    if fmt == "equalizerapo":
        return export_equalizerapo(correction, path)
    raise ParameterError(f"format={fmt!r} must be one of {EXPORT_FORMATS}")


def _write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path

"""Plots: response curves, correction curves, before/after spectrograms, benchmark charts (matplotlib, Agg).

Each function draws into a new figure, saves it atomically to ``path`` (format from the extension: PNG, SVG,
PDF) and returns the path. Modules that add plots append them here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure atomically and close it."""
    from micmatch.outputs import atomic_path

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _log_freq_axis(ax, freqs: np.ndarray) -> np.ndarray:
    """Set a log frequency axis and return a mask that drops 0 Hz."""
    ax.set_xscale("log")
    ax.set_xlabel("frequency (Hz)")
    ax.grid(True, which="both", alpha=0.3)
    pos = freqs > 0
    ax.set_xlim(max(freqs[pos].min(), 20.0), freqs.max())
    return pos


def plot_responses(responses, path: str | os.PathLike, *, reference: str | None = None,
                   smoothing_octaves: float | None = None, title: str | None = None) -> Path:
    """Response curves of every device in a :class:`~micmatch.response.ResponseSet` (dB, log frequency).

    With ``reference``, a second panel shows each device's correction towards it (as
    :func:`micmatch.correct.correction_curve` computes it with default regularisation).
    """
    from micmatch.correct import correction_curve
    from micmatch.spectral import smooth_fractional_octave

    plt = _pyplot()
    freqs = responses.frequencies
    n_panels = 2 if reference else 1
    fig, axes = plt.subplots(n_panels, 1, figsize=(9, 4.2 * n_panels), squeeze=False)
    ax = axes[0, 0]
    pos = _log_freq_axis(ax, freqs)
    for name, dev in responses.items():
        curve = smooth_fractional_octave(dev.response_db, freqs, smoothing_octaves) if smoothing_octaves else dev.response_db
        ax.plot(freqs[pos], curve[pos], lw=1.2, label=f"{name} ({dev.method})")
    ax.set_ylabel("mean log power (dB)")
    ax.set_title(title or f"device responses ({responses.config.sample_rate} Hz, n_fft={responses.config.n_fft})")
    ax.legend(fontsize=8, ncol=2)
    if reference:
        ax2 = axes[1, 0]
        _log_freq_axis(ax2, freqs)
        for name in responses:
            if name == reference:
                continue
            corr = correction_curve(responses, name, reference, smoothing_octaves=smoothing_octaves)
            ax2.plot(freqs[pos], corr.gain_db[pos], lw=1.2, label=f"{name} -> {reference}")
        ax2.axhline(0.0, color="k", lw=0.6)
        ax2.set_ylabel("correction gain (dB)")
        ax2.set_title(f"corrections towards {reference}")
        ax2.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_correction(correction, path: str | os.PathLike, *, fir_taps: np.ndarray | None = None) -> Path:
    """One correction curve (dB), and the response of its FIR when taps are given."""
    plt = _pyplot()
    freqs = correction.frequencies
    fig, ax = plt.subplots(figsize=(9, 4))
    pos = _log_freq_axis(ax, freqs)
    ax.plot(freqs[pos], correction.gain_db[pos], lw=1.5, label="correction")
    if fir_taps is not None:
        from micmatch.fir import fir_response_db

        ax.plot(freqs[pos], fir_response_db(fir_taps, freqs[pos], correction.sample_rate), lw=1, ls="--",
                label=f"FIR, {fir_taps.size} taps")
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_ylabel("gain (dB)")
    ax.set_title(f"correction {correction.device} -> {correction.reference}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_spectrograms(before: np.ndarray, after: np.ndarray, reference: np.ndarray, sample_rate: int,
                      path: str | os.PathLike, *, n_fft: int = 1024, titles=("device", "corrected", "reference")) -> Path:
    """Three log spectrograms side by side: a device recording, its corrected version, the reference recording."""
    from micmatch.spectral import log_power_frames

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    specs = [log_power_frames(x, n_fft=n_fft, hop_length=n_fft // 4) for x in (before, after, reference)]
    vmax = max(s.max() for s in specs)
    for ax, spec, title in zip(axes, specs, titles):
        extent = (0, spec.shape[1] * n_fft / 4 / sample_rate, 0, sample_rate / 2)
        im = ax.imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=vmax - 90, vmax=vmax, cmap="magma")
        ax.set_title(title)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (Hz)")
    fig.colorbar(im, ax=axes, label="dB", shrink=0.9)
    return save_figure(fig, path)


def plot_mismatch_bars(summary: dict, path: str | os.PathLike, *, title: str = "Device-mismatch benchmark") -> Path:
    """Grouped bars of accuracy (%) per recipe: reference, seen and unseen devices, with std-over-seeds whiskers.

    ``summary`` is :func:`micmatch.bench.mismatch.summarize`'s dict (recipe -> scores); groups a recipe lacks
    (e.g. no seen devices) are left out.
    """
    plt = _pyplot()
    names = list(summary)
    groups = [("reference_accuracy", "reference"), ("seen_accuracy", "seen"), ("unseen_accuracy", "unseen")]
    groups = [(k, label) for k, label in groups if all(k in summary[n] for n in names)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(names) + 2.0), 4.0))
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(names))
    for j, (key, label) in enumerate(groups):
        mean = [summary[n][key]["mean"] * 100.0 for n in names]
        std = [summary[n][key]["std"] * 100.0 for n in names]
        ax.bar(x + (j - (len(groups) - 1) / 2) * width, mean, width, yerr=std, capsize=2, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=35, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------------------------
# Direct measurements (micmatch.measure, micmatch.align)


def plot_measured_response(responses, path: str | os.PathLike, *, devices=None, title: str | None = None) -> Path:
    """Measured responses (dB) of the devices of a ResponseSet on a log frequency axis.

    ``devices`` selects and orders the devices (default: all). Aligned estimates are drawn with their spread
    over frames (mean +- one standard deviation) when they carry statistics.
    """
    plt = _pyplot()
    freqs = responses.frequencies
    fig, ax = plt.subplots(figsize=(8, 4.5))
    pos = _log_freq_axis(ax, freqs)
    for name in devices or list(responses):
        dev = responses[name]
        line, = ax.plot(freqs[pos], dev.response_db[pos], label=f"{name} ({dev.method})")
        std = dev.std_db
        if dev.method == "aligned" and std is not None and np.any(std > 0):
            ax.fill_between(freqs[pos], (dev.response_db - std)[pos], (dev.response_db + std)[pos],
                            color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_ylabel("response (dB)")
    ax.set_title(title or "measured response")
    ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)


def plot_alignment(alignment, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Offset of the device recording over time: each chunk's measured offset and the fitted offset + drift line."""
    plt = _pyplot()
    sr = alignment.sample_rate
    t = alignment.chunk_positions / sr
    fit = alignment.device_position(alignment.chunk_positions) - alignment.chunk_positions
    fig, (ax, ax_res) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    used = alignment.chunk_used
    found = np.isfinite(alignment.chunk_offsets)
    ax.plot(t[used], alignment.chunk_offsets[used] / sr * 1e3, ".", label="chunk offsets (used)")
    if np.any(found & ~used):
        ax.plot(t[found & ~used], alignment.chunk_offsets[found & ~used] / sr * 1e3, "x", label="rejected")
    ax.plot(t, fit / sr * 1e3, "-", label=f"fit: {alignment.offset_samples / sr:.6f} s, {alignment.drift_ppm:.2f} ppm")
    ax.set_ylabel("offset (ms)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(title or "alignment of the pair")
    ax_res.plot(t[used], alignment.residuals[used], ".")
    ax_res.axhline(0.0, color="k", linewidth=0.8)
    ax_res.set_ylabel("residual (samples)")
    ax_res.set_xlabel("reference time (s)")
    ax_res.grid(True, alpha=0.3)
    return save_figure(fig, path)


def plot_conversion(input_db: np.ndarray, converted_db, simulated_db, differences_db, names, path: str | os.PathLike,
                    *, band_hz: np.ndarray, hop_s: float, title: str | None = None) -> Path:
    """One clip converted to several devices next to the same clip recorded (simulated) by them, with the per-band
    shifts and errors against the conditioning difference.

    Parameters
    ----------
    input_db : np.ndarray [shape=(n_mels, n_frames)]
        Log-mel features of the clip as recorded by the source device (dB).
    converted_db, simulated_db : sequence of np.ndarray [shape=(n_mels, n_frames)]
        Per target device: the converter's output, and the clip really recorded (simulated) by that device.
    differences_db : sequence of np.ndarray [shape=(n_mels,)]
        The conditioning of each conversion (target minus source band response, dB).
    names : sequence of str
        Target device names.
    band_hz : np.ndarray [shape=(n_mels,)]
        Centre frequency of each mel band (Hz), for the curves' axis.
    hop_s : float
        Seconds per frame.

    Each row is one device: input, converted, simulated spectrograms (shared colour scale), then the time-mean
    shift of the conversion and of the real recording against the conditioning, then the conversion's
    per-band error (shift minus conditioning) beside the real recording's.
    """
    plt = _pyplot()
    n = len(names)
    fig, axes = plt.subplots(n, 5, figsize=(22, 3.4 * n), squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.2, 1.2]})
    images = [input_db, *converted_db, *simulated_db]
    vmax = max(float(np.max(x)) for x in images)
    vmin = vmax - 80.0
    extent = (0, input_db.shape[-1] * hop_s, 0, input_db.shape[0])
    im = None
    for row, name in enumerate(names):
        panels = ((input_db, "input (source device)"), (converted_db[row], f"converted to {name}"),
                  (simulated_db[row], f"recorded by {name} (simulated)"))
        for col, (spec, label) in enumerate(panels):
            ax = axes[row, col]
            im = ax.imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax, cmap="magma")
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("time (s)")
            if col == 0:
                ax.set_ylabel("mel band")
        shift_conv = np.mean(converted_db[row] - input_db, axis=-1)
        shift_real = np.mean(simulated_db[row] - input_db, axis=-1)
        ax = axes[row, 3]
        ax.plot(band_hz, differences_db[row], "k--", label="conditioning (target - source)")
        ax.plot(band_hz, shift_conv, label="conversion shift")
        ax.plot(band_hz, shift_real, label="real shift")
        ax.set_xscale("log")
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("dB")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title("time-mean shift per band", fontsize=9)
        ax = axes[row, 4]
        err_conv = shift_conv - differences_db[row]
        err_real = shift_real - differences_db[row]
        ax.axhline(0.0, color="k", lw=0.8)
        ax.plot(band_hz, err_conv, label=f"conversion - conditioning (mean |.| {np.mean(np.abs(err_conv)):.1f} dB)")
        ax.plot(band_hz, err_real, label=f"real - conditioning (mean |.| {np.mean(np.abs(err_real)):.1f} dB)")
        ax.set_xscale("log")
        ax.set_xlabel("frequency (Hz)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title("per-band error against the conditioning", fontsize=9)
        ax.legend(fontsize=7)
        if row == 0:
            axes[row, 3].legend(fontsize=7)
    fig.colorbar(im, ax=axes[:, 2].tolist(), label="dB", shrink=0.8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)

"""The report of one match: ``report.html`` and its PNG figures, written atomically into a folder.

Figures: the long-term spectra of target, reference and result (the two responses as the analyser sees them),
the correction applied (with the band it acts in), spectrograms before/after (and of the reference when it is a
recording), loudness and distances before/after in a table. The page says plainly when the match did not help.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from micmatch.plot import _log_freq_axis, _pyplot, plot_spectrograms, save_figure


def _spectra_figure(result, path: Path) -> Path:
    plt = _pyplot()
    s = result.spectra_db
    f = s["frequencies_hz"]
    fig, axes = plt.subplots(2, 1, figsize=(9, 7.5))
    ax = axes[0]
    pos = _log_freq_axis(ax, f)
    from micmatch.spectral import smooth_fractional_octave

    for key, style in (("target", "C1"), ("reference", "C0"), ("result", "C2")):
        curve = smooth_fractional_octave(s[key], f, 1 / 6)
        ax.plot(f[pos], curve[pos] - np.median(curve[pos]), style, label=key, lw=1.2)
    ax.set_ylabel("long-term level (dB, 1/6-oct., median 0)")
    ax.set_title("long-term spectra (the responses as a spectrum analyser shows them)")
    ax.legend()
    ax = axes[1]
    _log_freq_axis(ax, f)
    c = result.correction
    ax.plot(c.frequencies[pos], c.gain_db[pos], "C3", label="correction")
    band = c.settings.get("band_hz")
    if band:
        ax.axvspan(band[0], band[1], color="C3", alpha=0.08, label="band where both have signal")
    ax.set_ylabel("gain (dB)")
    ax.set_title(f"correction ({c.settings.get('statistic')} statistic, strength {c.settings.get('strength')})")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def _distance_figure(result, path: Path) -> Path:
    plt = _pyplot()
    rows = [("long-term 1/3-oct.", result.distance_db)]
    if result.frame_lsd_db is not None:
        rows.append(("frame LSD", result.frame_lsd_db))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = np.arange(len(rows))
    ax.bar(x - 0.18, [r[1]["before"] for r in rows], 0.36, label="before", color="C1")
    ax.bar(x + 0.18, [r[1]["after"] for r in rows], 0.36, label="after", color="C2")
    ax.set_xticks(x, [r[0] for r in rows])
    ax.set_ylabel("distance to reference (dB)")
    ax.legend()
    return save_figure(fig, path)


def write_report(result, folder: str | os.PathLike, *, target_audio: np.ndarray,
                 reference_audio: np.ndarray | None = None) -> Path:
    """Write ``report.html``, ``spectra.png``, ``distances.png``, ``spectrograms.png`` and ``summary.json``
    into ``folder``; returns the HTML path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _spectra_figure(result, folder / "spectra.png")
    _distance_figure(result, folder / "distances.png")
    sr = result.sample_rate
    n = min(target_audio.shape[-1], 30 * sr)  # the first 30 s keep the picture readable
    before = np.asarray(target_audio, dtype=np.float64).reshape(-1, target_audio.shape[-1]).mean(axis=0)[:n]
    after = result.audio.mean(axis=0)[:n].astype(np.float64)
    ref = before if reference_audio is None else np.asarray(reference_audio, dtype=np.float64)[:n]
    titles = ("target", "result", "reference" if reference_audio is not None else "target (no reference audio)")
    plot_spectrograms(before, after, ref, sr, folder / "spectrograms.png", titles=titles)
    summary = result.summary()
    text = json.dumps(summary, indent=1)
    from micmatch.outputs import atomic_path

    with atomic_path(folder / "summary.json") as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")

    def fmt(v):
        return "n/a" if v is None else f"{v:.2f}"

    lu = result.loudness_lufs
    rows = [("route", html.escape(f"{result.route}: {result.route_reason}")),
            ("long-term 1/3-octave distance (dB RMS, level removed)",
             f"{fmt(result.distance_db['before'])} &rarr; {fmt(result.distance_db['after'])}")]
    if result.frame_lsd_db is not None:
        rows.append(("frame log spectral distance (dB)",
                     f"{fmt(result.frame_lsd_db['before'])} &rarr; {fmt(result.frame_lsd_db['after'])}"))
    rows += [("loudness target / reference / result (LUFS)",
              f"{fmt(lu['target'])} / {fmt(lu['reference'])} / {fmt(lu['result'])}"),
             ("gain after correction (dB)", f"{result.gain_db:+.2f} (overs reduction {result.overs_reduction_db:.2f})")]
    verdict = ("<p class='ok'>The result is closer to the reference than the input.</p>" if result.helped else
               "<p class='bad'>Warning: the result is further from the reference than the input on the long-term "
               "spectrum.</p>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.warnings)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>micmatch match report</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}td{{padding:4px 12px}}
.bad{{color:#b00;font-weight:bold}}.ok{{color:#070}}</style></head><body>
<h1>micmatch match report</h1>{verdict}
<table>{''.join(f'<tr><td>{k}</td><td>{v}</td></tr>' for k, v in rows)}</table>
{f'<ul>{notes}</ul>' if notes else ''}
<h2>Distances</h2><img src="distances.png" alt="distances before and after">
<h2>Spectra and correction</h2><img src="spectra.png" alt="long-term spectra and correction" width="100%">
<h2>Spectrograms</h2><img src="spectrograms.png" alt="spectrograms before and after" width="100%">
<p>Figures as JSON: <a href="summary.json">summary.json</a></p></body></html>
"""
    out = folder / "report.html"
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


__all__ = ["write_report"]

"""Event mode report: figures of an event (who recorded when, each device's correction, the seams before and after)
as PNG files with an ``index.md`` that lists them. matplotlib is imported only here, when a report is asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _timeline(result, path: Path) -> Path:
    from micmatch.plot import _pyplot, save_figure

    plt = _pyplot()
    names = result.names
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(names) + 1.5))
    for i, n in enumerate(names):
        c = result.clocks[n]
        ax.barh(i, c.end_s - c.start_s, left=c.start_s - result.start_s, height=0.6,
                color="tab:orange" if n == result.reference else "tab:blue")
    for s in result.seams:
        ax.axvline(s["time_s"], color="0.6", lw=0.5)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("time on the event's timeline (s)")
    ax.set_title(f"who recorded when (reference {result.reference} in orange; grey: seam points)")
    return save_figure(fig, path)


def _corrections(result, path: Path) -> Path:
    from micmatch.plot import _log_freq_axis, _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    for n in result.names:
        c = result.corrections[n]
        freqs = np.fft.rfftfreq(c.n_fft, 1.0 / c.sample_rate)
        pos = _log_freq_axis(ax, freqs)
        ax.plot(freqs[pos], c.gain_db[pos], label=f"{n} (route {' -> '.join(result.routes[n])})")
    ax.set_ylabel("correction gain (dB)")
    target = "consensus" if result.corrections[result.reference].settings.get("target") == "consensus" else "reference"
    ax.set_title(f"each device's correction towards the {target}'s sound (its response is the negative)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _seams(result, path: Path) -> Path | None:
    from micmatch.plot import _pyplot, save_figure

    seams = result.seams
    if not seams:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, unit in ((axes[0], "frame_lsd_db", "frame LSD (dB)"), (axes[1], "loudness_jump_lu", "|jump| (LU)")):
        before = [abs(s[f"{key}_before"]) for s in seams if s.get(f"{key}_before") is not None
                  and s.get(f"{key}_after") is not None]
        after = [abs(s[f"{key}_after"]) for s in seams if s.get(f"{key}_before") is not None
                 and s.get(f"{key}_after") is not None]
        if before:
            ax.boxplot([before, after])
            ax.set_xticks([1, 2], ["before", "after"])
        ax.set_ylabel(unit)
        ax.set_title(("spectral" if key.startswith("frame") else "loudness") + f" jump at {len(before)} seams")
        ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def write_report(result, folder: str | os.PathLike) -> Path:
    """Write the report of an :class:`~micmatch.eventmode.EventResult` to ``folder``; returns ``index.md``'s path.

    ``timeline.png`` (who recorded when), ``corrections.png`` (each device's correction curve), ``seams.png``
    (spectral and loudness jumps before and after correction, when there are seams), and ``index.md`` listing
    them with the seam medians.
    """
    from micmatch.outputs import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made = [("timeline.png", "who recorded when on the event's timeline", _timeline(result, folder / "timeline.png")),
            ("corrections.png", "each device's correction curve (gain in dB per frequency)",
             _corrections(result, folder / "corrections.png"))]
    seams = _seams(result, folder / "seams.png")
    if seams is not None:
        made.append(("seams.png", "spectral and loudness jumps at the seams, before and after correction", seams))
    summary = result.seam_summary
    lines = [f"# Event report: {len(result.names)} recordings, reference {result.reference}", "",
             f"Reference: {result.reference} ({result.reference_reason}).", ""]
    lines += [f"- [{name}]({name}): {what}" for name, what, _ in made]
    if summary.get("seams"):
        lsd, lu = summary["median_frame_lsd_db"], summary["median_abs_loudness_jump_lu"]
        lines += ["", f"Seams ({summary['at']}): {summary['seams']}; median frame LSD {lsd['before']} -> "
                      f"{lsd['after']} dB, median loudness jump {lu['before']} -> {lu['after']} LU."]
    if result.left_out:
        lines += ["", "Left out: " + "; ".join(f"{n}: {r}" for n, r in result.left_out.items())]
    index = folder / "index.md"
    with atomic_path(index) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return index


__all__ = ["write_report"]

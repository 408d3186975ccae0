"""The ``match`` command: one call from recordings to a matched file (or a folder of them)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from micmatch import audio as audio_io
from micmatch.cli.batch import exit_with, plan_batch
from micmatch.cli.common import (
    shape_options,
    COMMON,
    progress_enabled,
    warn_line,
)
from micmatch.errors import AudioError
from micmatch.render import resolve_overs
from micmatch.outputs import prepare_output, prepare_output_dir


@click.command(name="match", **COMMON)
@click.argument("target", type=click.Path(exists=True))
@click.argument("references", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Matched file (a folder when TARGET is a folder; names and formats of the inputs kept).")
@click.option("--statistic", type=click.Choice(["log", "power"]), default="power", show_default=True,
              help="Long-term statistic: log = geometric mean of magnitudes, power = long-term average spectrum "
                   "(README: when each is right).")
@shape_options(band_default="where both recordings have signal")
@click.option("--loudness", default="match", show_default=True,
              help="Loudness of the result (ITU-R BS.1770): 'match' the reference, 'keep' the target's, or a level "
                   "such as -23LUFS.")
@click.option("--overs", type=click.Choice(["scale", "float", "clip", "reduce"]), default="scale", show_default=True,
              help="Integer-format output above -1 dBTP: lower the whole file (scale: keeps the format), write "
                   "32-bit float, or clip. 'reduce' is the old name of scale (it goes in the next release).")
@click.option("--route", type=click.Choice(["auto", "aligned", "unaligned"]), default="auto", show_default=True,
              help="auto: aligned when the two hold the same sound, else unaligned.")
@click.option("--reference-weights", default=None, metavar="W1,W2,...",
              help="Weights of several references (comma-separated, one per reference).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for report.html, figures and summary.json (one subfolder per file for a folder).")
@click.option("--n-fft", type=click.IntRange(16, 1 << 16), default=None,
              help="Analysis FFT size. Default: about 93 ms (4096 at 44.1 kHz, 1024 at 8 kHz), halved until the "
                   "shortest input holds four frames.")
@click.option("--skip-existing", is_flag=True,
              help="Resume an interrupted batch: keep outputs that already exist (outputs appear only when "
                   "complete) and match only the missing ones.")
def match_cmd(target, references, output, statistic, strength, band, smoothing, loudness, overs, route,
              reference_weights, report_dir, n_fft, skip_existing):
    """Make TARGET sound as if recorded like REFERENCE (one or more recordings, or a target curve CSV).

    \b
    Examples:
      micmatch match tablet.wav studio.wav -o tablet_matched.wav --report report/
      micmatch match takes/ studio1.wav studio2.wav -o matched/ --strength 0.8 --loudness -23LUFS
      micmatch match voice.flac target_curve.csv -o voice_eq.flac
    """
    weights = None
    if reference_weights:
        try:
            weights = [float(v) for v in reference_weights.split(",")]
        except ValueError:
            raise click.BadParameter(f"{reference_weights!r} must be comma-separated numbers",
                                     param_hint="--reference-weights") from None
        if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(w > 0 for w in weights):
            raise click.BadParameter(f"{reference_weights!r} must be finite numbers >= 0, at least one above 0",
                                     param_hint="--reference-weights")
    refs = []
    for r in references:
        found = audio_io.find_audio_files([r]) if Path(r).is_dir() else [Path(r)]
        if not found:
            raise AudioError(f"{r}: no audio files in this reference folder")
        refs.extend(found)
    target_path = Path(target)
    if target_path.is_dir():
        # The output folder may lie inside the target folder: it is left out of the walk (no matching of outputs).
        exclude = prepare_output_dir(output, [target, *references])
        files = [f for f in audio_io.find_audio_files([target])
                 if not any(f.resolve().is_relative_to(e.resolve()) for e in exclude)]
        if not files:
            raise AudioError(f"no audio files found in: {target}")
        jobs = [(f, Path(output) / f.relative_to(target_path)) for f in files]
    else:
        jobs = [(target_path, prepare_output(output, [target, *references]))]
    batch = plan_batch(jobs, skip_existing=skip_existing)
    options = {"statistic": statistic, "strength": strength, "band_hz": band, "smoothing_octaves": smoothing or None,
               "loudness": loudness, "overs": resolve_overs(overs), "route": route, "reference_weights": weights,
               "n_fft": n_fft}
    single = len(batch.todo) == 1
    clashes = _stem_clashes(jobs, output) if target_path.is_dir() else set()
    work = functools.partial(_match_one, references=refs if len(refs) > 1 else refs[0], report_dir=report_dir,
                             output=output, single=single, clashes=clashes, **options)
    reduced, worse = [], []

    def report(src, dst, res):
        s = res.summary()
        line = (f"{src} -> {dst}: {res.route} route; long-term distance {res.distance_db['before']:.2f} -> "
                f"{res.distance_db['after']:.2f} dB")
        if res.frame_lsd_db:
            line += f", frame LSD {res.frame_lsd_db['before']:.2f} -> {res.frame_lsd_db['after']:.2f} dB"
        lu = s["loudness_lufs"]
        if lu["result"] is not None:
            line += f", loudness {lu['result']:.1f} LUFS"
        click.echo(line)
        if single:
            click.echo(f"  route: {res.route_reason}")
        for note in res.notes:  # overs and distance notes are summarised below, once
            if note.kind not in ("overs", "distance"):
                warn_line(f"{src}: {note.message}")
        if res.overs_reduction_db > 0:
            reduced.append((src, res.overs_reduction_db))
        if not res.helped:
            worse.append(src)

    outcome = batch.run(work, desc="matching", progress=len(batch.todo) > 1 and progress_enabled(),
                        on_result=report)
    if reduced:
        top = max(r[1] for r in reduced)
        warn_line(f"{len(reduced)} file(s) were lowered as a whole (up to {top:.1f} dB) to keep their true peak "
                  f"below -1 dBTP in their integer format (--overs clip or float to change)")
    for src in worse:
        warn_line(f"{src}: the result is further from the reference than the input on the long-term spectrum")
    if outcome.n_skipped:
        click.echo(f"{outcome.n_skipped} output(s) already there, skipped (--skip-existing)", err=True)
    outcome.report_failures()
    exit_with(outcome)


def _stem_clashes(jobs, output) -> set[Path]:
    """Outputs whose report folder (the relative path without its suffix) another output shares: ``phone.wav``
    and ``phone.flac`` in one folder. Their reports keep the suffix in the folder name instead."""
    seen: dict[Path, list[Path]] = {}
    for _, dst in jobs:
        rel = Path(dst).relative_to(output)
        seen.setdefault(rel.with_suffix(""), []).append(rel)
    return {rel for rels in seen.values() if len(rels) > 1 for rel in rels}


def _match_one(src, dst, *, references, report_dir, output, single, clashes=frozenset(), **options):
    """Match one file; its report goes to ``report_dir`` itself for a single file, else to a subfolder named
    after the file (with its suffix, ``phone.wav/``, when another file of the batch has the same stem)."""
    from micmatch.matching import match

    report = None
    if report_dir:
        rel = Path(dst).relative_to(output) if not single else None
        report = Path(report_dir) if single else Path(report_dir) / (
            rel if rel in clashes else rel.with_suffix(""))
    return match(src, references, dst, report=report, **options)

COMMANDS = [match_cmd]

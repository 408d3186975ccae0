"""The ``event`` command: many recordings of one event onto one timeline and one sound."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from micmatch.cli.common import (
    shape_options,
    COMMON,
    FiniteFloatRange,
    progress_enabled,
    warn_line,
)


@click.command(name="event", **COMMON)
@click.argument("recordings", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for NAME.wav per recording, event.json and the cut track.")
@click.option("--reference", default=None,
              help="The recording the others should sound like and follow (default: the one with the widest band "
                   "above its noise floor, then the best signal-to-noise ratio, clipped recordings ruled out), or "
                   "'consensus': every device, that one too, corrected towards the mean of all their responses.")
@click.option("--sample-rate", type=click.IntRange(1000, 768000), default=None,
              help="Sample rate of the stems (default: the reference's).")
@click.option("--loudness", default="match", show_default=True,
              help="Loudness of the stems (ITU-R BS.1770): 'match' (all as loud as the reference), 'keep' (levels "
                   "left alone), or a level such as -23LUFS for the reference, the others following it.")
@click.option("--cuts", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV of 'time_s,device' rows: also write OUT/CUTSNAME.wav, playing each device from its time "
                   "on (times on the event's timeline, 0 at its first sample).")
@click.option("--statistic", type=click.Choice(["power", "log"]), default="power", show_default=True,
              help="What each link compares: power = the long-term average spectra (stems sound alike over time), "
                   "log = mean log ratio of aligned frames (lower frame-by-frame jumps at cuts).")
@shape_options(band_default="where the devices of each route have signal")
@click.option("--max-boost", type=FiniteFloatRange(min=0.0), default=12.0, show_default=True,
              help="Largest boost of a correction (dB).")
@click.option("--max-cut", type=FiniteFloatRange(min=0.0), default=24.0, show_default=True,
              help="Largest cut of a correction (dB).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Also write figures (timeline, corrections, seams; PNG) and an index.md to this folder.")
@click.option("--skip-existing", is_flag=True,
              help="Leave the event alone when OUT already holds a complete earlier run (event.json and every file "
                   "it lists).")
@click.option("--learned", is_flag=True,
              help="Add a learned correction per device on top of the static one, kept only where a held-out part "
                   "of its overlap with the reference shows it better (needs the learning extra).")
@click.option("--overs", type=click.Choice(["scale", "float", "clip"]), default="scale", show_default=True,
              help="Stems above -1 dBTP in an integer format: lower every stem by one gain (scale), write 32-bit "
                   "float, or clip.")
def event_cmd(recordings, output_dir, reference, sample_rate, loudness, cuts, statistic, strength, band, smoothing,
              max_boost, max_cut, report_dir, skip_existing, learned, overs):
    """Bring RECORDINGS of one event (2 to 20 files or folders) onto one timeline and one sound.

    Offsets and clock drift come from every pair's overlap, solved together; each device is corrected towards
    the reference from its overlap with it, or through the devices that link it to the reference. Every stem has
    the same start, length and rate, with silence where its device did not record. A recording that matches
    none of the others is left out with one line. Recordings are read in blocks: each hour of recording needs about
    115 MB of memory (its 8 kHz mono copy for the synchronisation) and temporary files in the output folder.

    \b
    Examples:
      micmatch event phone1.wav phone2.m4a camera.wav -o event/
      micmatch event takes/ -o event/ --reference camera.wav --loudness -23LUFS --cuts cuts.csv
      micmatch event takes/ -o event/ --reference consensus --report event-report/ --skip-existing
    """
    from micmatch.eventmode import event, existing_outputs
    from micmatch.eventseams import summary_line

    from micmatch import audio as audio_io
    from micmatch.errors import AudioError, ParameterError
    from micmatch.outputs import prepare_output_dir

    if reference is not None and reference != "consensus" and not Path(reference).is_file():
        raise ParameterError(f"--reference {reference}: no such file (give one of the recordings or 'consensus')")
    if skip_existing and existing_outputs(output_dir) is not None:
        click.echo(f"{Path(output_dir) / 'event.json'} and its stems exist: skipped (--skip-existing)", err=True)
        return
    fit_devices = None
    if learned:
        try:
            from micmatch.learn.event_residual import fit_event_devices as fit_devices
        except ImportError as exc:
            raise ParameterError(f"--learned: the learned correction is not available ({exc})") from None

    # An output folder inside an input folder is left out of the walk: a rerun does not take its own stems as input.
    exclude = prepare_output_dir(output_dir, recordings)
    files = audio_io.find_audio_files(recordings, exclude=exclude)
    if not files:
        raise AudioError(f"no audio files found in: {', '.join(recordings)}")
    options = {"reference": reference, "sample_rate": sample_rate, "loudness": loudness, "cuts": cuts,
               "strength": strength, "band_hz": band, "smoothing_octaves": smoothing or None,
               "max_boost_db": max_boost, "max_cut_db": max_cut, "overs": overs, "learned": fit_devices,
               "statistic": statistic}
    if progress_enabled():
        with click.progressbar(length=1000, label="event", file=sys.stderr) as bar:
            def advance(fraction: float, what: str) -> None:
                bar.label = what
                step = int(round(1000 * fraction)) - bar.pos
                if step > 0:
                    bar.update(step)

            res = event(files, output_dir, progress=advance, **options)
    else:
        res = event(files, output_dir, **options)
    for name, reason in res.left_out.items():
        warn_line(f"{name}: {reason}")
    click.echo(f"reference: {res.reference} ({res.reference_reason})")
    for name in res.names:
        clock = res.clocks[name]
        route = " -> ".join(res.routes[name])
        click.echo(f"{name}: at {clock.start_s - res.start_s:+.3f} s on the timeline, drift {clock.drift_ppm:+.1f} "
                   f"ppm, route {route}, gain {res.gains_db[name]:+.1f} dB -> {res.stems[name]}")
    for note in res.notes:
        warn_line(note)
    click.echo(summary_line(res.seam_summary, res.seam_summary["at"]))
    if res.cut_track is not None:
        click.echo(f"cut track: {res.cut_track}")
    for name, fit in res.learned.items():
        click.echo(f"{name}: {'learned' if fit['kept'] else 'static'} correction ({fit['reason']})")
    click.echo(f"figures: {res.event_json}")
    if report_dir is not None:
        from micmatch.eventreport import write_report

        click.echo(f"report: {write_report(res, report_dir)}")


COMMANDS = [event_cmd]

"""Core commands: profile, correct, export, plot, demo."""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from pathlib import Path

import click

from micmatch import audio as audio_io
from micmatch.errors import AudioError, MicmatchError

COMMON = {"context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 100}}


def _fail_line(message: str) -> None:
    click.echo(f"micmatch: error: {message}", err=True)


def _collect_files(inputs: tuple[str, ...]) -> list[Path]:
    files = audio_io.find_audio_files(inputs)
    if not files:
        raise AudioError(f"no audio files found in: {', '.join(inputs)}")
    return files


def _progress_enabled() -> bool:
    return sys.stderr.isatty()


# Option checks: a bad value is a usage error (one line, exit code 2) rather than a traceback from deep inside.
def _even_n_fft(ctx, param, value: int) -> int:
    if value < 16 or value % 2:
        raise click.BadParameter(f"{value} must be an even integer >= 16")
    return value


def _odd_n_taps(ctx, param, value: int) -> int:
    if value < 3 or value % 2 == 0:
        raise click.BadParameter(f"{value} must be an odd integer >= 3 (a linear-phase type I filter)")
    return value


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


@click.command(**COMMON)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Responses JSON to write.")
@click.option("--device-from", default="dir", show_default=True,
              help="Device label of each file: 'dir' (name of the folder holding it), 'regex:PATTERN' (first group, "
                   "or the group named 'device', matched on the path), 'csv:FILE' (columns filename/path and device) "
                   "or 'name:DEVICE' (one device for all inputs).")
@click.option("--n-fft", default=2048, show_default=True, callback=_even_n_fft, help="FFT size (samples, even).")
@click.option("--hop", "hop_length", default=512, show_default=True, type=click.IntRange(min=1),
              help="Hop between frames (samples, at most --n-fft).")
@click.option("--sample-rate", type=click.IntRange(min=1), default=None,
              help="Analysis rate in Hz. Default: the rate of the first file; others must match unless --resample.")
@click.option("--resample", is_flag=True, help="Resample files at other rates to the analysis rate (soxr).")
@click.option("--channels", type=click.Choice(["mix", "first", "each"]), default="mix", show_default=True,
              help="Multichannel files: average the channels, take the first, or count each channel's frames.")
@click.option("--gate-db", default=-80.0, show_default=True,
              help="Frames quieter than this (windowed RMS, dB re full scale) are not counted.")
@click.option("--relative-gate-db", default=30.0, show_default=True,
              help="Frames more than this many dB below a file's loudest frame are not counted (keeps pauses, "
                   "which hold only the device's noise, out of the estimate); 0 disables it.")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes.")
@click.option("--scheduler", default=None, help="dask.distributed scheduler address (needs micmatch[dask]).")
@click.option("--merge", "merge_into", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Add these statistics to an existing responses file: every setting must match the file's "
                   "(rate, FFT size, hop, gates, --channels, --resample); files it already counts are skipped.")
def profile(inputs, output, device_from, n_fft, hop_length, sample_rate, resample, channels, gate_db,
            relative_gate_db, jobs, scheduler, merge_into):
    """Estimate each device's response from its recordings (unaligned spectrum correction).

    INPUTS are audio files or folders (walked recursively). Each device's response is the mean log power per
    frequency bin over all frames of all its recordings; devices should have recorded similar material.
    Files that cannot be used are reported and skipped; the exit code is then 1.

    \b
    Example:
      micmatch profile recordings/ -o responses.json --device-from dir --jobs 2
      micmatch profile takes/ -o responses.json --device-from 'regex:_(?P<device>[a-z]+)\\.wav$'
    """
    from micmatch.estimate import label_devices, profile_files
    from micmatch.response import ResponseSet, SpectralConfig

    files = _collect_files(inputs)
    labels, problems = label_devices(files, device_from)
    for p in problems:
        _fail_line(p)
    labelled = [(f, d) for f, d in zip(files, labels) if d]
    if not labelled:
        raise MicmatchError("no input file could be given a device label")
    if sample_rate is None:
        sample_rate = audio_io.first_sample_rate([f for f, _ in labelled])
    if hop_length > n_fft:
        raise click.BadParameter(f"{hop_length} must not exceed --n-fft={n_fft}", param_hint="'--hop'")
    config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, gate_db=gate_db,
                            relative_gate_db=relative_gate_db or None, channels=channels, resample=resample)
    existing = None
    if merge_into:
        existing = ResponseSet.load(merge_into)
        existing.config.check_compatible(config, source=merge_into)  # before any work
    labelled = _skip_counted(labelled, existing, merge_into)
    responses, failures = profile_files([f for f, _ in labelled], [d for _, d in labelled], config,
                                        channels=channels, resample=resample, jobs=jobs, scheduler=scheduler,
                                        progress=_progress_enabled())
    for fail in failures:
        _fail_line(str(fail))
    if existing is not None:
        responses = existing.merge(responses, source=merge_into)
    if len(responses) == 0:
        raise MicmatchError("no usable recordings: nothing was written")
    responses.save(output)
    n_files = Counter(d for _, d in labelled)
    click.echo(f"wrote {output}: {len(responses)} device(s) at {sample_rate} Hz, n_fft={n_fft}, hop={hop_length}")
    for name, dev in responses.items():
        st = dev.stats
        click.echo(f"  {name}: {st.n_files}/{n_files.get(name, st.n_files)} files, {st.n_frames} frames")
    bad = len(problems) + len(failures)
    if bad:
        click.echo(f"{bad} file(s) could not be used (listed above)", err=True)
        sys.exit(1)


def _skip_counted(labelled: list, existing, source: str | None) -> list:
    """Leave out input files whose content is listed twice, or already counted in the file merged into.

    Statistics are sums: a file counted twice would weigh double. Each skip is reported with a count.
    """
    from micmatch.response import file_fingerprint, fingerprint_key

    before = {fingerprint_key(f) for f in existing.files} if existing is not None else set()
    seen: set = set()
    keep, counted, repeated = [], 0, 0
    for path, device in labelled:
        try:
            key = fingerprint_key(file_fingerprint(path))
        except OSError:  # unreadable: profiling reports it with the reason
            keep.append((path, device))
            continue
        if key in before:
            counted += 1
        elif key in seen:
            repeated += 1
        else:
            seen.add(key)
            keep.append((path, device))
    if counted:
        click.echo(f"skipped {counted} file(s) already counted in {source}", err=True)
    if repeated:
        click.echo(f"skipped {repeated} input file(s) listed twice (same content)", err=True)
    return keep


def _correction_options(func):
    options = [
        click.option("--responses", "responses_path", required=True, type=click.Path(exists=True, dir_okay=False),
                     help="Responses JSON from 'micmatch profile' (or measure/pair)."),
        click.option("--device", required=True, help="Device that made the recordings."),
        click.option("--reference", required=True,
                     help="Device to sound like; ':mean' (average of all devices) or ':flat' (reference-free)."),
        click.option("--max-boost-db", default=20.0, show_default=True, type=click.FloatRange(min=0),
                     help="Largest boost of the correction."),
        click.option("--max-cut-db", default=30.0, show_default=True, type=click.FloatRange(min=0),
                     help="Largest cut of the correction."),
        click.option("--smooth", "smoothing", default=None, type=click.FloatRange(min=0),
                     help="Fractional-octave smoothing of the correction, e.g. 0.1667 for 1/6 octave."),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def _load_correction(responses_path, device, reference, max_boost_db, max_cut_db, smoothing):
    from micmatch.correct import correction_curve
    from micmatch.response import ResponseSet

    responses = ResponseSet.load(responses_path)
    return correction_curve(responses, device, reference, max_boost_db=max_boost_db, max_cut_db=max_cut_db,
                            smoothing_octaves=smoothing)


@click.command(**COMMON)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@_correction_options
@click.option("--method", type=click.Choice(["stft", "fir"]), default="stft", show_default=True,
              help="Apply as STFT-domain gain or as an FIR filter.")
@click.option("--n-taps", default=1025, show_default=True, callback=_odd_n_taps, help="FIR length (odd).")
@click.option("--phase", type=click.Choice(["linear", "minimum"]), default="linear", show_default=True,
              help="FIR phase; linear phase is delay compensated (output aligned with input).")
@click.option("--overs", type=click.Choice(["float", "scale", "clip"]), default="float", show_default=True,
              help="If the corrected audio exceeds full scale in an integer format: write 32-bit float instead "
                   "(with a warning), scale the file down to -0.1 dBFS, or clip (with a count).")
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the corrected files (same names as the inputs; subfolders of input folders kept).")
def correct(inputs, responses_path, device, reference, max_boost_db, max_cut_db, smoothing, method, n_taps, phase,
            overs, output_dir):
    """Correct recordings of one device so they sound as if the reference device made them.

    Outputs keep the input's format and subtype. Inputs are never modified; each output appears only when
    complete. Files that fail are reported and skipped; the exit code is then 1.

    \b
    Example:
      micmatch correct recordings/phone --responses responses.json --device phone --reference studio -o matched/
    """
    from micmatch.correct import correct_file

    corr = _load_correction(responses_path, device, reference, max_boost_db, max_cut_db, smoothing)
    targets = _output_paths(inputs, Path(output_dir))
    failures = 0
    from tqdm.auto import tqdm

    for src, dst in tqdm(targets, desc="correcting", unit="file", disable=not _progress_enabled(), file=sys.stderr):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                correct_file(src, dst, corr, method=method, n_taps=n_taps, phase=phase, overs=overs)
            for w in caught:
                click.echo(f"micmatch: warning: {w.message}", err=True)
        except MicmatchError as exc:
            failures += 1
            _fail_line(str(exc))
    click.echo(f"corrected {len(targets) - failures}/{len(targets)} file(s) from {device} to {reference} "
               f"({method}) into {output_dir}")
    if failures:
        sys.exit(1)


def _output_paths(inputs: tuple[str, ...], outdir: Path) -> list[tuple[Path, Path]]:
    pairs: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for item in inputs:
        root = Path(item)
        files = audio_io.find_audio_files([root])
        for f in files:
            rel = f.relative_to(root) if root.is_dir() else Path(f.name)
            dst = outdir / rel
            if dst in seen:
                raise AudioError(f"{f}: its output {dst} would overwrite the output of {seen[dst]}")
            seen[dst] = f
            pairs.append((f, dst))
    if not pairs:
        raise AudioError(f"no audio files found in: {', '.join(inputs)}")
    return pairs


@click.command(name="export", **COMMON)
@click.argument("responses_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--device", required=True, help="Device whose recordings the correction is for.")
@click.option("--reference", required=True, help="Device to sound like (or ':mean', ':flat').")
@click.option("--format", "fmt", type=click.Choice(["csv", "wav", "equalizerapo"]), required=True,
              help="csv: frequency_hz,gain_db; wav: impulse response for convolution plug-ins; "
                   "equalizerapo: a GraphicEQ line.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--max-boost-db", default=20.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--max-cut-db", default=30.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--smooth", "smoothing", default=None, type=click.FloatRange(min=0),
              help="Fractional-octave smoothing, e.g. 0.1667.")
@click.option("--n-taps", default=1025, show_default=True, callback=_odd_n_taps,
              help="Impulse-response length for --format wav (odd).")
@click.option("--phase", type=click.Choice(["linear", "minimum"]), default="linear", show_default=True)
def export_cmd(responses_path, device, reference, fmt, output, max_boost_db, max_cut_db, smoothing, n_taps, phase):
    """Export the correction from DEVICE to REFERENCE for use in other tools.

    \b
    Example:
      micmatch export responses.json --device phone --reference studio --format equalizerapo -o phone.txt
      micmatch export responses.json --device phone --reference studio --format wav -o phone_ir.wav
    """
    from micmatch.correct import export

    corr = _load_correction(responses_path, device, reference, max_boost_db, max_cut_db, smoothing)
    options = {"n_taps": n_taps, "phase": phase} if fmt == "wav" else {}
    path = export(corr, output, fmt, **options)
    click.echo(f"wrote {path} ({fmt}, {device} -> {reference})")


@click.command(name="plot", **COMMON)
@click.argument("responses_path", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG, SVG or PDF.")
@click.option("--reference", default=None,
              help="Also draw every device's correction towards this device (second panel).")
@click.option("--smooth", "smoothing", default=None, type=click.FloatRange(min=0),
              help="Fractional-octave smoothing for display.")
def plot_cmd(responses_path, output, reference, smoothing):
    """Plot the responses of all devices in a responses file (and their corrections to a reference).

    \b
    Example:
      micmatch plot responses.json -o responses.png --reference studio
    """
    from micmatch.plot import plot_responses
    from micmatch.response import ResponseSet

    if Path(output).suffix.lower() not in PLOT_SUFFIXES:
        raise click.BadParameter(f"{output}: use a {', '.join(PLOT_SUFFIXES)} file name", param_hint="'-o'")
    responses = ResponseSet.load(responses_path)
    if reference is not None:
        responses[reference]  # unknown names fail here with the list of known ones
    path = plot_responses(responses, output, reference=reference, smoothing_octaves=smoothing)
    click.echo(f"wrote {path}")


@click.command(**COMMON)
@click.option("-o", "--output-dir", default="demo-output", show_default=True, type=click.Path(file_okay=False))
@click.option("--clips", default=12, show_default=True, type=click.IntRange(min=1),
              help="Source clips to synthesize per device.")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic corpus and device noise.")
def demo(output_dir, clips, seed):
    """Run the whole matching flow on a built-in synthetic corpus (no download).

    Synthesizes varied source sounds, records them with built-in device models (studio reference, phone, laptop,
    headset), estimates the responses without using the pairing, corrects every device to the studio reference,
    and writes responses.json, plots, corrected audio and report.md with the response error and the log spectral
    distance before and after.

    \b
    Example:
      micmatch demo -o demo-output
    """
    from micmatch.demo import run_demo

    report = run_demo(Path(output_dir), n_clips=clips, seed=seed, progress=_progress_enabled(),
                      echo=lambda s: click.echo(s))
    click.echo(f"report: {report}")


COMMANDS = [profile, correct, export_cmd, plot_cmd, demo]

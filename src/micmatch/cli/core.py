"""Core commands: profile, correct (with a responses file or a trained model), export, plot, demo."""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from pathlib import Path

import click

from micmatch import audio as audio_io
from micmatch.cli.batch import exit_with, plan_batch, run_batch
from micmatch.cli.common import (
    COMMON,
    FINITE_FLOAT,
    FiniteFloatRange,
    band_range,
    check_plot_suffix,
    compute_option,
    collect_files,
    even_n_fft,
    fail_line,
    finite_level,
    odd_n_taps,
    output_paths,
    progress_enabled,
    relative_gate,
    WarningLines,
)
from micmatch.errors import MicmatchError
from micmatch.outputs import prepare_output, prepare_output_dir


def _check_fir_memory(n_taps: int, corr, method: str = "fir") -> None:
    """The FIR design's memory grows with n_taps times the number of bins: check before designing."""
    from micmatch.resources import check_memory, fir_design_bytes

    if method == "fir":
        check_memory(fir_design_bytes(n_taps, corr.gain_db.size), f"--n-taps {n_taps}")



@click.command(**COMMON)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Responses JSON to write.")
@click.option("--device-from", default="dir", show_default=True,
              help="Device label of each file: 'dir' (name of the folder holding it), 'regex:PATTERN' (first group, "
                   "or the group named 'device', matched on the path), 'csv:FILE' (columns filename/path and device) "
                   "or 'name:DEVICE' (one device for all inputs).")
@click.option("--n-fft", default=2048, show_default=True, callback=even_n_fft, help="FFT size (samples, even).")
@click.option("--hop", "hop_length", default=512, show_default=True, type=click.IntRange(min=1),
              help="Hop between frames (samples, at most --n-fft).")
@click.option("--sample-rate", type=click.IntRange(min=1), default=None,
              help="Analysis rate in Hz. Default: the rate of the first file; others must match unless --resample.")
@click.option("--resample", is_flag=True, help="Resample files at other rates to the analysis rate (soxr).")
@click.option("--channels", type=click.Choice(["mix", "first", "each"]), default="mix", show_default=True,
              help="Multichannel files: average the channels, take the first, or count each channel's frames.")
@click.option("--gate-db", default=-80.0, show_default=True, callback=finite_level,
              help="Frames quieter than this (windowed RMS, dB re full scale) are not counted.")
@click.option("--relative-gate-db", default=30.0, show_default=True, callback=relative_gate,
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

    prepare_output(output, inputs)
    files = collect_files(inputs)
    labels, problems = label_devices(files, device_from)
    for p in problems:
        fail_line(p)
    labelled = [(f, d) for f, d in zip(files, labels) if d]
    if not labelled:
        raise MicmatchError("no input file could be given a device label")
    if sample_rate is None:
        sample_rate = audio_io.first_sample_rate([f for f, _ in labelled])
    if hop_length > n_fft:
        raise click.BadParameter(f"{hop_length} must not exceed --n-fft={n_fft}", param_hint="'--hop'")
    _check_n_fft_fits_an_input([f for f, _ in labelled], n_fft, sample_rate)
    config = SpectralConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, gate_db=gate_db,
                            relative_gate_db=relative_gate_db or None, channels=channels, resample=resample)
    existing = None
    if merge_into:
        existing = ResponseSet.load(merge_into)
        existing.config.check_compatible(config, source=merge_into)  # before any work
    labelled = _skip_counted(labelled, existing, merge_into)
    with warnings.catch_warnings(record=True) as caught:  # the workers' warnings, raised again here in order
        warnings.simplefilter("always", UserWarning)
        responses, failures = profile_files([f for f, _ in labelled], [d for _, d in labelled], config,
                                            channels=channels, resample=resample, jobs=jobs, scheduler=scheduler,
                                            progress=progress_enabled())
    lines = WarningLines()
    lines.add_caught(caught)
    lines.finish(len(labelled))
    for fail in failures:
        fail_line(str(fail))
    if resample:
        _mark_device_bands(responses, labelled, sample_rate)
    if len(responses) == 0 and not merge_into:
        raise MicmatchError("no usable recordings: nothing was written")
    responses = responses.save_merged(output, merge_from=merge_into)  # locked: no concurrent update is lost
    n_files = Counter(d for _, d in labelled)
    click.echo(f"wrote {output}: {len(responses)} device(s) at {sample_rate} Hz, n_fft={n_fft}, hop={hop_length}")
    for name, dev in responses.items():
        st = dev.stats
        click.echo(f"  {name}: {st.n_files}/{n_files.get(name, st.n_files)} files, {st.n_frames} frames")
    bad = len(problems) + len(failures)
    if bad:
        click.echo(f"{bad} file(s) could not be used (listed above)", err=True)
        sys.exit(1)


def _check_n_fft_fits_an_input(files, n_fft: int, sample_rate: int) -> None:
    """Refuse an FFT size longer than every input (at the analysis rate): no file could give a single frame.
    Stops at the first file long enough, so a normal batch costs one header read."""
    longest = 0
    for f in files:
        try:
            meta = audio_io.info(f)
        except MicmatchError:
            continue  # reported by the batch
        frames = meta.frames * sample_rate / meta.sample_rate
        if frames >= n_fft:
            return
        longest = max(longest, int(frames))
    if longest:
        raise click.BadParameter(f"{n_fft} is longer than every input (the longest has {longest} samples at "
                                 f"{sample_rate} Hz); use a smaller --n-fft", param_hint="'--n-fft'")


def _mark_device_bands(responses, labelled, sample_rate: int) -> None:
    """Store each device's recorded band (``meta['band_hz']``: half its lowest source rate) when it ends below the
    analysis band, and warn: above it the estimate holds only resampling silence, and corrections stay at 0 dB."""
    lowest: dict[str, int] = {}
    for path, device in labelled:
        try:
            rate = audio_io.info(path).sample_rate
        except MicmatchError:
            continue  # already reported by the batch
        lowest[device] = min(rate, lowest.get(device, rate))
    for device, rate in lowest.items():
        if device in responses and rate < sample_rate:
            responses[device].meta["band_hz"] = rate / 2
            click.echo(f"micmatch: warning: {device}: recorded at {rate} Hz, so its band ends at {rate / 2:g} Hz, "
                       f"below the analysis band ({sample_rate / 2:g} Hz); corrections are 0 dB above it", err=True)


def _skip_counted(labelled: list, existing, source: str | None) -> list:
    """Leave out input files whose content is listed twice for one device, or already counted in the file merged
    into.

    Statistics are sums: a file counted twice would weigh double. The same content under two devices' folders
    (a symlink in laptop/ to a studio/ file) counts once for each: labels come from the paths as given. Each skip
    is reported with a count.
    """
    from micmatch.audio import content_keys, fingerprint_key

    stored = list(existing.files) if existing is not None else []
    before = {fingerprint_key(f) for f in stored}
    keys_of = content_keys(stored)  # older files' fingerprints are compared by their own rule
    seen: set = set()
    keep, counted, repeated = [], 0, 0
    for path, device in labelled:
        try:
            keys = keys_of(path)
        except OSError:  # unreadable: profiling reports it with the reason
            keep.append((path, device))
            continue
        key = keys[0]
        if before.intersection(keys):
            counted += 1
        elif (device, key) in seen:
            repeated += 1
        else:
            seen.add((device, key))
            keep.append((path, device))
    if counted:
        click.echo(f"micmatch: warning: skipped {counted} file(s) already counted in {source}", err=True)
    if repeated:
        click.echo(f"micmatch: warning: skipped {repeated} input file(s) listed twice for one device (same content)",
                   err=True)
    return keep


def _correction_options(func):
    options = [
        click.option("--responses", "responses_path", type=click.Path(exists=True, dir_okay=False),
                     help="Responses JSON from 'micmatch profile' (or measure/pair). Required unless --model."),
        click.option("--device", help="Device that made the recordings. Required unless --model."),
        click.option("--reference",
                     help="Device to sound like; ':mean' (average of all devices), ':flat' (reference-free), or a "
                          "target curve CSV (frequency,raw as AutoEq writes it). Required unless --model."),
        click.option("--max-boost-db", default=20.0, show_default=True, type=FiniteFloatRange(min=0),
                     help="Largest boost of the correction."),
        click.option("--max-cut-db", default=30.0, show_default=True, type=FiniteFloatRange(min=0),
                     help="Largest cut of the correction."),
        click.option("--smooth", "smoothing", default=None, type=FiniteFloatRange(min=0),
                     help="Fractional-octave smoothing of the correction, e.g. 0.1667 for 1/6 octave."),
        click.option("--statistic", type=click.Choice(["log", "power"]), default="log", show_default=True,
                     help="Long-term statistic: log = geometric mean of magnitudes (the estimate of older profiles), "
                          "power = long-term average spectrum (needs a profile made by this version)."),
        click.option("--strength", type=FiniteFloatRange(0.0, 1.0), default=1.0, show_default=True,
                     help="Scale of the correction in dB (0 = none, 1 = full)."),
        click.option("--band", nargs=2, type=FINITE_FLOAT, default=None, metavar="LO HI", callback=band_range,
                     help="Band of the correction in Hz (raised-cosine edges to 0 dB outside). Default: where both "
                          "devices have signal, from their responses."),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def _load_correction(responses_path, device, reference, max_boost_db, max_cut_db, smoothing, statistic="log",
                     strength=1.0, band=None):
    from micmatch.correct import correction_curve, with_target_curve
    from micmatch.errors import ParameterError

    if responses_path is None or device is None or reference is None:
        raise click.UsageError("--responses, --device and --reference are required (or --model MODEL)")
    from micmatch.response import ResponseSet

    responses = ResponseSet.load(responses_path)
    if reference.lower().endswith(".csv"):
        from micmatch.longterm import read_target_curve

        curve = read_target_curve(reference, responses.frequencies)
        responses = with_target_curve(responses, device, curve, name=reference, statistic=statistic)
    if band is not None and not 0 <= band[0] < band[1]:
        raise ParameterError(f"--band {band[0]} {band[1]}: needs 0 <= LO < HI (Hz)")
    return correction_curve(responses, device, reference, max_boost_db=max_boost_db, max_cut_db=max_cut_db,
                            smoothing_octaves=smoothing, statistic=statistic, strength=strength,
                            limit_band=tuple(band) if band else "auto")


@click.command(**COMMON)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@_correction_options
@click.option("--method", type=click.Choice(["stft", "fir"]), default="stft", show_default=True,
              help="Apply as STFT-domain gain or as an FIR filter.")
@click.option("--n-taps", default=1025, show_default=True, callback=odd_n_taps, help="FIR length (odd).")
@click.option("--phase", type=click.Choice(["linear", "minimum"]), default="linear", show_default=True,
              help="FIR phase; linear phase is delay compensated (output aligned with input).")
@click.option("--overs", type=click.Choice(["scale", "float", "clip"]), default="scale", show_default=True,
              help="If the corrected audio exceeds full scale in an integer format: scale the file down to -0.1 dBFS "
                   "(keeps the format), write 32-bit float instead, or clip (with a count). One warning per batch.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes.")
@click.option("--resample", is_flag=True,
              help="Correct files at other sample rates too (the correction is re-sampled to each file's rate).")
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the corrected files (same names as the inputs; subfolders of input folders kept). "
                   "It may lie inside an input folder: it is then left out of the input walk.")
@click.option("--skip-existing", is_flag=True,
              help="Resume an interrupted batch: keep outputs that already exist (outputs appear only when "
                   "complete) and correct only the missing ones.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Apply a learned normalizer from 'micmatch train' instead of a responses file.")
@compute_option(default="cpu", help="Where --model runs: cpu, CUDA when available (auto), or cuda.")
def correct(inputs, responses_path, device, reference, max_boost_db, max_cut_db, smoothing, statistic, strength,
            band, method, n_taps, phase, overs, jobs, resample, output_dir, skip_existing, model_path, compute):
    """Correct recordings of one device so they sound as if the reference device made them.

    Outputs keep the input's format and subtype. Inputs are never modified; each output appears only when
    complete, so an interrupted batch rerun with --skip-existing corrects only what is missing. Files that fail
    are reported and skipped; the exit code is then 1.

    \b
    Example:
      micmatch correct recordings/phone --responses responses.json --device phone --reference studio -o matched/
      micmatch correct recordings/phone --model phone.mmm -o matched/
    """
    import functools

    if model_path is not None:
        _refuse_curve_options()
    exclude = prepare_output_dir(output_dir, inputs)
    if model_path is not None:
        sys.exit(_correct_with_model(inputs, model_path, output_dir, overs=overs, resample=resample, exclude=exclude,
                                     skip_existing=skip_existing, compute=compute))
    from micmatch.fir import design_fir

    corr = _load_correction(responses_path, device, reference, max_boost_db, max_cut_db, smoothing, statistic,
                            strength, band)
    _check_fir_memory(n_taps, corr, method)
    batch = plan_batch(output_paths(inputs, Path(output_dir), exclude=exclude), skip_existing=skip_existing)
    # One FIR design for the whole batch, passed to every worker.
    taps = design_fir(corr, n_taps=n_taps, phase=phase) if method == "fir" and batch.todo else None
    work = functools.partial(_correct_one, correction=corr, method=method, n_taps=n_taps, phase=phase, overs=overs,
                             resample=resample, taps=taps)
    outcome = batch.run(work, jobs=jobs, desc="correcting", summarize_overs=True)
    click.echo(f"corrected {outcome.n_done}/{outcome.n_planned} file(s) from {device} to {reference} "
               f"({method}) into {output_dir}{outcome.skipped_note()}")
    exit_with(outcome)


#: Options of ``correct`` that belong to the responses route and mean nothing with ``--model``.
_CURVE_OPTIONS = {"responses_path": "--responses", "device": "--device", "reference": "--reference",
                  "max_boost_db": "--max-boost-db", "max_cut_db": "--max-cut-db", "smoothing": "--smooth",
                  "statistic": "--statistic", "strength": "--strength", "band": "--band", "method": "--method",
                  "n_taps": "--n-taps", "phase": "--phase", "jobs": "--jobs"}


def _refuse_curve_options() -> None:
    """A usage error when ``--model`` comes with options it would ignore."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    given = [flag for name, flag in _CURVE_OPTIONS.items()
             if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)]
    if given:
        raise click.UsageError(f"{', '.join(given)} cannot be used with --model (a trained normalizer is applied "
                               f"as it is); drop {'it' if len(given) == 1 else 'them'} or drop --model")


def _correct_one(src, dst, *, correction, **options):
    from micmatch.correct import correct_file

    return correct_file(src, dst, correction, warn=False, **options)


def _correct_with_model(inputs, model_path: str, output_dir: str, *, overs: str, resample: bool, exclude=(),
                        skip_existing: bool = False, compute: str = "cpu") -> int:
    """``correct --model``: apply a trained normalizer to every audio file of ``inputs`` into ``output_dir``.

    The same output rule and batch behaviour as the other corrections (one line per bad file, ``skip_existing``);
    the model's own warnings are printed per file. Returns the exit code (1 when any file failed).
    """
    import functools

    from micmatch.learn.normalizer import Normalizer

    normalizer = Normalizer.load(model_path)
    work = functools.partial(_model_one, normalizer=normalizer, resample=resample, overs=overs, compute=compute)
    outcome = run_batch(output_paths(inputs, Path(output_dir), exclude=exclude), work, skip_existing=skip_existing,
                        desc="correcting")
    click.echo(f"corrected {outcome.n_done}/{outcome.n_planned} file(s) with {Path(model_path).name} "
               f"({normalizer.method}) into {output_dir}{outcome.skipped_note()}")
    return outcome.exit_code


def _model_one(src, dst, *, normalizer, **options):
    from micmatch.learn.normalizer import correct_file_with_model

    return correct_file_with_model(src, dst, normalizer, **options)


@click.command(name="export", **COMMON)
@click.argument("responses_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--device", required=True, help="Device whose recordings the correction is for.")
@click.option("--reference", required=True, help="Device to sound like (or ':mean', ':flat').")
@click.option("--format", "fmt", type=click.Choice(["csv", "wav", "equalizerapo", "parametric"]), required=True,
              help="csv: frequency_hz,gain_db; wav: impulse response for convolution plug-ins; "
                   "equalizerapo: a GraphicEQ line; parametric: peaking/shelving filters as EqualizerAPO Filter "
                   "lines, or a CamillaDSP YAML when the output ends in .yml/.yaml.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--max-boost-db", default=20.0, show_default=True, type=FiniteFloatRange(min=0))
@click.option("--max-cut-db", default=30.0, show_default=True, type=FiniteFloatRange(min=0))
@click.option("--smooth", "smoothing", default=None, type=FiniteFloatRange(min=0),
              help="Fractional-octave smoothing, e.g. 0.1667.")
@click.option("--statistic", type=click.Choice(["log", "power"]), default="log", show_default=True,
              help="Long-term statistic (see 'correct --help').")
@click.option("--strength", type=FiniteFloatRange(0.0, 1.0), default=1.0, show_default=True)
@click.option("--band", nargs=2, type=FINITE_FLOAT, default=None, metavar="LO HI",
              help="Band of the correction in Hz (default: where both devices have signal).")
@click.option("--n-taps", default=1025, show_default=True, callback=odd_n_taps,
              help="Impulse-response length for --format wav (odd).")
@click.option("--phase", type=click.Choice(["linear", "minimum"]), default="linear", show_default=True)
@click.option("--sample-rate", type=click.IntRange(min=1), default=None,
              help="Sample rate of the --format wav impulse response (redesigned from the curve); default: the "
                   "profile's.")
@click.option("--filters", "n_filters", default=10, show_default=True, type=click.IntRange(1, 30),
              help="Largest number of filters for --format parametric.")
def export_cmd(responses_path, device, reference, fmt, output, max_boost_db, max_cut_db, smoothing, statistic,
               strength, band, n_taps, phase, sample_rate, n_filters):
    """Export the correction from DEVICE to REFERENCE for use in other tools.

    \b
    Example:
      micmatch export responses.json --device phone --reference studio --format equalizerapo -o phone.txt
      micmatch export responses.json --device phone --reference studio --format wav -o phone_ir.wav
      micmatch export responses.json --device phone --reference studio --format parametric -o phone_peq.txt
      micmatch export responses.json --device phone --reference studio --format parametric -o phone.yml
    """
    from micmatch.exports import export

    prepare_output(output, [responses_path])
    corr = _load_correction(responses_path, device, reference, max_boost_db, max_cut_db, smoothing, statistic,
                            strength, band)
    _check_fir_memory(n_taps, corr, "fir" if fmt == "wav" else "none")
    options = {}
    if fmt == "wav":
        options = {"n_taps": n_taps, "phase": phase, "sample_rate": sample_rate}
    elif fmt == "parametric":
        options = {"n_filters": n_filters}
    path = export(corr, output, fmt, **options)
    click.echo(f"wrote {path} ({fmt}, {device} -> {reference})")


@click.command(name="plot", **COMMON)
@click.argument("responses_path", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG, SVG or PDF.")
@click.option("--reference", default=None,
              help="Also draw every device's correction towards this device (second panel).")
@click.option("--smooth", "smoothing", default=None, type=FiniteFloatRange(min=0),
              help="Fractional-octave smoothing for display.")
def plot_cmd(responses_path, output, reference, smoothing):
    """Plot the responses of all devices in a responses file (and their corrections to a reference).

    \b
    Example:
      micmatch plot responses.json -o responses.png --reference studio
    """
    from micmatch.plot import plot_responses
    from micmatch.response import ResponseSet

    check_plot_suffix(output, "-o")
    prepare_output(output, [responses_path])
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

    prepare_output_dir(output_dir, [])
    report = run_demo(Path(output_dir), n_clips=clips, seed=seed, progress=progress_enabled(),
                      echo=lambda s: click.echo(s))
    click.echo(f"report: {report}")


COMMANDS = [profile, correct, export_cmd, plot_cmd, demo]

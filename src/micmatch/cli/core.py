"""Core commands: profile, correct, export, plot, demo."""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path

import click

from micmatch import audio as audio_io
from micmatch.errors import AudioError, MicmatchError
from micmatch.outputs import prepare_output, prepare_output_dir

COMMON = {"context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 100}}


def _fail_line(message: str) -> None:
    click.echo(f"micmatch: error: {message}", err=True)


def _collect_files(inputs: tuple[str, ...]) -> list[Path]:
    files = audio_io.find_audio_files(inputs)
    if not files:
        raise AudioError(f"no audio files found in: {', '.join(inputs)}")
    return files


def _file_error(path, exc: BaseException) -> str:
    """One line for a file that failed: the project's message, or the OS's reason, naming the file once."""
    if isinstance(exc, MicmatchError):
        message = str(exc)
    else:
        message = getattr(exc, "strerror", None) or str(exc)
    return message if str(path) in message else f"{path}: {message}"


def _progress_enabled() -> bool:
    return sys.stderr.isatty()


# Option checks: a bad value is a usage error (one line, exit code 2) rather than a traceback from deep inside.
#: Largest FFT size and FIR length accepted (far beyond any use; larger ones only exhaust memory).
MAX_N_FFT = 1 << 24
MAX_N_TAPS = (1 << 20) + 1


def _even_n_fft(ctx, param, value: int) -> int:
    from micmatch.resources import check_memory, stats_bytes

    if value < 16 or value % 2 or value > MAX_N_FFT:
        raise click.BadParameter(f"{value} must be an even integer between 16 and {MAX_N_FFT}")
    try:
        check_memory(stats_bytes(value), f"--n-fft {value}")
    except MicmatchError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _odd_n_taps(ctx, param, value: int) -> int:
    if value < 3 or value % 2 == 0 or value > MAX_N_TAPS:
        raise click.BadParameter(f"{value} must be an odd integer between 3 and {MAX_N_TAPS} (a linear-phase "
                                 f"type I filter)")
    return value


def _check_fir_memory(n_taps: int, corr, method: str = "fir") -> None:
    """The FIR design's memory grows with n_taps times the number of bins: check before designing."""
    from micmatch.resources import check_memory, fir_design_bytes

    if method == "fir":
        check_memory(fir_design_bytes(n_taps, corr.gain_db.size), f"--n-taps {n_taps}")


def _finite_level(ctx, param, value: float) -> float:
    import math

    if not math.isfinite(value):
        raise click.BadParameter(f"{value} must be a finite level in dB")
    return value


def _relative_gate(ctx, param, value: float) -> float:
    import math

    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"{value} must be a finite number of dB >= 0 (0 disables the relative gate)")
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
@click.option("--gate-db", default=-80.0, show_default=True, callback=_finite_level,
              help="Frames quieter than this (windowed RMS, dB re full scale) are not counted.")
@click.option("--relative-gate-db", default=30.0, show_default=True, callback=_relative_gate,
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
    _check_n_fft_fits_an_input([f for f, _ in labelled], n_fft, sample_rate)
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
    from micmatch.audio import file_fingerprint, fingerprint_key

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
        click.option("--max-boost-db", default=20.0, show_default=True, type=click.FloatRange(min=0),
                     help="Largest boost of the correction."),
        click.option("--max-cut-db", default=30.0, show_default=True, type=click.FloatRange(min=0),
                     help="Largest cut of the correction."),
        click.option("--smooth", "smoothing", default=None, type=click.FloatRange(min=0),
                     help="Fractional-octave smoothing of the correction, e.g. 0.1667 for 1/6 octave."),
        click.option("--statistic", type=click.Choice(["log", "power"]), default="log", show_default=True,
                     help="Long-term statistic: log = geometric mean of magnitudes (the estimate of older profiles), "
                          "power = long-term average spectrum (needs a profile made by this version)."),
        click.option("--strength", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
                     help="Scale of the correction in dB (0 = none, 1 = full)."),
        click.option("--band", nargs=2, type=float, default=None, metavar="LO HI",
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
        from micmatch.match import read_target_curve

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
@click.option("--n-taps", default=1025, show_default=True, callback=_odd_n_taps, help="FIR length (odd).")
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
def correct(inputs, responses_path, device, reference, max_boost_db, max_cut_db, smoothing, statistic, strength,
            band, method, n_taps, phase, overs, jobs, resample, output_dir, skip_existing, model_path):
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

    from micmatch.fir import design_fir
    from micmatch.parallel import FileFailure, map_files

    exclude = prepare_output_dir(output_dir, inputs)
    if model_path is not None:
        from micmatch.cli.train import correct_with_model

        sys.exit(correct_with_model(inputs, model_path, output_dir, overs=overs, resample=resample,
                                    exclude=exclude, skip_existing=skip_existing))
    corr = _load_correction(responses_path, device, reference, max_boost_db, max_cut_db, smoothing, statistic,
                            strength, band)
    _check_fir_memory(n_taps, corr, method)
    targets = _output_paths(inputs, Path(output_dir), exclude=exclude)
    n_skipped = 0
    todo = targets
    if skip_existing:
        todo = [(src, dst) for src, dst in targets if not dst.is_file()]
        n_skipped = len(targets) - len(todo)
    # One FIR design for the whole batch, passed to every worker.
    taps = design_fir(corr, n_taps=n_taps, phase=phase) if method == "fir" and todo else None
    destination = dict(todo)
    work = functools.partial(_correct_one, destination=destination, correction=corr, method=method, n_taps=n_taps,
                             phase=phase, overs=overs, resample=resample, taps=taps)
    failures = 0
    actions: dict[str, list] = {}
    for _, result in map_files(work, [src for src, _ in todo], jobs=jobs, progress=_progress_enabled(),
                               desc="correcting"):
        if isinstance(result, FileFailure):
            failures += 1
            _fail_line(str(result))
        elif result.action != "ok":
            actions.setdefault(result.action, []).append(result)
    for action, results in actions.items():  # one line per kind of over, not one per file
        worst = max(r.peak for r in results)
        what = {"scaled": "were scaled down as a whole to keep their format", "float": "were written as 32-bit "
                "float to keep samples above full scale", "clipped": "were clipped at full scale"}[action]
        click.echo(f"micmatch: warning: {len(results)} file(s) exceeded full scale after correction (peak up to "
                   f"{20 * math.log10(max(worst, 1e-12)):+.1f} dBFS) and {what}; e.g. {results[0].input}", err=True)
    skipped = f" ({n_skipped} already there, skipped)" if n_skipped else ""
    click.echo(f"corrected {len(todo) - failures}/{len(targets)} file(s) from {device} to {reference} "
               f"({method}) into {output_dir}{skipped}")
    if failures:
        sys.exit(1)


def _correct_one(src, *, destination, correction, **options):
    from micmatch.correct import correct_file

    return correct_file(src, destination[src], correction, warn=False, **options)


def _output_paths(inputs: tuple[str, ...], outdir: Path, *, exclude=()) -> list[tuple[Path, Path]]:
    pairs: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for item in inputs:
        root = Path(item)
        files = audio_io.find_audio_files([root], exclude=exclude)
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
@click.option("--format", "fmt", type=click.Choice(["csv", "wav", "equalizerapo", "parametric"]), required=True,
              help="csv: frequency_hz,gain_db; wav: impulse response for convolution plug-ins; "
                   "equalizerapo: a GraphicEQ line; parametric: peaking/shelving filters as EqualizerAPO Filter "
                   "lines, or a CamillaDSP YAML when the output ends in .yml/.yaml.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--max-boost-db", default=20.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--max-cut-db", default=30.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--smooth", "smoothing", default=None, type=click.FloatRange(min=0),
              help="Fractional-octave smoothing, e.g. 0.1667.")
@click.option("--statistic", type=click.Choice(["log", "power"]), default="log", show_default=True,
              help="Long-term statistic (see 'correct --help').")
@click.option("--strength", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True)
@click.option("--band", nargs=2, type=float, default=None, metavar="LO HI",
              help="Band of the correction in Hz (default: where both devices have signal).")
@click.option("--n-taps", default=1025, show_default=True, callback=_odd_n_taps,
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
    report = run_demo(Path(output_dir), n_clips=clips, seed=seed, progress=_progress_enabled(),
                      echo=lambda s: click.echo(s))
    click.echo(f"report: {report}")


COMMANDS = [profile, correct, export_cmd, plot_cmd, demo]

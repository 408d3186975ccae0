"""Direct measurement commands: sweep (write a test signal), measure (sweep or click recording), pair (aligned
recordings of the same sound)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from micmatch import audio as audio_io
from micmatch.cli.common import (
    COMMON,
    FINITE_FLOAT,
    FiniteFloatRange,
    check_plot_suffix,
    progress_enabled,
)
from micmatch.errors import ConfigMismatchError, MeasurementError, MicmatchError
from micmatch.outputs import prepare_output
from micmatch.resources import check_memory
from micmatch.response import ResponseSet


def _write_responses(responses: ResponseSet, output: str, append: bool) -> ResponseSet:
    """Merge into an existing file when asked, then save atomically; the read-merge-write holds the file's lock,
    so concurrent ``--append`` writers all keep their devices."""
    return responses.save_merged(output, merge_from=output if append else None)


def _check_plot_path(plot_path: str | None, inputs) -> None:
    """Refuse a bad --plot path before any work, so a measurement is never lost to its plot."""
    if plot_path is None:
        return
    check_plot_suffix(plot_path, "--plot")
    prepare_output(plot_path, inputs, option="--plot")


@click.command(**COMMON)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="WAV file to write.")
@click.option("--duration", "duration_s", default=5.0, show_default=True, type=FiniteFloatRange(min=0, min_open=True),
              help="Sweep length (s), silences excluded.")
@click.option("--f-start", "f_start_hz", default=20.0, show_default=True, help="Start frequency (Hz).")
@click.option("--f-end", "f_end_hz", type=FINITE_FLOAT, default=None, help="End frequency (Hz). Default: 0.48 x sample rate.")
@click.option("--level", "level_db", default=-6.0, show_default=True, help="Peak level (dB re full scale).")
@click.option("--sample-rate", default=48000, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Sample rate (Hz).")
@click.option("--fade-in", "fade_in_s", default=0.05, show_default=True, help="Fade-in (s).")
@click.option("--fade-out", "fade_out_s", default=0.01, show_default=True, help="Fade-out (s).")
@click.option("--silence-before", "silence_before_s", default=0.0, show_default=True, help="Leading silence (s).")
@click.option("--silence-after", "silence_after_s", default=1.0, show_default=True,
              help="Trailing silence (s), so the response can decay in the recording.")
def sweep(output, duration_s, f_start_hz, f_end_hz, level_db, sample_rate, fade_in_s, fade_out_s,
          silence_before_s, silence_after_s):
    """Write an exponential sine sweep test signal (24-bit WAV) to play through a device.

    \b
    Example:
      micmatch sweep -o sweep.wav --duration 10 --sample-rate 48000
      (play sweep.wav through the device, record it as rec.wav, then)
      micmatch measure rec.wav --sweep sweep.wav --device phone -o responses.json
    """
    from micmatch.sweep import exponential_sweep

    prepare_output(output)
    total_s = duration_s + max(silence_before_s, 0.0) + max(silence_after_s, 0.0)
    if not math.isfinite(total_s):
        raise click.BadParameter(f"{total_s} s is not a finite length", param_hint="'--duration'")
    check_memory(total_s * sample_rate * 8 * 6, f"--duration {duration_s:g} at {sample_rate} Hz")
    signal = exponential_sweep(sample_rate, duration_s=duration_s, f_start_hz=f_start_hz, f_end_hz=f_end_hz,
                               level_db=level_db, fade_in_s=fade_in_s, fade_out_s=fade_out_s,
                               silence_before_s=silence_before_s, silence_after_s=silence_after_s)
    audio_io.save(output, signal, sample_rate, subtype="PCM_24")
    click.echo(f"wrote {output}: {signal.shape[-1] / sample_rate:.2f} s at {sample_rate} Hz", err=True)


@click.command(**COMMON)
@click.argument("recording", type=click.Path(exists=True, dir_okay=False))
@click.option("--sweep", "sweep_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The sweep WAV that was played (from `micmatch sweep`).")
@click.option("--impulse", is_flag=True, help="The recording holds one or more clicks/impulses instead of a sweep.")
@click.option("--device", required=True, help="Device name to store the response under.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Responses JSON to write.")
@click.option("--n-fft", default=2048, show_default=True, type=click.IntRange(16, 1 << 24),
              help="FFT size of the response; use the n_fft of the responses you combine it with.")
@click.option("--pre-ms", default=5.0, show_default=True, help="Time kept before the response peak (ms).")
@click.option("--append", is_flag=True, help="Merge into the existing output file instead of replacing it.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Also plot the response.")
def measure(recording, sweep_path, impulse, device, output, n_fft, pre_ms, append, plot_path):
    """Measure a device's response from a recorded sweep (--sweep) or recorded clicks (--impulse).

    \b
    Examples:
      micmatch measure rec.wav --sweep sweep.wav --device phone -o responses.json --plot phone.png
      micmatch measure claps.wav --impulse --device laptop -o responses.json --append
    """
    from micmatch.measure import measure_impulses, measure_sweep

    if (sweep_path is None) == (not impulse):
        raise click.UsageError("give exactly one of --sweep FILE or --impulse")
    inputs = [recording] + ([sweep_path] if sweep_path else [])
    prepare_output(output, inputs)
    _check_plot_path(plot_path, inputs)
    rec, sr = audio_io.load(recording, channels="mix", dtype="float64")
    if impulse:
        result = measure_impulses(rec, sr, n_fft=n_fft, pre_s=pre_ms / 1000.0)
    else:
        sw, sr_sweep = audio_io.load(sweep_path, channels="mix", dtype="float64")
        if sr_sweep != sr:
            raise ConfigMismatchError(
                f"{recording} is at {sr} Hz but {sweep_path} at {sr_sweep} Hz; record at the sweep's rate "
                f"(or write the sweep with --sample-rate {sr})"
            )
        try:
            result = measure_sweep(rec, sw, sr, n_fft=n_fft, pre_s=pre_ms / 1000.0)
        except MeasurementError as exc:
            raise MeasurementError(f"{recording}: {exc}") from None
    responses = result.to_response_set(device)
    _write_responses(responses, output, append)  # the measurement first: a plot failure cannot lose it
    click.echo(f"wrote {output}: {device} ({result.method}, peak {result.peak_to_noise_db:.0f} dB above noise, "
               f"found at {result.onset_samples[0] / sr:.3f} s)", err=True)
    if plot_path:
        from micmatch.plot import plot_measured_response

        plot_measured_response(responses, plot_path, title=f"{device}: {result.method} measurement")


@click.command(**COMMON)
@click.argument("reference", type=click.Path(exists=True, dir_okay=False))
@click.argument("devices", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Responses JSON to write.")
@click.option("--reference-name", default="reference", show_default=True, help="Name of the reference device.")
@click.option("--device-name", "device_names", multiple=True,
              help="Device name: once (every DEVICE file is that device) or once per DEVICE file. "
                   "Default: each file's name without extension.")
@click.option("--n-fft", default=2048, show_default=True, type=click.IntRange(16, 1 << 24), help="FFT size (samples).")
@click.option("--hop", "hop_length", default=512, show_default=True, help="Hop between frames (samples).")
@click.option("--max-offset", "max_offset_s", type=FINITE_FLOAT, default=None, help="Largest offset searched for (s).")
@click.option("--resample", is_flag=True, help="Resample device files at another rate to the reference's.")
@click.option("--append", is_flag=True, help="Merge into the existing output file instead of replacing it.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Plot the responses here, and each pair's alignment beside it (NAME.alignment-DEVICE.png).")
def pair(reference, devices, output, reference_name, device_names, n_fft, hop_length, max_offset_s, resample,
         append, plot_path):
    """Estimate devices relative to a reference from recordings of the same sound (aligned spectrum correction).

    REFERENCE is the reference device's recording; each DEVICE file is another device's recording of the same
    sound. Offset (seconds) and clock drift are found and removed; the response stored for a device is its mean
    log ratio to the reference in dB (the reference stores 0 dB). A bad pair is reported and skipped; the exit
    status is then 1.

    \b
    Example:
      micmatch pair studio.wav phone.wav laptop.wav -o responses.json --plot pairs.png
      micmatch correct phone_recordings/ --responses responses.json --device phone --reference reference -o out/
    """
    from micmatch.aligned import estimate_pair_files, merge_pairs

    if device_names and len(device_names) not in (1, len(devices)):
        raise click.UsageError(f"--device-name given {len(device_names)} times for {len(devices)} DEVICE files; "
                               f"give it once or once per file")
    names = [device_names[0] if len(device_names) == 1 else device_names[i] if device_names else Path(d).stem
             for i, d in enumerate(devices)]
    if reference_name in names:
        raise click.UsageError(f"device name {reference_name!r} is also the reference name; pick another "
                               f"--reference-name or --device-name")
    prepare_output(output, [reference, *devices])
    _check_plot_path(plot_path, [reference, *devices])
    results, failed = [], []
    show = progress_enabled() and len(devices) > 1
    from tqdm import tqdm

    for path, name in tqdm(list(zip(devices, names)), desc="pairs", unit="pair", disable=not show):
        try:
            res = estimate_pair_files(reference, path, resample_device=resample, reference_name=reference_name,
                                      device_name=name, n_fft=n_fft, hop_length=hop_length,
                                      max_offset_s=max_offset_s)
        except (MicmatchError, OSError) as exc:  # one line per pair, and the batch goes on
            failed.append(path)
            reason = exc if isinstance(exc, MicmatchError) else (exc.strerror or exc)
            click.echo(f"micmatch: error: {path}: {reason}", err=True)
            continue
        results.append((path, name, res))
        a = res.alignment
        click.echo(f"{path}: {name}: offset {a.offset_samples / a.sample_rate:+.6f} s, drift {a.drift_ppm:+.2f} ppm, "
                   f"{res.n_frames_used}/{res.n_frames_total} frames", err=True)
    if not results:
        raise MeasurementError(f"no pair could be analysed ({len(failed)} failed); nothing was written")
    responses = merge_pairs(r for _, _, r in results)
    _write_responses(responses, output, append)  # the measurement first: a plot failure cannot lose it
    if plot_path:
        from micmatch.plot import plot_alignment, plot_measured_response

        plot_measured_response(responses, plot_path, title=f"devices relative to {reference_name}")
        p = Path(plot_path)
        for i, (path, name, res) in enumerate(results):
            plot_alignment(res.alignment, p.with_name(f"{p.stem}.alignment-{i}-{name}{p.suffix}"),
                           title=f"{Path(path).name} vs {Path(reference).name}")
    click.echo(f"wrote {output}: {', '.join(responses)}", err=True)
    if failed:
        click.echo(f"micmatch: {len(failed)} of {len(devices)} pairs failed", err=True)
        sys.exit(1)


COMMANDS = [sweep, measure, pair]

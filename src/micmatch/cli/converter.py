"""``micmatch train converter``: train a many-to-many device converter (log-mel spectrograms, FiLM-conditioned
on response differences) for use as augmentation; :mod:`micmatch.cli` adds it to the ``train`` group."""

from __future__ import annotations

import sys

import click

from micmatch.cli.common import COMMON, check_mel_bands, compute_option


@click.command("converter", **COMMON)
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of recordings: any audio files (with --irs), or one sub-folder per device (with "
                   "--responses).")
@click.option("--irs", "irs_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder of device impulse responses: simulate phone/laptop devices from them.")
@click.option("--responses", type=click.Path(exists=True, dir_okay=False),
              help="Responses JSON (micmatch profile/pair/measure) naming each device sub-folder of --data.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Converter checkpoint to write (weights plus a JSON header).")
@click.option("--config", "preset", type=click.Choice(["cpu-smoke", "cpu-short", "full"]), default="cpu-smoke",
              show_default=True,
              help="Training budget: cpu-smoke (about 5 CPU-minutes on one thread), cpu-short (the same without "
                   "instance norms and step decay, for a few epochs) or full (meant for a GPU).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the configuration's epochs.")
@click.option("--discriminator", type=click.Choice(["per-domain", "conditional"]), default=None,
              help="One least-squares discriminator per device, or one conditioned on the device response "
                   "[per-domain].")
@click.option("--generator-norm", type=click.Choice(["instance", "none"]), default=None,
              help="Normalisation in the generator: instance (the paper's; the learned part then cannot move a "
                   "band's long-term level, only the offset does) or none [the configuration's].")
@click.option("--form", type=click.Choice(["stochastic", "offset", "pure"]), default=None,
              help="offset: the response difference added to the output; pure: the paper's form; stochastic: offset "
                   "plus a seeded noise input and a noise-floor path conditioned on each device's floor (measured "
                   "from its clips) [offset].")
@click.option("--devices", "n_devices", type=click.IntRange(1), default=None,
              help="Simulated devices drawn from --irs [cpu-smoke 6, full 12].")
@click.option("--max-clips", type=click.IntRange(2), default=None, help="Use at most this many clips [cpu-smoke 1200].")
@click.option("--exclude-irs", default="", metavar="NAMES",
              help="Comma-separated IR names (file stems) of --irs to leave out: the devices you will test on.")
@click.option("--n-mels", type=click.IntRange(8), default=None,
              help="Mel bands of the features [by rate: 40 below 16 kHz, 64 below 32 kHz, else 128].")
@click.option("--n-fft", type=click.IntRange(16), default=None,
              help="FFT size of the features [by rate: the largest power of two within 64 ms].")
@click.option("--hop-length", type=click.IntRange(1), default=None, help="Hop of the features [n_fft / 4].")
@compute_option(dest="torch_device", help="Where to train.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the device draw and the training.")
def converter(data_dir, irs_dir, responses, output, preset, epochs, discriminator, generator_norm, form, n_devices,
              max_clips, exclude_irs, n_mels, n_fft, hop_length, torch_device, seed) -> None:
    """Train one converter for all devices: it maps log-mel features of one device to any other, given the
    response difference (Unified Microphone Conversion, after "Unified Microphone Conversion: Many-to-Many Device
    Mapping via Feature-wise Linear Modulation").

    \b
    Examples:
      micmatch train converter --data ../shared/data/fsdd --irs ../shared/data/micirp/ir -o converter.pt
      micmatch train converter --data recordings/ --responses responses.json --config full --compute cuda -o c.pt
    """
    from micmatch.audio import find_audio_files, first_sample_rate
    from micmatch.learn.converter_train import train_converter_from_folder
    from micmatch.learn.engine import select_device
    from micmatch.outputs import prepare_output

    # Refuse at once what would fail only after minutes of simulation: an output over an input, no CUDA.
    prepare_output(output, [p for p in (data_dir, irs_dir, responses) if p])
    select_device(torch_device)
    files = find_audio_files([data_dir])
    if files:
        from micmatch.logmel import default_settings

        rate = first_sample_rate(files)
        defaults = default_settings(rate)
        check_mel_bands(rate, n_fft or defaults["n_fft"], n_mels or defaults["n_mels"])
    model = train_converter_from_folder(
        data_dir, irs=irs_dir, responses=responses, preset=preset, epochs=epochs, device=torch_device, seed=seed,
        discriminator=discriminator, norm=generator_norm, form=form, n_devices=n_devices, max_clips=max_clips, n_fft=n_fft, hop_length=hop_length,
        n_mels=n_mels, exclude_irs=[n.strip() for n in exclude_irs.split(",") if n.strip()], log=lambda line: click.echo(line, err=True))
    path = model.save(output)
    last = model.info["history"][-1]
    click.echo(f"wrote {path} (domains: {', '.join(model.info['domains'])}; last epoch: cycle "
               f"{last['cycle'] * model.config.scale_db:.2f} dB, identity {last['identity'] * model.config.scale_db:.2f}"
               f" dB; {model.info['train_seconds']:.0f} s)")
    skipped = model.info.get("skipped") or []
    if skipped:  # the model is written, but not from every clip asked for: say so in the exit code too
        click.echo(f"micmatch: warning: {len(skipped)} clip(s) of --data were skipped (listed above); the model "
                   f"was trained without them", err=True)
        sys.exit(1)


"""``micmatch train``: the group of training commands, and the device normalizers trained from calibration pairs
(ratio-net, eq-net); ``train converter`` lives in :mod:`micmatch.cli.converter` and joins the group in
:mod:`micmatch.cli`. A trained normalizer is applied by ``micmatch correct --model``."""

from __future__ import annotations

from pathlib import Path

import click

from micmatch.cli.common import COMMON, FiniteFloatRange, compute_option, progress_enabled
from micmatch.errors import AudioError


@click.group(**COMMON)
def train():
    """Train learned models: device normalizers from recordings of the same sound by the reference and the
    device (ratio-net, eq-net), or a many-to-many device converter for augmentation (converter).

    \b
    Examples:
      micmatch train ratio-net --reference studio.wav --device phone.wav -o phone.mmm
      micmatch train eq-net --pairs pairs.csv -o phone-eq.mmm --epochs 20
      micmatch correct recordings/phone --model phone.mmm -o matched/
      micmatch train converter --data corpus/ --irs irs/ -o converter.pt
    """


def _pair_options(func):
    options = [
        click.option("--reference", "references", multiple=True, type=click.Path(exists=True, dir_okay=False),
                     help="Reference recording; repeat for several pairs (paired in order with --device)."),
        click.option("--device", "devices", multiple=True, type=click.Path(exists=True, dir_okay=False),
                     help="Device recording of the same sound; repeat, in the order of --reference."),
        click.option("--pairs", "pairs_csv", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="CSV with columns reference,device (paths relative to the CSV) for many pairs."),
        click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
                     help="Model file to write (written only when training succeeds)."),
        click.option("--epochs", type=click.IntRange(min=1), default=None,
                     help="Training epochs (early stopping on the held-out part may stop sooner)."),
        compute_option(help="Where to train: CUDA when available (auto), or force cpu/cuda."),
        click.option("--init", "init_path", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Fine-tune this model (same method and sample rate) instead of starting afresh."),
        click.option("--resample", is_flag=True, help="Resample device recordings at another rate to the reference's."),
        click.option("--seed", default=0, show_default=True, help="Seed of the weights and the batch order."),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def _load_pairs(references, devices, pairs_csv, resample, *, output, init_path):
    """Read the pair list, apply the output rule to ``output`` (never an input, a file the CSV lists, or the
    ``--init`` model), then load the pairs."""
    from micmatch.outputs import prepare_output
    from micmatch.pairs import load_pair, read_pairs_csv

    if len(references) != len(devices):
        raise click.UsageError(f"{len(references)} --reference but {len(devices)} --device; give them in pairs")
    items = list(zip(references, devices))
    if pairs_csv:
        items += read_pairs_csv(pairs_csv)
    if not items:
        raise click.UsageError("give --reference/--device pairs or --pairs CSV")
    for path in (p for pair in items for p in pair):
        if Path(path).is_dir():
            raise AudioError(f"{path}: is a folder, not a recording; list recordings in the pairs")
    inputs = [p for pair in items for p in pair] + [p for p in (pairs_csv, init_path) if p]
    prepare_output(output, inputs)
    return [load_pair(r, d, resample_to_reference=resample) for r, d in items]


def _finish(normalizer, output, pairs):
    """Compare the model with no correction and the static correction on the held-out ends of the pairs, write
    it (the figures go into its summary) and report in one line, plus one warning line when it lost."""
    from micmatch.cli.common import warn_line
    from micmatch.learn.heldout import compare_on_pairs, comparison_lines
    from micmatch.pairs import VALIDATION_FRACTION

    figures = compare_on_pairs(pairs, lambda x: normalizer.apply(x, normalizer.sample_rate, compute="cpu"),
                               validation_fraction=VALIDATION_FRACTION)
    normalizer.summary["heldout_comparison"] = figures
    path = normalizer.save(output)
    s = normalizer.summary
    before, after = s.get("validation_lsd_uncorrected_db"), s.get("validation_lsd_db")
    lsd = f"validation LSD {before:.2f} -> {after:.2f} dB" if before is not None and after is not None else \
        "no validation LSD (held-out part too short)"
    click.echo(f"wrote {path} ({normalizer.method}, {normalizer.sample_rate} Hz): {lsd} after {s['epochs_run']} "
               f"epoch(s), {s['train_time_s']:.0f} s")
    line, warning = comparison_lines(figures)
    click.echo(line)
    if warning:
        warn_line(warning)


def _init(init_path):
    if init_path is None:
        return None
    from micmatch.learn.normalizer import Normalizer

    return Normalizer.load(init_path)


@train.command(name="ratio-net", **COMMON)
@_pair_options
@click.option("--context", default=0, show_default=True, type=click.IntRange(0, 256),
              help="STFT frames on each side fed to the network with the current one.")
@click.option("--hidden", default=1024, show_default=True, type=click.IntRange(1, 1 << 20),
              help="Units per hidden layer.")
@click.option("--long-term-weight", default=1.0, show_default=True, type=FiniteFloatRange(min=0),
              help="Weight of the long-term-spectrum term added to the LSD loss.")
def ratio_net(references, devices, pairs_csv, output, epochs, compute, init_path, resample, seed, context, hidden,
              long_term_weight):
    """Spectral-ratio network: predicts a gain per STFT bin and frame from the device's spectrum.

    The method of "A Frequency Response Normalization Method based on Deep Neural Networks for IoT Devices":
    3 hidden layers, ReLU, dropout, Adam, trained on the log-spectral distance to the reference. The pairs are
    aligned first (offset and clock drift); the last 20% of each is held out for early stopping, and at the end
    for one line comparing the model with no correction and with the static correction (aligned spectrum
    correction fitted on the first 80%); a warning line follows when the model is worse than the static one.
    """
    from micmatch.learn.normalizer_train import fit_ratio_net
    from micmatch.learn.ratio_net import default_n_fft
    from micmatch.resources import check_memory

    pairs = _load_pairs(references, devices, pairs_csv, resample, output=output, init_path=init_path)
    # Features (every frame with its context), weights with their gradients and Adam's moments, one batch: refuse
    # sizes that cannot fit before allocating anything.
    n_bins = default_n_fft(pairs[0].sample_rate) // 2 + 1
    n_in = (2 * context + 1) * n_bins
    n_frames = sum(p.device.shape[-1] for p in pairs) / (default_n_fft(pairs[0].sample_rate) / 4)
    n_params = n_in * hidden + 2 * hidden * hidden + hidden * n_bins
    check_memory(4.0 * (n_frames * (n_in + 2 * n_bins) + 4 * n_params + 256 * (n_in + 3 * hidden)),
                 f"--hidden {hidden} --context {context}")
    model = fit_ratio_net(pairs, context=context, hidden=hidden, long_term_weight=long_term_weight,
                          epochs=epochs or 60, seed=seed, compute=compute, init=_init(init_path),
                          progress=progress_enabled())
    _finish(model, output, pairs)


@train.command(name="eq-net", **COMMON)
@_pair_options
@click.option("--channels", default=16, show_default=True, type=click.IntRange(1, 1 << 14),
              help="Front-end filters (the paper used 128; fewer train faster on CPU).")
@click.option("--autoencoder-epochs", default=5, show_default=True, type=click.IntRange(min=0),
              help="Epochs of the first, unsupervised step.")
@click.option("--stft-loss-weight", default=1.0, show_default=True, type=FiniteFloatRange(min=0),
              help="Weight of a multi-resolution STFT loss added to the waveform MAE.")
def eq_net(references, devices, pairs_csv, output, epochs, compute, init_path, resample, seed, channels,
           autoencoder_epochs, stft_loss_weight):
    """End-to-end equalization CNN on the waveform ("End-to-end equalization with convolutional neural
    networks", DAFx 2018): adaptive front end, latent dense layers, synthesis back end; 4096-sample windows.
    The held-out comparison with the static correction is printed as for ratio-net."""
    from micmatch.learn.normalizer_train import fit_eq_net
    from micmatch.resources import check_memory

    pairs = _load_pairs(references, devices, pairs_csv, resample, output=output, init_path=init_path)
    # A batch of 4096-sample windows through every channel, forward and backward (several FFT-sized buffers each).
    check_memory(4.0 * 4 * channels * 8192 * 16, f"--channels {channels}")
    model = fit_eq_net(pairs, channels=channels, epochs_autoencoder=autoencoder_epochs,
                       stft_loss_weight=stft_loss_weight, epochs=epochs or 40, seed=seed, compute=compute,
                       init=_init(init_path), progress=progress_enabled())
    _finish(model, output, pairs)


COMMANDS = [train]

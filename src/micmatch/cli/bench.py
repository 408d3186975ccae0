"""``micmatch bench ...``: benchmark suites (``bench mismatch``: the device-mismatch benchmark)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from micmatch.bench.recipes import RECIPES
from micmatch.cli.common import FINITE_FLOAT, FiniteFloatRange
from micmatch.errors import CorpusError


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _known_recipes() -> str:
    def spelled(name, r):
        if not r.argument:
            return name
        return f"{name}[:{r.argument}]" if r.argument_optional else f"{name}:{r.argument}"

    return ", ".join(spelled(name, r) for name, r in RECIPES.items())


@click.group("bench")
def bench() -> None:
    """Benchmarks that show what micmatch's remedies are worth."""


@bench.command("mismatch")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Corpus folder with metadata.csv (filename, label, optional device and split).")
@click.option("--irs", "irs_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of device impulse responses: the simulated devices.")
@click.option("--aug-irs", "aug_irs_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder of augmentation impulse responses for dir-aug and umc (must not hold a test device).")
@click.option("--aug-from-rest", is_flag=True,
              help="Use the --irs files that are not benchmark devices as augmentation IRs (a seeded split).")
@click.option("--exclude-aug-irs", default=None, metavar="NAMES",
              help="Comma-separated IR names to leave out of the augmentation set (--aug-irs or --aug-from-rest).")
@click.option("--recipes", default="baseline,ideal,sc", show_default=True,
              help="Comma-separated recipes; combine remedies with + (e.g. sc+mixup); a recipe that takes a file "
                   f"is written name:PATH. Known: {_known_recipes()}.")
@click.option("--seeds", "n_seeds", default=None, type=click.IntRange(1),
              help="Number of training seeds (0, 1, ...) per recipe [3; quick 2].")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for results.md, results.json, accuracy.png (and umc-converter.pt after recipe umc).")
@click.option("--quick", is_flag=True,
              help="Reduced configuration (600 training and 150 test clips, 2 unseen and 1 seen device, 10 epochs, "
                   "2 seeds): a few minutes on two CPU cores.")
@click.option("--calibration-clips", type=click.IntRange(1), default=None,
              help="Unlabeled clips per unseen device for sc / device-std in the generalize track  "
                   "[default: 16, quick: 8].")
@click.option("--track", type=click.Choice(["generalize", "adapt"]), default="generalize", show_default=True,
              help="generalize: unseen devices never heard before the test. adapt: each unseen device is known by "
                   "--adapt-clips unlabeled clips set aside from the training split (never trained on, never test "
                   "clips); sc and device-std calibrate on them, recipe known-aug augments towards them, and umc / "
                   "umc-synth train their converter on them and the reference's clips.")
@click.option("--adapt-clips", type=click.IntRange(1), default=200, show_default=True,
              help="Unlabeled clips each unseen device records in --track adapt (at most half the training split).")
@click.option("--seen", "n_seen", type=click.IntRange(0), default=None, help="Number of seen devices [2; quick 1].")
@click.option("--unseen", "n_unseen", type=click.IntRange(0), default=None,
              help="Number of unseen devices [6; quick 2].")
@click.option("--seen-devices", help="Comma-separated IR names to use as seen devices (instead of a draw).")
@click.option("--unseen-devices", help="Comma-separated IR names to use as unseen devices (instead of a draw).")
@click.option("--reference", help="IR name of the reference device [default: the original recordings].")
@click.option("--seen-fraction", type=FiniteFloatRange(0, 1, max_open=True), default=None,
              help="Share of training clips recorded by each seen device [0.075].")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Training epochs [20; quick 10].")
@click.option("--noise-floor-db", type=FINITE_FLOAT, default=None,
              help="Noise floor of every simulated device (dBFS); only with --no-device-chain.")
@click.option("--device-chain/--no-device-chain", default=True, show_default=True,
              help="Record each simulated device through its impulse response and a phone/laptop chain drawn from "
                   "--data-seed (band limits, noise floor, compressor or AGC, level, soft clipping); "
                   "--no-device-chain: the impulse response alone.")
@click.option("--umc-epochs", type=click.IntRange(1), default=None,
              help="Epochs of the converter that recipe umc trains in the run [10; quick 3].")
@click.option("--umc-preset", type=click.Choice(["cpu-smoke", "cpu-short", "full"]), default=None,
              help="Size and schedule of that converter (as micmatch train converter --config) [cpu-smoke].")
@click.option("--umc-generator-norm", type=click.Choice(["instance", "none"]), default=None,
              help="Normalisation in that converter's generator (see micmatch train converter --help) "
                   "[the preset's].")
@click.option("--umc-form", type=click.Choice(["stochastic", "offset", "pure"]), default=None,
              help="Form of that converter: stochastic (seeded noise input and a noise-floor path, conditioned on "
                   "each device's floor too), offset (the response difference added to its output) or pure (the "
                   "paper's) [stochastic in --track adapt, else offset].")
@click.option("--umc-discriminator", type=click.Choice(["per-device", "conditional"]), default=None,
              help="One discriminator per device domain (the paper's) or one conditioned on the domain's response "
                   "[conditional in --track adapt, else per-device].")
@click.option("--sc-level", type=click.Choice(["match", "keep", "auto"]), default="auto", show_default=True,
              help="What the sc recipe does to each device's overall level: match it to the reference's, keep "
                   "it and correct tone only (safer with few calibration clips, whose content sets the measured "
                   "level as much as the device does), or auto: for a device with a noise floor lower it to the "
                   "reference's but never raise it (a boost would raise the floor too), match it for the others.")
@click.option("--n-fft", type=click.IntRange(16, 1 << 16), default=None,
              help="Log-mel FFT size [the rate's default: the largest power of two within 64 ms; 512 at 8 kHz]. "
                   "The README's recorded tables used --n-fft 256 --hop-length 128 --n-mels 40.")
@click.option("--hop-length", type=click.IntRange(1, 1 << 16), default=None, help="Log-mel hop [n_fft / 4].")
@click.option("--n-mels", type=click.IntRange(1, 512), default=None,
              help="Mel bands [40 below 16 kHz, 64 below 32 kHz, else 128; quick 32].")
@click.option("--data-seed", type=int, default=0, show_default=True,
              help="Seed of the device draw, split, seen-clip and calibration-clip choices.")
@click.option("--compute", "compute", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Torch compute device: auto, cpu or cuda (as in micmatch train)  [default: auto].")
# Old spelling of --compute, kept for one release (goes in the next one): --device names a recording device
# everywhere else.
@click.option("--device", "old_device", default=None, hidden=True)
def mismatch(data_dir, irs_dir, aug_irs_dir, aug_from_rest, exclude_aug_irs, recipes, n_seeds, out_dir, quick, calibration_clips,
             track, adapt_clips, n_seen, n_unseen, seen_devices, unseen_devices, reference, seen_fraction, epochs, noise_floor_db,
             device_chain, umc_epochs, umc_preset, umc_generator_norm, umc_form, umc_discriminator, sc_level, n_fft, hop_length, n_mels, data_seed,
             compute, old_device) -> None:
    """Train one classifier per recipe and seed on simulated devices and score every device.

    \b
    Each simulated device is an impulse response from --irs plus a phone/laptop recording chain drawn for it
    from --data-seed (band limits, noise floor, compressor or AGC, level, soft clipping); --no-device-chain
    keeps the impulse response alone. Recipes are listed under --recipes. Features, normalizations and
    augmentations run batched in torch on --compute, with the classifier. Recipe umc trains a device converter
    on the augmentation devices first (--umc-epochs); umc:CONVERTER uses one from `micmatch train converter`;
    umc-synth converts towards synthetic response differences.

    \b
    --track adapt scores the devices as known ones: each unseen device records --adapt-clips unlabeled clips
    set aside from the training split; sc and device-std calibrate on them, known-aug augments towards them,
    and umc trains its converter on them and the reference's clips (conditioned on micmatch's estimate of
    each device).

    \b
    Example:
      micmatch bench mismatch --data ../shared/data/fsdd --irs ../shared/data/micirp/ir --aug-from-rest \\
          --recipes baseline,ideal,sc,dir-aug --seeds 3 -o bench-out
    """
    from micmatch.bench.mismatch import MismatchConfig, run_benchmark, write_results
    from micmatch.outputs import prepare_output_dir

    if old_device is not None:
        if compute is not None and compute != old_device:
            raise CorpusError(f"--compute {compute} and --device {old_device} disagree; pass --compute only")
        click.echo("micmatch: warning: bench mismatch --device is deprecated and will be removed in the next "
                   "release; use --compute", err=True)
    torch_device = compute or old_device or "auto"

    prepare_output_dir(out_dir, [d for d in (data_dir, irs_dir, aug_irs_dir) if d])
    overrides = {k: v for k, v in dict(calibration_clips=calibration_clips, n_seen=n_seen, n_unseen=n_unseen,
                                       seen_fraction=seen_fraction, epochs=epochs,
                                       noise_floor_db=noise_floor_db, umc_epochs=umc_epochs,
                                       umc_preset=umc_preset, n_fft=n_fft, hop_length=hop_length,
                                       n_mels=n_mels).items()
                 if v is not None}
    if noise_floor_db is not None and device_chain:
        raise CorpusError("--noise-floor-db sets one noise floor for every device, but each device's chain draws "
                          "its own: add --no-device-chain to use it")
    overrides.update(data_seed=data_seed, device=torch_device, device_chain=device_chain, track=track,
                     adapt_clips=adapt_clips, sc_level=sc_level,
                     umc_norm=umc_generator_norm, umc_form=umc_form, umc_discriminator=umc_discriminator)
    config = MismatchConfig.quick(**overrides) if quick else MismatchConfig(**overrides)
    n_seeds = n_seeds or (2 if quick else 3)
    recipe_list = _names(recipes)
    if not recipe_list:
        raise CorpusError("--recipes is empty; name at least one recipe (e.g. baseline,ideal,sc)")
    result = run_benchmark(data_dir, irs_dir, recipes=recipe_list, seeds=list(range(n_seeds)), config=config,
                           aug_irs_dir=aug_irs_dir, aug_from_rest=aug_from_rest, reference=reference,
                           seen=_names(seen_devices), unseen=_names(unseen_devices),
                           exclude_aug_irs=_names(exclude_aug_irs) or (),
                           log=lambda line: click.echo(line, err=True))
    command = "micmatch " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    paths = write_results(result, out_dir, command=command)
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


@bench.command("merge")
@click.argument("parts", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the merged results.md, results.json and accuracy.png.")
def merge(parts, out_dir) -> None:
    """Merge results.json files of one mismatch benchmark run in parts (same devices, settings, seeds).

    \b
    Example:
      micmatch bench merge part1/results.json part2/results.json -o bench-out
    """
    from micmatch.bench.mismatch import load_result, merge_results, write_results
    from micmatch.outputs import prepare_output, prepare_output_dir

    prepare_output_dir(out_dir, [])
    for name in ("results.json", "results.md", "accuracy.png"):  # a part must not be overwritten by the merge
        prepare_output(Path(out_dir) / name, parts)
    results = [load_result(p) for p in parts]
    commands = [r.info.get("command") for r in results if r.info.get("command")]
    merged = merge_results(results)
    paths = write_results(merged, out_dir, command=" && ".join(commands) or None)
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


COMMANDS = [bench]

"""``micmatch features``: precompute log-mel features with a chosen normalization, for training elsewhere."""

from __future__ import annotations

import functools
from pathlib import Path

import click
import numpy as np

from micmatch import audio as audio_io
from micmatch import extract
from micmatch import features as F
from micmatch import registry, validate
from micmatch.cli.batch import run_batch
from micmatch.cli.common import COMMON, FINITE_FLOAT, FiniteFloatRange, check_mel_bands, fail_line
from micmatch.errors import MicmatchError, ParameterError



def _normalization(ctx, param, value: str) -> str:
    """Resolve a --normalization name through the registry; old names print one deprecation line."""
    if value == "none":
        return value
    new = registry.canonical(value, warn=False)
    if new != value:
        click.echo(f"micmatch: warning: --normalization {value} is deprecated and will be removed in the next "
                   f"release; use --normalization {new}", err=True)
    if new not in registry.names("normalization"):
        raise click.BadParameter(f"{value!r} is not one of none, {', '.join(registry.names('normalization'))}")
    return new


def _extract(path: Path, cfg: F.LogMelConfig, *, resample: bool, n_samples: int | None, entry, params: dict,
             band_db: np.ndarray | None) -> tuple[np.ndarray, int]:
    """One file's features ``(n_bands, n_frames)`` with its per-recording normalization, and its audio frames."""
    if entry is not None and entry.input == "mel":
        mel, n_audio = extract.file_mel(path, cfg, n_samples=n_samples, resample=resample)
        if band_db is not None:  # the correction as a power gain on linear mel energies
            mel *= np.power(10.0, band_db / 10.0).astype(np.float32)[:, None]
        if "input_scale" in params:  # scale our own array in place: one copy less of a long file's features
            mel *= np.float32(params["input_scale"])
            params = {**params, "input_scale": 1.0}
        return entry.numpy(mel, config=cfg, **params).astype(np.float32, copy=False), n_audio
    feats, n_audio = extract.file_log_mel(path, cfg, n_samples=n_samples, resample=resample)
    if band_db is not None:
        feats += band_db.astype(np.float32)[:, None]
    if entry is not None and not entry.fitted:
        feats = entry.numpy(feats, config=cfg, **params).astype(np.float32, copy=False)
    return feats, n_audio


def _extract_one(path: Path, _output, *, band_db_of: dict, **options) -> tuple[np.ndarray, int]:
    """The batch's per-file work: :func:`_extract` with the file's own spectrum correction."""
    return _extract(path, band_db=band_db_of[path], **options)


def _feature_stats(entry, items, devices, cfg, stats_path, params):
    """The entry's feature statistics: read from ``stats_path``, or fitted on ``items``."""
    if stats_path is not None:
        return entry.load(stats_path, config=cfg)
    return entry.fit(items, config=cfg, devices=devices, **params)


def _new_spelling(new, old, new_flag: str, old_flag: str):
    """The value of an option given under its new or its old (hidden, deprecated) name."""
    if old is None:
        return new
    if new is not None and new != old:
        raise ParameterError(f"{new_flag} and {old_flag} disagree; pass {new_flag} only")
    click.echo(f"micmatch: warning: {old_flag} is deprecated and will be removed in the next release; use "
               f"{new_flag}", err=True)
    return old


def _frames(frames: int | None, duration_s: float | None, cfg: F.LogMelConfig) -> int | None:
    """Samples per clip for the fixed layout, from --frames or --duration-s (None: ragged)."""
    if frames is not None and duration_s is not None:
        raise ParameterError("pass --frames or --duration-s, not both")
    if frames is not None:
        return extract.samples_for_frames(frames, cfg)
    if duration_s is not None:
        return max(1, int(round(validate.positive_float(duration_s, "--duration-s") * cfg.sample_rate)))
    return None


@click.command(**COMMON)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Features file (.npz) to write.")
@click.option("--normalization", default="none", show_default=True, callback=_normalization, metavar="NAME",
              help="none; " + registry.help_text("normalization") + ". Old names (mean, medfilt, per-device, pcen) "
                   "still work for one release. sc needs --responses and --reference (which also combine with any "
                   "other normalization).")
@click.option("--sample-rate", type=int, default=None, help="Feature rate in Hz. Default: the first file's rate.")
@click.option("--resample", is_flag=True, help="Resample files at other rates (otherwise they are reported).")
@click.option("--n-fft", default=None, type=click.IntRange(16, 1 << 24),
              help="FFT size (samples) [by rate: the largest power of two within 64 ms, e.g. 512 at 8 kHz, 1024 at "
                   "16 kHz, 2048 at 44.1 kHz; or --feature-stats' setting].")
@click.option("--hop", "hop_length", type=click.IntRange(1), default=None, help="Hop between frames (samples) [n_fft / 4].")
@click.option("--n-mels", type=click.IntRange(1), default=None,
              help="Mel bands [by rate: 40 below 16 kHz, 64 below 32 kHz, else 128].")
@click.option("--fmin", default=0.0, show_default=True, help="Lowest mel edge (Hz).")
@click.option("--fmax", type=FINITE_FLOAT, default=None, help="Highest mel edge (Hz). Default: Nyquist.")
@click.option("--n-ceps", type=int, default=None, help="Cepstral coefficients kept by --normalization cms.")
@click.option("--frames", type=int, default=None,
              help="Crop or zero-pad every clip to this many frames: features of shape (N, n_mels, FRAMES).")
@click.option("--duration-s", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="Crop or zero-pad every clip to this duration (s): features of shape (N, n_mels, T).")
@click.option("--device-from", default="dir", show_default=True,
              help="Device label of each file (stored; used by device-std and --responses): 'dir', "
                   "'regex:PATTERN', 'csv:FILE' or 'name:DEVICE'.")
@click.option("--label-from", default=None,
              help="Class label of each file, stored for training: 'dir', 'regex:PATTERN', 'csv:FILE' (a metadata "
                   "CSV with columns filename and label) or 'name:LABEL'. Default: no labels.")
@click.option("--classes-from", default=None, metavar="FILE.npz|A,B,...",
              help="Class list for label_index: a training features file (its classes) or comma-separated names, so "
                   "that a test set holding some classes only gets the training indices. Default: this set's labels.")
@click.option("--split", "split_name", default=None, metavar="NAME",
              help="Keep only the files whose 'split' column is NAME in the metadata CSV of --label-from or "
                   "--device-from csv:FILE (e.g. train or test).")
@click.option("--responses", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Responses JSON: spectrum-correct each file's features from its device towards --reference.")
@click.option("--reference", default=None, help="Reference device for --responses.")
@click.option("--feature-stats", "stats_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Use these fitted feature statistics (device-std, gms, gmsvn; a JSON file written by "
                   "--save-feature-stats) instead of fitting them on INPUTS (test sets); the feature settings "
                   "(rate, n_fft, hop, n_mels, fmin, fmax) default to the ones stored there.")
@click.option("--save-feature-stats", "save_stats", type=click.Path(dir_okay=False), default=None,
              help="Write the feature statistics fitted on INPUTS here (JSON), to apply them to other sets later.")
# Old spellings of the two options above, kept for one release (they go in the next one): "normalizer" now
# names only the trained networks of micmatch train.
@click.option("--normalizer", "old_stats_path", type=click.Path(exists=True, dir_okay=False), default=None,
              hidden=True)
@click.option("--save-normalizer", "old_save_stats", type=click.Path(dir_okay=False), default=None, hidden=True)
@click.option("--skip-existing", is_flag=True,
              help="Resume: if the output file already exists (outputs appear only when complete), do nothing.")
@click.pass_context
def features(ctx, inputs, output, normalization, sample_rate, resample, n_fft, hop_length, n_mels, fmin, fmax,
             n_ceps, frames, duration_s, device_from, label_from, classes_from, split_name, responses, reference,
             stats_path, save_stats, old_stats_path, old_save_stats, skip_existing):
    """Compute log-mel features of audio files with one normalization and save them in one .npz file.

    With --frames or --duration-s every clip is cropped or zero-padded to one length and 'features' is
    (N, n_mels, T) float32 with 'lengths' (frames holding audio). Otherwise 'features' is (n_mels, total_frames),
    the clips one after another, and clip i is features[:, offsets[i]:offsets[i+1]]. Both layouts hold 'files',
    'devices', 'labels' and 'label_index' (with --label-from; -1 where none), 'classes', 'config' (the feature
    configuration as JSON), 'normalization' and 'settings' (JSON). numpy.load(path) reads it (no pickle);
    micmatch.extract.load_features too. Long files are read in blocks, so memory stays near the size of the
    features. Files that cannot be used are reported and skipped; the exit code is then 1.

    \b
    Example:
      micmatch features recordings/ -o train.npz --normalization gms --save-feature-stats gms.json
      micmatch features test/ -o test.npz --normalization gms --feature-stats gms.json --classes-from train.npz
      micmatch features clips/ -o feats.npz --sample-rate 22050 --resample --n-mels 80 --duration-s 1 \\
          --label-from csv:clips/metadata.csv
    """
    from micmatch.corpus import label_files
    from micmatch.outputs import prepare_output

    stats_flag = "--normalizer" if old_stats_path and not stats_path else "--feature-stats"
    save_flag = "--save-normalizer" if old_save_stats and not save_stats else "--save-feature-stats"
    stats_path = _new_spelling(stats_path, old_stats_path, "--feature-stats", "--normalizer")
    save_stats = _new_spelling(save_stats, old_save_stats, "--save-feature-stats", "--save-normalizer")
    read = [*inputs, *(p for p in (responses, stats_path) if p)]
    prepare_output(output, read)
    if Path(output).suffix.lower() != ".npz":
        raise click.BadParameter(f"{output}: features are written as a NumPy .npz archive; use a .npz file name",
                                 param_hint="'-o'")
    if save_stats:
        prepare_output(save_stats, read, option=save_flag)
    if skip_existing and Path(output).is_file() and (not save_stats or Path(save_stats).is_file()):
        click.echo(f"{output} exists: skipped (--skip-existing)", err=True)
        return
    files = audio_io.find_audio_files(inputs)
    if not files:
        raise MicmatchError(f"no audio files found in: {', '.join(inputs)}")
    if (responses is None) != (reference is None):
        raise MicmatchError("--responses and --reference go together: pass both to spectrum-correct, or neither")
    if normalization == "sc" and responses is None:
        raise MicmatchError("--normalization sc needs --responses and --reference (the measured device responses)")
    entry = None if normalization == "none" else registry.get(normalization, kind="normalization")
    # Entries fitted on the features themselves; sc takes its state from --responses instead.
    on_features = entry is not None and entry.fitted and entry.fit_domain == "log-mel"
    with_files = [e.name for e in registry.entries("normalization") if e.load is not None]
    if stats_path and (entry is None or entry.load is None):
        raise MicmatchError(f"{stats_flag} applies to {', '.join(with_files)}, not --normalization {normalization}")
    params = {} if entry is None else entry.parameters({"n_ceps": n_ceps} if "n_ceps" in entry.params else None)
    if split_name is not None:
        files, dropped = _in_split(files, split_name, label_from, device_from)
        click.echo(f"--split {split_name}: {len(files)} file(s) kept, {dropped} in other splits left out", err=True)
        if not files:
            raise MicmatchError(f"--split {split_name}: no file of that split")
    labels, problems = label_files(files, device_from, what="device")
    classes = label_files(files, label_from)[0] if label_from else [None] * len(files)
    failed = len(problems)
    for p in problems:
        fail_line(p)
    if label_from:
        for path, lab, dev in zip(files, classes, labels):
            if lab is None and dev is not None:
                failed += 1
                fail_line(f"{path}: no label from --label-from {label_from}")
    class_list = _class_list(classes_from) if classes_from else None
    if class_list is not None:
        known = set(class_list)
        for path, lab in zip(files, classes):
            if lab is not None and lab not in known:
                failed += 1
                fail_line(f"{path}: label {lab!r} is not one of --classes-from's {len(class_list)} classes")
        classes = [lab if lab is None or lab in known else None for lab in classes]
    mel_settings = {"n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels, "fmin": fmin, "fmax": fmax}
    if stats_path and entry is not None and entry.load is not None and all(
            mel_settings[k] is None for k in ("n_fft", "hop_length", "n_mels", "fmax")) and fmin == 0.0:
        stored = entry.load(stats_path).config  # the settings the statistics were fitted with (JSON)
        if stored is not None:
            stored = F.LogMelConfig.from_json(stored)
            sample_rate = stored.sample_rate if sample_rate is None else sample_rate
            mel_settings = {k: getattr(stored, k) for k in mel_settings}
    if sample_rate is None:
        sample_rate = audio_io.first_sample_rate(files)
    from micmatch.resources import check_memory

    cfg = F.LogMelConfig(sample_rate=sample_rate, **mel_settings)
    # The mel filterbank alone is n_mels x (n_fft / 2 + 1) float64 values: check before building it.
    check_memory(16.0 * cfg.n_mels * (cfg.n_fft // 2 + 1), f"--n-fft {cfg.n_fft} with --n-mels {cfg.n_mels}")
    check_mel_bands(sample_rate, cfg.n_fft, cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    n_samples = _frames(frames, duration_s, cfg)
    band_db = {}
    if responses is not None:
        from micmatch.response import ResponseSet
        from micmatch.spectrum_correction import SpectrumCorrection

        used = sorted({lab for lab in labels if lab})
        correction = SpectrumCorrection.from_responses(ResponseSet.load(responses), reference=reference, devices=used)
        band_db = {d: correction.band_db(d, config=cfg) for d in used}

    device_of = dict(zip(files, labels))
    label_of = dict(zip(files, classes))
    todo = [(path, None) for path, device, label in zip(files, labels, classes)
            if device is not None and not ((label_from or class_list) and label is None)]
    work = functools.partial(_extract_one, cfg=cfg, resample=resample, n_samples=n_samples, entry=entry,
                             params=params, band_db_of={p: band_db.get(device_of[p]) for p, _ in todo})
    outcome = run_batch(todo, work, desc="features")
    failed += outcome.n_failed
    kept = [path for path, _, _ in outcome.results]
    items = [x for _, _, (x, _) in outcome.results]
    devices = [device_of[path] for path in kept]
    kept_labels = [label_of[path] for path in kept]
    lengths = [min(x.shape[-1], extract.n_frames_for(n_audio, cfg)) for _, _, (x, n_audio) in outcome.results]
    if not items:
        raise MicmatchError("no input file could be turned into features")

    if on_features:
        state = _feature_stats(entry, items, devices, cfg, stats_path, params)
        items = entry.numpy(items, config=cfg, state=state, devices=devices, **params)
        if save_stats:
            state.save(save_stats)
            click.echo(f"wrote {save_stats}", err=True)

    layout = "ragged" if n_samples is None else "fixed"
    settings = {"split": split_name, "normalization_params": params, "n_samples": n_samples, "frames": None if n_samples is None
                else items[0].shape[-1], "responses": responses, "reference": reference,
                "device_from": device_from, "label_from": label_from}
    extract.save_features(output, items, layout=layout, files=[str(p) for p in kept], devices=devices,
                          labels=kept_labels if label_from else None, config=cfg, normalization=normalization,
                          settings=settings, lengths=lengths, classes=class_list)
    shape = f"({len(items)}, {items[0].shape[0]}, {items[0].shape[-1]})" if layout == "fixed" \
        else f"({items[0].shape[0]}, {sum(x.shape[-1] for x in items)})"
    click.echo(f"wrote {output}: {len(items)} files, features {shape}, layout {layout} ({cfg.sample_rate} Hz, "
               f"n_fft {cfg.n_fft}, hop {cfg.hop_length}, n_mels {cfg.n_mels})", err=True)
    _note_short_clips(lengths, [n for _, _, (_, n) in outcome.results], cfg)
    if failed:
        fail_line(f"{failed} file(s) could not be used (see above)")
        ctx.exit(1)


#: Fewer frames of audio than this in a clip get a note: its features are mostly the STFT's edge padding.
MIN_FRAMES = 4


def _note_short_clips(lengths, n_audio, cfg: F.LogMelConfig) -> None:
    short = [i for i, n in enumerate(lengths) if n < MIN_FRAMES]
    if short:
        fewest = min(n_audio[i] for i in short)
        click.echo(f"micmatch: note: {len(short)} clip(s) give fewer than {MIN_FRAMES} frames (shortest "
                   f"{fewest} samples = {fewest / cfg.sample_rate:.3f} s, with n_fft {cfg.n_fft} and hop "
                   f"{cfg.hop_length}); pass a smaller --n-fft / --hop or use longer clips", err=True)


def _class_list(value: str) -> list[str]:
    """--classes-from: a features file's classes, or comma-separated names."""
    if value.endswith(".npz") or Path(value).is_file():
        classes = extract.load_features(value).classes
        if not classes:
            raise ParameterError(f"--classes-from {value}: the file holds no classes (write it with --label-from)")
        return list(classes)
    names = [c.strip() for c in value.split(",") if c.strip()]
    if len(set(names)) != len(names) or not names:
        raise ParameterError(f"--classes-from {value!r}: give distinct comma-separated class names or a .npz file")
    return names


def _in_split(files, split_name: str, label_from: str | None, device_from: str):
    """The files whose metadata row has ``split == split_name`` (the CSV of --label-from or --device-from)."""
    from micmatch.corpus import label_files

    source = next((s for s in (label_from, device_from) if s and s.startswith("csv:")), None)
    if source is None:
        raise ParameterError("--split reads the 'split' column of a metadata CSV: pass --label-from csv:FILE "
                             "(or --device-from csv:FILE)")
    splits = label_files(files, source, what="split")[0]
    kept = [f for f, s in zip(files, splits) if s == split_name]
    return kept, len(files) - len(kept)


COMMANDS = [features]

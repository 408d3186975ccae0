"""``micmatch features``: precompute log-mel features with a chosen normalization, for training elsewhere."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from micmatch import audio as audio_io
from micmatch import features as F
from micmatch.errors import AudioError, MicmatchError

COMMON = {"context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 100}}

#: Normalizations applied to each recording on its own.
PER_RECORDING = ("none", "mean", "cms", "medfilt", "pcen-a", "pcen-b", "rasta")
#: Normalizations fitted on a set of recordings (or loaded with --normalizer).
FITTED = ("per-device", "gms", "gmsvn")


def _fail_line(message: str) -> None:
    click.echo(f"micmatch: error: {message}", err=True)


def _extract(path: Path, cfg: F.LogMelConfig, *, resample: bool, duration_s: float | None, normalization: str,
             n_ceps: int | None, offset_db: np.ndarray | None) -> np.ndarray:
    """One file's features ``(n_bands, n_frames)`` with its per-recording normalization applied."""
    info = audio_io.info(path)
    if info.sample_rate != cfg.sample_rate and not resample:
        raise AudioError(f"{path}: sample_rate={info.sample_rate} differs from the feature rate {cfg.sample_rate}; "
                         "pass --resample or --sample-rate")
    audio, sr = audio_io.load(path, sample_rate=cfg.sample_rate, channels="mix", dtype="float64")
    x = audio[0]
    if duration_s is not None:
        n = int(round(duration_s * sr))
        x = np.pad(x[:n], (0, max(0, n - x.size)))
    if normalization.startswith("pcen"):
        mel = F.mel_spectrogram(x, sr, config=cfg)
        if offset_db is not None:  # the correction as a power gain on linear mel energies
            mel = mel * np.power(10.0, offset_db / 10.0)[:, None]
        # librosa's advice: PCEN expects integer-like magnitudes; scale full scale to 2**31.
        return F.pcen(mel * 2.0**31, sr, hop_length=cfg.hop_length, **F.PCEN_PRESETS[normalization[-1]])
    feats = F.log_mel(x, sr, config=cfg)
    if offset_db is not None:
        feats = F.apply_band_offset(feats, offset_db)
    if normalization == "mean":
        return F.spectrogram_mean_subtraction(feats)
    if normalization == "cms":
        return F.cepstral_mean_subtraction(feats, n_ceps=n_ceps)
    if normalization == "medfilt":
        return F.median_filter_residual(feats)
    if normalization == "rasta":
        return F.rasta(feats)
    return feats


def _fitted(normalization: str, items, devices, cfg, normalizer_path):
    if normalizer_path is not None:
        norm = F.load_normalizer(normalizer_path)
        wanted = F.PerDeviceStandardizer if normalization == "per-device" else F.GlobalNormalizer
        if not isinstance(norm, wanted) or (normalization != "per-device" and norm.mode != normalization):
            raise MicmatchError(f"{normalizer_path}: holds a {norm.kind} normalizer, not {normalization!r}; fit one "
                                f"with --normalization {normalization} --save-normalizer PATH")
        return norm
    if normalization == "per-device":
        return F.PerDeviceStandardizer().fit(items, devices, config=cfg)
    return F.GlobalNormalizer(normalization).fit(items, config=cfg)


@click.command(**COMMON)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Features file (.npz) to write.")
@click.option("--normalization", type=click.Choice(PER_RECORDING + FITTED), default="none", show_default=True,
              help="none; mean (spectrogram-wise mean subtraction); cms (mean-free cepstra); medfilt (minus a 7x21 "
                   "median filter); pcen-a / pcen-b (seed 001's PCEN settings); rasta (pole 0.98); per-device "
                   "(per-device standardization); gms / gmsvn (global mean / mean-and-variance normalization).")
@click.option("--sample-rate", type=int, default=None, help="Feature rate in Hz. Default: the first file's rate.")
@click.option("--resample", is_flag=True, help="Resample files at other rates (otherwise they are reported).")
@click.option("--n-fft", default=2048, show_default=True, type=click.IntRange(16, 1 << 24), help="FFT size (samples).")
@click.option("--hop", "hop_length", default=512, show_default=True, help="Hop between frames (samples).")
@click.option("--n-mels", default=128, show_default=True, help="Mel bands.")
@click.option("--fmin", default=0.0, show_default=True, help="Lowest mel edge (Hz).")
@click.option("--fmax", type=float, default=None, help="Highest mel edge (Hz). Default: Nyquist.")
@click.option("--n-ceps", type=int, default=None, help="Cepstral coefficients kept by --normalization cms.")
@click.option("--duration-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Crop or zero-pad every clip to this duration, so every item has the same number of frames.")
@click.option("--device-from", default="dir", show_default=True,
              help="Device label of each file (stored; used by per-device and --responses): 'dir', "
                   "'regex:PATTERN', 'csv:FILE' or 'name:DEVICE'.")
@click.option("--responses", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Responses JSON: spectrum-correct each file's features from its device towards --reference.")
@click.option("--reference", default=None, help="Reference device for --responses.")
@click.option("--normalizer", "normalizer_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Use this fitted normalizer (per-device, gms, gmsvn) instead of fitting on INPUTS (test sets).")
@click.option("--save-normalizer", type=click.Path(dir_okay=False), default=None,
              help="Write the normalizer fitted on INPUTS here (JSON), to apply it to other sets later.")
@click.option("--skip-existing", is_flag=True,
              help="Resume: if the output file already exists (outputs appear only when complete), do nothing.")
@click.pass_context
def features(ctx, inputs, output, normalization, sample_rate, resample, n_fft, hop_length, n_mels, fmin, fmax,
             n_ceps, duration_s, device_from, responses, reference, normalizer_path, save_normalizer,
             skip_existing):
    """Compute log-mel features of audio files with one normalization and save them in one .npz file.

    The .npz holds 'features' (float32, all files concatenated along time: (n_bands, total_frames)),
    'offsets' (file i is features[:, offsets[i]:offsets[i+1]]), 'files', 'devices', 'config' (the feature
    configuration as JSON) and 'normalization'. It loads with numpy.load(path) (no pickle). With --duration-s
    every file has the same number of frames T, and features.reshape(n_bands, n_files, T) gives a batch.
    Files that cannot be used are reported and skipped; the exit code is then 1.

    \b
    Example:
      micmatch features recordings/ -o train.npz --normalization gms --save-normalizer gms.json
      micmatch features test/ -o test.npz --normalization gms --normalizer gms.json
      micmatch features clips/ -o feats.npz --sample-rate 22050 --resample --n-mels 80 --duration-s 1
    """
    from tqdm.auto import tqdm

    from micmatch.estimate import label_devices
    from micmatch.outputs import prepare_output

    read = [*inputs, *(p for p in (responses, normalizer_path) if p)]
    prepare_output(output, read)
    if save_normalizer:
        prepare_output(save_normalizer, read, option="--save-normalizer")
    if skip_existing and Path(output).is_file() and (not save_normalizer or Path(save_normalizer).is_file()):
        click.echo(f"{output} exists: skipped (--skip-existing)", err=True)
        return
    files = audio_io.find_audio_files(inputs)
    if not files:
        raise AudioError(f"no audio files found in: {', '.join(inputs)}")
    if (responses is None) != (reference is None):
        raise MicmatchError("--responses and --reference go together: pass both to spectrum-correct, or neither")
    if normalizer_path and normalization not in FITTED:
        raise MicmatchError(f"--normalizer applies to {', '.join(FITTED)}, not --normalization {normalization}")
    labels, problems = label_devices(files, device_from)
    failed = len(problems)
    for p in problems:
        _fail_line(p)
    if sample_rate is None:
        sample_rate = audio_io.first_sample_rate(files)
    from micmatch.resources import check_memory

    # The mel filterbank alone is n_mels x (n_fft / 2 + 1) float64 values: check before building it.
    check_memory(16.0 * n_mels * (n_fft // 2 + 1), f"--n-fft {n_fft} with --n-mels {n_mels}")
    cfg = F.LogMelConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin,
                         fmax=fmax)
    offsets_db = {}
    if responses is not None:
        from micmatch.response import ResponseSet

        rs = ResponseSet.load(responses)
        for d in sorted({lab for lab in labels if lab}):
            offsets_db[d] = F.correction_offset_db(responses=rs, device=d, reference=reference, config=cfg)

    kept, items, devices = [], [], []
    progress = tqdm(list(zip(files, labels)), desc="features", unit="file", file=sys.stderr,
                    disable=not sys.stderr.isatty())
    for path, label in progress:
        if label is None:
            continue
        try:
            x = _extract(path, cfg, resample=resample, duration_s=duration_s, normalization=normalization,
                         n_ceps=n_ceps, offset_db=offsets_db.get(label))
        except (MicmatchError, OSError) as exc:  # one line per file, and the batch goes on
            failed += 1
            msg = str(exc) if isinstance(exc, MicmatchError) else (exc.strerror or str(exc))
            _fail_line(msg if str(path) in msg else f"{path}: {msg}")
            continue
        kept.append(path)
        items.append(x)
        devices.append(label)
    if not items:
        raise MicmatchError("no input file could be turned into features")

    config_doc = cfg.to_json()
    if normalization in FITTED:
        norm = _fitted(normalization, items, devices, cfg, normalizer_path)
        items = norm.transform(items, devices, config=cfg) if normalization == "per-device" \
            else norm.transform(items, config=cfg)
        if save_normalizer:
            norm.save(save_normalizer)
            click.echo(f"wrote {save_normalizer}", err=True)

    offsets = np.concatenate([[0], np.cumsum([x.shape[-1] for x in items])]).astype(np.int64)
    with audio_io.atomic_path(output) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, features=np.concatenate(items, axis=-1).astype(np.float32), offsets=offsets,
                     files=np.array([str(p) for p in kept]), devices=np.array(devices),
                     config=np.array(json.dumps(config_doc)), normalization=np.array(normalization))
    click.echo(f"wrote {output}: {len(items)} files, {items[0].shape[0]} bands, {offsets[-1]} frames", err=True)
    if failed:
        _fail_line(f"{failed} file(s) could not be used (see above)")
        ctx.exit(1)


COMMANDS = [features]

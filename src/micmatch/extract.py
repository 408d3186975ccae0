"""Features of audio files, computed block by block, and the features file (.npz) written for training.

:func:`file_mel` reads a file in blocks and fills one ``(n_mels, n_frames)`` array, so memory stays at the size
of the result (float32) plus one block, whatever the file's length; the values equal
:func:`micmatch.features.mel_spectrogram` of the whole file (the STFT is centred with zero padding, so blocks
that share ``n_fft - hop`` samples give exactly the same frames).

A features file is an ``.npz`` without pickled objects (``numpy.load(path)`` reads it) in one of two layouts:

``fixed``
    ``features`` ``(n_clips, n_mels, n_frames)``: every clip cropped or zero-padded to one length;
    ``lengths`` ``(n_clips,)``: frames that hold audio (the rest is padding).
``ragged``
    ``features`` ``(n_mels, total_frames)``: clips one after another along time; clip ``i`` is
    ``features[:, offsets[i]:offsets[i + 1]]``.

Both hold ``files``, ``devices``, ``labels`` (empty strings when not given), ``classes`` (sorted distinct labels)
and ``label_index`` (``-1`` for no label), ``config`` (the :class:`~micmatch.features.LogMelConfig` as JSON),
``normalization`` and ``settings`` (JSON: layout, normalization parameters, frames, format version).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micmatch import audio as audio_io
from micmatch import validate
from micmatch.errors import AudioError, FeatureError, ProfileError
from micmatch.features import LogMelConfig
from micmatch.outputs import atomic_path
from micmatch.spectral import frame_view, hann

#: Version of the features-file layout written by :func:`save_features`.
FEATURES_FORMAT_VERSION = 2
#: Samples read from the file at a time.
READ_BLOCK = 1 << 18
#: Frames transformed at a time (bounds the complex spectrum held in memory: frames x (n_fft / 2 + 1)).
FRAME_BLOCK = 512
LAYOUTS = ("fixed", "ragged")


def n_frames_for(n_samples: int, config: LogMelConfig) -> int:
    """Frames of the centred STFT of ``n_samples``: ``1 + n_samples // hop_length`` for an even ``n_fft``."""
    pad = config.n_fft // 2
    return 1 + (int(n_samples) + 2 * pad - config.n_fft) // config.hop_length


def samples_for_frames(n_frames: int, config: LogMelConfig) -> int:
    """The fewest samples whose centred STFT has ``n_frames`` frames."""
    n = (validate.positive_int(n_frames, "frames") - 1) * config.hop_length
    return max(0, n + config.n_fft - 2 * (config.n_fft // 2))


def _source(path: Path, config: LogMelConfig, *, resample: bool, channels: str) -> tuple[int, Iterator[np.ndarray]]:
    """The file's length at ``config.sample_rate`` and its mono float64 blocks at that rate."""
    meta = audio_io.info(path)
    if meta.sample_rate == config.sample_rate:
        def blocks() -> Iterator[np.ndarray]:
            for block in audio_io.iter_blocks(path, block_frames=READ_BLOCK, channels=channels, dtype="float64"):
                yield block[0] if block.shape[0] == 1 else block.mean(axis=0)

        return meta.frames, blocks()
    if not resample:
        raise AudioError(f"{path}: sample_rate={meta.sample_rate} differs from the feature rate "
                         f"{config.sample_rate}; pass --resample or --sample-rate")
    # Resampling reads the whole file (soxr on the full signal); memory then grows with the file's length.
    audio, _ = audio_io.load(path, sample_rate=config.sample_rate, channels=channels, dtype="float64")
    x = audio[0] if audio.shape[0] == 1 else audio.mean(axis=0)
    return x.size, (x[i : i + READ_BLOCK] for i in range(0, x.size, READ_BLOCK))


def file_mel(path: str | os.PathLike, config: LogMelConfig, *, n_samples: int | None = None,
             resample: bool = False, channels: str = "mix") -> tuple[np.ndarray, int]:
    """Linear mel power of one file, computed block by block.

    Parameters
    ----------
    path : path-like
        Audio file; multichannel files are mixed (``channels="mix"``) or reduced to the first channel.
    config : LogMelConfig
        Feature settings; the file is read at ``config.sample_rate`` (other rates need ``resample=True``).
    n_samples : int, optional
        Crop or zero-pad the signal to this many samples (a fixed-length clip).

    Returns
    -------
    mel : np.ndarray [shape=(n_mels, 1 + n // hop_length), dtype=float32]
        Mel power (or magnitude for ``config.power == 1``); ``n`` is ``n_samples`` or the file's length.
    n_audio : int
        Samples of the file inside the result (the rest is zero padding).
    """
    import scipy.fft

    path = Path(path)
    if channels not in ("mix", "first"):
        raise FeatureError(f"channels={channels!r} must be 'mix' or 'first' (features are computed on one signal)")
    n_file, blocks = _source(path, config, resample=resample, channels=channels)
    if n_file == 0:
        raise AudioError(f"{path}: file holds no samples")
    length = n_file if n_samples is None else validate.positive_int(n_samples, "n_samples")
    n_fft, hop = config.n_fft, config.hop_length
    total = n_frames_for(length, config)
    out = np.empty((config.n_mels, total), dtype=np.float32)
    fb_t, window = np.ascontiguousarray(config.filterbank().T), hann(n_fft)
    # The padded signal streams through `buf`; `start` is the padded-signal index of buf[0], `t` the next frame.
    state = {"buf": np.zeros(n_fft // 2), "start": 0, "t": 0}

    def emit() -> None:
        buf, start, t = state["buf"], state["start"], state["t"]
        ready = min(total, (start + buf.size - n_fft) // hop + 1)  # frames t < ready lie inside the buffer
        while t < ready:
            k = min(FRAME_BLOCK, ready - t)
            offset = t * hop - start
            spec = scipy.fft.rfft(frame_view(buf[offset : offset + (k - 1) * hop + n_fft], n_fft, hop) * window, axis=-1)
            power = spec.real**2 + spec.imag**2
            out[:, t : t + k] = ((np.sqrt(power) if config.power == 1.0 else power) @ fb_t).T
            t += k
        drop = max(0, t * hop - start)
        state.update(buf=buf[drop:], start=start + drop, t=t)

    n_audio = 0
    for block in blocks:
        block = block[: length - n_audio]
        if block.size == 0:
            break
        n_audio += block.size
        state["buf"] = np.concatenate([state["buf"], block])
        emit()
        if n_audio >= length:
            break
    # Zero padding up to the stated length, then the centring pad at the end.
    state["buf"] = np.concatenate([state["buf"], np.zeros(length - n_audio + n_fft // 2)])
    emit()
    if state["t"] != total:  # pragma: no cover - guards the frame bookkeeping
        raise FeatureError(f"{path}: computed {state['t']} of {total} frames")
    return out, n_audio


def file_log_mel(path: str | os.PathLike, config: LogMelConfig, **options) -> tuple[np.ndarray, int]:
    """:func:`file_mel` in dB (``(20 / power) * log10(max(mel, amin))``), float32; same options and returns."""
    mel, n_audio = file_mel(path, config, **options)
    # In place (the same steps as micmatch.features.power_to_db), so no second copy of a long file's features.
    np.maximum(mel, config.amin, out=mel)
    np.log10(mel, out=mel)
    mel *= 20.0 / config.power
    return mel, n_audio


# ----------------------------------------------------------------------------------------------------------------
# Features files


@dataclass(frozen=True)
class FeatureSet:
    """A features file read back by :func:`load_features` (see the module docstring for the fields)."""

    features: np.ndarray
    layout: str
    files: list[str]
    devices: list[str]
    labels: list[str]
    classes: list[str]
    label_index: np.ndarray
    config: LogMelConfig
    normalization: str
    settings: dict
    offsets: np.ndarray | None = None
    lengths: np.ndarray | None = None

    def clip(self, i: int) -> np.ndarray:
        """Features of clip ``i``, ``(n_mels, n_frames_i)`` (padding included in the fixed layout)."""
        if self.layout == "fixed":
            return self.features[i]
        return self.features[:, self.offsets[i] : self.offsets[i + 1]]


def save_features(path: str | os.PathLike, items: Sequence[np.ndarray], *, layout: str, files: Sequence[str],
                  devices: Sequence[str], labels: Sequence[str | None] | None, config: LogMelConfig,
                  normalization: str, settings: dict, lengths: Sequence[int] | None = None,
                  classes: Sequence[str] | None = None) -> Path:
    """Write a features file atomically (no pickled objects). ``items`` are ``(n_mels, n_frames_i)`` arrays.

    ``classes`` fixes the class list that ``label_index`` counts in (e.g. the training file's, so a test file
    holding some classes only agrees with it); by default the sorted labels present. A label outside it raises.
    """
    validate.one_of(layout, "layout", LAYOUTS, error=FeatureError)
    n = len(items)
    labels = [lab or "" for lab in labels] if labels is not None else [""] * n
    if not (len(files) == len(devices) == len(labels) == n):
        raise FeatureError(f"got {n} feature arrays but {len(files)} files, {len(devices)} devices and "
                           f"{len(labels)} labels")
    if classes is None:
        classes = _sorted_labels([lab for lab in labels if lab])
    classes = [str(c) for c in classes]
    outside = sorted({lab for lab in labels if lab} - set(classes))
    if outside:
        raise FeatureError(f"labels {outside} are not among classes={classes}")
    index = {c: i for i, c in enumerate(classes)}
    arrays = {
        "files": np.array([str(f) for f in files]), "devices": np.array([str(d) for d in devices]),
        "labels": np.array(labels), "classes": np.array(classes, dtype=str),
        "label_index": np.array([index.get(lab, -1) for lab in labels], dtype=np.int64),
        "config": np.array(json.dumps(config.to_json())), "normalization": np.array(normalization),
        "settings": np.array(json.dumps({**settings, "layout": layout,
                                         "format_version": FEATURES_FORMAT_VERSION})),
    }
    if layout == "fixed":
        shapes = {x.shape for x in items}
        if len(shapes) != 1:
            raise FeatureError(f"the fixed layout needs one shape for every clip; got {sorted(shapes)}")
        arrays["features"] = np.stack([np.asarray(x, dtype=np.float32) for x in items])
        arrays["lengths"] = np.asarray(lengths if lengths is not None else [x.shape[-1] for x in items],
                                       dtype=np.int64)
    else:
        arrays["offsets"] = np.concatenate([[0], np.cumsum([x.shape[-1] for x in items])]).astype(np.int64)
        # One clip is written as it is (no concatenated copy of a long file's features).
        arrays["features"] = np.asarray(items[0], dtype=np.float32) if n == 1 \
            else np.concatenate([np.asarray(x, dtype=np.float32) for x in items], axis=-1)
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def load_features(path: str | os.PathLike) -> FeatureSet:
    """Read a features file written by ``micmatch features`` (never unpickles)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            doc = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{path}: not a readable features file ({exc})") from None
    try:
        settings = json.loads(str(doc["settings"])) if "settings" in doc else {"layout": "ragged"}
        layout = settings.get("layout", "ragged")
        n = len(doc["files"])
        labels = [str(v) for v in doc["labels"]] if "labels" in doc else [""] * n
        return FeatureSet(
            features=doc["features"], layout=layout, files=[str(v) for v in doc["files"]],
            devices=[str(v) for v in doc["devices"]], labels=labels,
            classes=[str(v) for v in doc.get("classes", np.array([], dtype=str))],
            label_index=doc.get("label_index", np.full(n, -1, dtype=np.int64)),
            config=LogMelConfig.from_json(json.loads(str(doc["config"]))), normalization=str(doc["normalization"]),
            settings=settings, offsets=doc.get("offsets"), lengths=doc.get("lengths"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"{path}: incomplete features file ({exc})") from None


def _sorted_labels(labels) -> list[str]:
    from micmatch.corpus import sorted_labels

    return list(sorted_labels(labels))


__all__ = ["FEATURES_FORMAT_VERSION", "FeatureSet", "LAYOUTS", "file_log_mel", "file_mel", "load_features",
           "n_frames_for", "samples_for_frames", "save_features"]

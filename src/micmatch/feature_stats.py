"""Feature statistics: normalizations fitted on a set of recordings, and their JSON files (numpy only).

:class:`PerDeviceStandardizer` (``device-std``) and :class:`GlobalNormalizer` (``gms``, ``gmsvn``) sum each
mel band's values and squares over the frames they are fitted on (:class:`BandStats`), so fitting streams and
merges. A feature-statistics file (:meth:`save`, :func:`load_feature_stats`) keeps the statistics with the
feature configuration they were fitted on (sample rate included); features of another configuration are refused
with :class:`~micmatch.errors.ConfigMismatchError`. The trained networks of :mod:`micmatch.learn` are the
*normalizers*; these files hold statistics only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micmatch import validate
from micmatch.errors import ConfigMismatchError, FeatureError, ProfileError, UnknownDeviceError
from micmatch.logmel import LogMelConfig
from micmatch.normalizations import as_features as _features
from micmatch.outputs import atomic_path

#: Floor of every standard deviation we divide by, in dB. Far below any real spread of log-mel values, so it only
#: guards constant bands (digital silence, a band above a device's cut-off) against division by zero.
MIN_STD_DB = 1e-3

#: ``format`` of a feature-statistics file; the value dates from when these files were called normalizers, and
#: stays so that files written before still load.
FORMAT = "micmatch.normalizer"
FORMAT_VERSION = 1

# ----------------------------------------------------------------------------------------------------------------
# Statistics per band, and their file


@dataclass
class BandStats:
    """Per-band sums over frames: ``sum``, ``sum_sq`` (float64, ``(n_mels,)``) and ``count``; add to merge."""

    sum: np.ndarray
    sum_sq: np.ndarray
    count: int

    @classmethod
    def of(cls, features: np.ndarray | Sequence[np.ndarray]) -> BandStats:
        """Statistics of a ``(n, n_mels, n_frames)`` batch or a list of ``(n_mels, n_frames_i)`` spectrograms."""
        items = [features] if isinstance(features, np.ndarray) else list(features)
        if not items:
            raise FeatureError("no features to fit on")
        total = None
        for item in items:
            x = _features(item).astype(np.float64, copy=False)
            bands = np.moveaxis(x, -2, 0).reshape(x.shape[-2], -1)
            s = cls(bands.sum(axis=1), np.einsum("ij,ij->i", bands, bands), bands.shape[1])
            total = s if total is None else total + s
        return total

    def __add__(self, other: BandStats) -> BandStats:
        if self.sum.shape != other.sum.shape:
            raise ConfigMismatchError(f"cannot merge statistics of n_mels={self.sum.size} and {other.sum.size}")
        return BandStats(self.sum + other.sum, self.sum_sq + other.sum_sq, self.count + other.count)

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.count

    @property
    def std(self) -> np.ndarray:
        """Standard deviation over frames, floored at :data:`MIN_STD_DB`."""
        var = self.sum_sq / self.count - self.mean**2
        return np.maximum(np.sqrt(np.maximum(var, 0.0)), MIN_STD_DB)

    def to_json(self) -> dict:
        return {"sum": self.sum.tolist(), "sum_sq": self.sum_sq.tolist(), "count": int(self.count)}

    @classmethod
    def from_json(cls, doc: Mapping) -> BandStats:
        from micmatch.jsoncheck import as_float_array, as_int

        total = as_float_array(doc["sum"], "sum", lo=-np.inf, hi=np.inf)
        squares = as_float_array(doc["sum_sq"], "sum_sq", size=total.size, lo=0.0, hi=np.inf)
        return cls(total, squares, as_int(doc["count"], "count", lo=1, hi=10**15))


def config_json(config: LogMelConfig | Mapping) -> dict:
    """A feature configuration as plain JSON types (so saved and loaded configurations compare equal)."""
    doc = config.to_json() if isinstance(config, LogMelConfig) else dict(config)
    if "sample_rate" not in doc:
        raise FeatureError("the feature config must include sample_rate")
    return json.loads(json.dumps(doc))  # plain JSON types, so saved and loaded configs compare equal


class _FeatureStats:
    """Shared plumbing of fitted feature statistics: configuration check and JSON persistence."""

    kind = ""
    config: dict | None = None

    def _check(self, config: LogMelConfig | Mapping, features: np.ndarray | None = None) -> None:
        if self.config is None:
            raise FeatureError(f"this {type(self).__name__} is not fitted; call fit(features, config=...) first")
        given = config_json(config)
        for key in sorted(set(given) | set(self.config)):
            if given.get(key) != self.config.get(key):
                raise ConfigMismatchError(
                    f"{key}={given.get(key)!r} but the {type(self).__name__} was fitted on {key}="
                    f"{self.config.get(key)!r}; extract features with the fitted configuration or refit")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted statistics and feature configuration as JSON, atomically."""
        if self.config is None:
            raise FeatureError(f"this {type(self).__name__} is not fitted; nothing to save")
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind, "config": self.config,
               **self._state()}
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read statistics saved by :meth:`save`; a file of another kind or version raises ProfileError."""
        doc = _read_feature_stats(path)
        if doc.get("kind") != cls.kind:
            raise ProfileError(f"{path}: holds a {doc.get('kind')!r} normalizer, not {cls.kind!r}")
        return cls._from_state(doc, str(path))


def _read_feature_stats(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read normalizer ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ProfileError(f"{path}: not a micmatch normalizer file (expected \"format\": \"{FORMAT}\")")
    if doc.get("format_version") != FORMAT_VERSION:
        raise ProfileError(f"{path}: format_version={doc.get('format_version')!r} is not supported "
                           f"(this micmatch reads version {FORMAT_VERSION})")
    from micmatch.jsoncheck import first_non_finite

    where = first_non_finite(doc)
    if where is not None:  # NaN statistics would silently turn every feature into NaN
        raise ProfileError(f"{path}: {where} is NaN, infinite or too large; refit the feature statistics")
    return doc


def load_feature_stats(path: str | os.PathLike) -> PerDeviceStandardizer | GlobalNormalizer:
    """Read any feature-statistics file saved by micmatch (``device-std``, ``gms`` or ``gmsvn``)."""
    doc = _read_feature_stats(path)
    for cls in (PerDeviceStandardizer, GlobalNormalizer):
        if doc.get("kind") == cls.kind:
            return cls._from_state(doc, str(path))
    raise ProfileError(f"{path}: unknown normalizer kind {doc.get('kind')!r}")


class PerDeviceStandardizer(_FeatureStats):
    """Per-device, per-band standardization over each device's whole set (section 2.5, eq. 16 of
    "Spectrum Correction: Acoustic Scene Classification with Mismatched Recording Devices").

    ``fit`` collects, for every device, the mean (and spread) of each band over all its recordings and frames;
    ``transform`` subtracts the device's mean (and divides by its std when ``scale``). A per-band constant that a
    device adds to all its recordings cancels exactly, while differences between recordings of the same device
    (their rooms) remain: unlike :func:`spectrogram_mean_subtraction`.
    """

    kind = "per_device"

    def __init__(self, *, scale: bool = True) -> None:
        self.scale = bool(scale)
        self.stats: dict[str, BandStats] = {}
        self.config: dict | None = None

    def fit(self, features, devices: Sequence[str], *, config: LogMelConfig | Mapping) -> PerDeviceStandardizer:
        """Fit on ``(n, n_mels, n_frames)`` features (or a list of ``(n_mels, n_frames_i)``) with one device each.

        Fitting again adds to the statistics (the configuration must match).
        """
        items = _as_items(features)
        devices = [str(d) for d in devices]
        if len(devices) != len(items):
            raise FeatureError(f"got {len(items)} spectrograms but {len(devices)} device labels; give one per item")
        if self.config is not None:
            self._check(config)
        for name in sorted(set(devices)):
            s = BandStats.of([x for x, d in zip(items, devices) if d == name])
            self.stats[name] = self.stats[name] + s if name in self.stats else s
        self.config = config_json(config)
        return self

    @property
    def devices(self) -> list[str]:
        return sorted(self.stats)

    def mean(self, device: str) -> np.ndarray:
        return self._stats(device).mean

    def std(self, device: str) -> np.ndarray:
        return self._stats(device).std if self.scale else np.ones_like(self._stats(device).sum)

    def _stats(self, device: str) -> BandStats:
        try:
            return self.stats[device]
        except KeyError:
            known = ", ".join(self.devices) or "none"
            raise UnknownDeviceError(
                f"device {device!r} was not in the fitting set; known devices: {known}; fit on some of its "
                "recordings first") from None

    def transform(self, features, devices: Sequence[str], *, config: LogMelConfig | Mapping):
        """Standardize each item with its device's statistics; same shape (list in, list out)."""
        self._check(config)
        items = _as_items(features)
        devices = [str(d) for d in devices]
        if len(devices) != len(items):
            raise FeatureError(f"got {len(items)} spectrograms but {len(devices)} device labels; give one per item")
        out = []
        for x, d in zip(items, devices):
            x = _features(x)
            if x.shape[-2] != self.stats[self.devices[0]].sum.size:
                raise ConfigMismatchError(f"features have n_mels={x.shape[-2]} but the standardizer was fitted on "
                                          f"{self.stats[self.devices[0]].sum.size}")
            m, s = self.mean(d), self.std(d)
            out.append(((x - m[:, None]) / s[:, None]).astype(x.dtype, copy=False))
        return np.stack(out) if isinstance(features, np.ndarray) else out

    def _state(self) -> dict:
        return {"scale": self.scale, "devices": {d: s.to_json() for d, s in self.stats.items()}}

    @classmethod
    def _from_state(cls, doc: dict, source: str) -> PerDeviceStandardizer:
        try:
            out = cls(scale=bool(doc["scale"]))
            out.stats = {str(d): BandStats.from_json(s) for d, s in doc["devices"].items()}
            out.config = config_json(doc["config"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"{source}: invalid per-device normalizer ({exc})") from None
        return out


class GlobalNormalizer(_FeatureStats):
    """Global normalization with statistics of a training set (section 4.2 of the DCASE 2019
    task 1B report on device distortion in log-mel features), one value per band.

    ``mode="gmsvn"`` subtracts the mean and divides by the std; ``mode="gms"`` only subtracts the mean.
    """

    kind = "global"

    def __init__(self, mode: str = "gmsvn") -> None:
        validate.one_of(mode, "mode", ("gms", "gmsvn"), error=FeatureError)
        self.mode = mode
        self.stats: BandStats | None = None
        self.config: dict | None = None

    def fit(self, features, *, config: LogMelConfig | Mapping) -> GlobalNormalizer:
        """Fit on a batch or a list of spectrograms; fitting again adds to the statistics."""
        if self.config is not None:
            self._check(config)
        s = BandStats.of(_as_items(features))
        self.stats = s if self.stats is None else self.stats + s
        self.config = config_json(config)
        return self

    @property
    def mean(self) -> np.ndarray:
        self._check_fitted()
        return self.stats.mean

    @property
    def std(self) -> np.ndarray:
        self._check_fitted()
        return self.stats.std if self.mode == "gmsvn" else np.ones_like(self.stats.sum)

    def _check_fitted(self) -> None:
        if self.stats is None:
            raise FeatureError("this GlobalNormalizer is not fitted; call fit(features, config=...) first")

    def transform(self, features, *, config: LogMelConfig | Mapping):
        """Normalize a batch ``(..., n_mels, n_frames)`` or a list of spectrograms."""
        self._check(config)
        if isinstance(features, np.ndarray):
            return self._apply(features)
        return [self._apply(x) for x in features]

    def _apply(self, features) -> np.ndarray:
        x = _features(features)
        if x.shape[-2] != self.stats.sum.size:
            raise ConfigMismatchError(
                f"features have n_mels={x.shape[-2]} but the statistics were fitted on {self.stats.sum.size}")
        return ((x - self.mean[:, None]) / self.std[:, None]).astype(x.dtype, copy=False)

    def _state(self) -> dict:
        return {"mode": self.mode, "stats": self.stats.to_json()}

    @classmethod
    def _from_state(cls, doc: dict, source: str) -> GlobalNormalizer:
        try:
            out = cls(str(doc["mode"]))
            out.stats = BandStats.from_json(doc["stats"])
            out.config = config_json(doc["config"])
        except (KeyError, TypeError, ValueError, AttributeError, FeatureError) as exc:
            raise ProfileError(f"{source}: invalid global normalizer ({exc})") from None
        return out


def _as_items(features) -> list[np.ndarray]:
    if isinstance(features, np.ndarray):
        x = _features(features)
        if x.ndim != 3:
            raise FeatureError(f"features.shape={x.shape} must be (n_recordings, n_mels, n_frames), or pass a list")
        return list(x)
    return [_features(x) for x in features]


#: Old name of :func:`load_feature_stats`, kept for one release (goes in the next one).
load_normalizer = load_feature_stats

__all__ = ["BandStats", "FORMAT", "FORMAT_VERSION", "GlobalNormalizer", "MIN_STD_DB", "PerDeviceStandardizer",
           "config_json", "load_feature_stats", "load_normalizer"]

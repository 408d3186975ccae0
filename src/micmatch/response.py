"""Device responses and their mergeable statistics, saved as versioned JSON.

A :class:`ResponseSet` holds, for one analysis configuration (:class:`SpectralConfig`: sample rate, FFT size, hop,
window), one :class:`DeviceResponse` per device. An estimated response keeps its :class:`LogSpectrumStats`
(per-bin sums of log power, of its square, and frame/file counts), so responses estimated on different files,
processes or machines merge exactly: the merged result does not depend on how the work was split.

JSON layout (``format_version`` 2)::

    {"format": "micmatch.responses", "format_version": 2,
     "config": {"sample_rate": 44100, "n_fft": 2048, "hop_length": 512, "window": "hann",
                "floor_db": -160.0, "gate_db": -80.0, "relative_gate_db": 30.0,
                "channels": "mix", "resample": false},
     "frequencies_hz": [...],
     "devices": {"phone": {"method": "unaligned", "response_db": [...], "std_db": [...],
                            "stats": {"sum_db": [...], "sum_sq_db": [...], "n_frames": 1234, "n_files": 16},
                            # "bin_counts": [...] only when bins were gated separately (aligned pairs)
                            "meta": {...}}},
     "files": [{"path": "/abs/rec1.wav", "device": "phone", "size": 123456, "mtime": 1700000000.0,
                "sha256": "...", "hashed": "whole"}]}

``config`` records every setting that changes the statistics; ``files`` the fingerprint of every input file
counted (:func:`file_fingerprint`), so merging refuses another setting and files already counted.

Version rule: version 1 files (before ``channels``, ``resample`` and ``files`` were recorded) still load, with
``channels`` and ``resample`` None ("not recorded") and no file list; every use that reads them works, but new
statistics are not merged into them (the merge cannot tell whether the settings or files agree): profile the
recordings again. Files are written as version 2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from micmatch import jsoncheck as jc
from micmatch.audio import fingerprint_key
from micmatch.outputs import atomic_path, locked
from micmatch.errors import (
    ConfigMismatchError,
    ParameterError,
    ProfileError,
    UnknownDeviceError,
)
from micmatch.spectral import (
    DEFAULT_FLOOR_DB,
    DEFAULT_GATE_DB,
    DEFAULT_RELATIVE_GATE_DB,
    frequencies,
)

FORMAT = "micmatch.responses"
FORMAT_VERSION = 2
#: Format versions :meth:`ResponseSet.load` reads.
READABLE_VERSIONS = (1, 2)
METHODS = ("unaligned", "aligned", "sweep", "impulse", "builtin", "model")
#: Bounds on numbers read from a responses file (well beyond any real analysis, well inside what fits in memory).
MAX_JSON_SAMPLE_RATE = 10_000_000
MAX_JSON_N_FFT = 1 << 24
MAX_JSON_COUNT = 10**15


@dataclass(frozen=True)
class SpectralConfig:
    """Settings that a response's statistics depend on. Two sets of statistics combine only when these agree.

    ``channels`` (``"mix"``, ``"first"``, ``"each"``) and ``resample`` (files at other rates resampled) describe
    how files were read; None means not recorded (files of format version 1, responses built from arrays).
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    hop_length: int = 512
    window: str = "hann"
    floor_db: float = DEFAULT_FLOOR_DB
    gate_db: float | None = DEFAULT_GATE_DB
    relative_gate_db: float | None = DEFAULT_RELATIVE_GATE_DB
    channels: str | None = None
    resample: bool | None = None

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ParameterError(f"{name}={value!r} must be a positive integer")
        if self.n_fft % 2:
            raise ParameterError(f"n_fft={self.n_fft} must be even")
        if self.hop_length > self.n_fft:
            raise ParameterError(f"hop_length={self.hop_length} must not exceed n_fft={self.n_fft}")
        if self.window != "hann":
            raise ParameterError(f"window={self.window!r}: only 'hann' is supported")
        if self.channels not in (None, "mix", "first", "each"):
            raise ParameterError(f"channels={self.channels!r} must be 'mix', 'first' or 'each'")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frequencies(self) -> np.ndarray:
        return frequencies(self.sample_rate, self.n_fft)

    def check_compatible(self, other: SpectralConfig, what: str = "responses", *,
                         source: str = "the existing set") -> None:
        """Raise :class:`ConfigMismatchError` unless every setting agrees (``self``: the settings of ``source``).

        The message names the first setting that differs, e.g. ``hop_length 256 in responses.json, 512
        requested``. A setting that ``self`` did not record (None in a version 1 file) refuses any value: the
        merge could not tell whether the statistics agree.
        """
        for name in MERGE_SETTINGS:
            a, b = getattr(self, name), getattr(other, name)
            if a == b:
                continue
            if a is None and name in ("channels", "resample"):
                raise ConfigMismatchError(
                    f"cannot combine {what}: {name} is not recorded in {source} (written by an older micmatch); "
                    "profile its recordings again to merge into it")
            raise ConfigMismatchError(f"cannot combine {what}: {name} {_show(a)} in {source}, {_show(b)} requested")


#: Every setting of :class:`SpectralConfig` that must agree for statistics to merge, in the order checked.
MERGE_SETTINGS = ("sample_rate", "n_fft", "hop_length", "window", "floor_db", "gate_db", "relative_gate_db",
                  "channels", "resample")


def _show(value) -> str:
    return "off" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class LogSpectrumStats:
    """Per-bin sums of log power (dB) over frames: exactly mergeable by addition.

    ``mean_db`` is the log of the geometric-mean power (the unaligned spectrum-correction estimate),
    ``std_db`` the spread over frames. ``sum_power`` (optional: linear power summed over the same frames) gives
    ``power_db``, the log of the arithmetic-mean power (the long-term average spectrum).
    """

    sum_db: np.ndarray
    sum_sq_db: np.ndarray
    n_frames: int
    n_files: int = 0
    bin_counts: np.ndarray | None = None
    sum_power: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.sum_db = np.asarray(self.sum_db, dtype=np.float64)
        self.sum_sq_db = np.asarray(self.sum_sq_db, dtype=np.float64)
        if self.sum_db.shape != self.sum_sq_db.shape or self.sum_db.ndim != 1:
            raise ParameterError("sum_db and sum_sq_db must be 1-D arrays of the same length")
        if self.n_frames < 0 or self.n_files < 0:
            raise ParameterError("n_frames and n_files must be non-negative")
        if self.bin_counts is not None:
            self.bin_counts = np.asarray(self.bin_counts, dtype=np.float64)
            if self.bin_counts.shape != self.sum_db.shape or (self.bin_counts < 0).any():
                raise ParameterError("bin_counts must be non-negative, one per bin")
        if self.sum_power is not None:
            self.sum_power = np.asarray(self.sum_power, dtype=np.float64)
            valid = np.isfinite(self.sum_power) & (self.sum_power >= 0)
            if self.sum_power.shape != self.sum_db.shape or not valid.all():
                raise ParameterError("sum_power must be non-negative and finite, one per bin")

    @property
    def counts(self) -> np.ndarray:
        """Frames counted in each bin: ``bin_counts`` when bins were gated separately, else ``n_frames`` for all."""
        if self.bin_counts is not None:
            return self.bin_counts
        return np.full(self.sum_db.shape, float(self.n_frames))

    @classmethod
    def empty(cls, n_bins: int) -> LogSpectrumStats:
        return cls(np.zeros(n_bins), np.zeros(n_bins), 0, 0, sum_power=np.zeros(n_bins))

    def __add__(self, other: LogSpectrumStats) -> LogSpectrumStats:
        if self.sum_db.shape != other.sum_db.shape:
            raise ConfigMismatchError(f"cannot merge statistics of {self.sum_db.size} and {other.sum_db.size} bins")
        per_bin = None
        if self.bin_counts is not None or other.bin_counts is not None:
            per_bin = self.counts + other.counts
        # The power sum survives a merge only when both sides have one (older files have none).
        power = None
        if self.sum_power is not None and other.sum_power is not None:
            power = self.sum_power + other.sum_power
        return LogSpectrumStats(self.sum_db + other.sum_db, self.sum_sq_db + other.sum_sq_db,
                                self.n_frames + other.n_frames, self.n_files + other.n_files, per_bin, power)

    @property
    def mean_db(self) -> np.ndarray:
        counts = self.counts
        if self.n_frames == 0 or (counts <= 0).any():
            raise ParameterError("no frames were counted: every frame was below the silence gate")
        return self.sum_db / counts

    @property
    def power_db(self) -> np.ndarray:
        """Log of the arithmetic-mean power per bin (dB), floored at -160 dB; needs ``sum_power``."""
        if self.sum_power is None:
            raise ParameterError("these statistics have no power sums (made by an older micmatch); "
                                 "profile the recordings again to use the power statistic")
        counts = self.counts
        if self.n_frames == 0 or (counts <= 0).any():
            raise ParameterError("no frames were counted: every frame was below the silence gate")
        return 10.0 * np.log10(self.sum_power / counts + 10.0 ** (DEFAULT_FLOOR_DB / 10.0))

    @property
    def std_db(self) -> np.ndarray:
        mean = self.mean_db
        var = self.sum_sq_db / self.counts - mean**2
        return np.sqrt(np.maximum(var, 0.0))

    def to_json(self) -> dict:
        out = {"sum_db": self.sum_db.tolist(), "sum_sq_db": self.sum_sq_db.tolist(),
               "n_frames": int(self.n_frames), "n_files": int(self.n_files)}
        if self.bin_counts is not None:
            out["bin_counts"] = self.bin_counts.tolist()
        if self.sum_power is not None:
            out["sum_power"] = self.sum_power.tolist()
        return out


@dataclass
class DeviceResponse:
    """One device's magnitude response in dB on the configuration's frequency grid.

    For estimates from recordings ``response_db`` is the mean log power per bin (the device response times the
    long-term spectrum of what it recorded); only differences between devices that recorded similar material are
    meaningful. Measured responses (sweep, impulse) are absolute up to the test signal's level.
    """

    name: str
    response_db: np.ndarray
    method: str = "unaligned"
    stats: LogSpectrumStats | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.response_db = np.asarray(self.response_db, dtype=np.float64)
        if self.response_db.ndim != 1:
            raise ParameterError(f"response_db must be 1-D, got shape {self.response_db.shape}")
        if not np.isfinite(self.response_db).all():
            raise ParameterError(f"device {self.name!r}: response_db contains NaN or infinite values")
        if self.method not in METHODS:
            raise ParameterError(f"method={self.method!r} must be one of {METHODS}")

    @classmethod
    def from_stats(cls, name: str, stats: LogSpectrumStats, *, method: str = "unaligned",
                   meta: dict | None = None) -> DeviceResponse:
        return cls(name, stats.mean_db, method=method, stats=stats, meta=dict(meta or {}))

    @property
    def std_db(self) -> np.ndarray | None:
        return None if self.stats is None else self.stats.std_db

    def merge(self, other: DeviceResponse) -> DeviceResponse:
        """Combine two estimates of the same device by adding their statistics."""
        if self.stats is None or other.stats is None or self.method != other.method:
            raise ConfigMismatchError(
                f"device {self.name!r}: only estimates with statistics of the same method merge "
                f"({self.method} vs {other.method})"
            )
        meta = {**self.meta, **other.meta}
        return DeviceResponse.from_stats(self.name, self.stats + other.stats, method=self.method, meta=meta)

    def to_json(self) -> dict:
        # Full precision (shortest repr that round-trips): a saved and reloaded response is bit-identical.
        out = {"method": self.method, "response_db": [float(v) for v in self.response_db]}
        if self.stats is not None:
            out["std_db"] = _rounded(self.stats.std_db)
            out["stats"] = self.stats.to_json()
        if self.meta:
            out["meta"] = self.meta
        return out


def _rounded(a: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in a]


class ResponseSet(Mapping):
    """Device responses sharing one :class:`SpectralConfig`; a read-only mapping ``name -> DeviceResponse``."""

    def __init__(self, config: SpectralConfig, devices: Iterable[DeviceResponse] | Mapping = (), *,
                 files: Iterable[Mapping] = ()) -> None:
        self.config = config
        #: Fingerprints (:func:`file_fingerprint`) of the input files whose statistics the set holds.
        self.files: list[dict] = [dict(f) for f in files]
        self._devices: dict[str, DeviceResponse] = {}
        items = devices.values() if isinstance(devices, Mapping) else devices
        for dev in items:
            self.add(dev)

    # Mapping protocol -------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> DeviceResponse:
        try:
            return self._devices[name]
        except KeyError:
            known = ", ".join(sorted(self._devices)) or "none"
            raise UnknownDeviceError(f"unknown device {name!r}; known devices: {known}") from None

    def __contains__(self, name: object) -> bool:
        # Mapping's default calls __getitem__ and catches only KeyError; UnknownDeviceError is a LookupError.
        return name in self._devices

    def get(self, name: str, default=None):
        return self._devices.get(name, default)

    def __iter__(self):
        return iter(self._devices)

    def __len__(self) -> int:
        return len(self._devices)

    def __repr__(self) -> str:
        c = self.config
        return f"ResponseSet({sorted(self._devices)}, sample_rate={c.sample_rate}, n_fft={c.n_fft})"

    @property
    def frequencies(self) -> np.ndarray:
        return self.config.frequencies

    # Building ---------------------------------------------------------------------------------------------
    def add(self, device: DeviceResponse) -> None:
        """Add a device; a device of the same name is merged (statistics added) rather than replaced."""
        if device.response_db.shape != (self.config.n_bins,):
            raise ConfigMismatchError(
                f"device {device.name!r} has {device.response_db.size} bins; this set has "
                f"{self.config.n_bins} (n_fft={self.config.n_fft})"
            )
        if device.name in self._devices:
            device = self._devices[device.name].merge(device)
        self._devices[device.name] = device

    def counted(self, fingerprints: Iterable[Mapping]) -> list[dict]:
        """The fingerprints among ``fingerprints`` whose content this set has already counted."""
        have = {fingerprint_key(f) for f in self.files}
        return [dict(f) for f in fingerprints if fingerprint_key(f) in have]

    def merge(self, other: ResponseSet, *, source: str = "the existing set") -> ResponseSet:
        """A new set with the devices of both; devices present in both are merged by their statistics.

        Raises
        ------
        ConfigMismatchError
            When a setting differs (naming it, see :meth:`SpectralConfig.check_compatible`) or when ``other``
            holds files already counted here (leave them out before estimating, as ``profile --merge`` does).
        """
        self.config.check_compatible(other.config, source=source)
        twice = self.counted(other.files)
        if twice:
            raise ConfigMismatchError(f"cannot combine responses: {len(twice)} file(s) are already counted in "
                                      f"{source} (first: {twice[0]['path']}); leave them out")
        out = ResponseSet(self.config, self._devices.values(), files=self.files + other.files)
        for dev in other.values():
            out.add(dev)
        return out

    def relative_db(self, device: str, reference: str) -> np.ndarray:
        """``response[device] - response[reference]`` in dB."""
        return self[device].response_db - self[reference].response_db

    # Persistence ------------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": asdict(self.config),
            "frequencies_hz": _rounded(self.frequencies),
            "devices": {name: dev.to_json() for name, dev in self._devices.items()},
            "files": self.files,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the set as JSON, atomically."""
        path = Path(path)
        text = json.dumps(self.to_json(), indent=1, allow_nan=False)
        with atomic_path(path) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
        return path

    def save_merged(self, path: str | os.PathLike, *, merge_from: str | os.PathLike | None = None) -> ResponseSet:
        """Save the set, first merged into the one stored at ``merge_from`` (when given and present), as one
        read-merge-write under the files' locks (:func:`micmatch.outputs.locked`): concurrent writers of one file
        all keep their devices. Returns the set written."""
        paths = [path] if merge_from is None else [path, merge_from]
        result = self
        with locked(*paths):
            if merge_from is not None and Path(merge_from).exists():
                result = ResponseSet.load(merge_from).merge(self, source=str(merge_from))
            result.save(path)
        return result

    @classmethod
    def load(cls, path: str | os.PathLike) -> ResponseSet:
        """Read a set saved by :meth:`save`. Corrupt files and other format versions raise :class:`ProfileError`."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read responses file ({exc.strerror or exc})") from None
        try:
            doc = json.loads(data.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_json(doc, source=str(path))

    @classmethod
    def from_json(cls, doc: object, *, source: str = "responses") -> ResponseSet:
        def bad(why: str) -> ProfileError:
            return ProfileError(f"{source}: {why}")

        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise bad(f"not a micmatch responses file (expected \"format\": \"{FORMAT}\")")
        version = doc.get("format_version")
        if version not in READABLE_VERSIONS:
            raise bad(f"format_version={version!r} is not supported by this micmatch (reads versions "
                      f"{', '.join(map(str, READABLE_VERSIONS))})")
        try:
            cfg = doc["config"]
            if not isinstance(cfg, dict):
                raise TypeError("'config' must be an object")
            n_fft = jc.as_int(cfg["n_fft"], "config.n_fft", lo=2, hi=MAX_JSON_N_FFT)

            def level(key, default):
                value = cfg.get(key, default)
                return None if value is None else jc.as_float(value, f"config.{key}")

            config = SpectralConfig(
                sample_rate=jc.as_int(cfg["sample_rate"], "config.sample_rate", lo=1, hi=MAX_JSON_SAMPLE_RATE),
                n_fft=n_fft, hop_length=jc.as_int(cfg["hop_length"], "config.hop_length", lo=1, hi=n_fft),
                window=str(cfg.get("window", "hann")), floor_db=level("floor_db", DEFAULT_FLOOR_DB),
                gate_db=level("gate_db", None), relative_gate_db=level("relative_gate_db", None),
                channels=None if cfg.get("channels") is None else str(cfg["channels"]),
                resample=None if cfg.get("resample") is None else bool(cfg["resample"]),
            )
        except KeyError as exc:
            raise bad(f"invalid config (missing {exc})") from None
        except (TypeError, ValueError) as exc:
            raise bad(f"invalid config ({exc})") from None
        freqs = doc.get("frequencies_hz")
        if freqs is not None:
            try:
                f = jc.as_float_array(freqs, "frequencies_hz", lo=0.0, hi=config.sample_rate / 2 + 1)
            except (TypeError, ValueError) as exc:
                raise bad(str(exc)) from None
            if f.shape != (config.n_bins,) or not np.allclose(f, config.frequencies, atol=1e-3):
                raise bad("frequencies_hz does not match sample_rate and n_fft")
        devices = doc.get("devices")
        if not isinstance(devices, dict):
            raise bad("missing 'devices' object")
        try:
            files = [dict(f) for f in doc.get("files") or []]
            for f in files:
                fingerprint_key(f)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"invalid 'files' list: each entry needs size and sha256 ({exc})") from None
        out = cls(config, files=files)
        n_bins = config.n_bins
        for name, d in devices.items():
            try:
                if not isinstance(d, dict):
                    raise TypeError("must be an object")
                stats = None
                if d.get("stats") is not None:
                    s = d["stats"]
                    if not isinstance(s, dict):
                        raise TypeError("stats must be an object")
                    n_frames = jc.as_int(s["n_frames"], "stats.n_frames", lo=0, hi=MAX_JSON_COUNT)
                    top = jc.MAX_ABS_DB * max(n_frames, 1)
                    counts = s.get("bin_counts")
                    stats = LogSpectrumStats(
                        jc.as_float_array(s["sum_db"], "stats.sum_db", size=n_bins, lo=-top, hi=top),
                        jc.as_float_array(s["sum_sq_db"], "stats.sum_sq_db", size=n_bins, lo=0.0,
                                          hi=jc.MAX_ABS_DB * top),
                        n_frames, jc.as_int(s.get("n_files", 0), "stats.n_files", lo=0, hi=MAX_JSON_COUNT),
                        None if counts is None else jc.as_float_array(counts, "stats.bin_counts", size=n_bins,
                                                                     lo=0.0, hi=float(MAX_JSON_COUNT)),
                        # Linear power (full scale = 1 per frame and bin at most a few units), summed over frames.
                        None if s.get("sum_power") is None else jc.as_float_array(
                            s["sum_power"], "stats.sum_power", size=n_bins, lo=0.0, hi=1e6 * max(n_frames, 1)))
                response = jc.as_float_array(d["response_db"], "response_db")
                if stats is not None and stats.n_frames > 0 and not np.allclose(stats.mean_db, response, atol=1e-4):
                    raise ParameterError("response_db disagrees with its statistics")
                dev = DeviceResponse(name, response, method=d.get("method", "unaligned"), stats=stats,
                                     meta=dict(d.get("meta") or {}))
                if dev.response_db.shape != (config.n_bins,):
                    raise ParameterError(f"{dev.response_db.size} bins, expected {config.n_bins}")
            except KeyError as exc:
                raise bad(f"device {name!r} is invalid (missing {exc})") from None
            except (TypeError, ValueError, AttributeError) as exc:
                raise bad(f"device {name!r} is invalid ({exc})") from None
            out.add(dev)
        return out


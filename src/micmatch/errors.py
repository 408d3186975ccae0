"""The micmatch exception family.

Every error raised on purpose by micmatch is a :class:`MicmatchError`. Each subclass also inherits the builtin
exception that fits, so generic handlers (``except ValueError``) keep working.
"""

from __future__ import annotations


class MicmatchError(Exception):
    """Base class of every error micmatch raises on purpose."""


class AudioError(MicmatchError, ValueError):
    """Audio that cannot be read or used: unreadable, truncated, empty, silent, non-finite, too short."""


class ConfigMismatchError(MicmatchError, ValueError):
    """Two objects disagree on sample rate, FFT size or frequency grid and cannot be combined."""


class ProfileError(MicmatchError, ValueError):
    """A responses/profile file that is corrupt, of another format version, or inconsistent."""


class UnknownDeviceError(MicmatchError, KeyError):
    """A device name that is not in a responses file (a ``KeyError``, so mapping idioms keep working)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ParameterError(MicmatchError, ValueError):
    """An option or parameter value outside its valid range (``n_fft=0``, ``jobs=0``, an unknown mode...)."""


class FeatureError(ParameterError):
    """Spectrogram features, or feature options, of the wrong shape or values (a :class:`ParameterError`)."""


class AugmentError(ParameterError):
    """Augmentation options or parameter sets that cannot be used (a :class:`ParameterError`)."""


class MeasurementError(MicmatchError, ValueError):
    """A measurement (sweep, impulse, aligned pair) that cannot be analysed."""


class CorpusError(MicmatchError, ValueError):
    """A dataset description (metadata CSV, folder layout) that is wrong or incomplete."""


class MissingDependencyError(MicmatchError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency or raise :class:`MissingDependencyError` naming the extra.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"torch"``.
    extra : str
        The micmatch extra that provides it, e.g. ``"torch"`` for ``pip install micmatch[torch]``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'micmatch[{extra}]'"
        ) from exc


class OutputError(MicmatchError, OSError):
    """An output that cannot or must not be written: it is an input, lies inside an input folder, lies under a
    file, or the system refused it (permission, disk full)."""


class ModelError(MicmatchError, ValueError):
    """A learned-model file that is not a model file, truncated, modified, or inconsistent with its header."""


class MicmatchWarning(UserWarning):
    """Base class of the warnings micmatch raises about one input; ``summary`` (when set) is how a batch sums up
    the files that raised it: ``"N of M files " + summary``."""

    summary: str | None = None


class DCOffsetWarning(MicmatchWarning):
    """Frames of a recording were left out of its statistics because a DC offset (0 Hz) dominated them."""

    summary = "had frames dominated by a DC offset; those frames were not counted"

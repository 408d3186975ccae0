"""micmatch: measure, match and simulate the frequency responses of recording devices.

The numpy/scipy core imports without torch or dask; ``micmatch.learn`` needs the ``torch`` extra and
``micmatch.parallel`` with a scheduler needs the ``dask`` extra.
"""

from micmatch.errors import (
    AudioError,
    AugmentError,
    ConfigMismatchError,
    CorpusError,
    FeatureError,
    MeasurementError,
    MicmatchError,
    MissingDependencyError,
    ParameterError,
    ProfileError,
    UnknownDeviceError,
)

__version__ = "0.1.0"


def match(target, reference, output=None, **options):
    """Make ``target`` sound as if recorded like ``reference``; see :func:`micmatch.match.match`."""
    from micmatch.match import match as _match

    return _match(target, reference, output, **options)


__all__ = [
    "AudioError",
    "AugmentError",
    "ConfigMismatchError",
    "CorpusError",
    "FeatureError",
    "MeasurementError",
    "MicmatchError",
    "MissingDependencyError",
    "ParameterError",
    "ProfileError",
    "UnknownDeviceError",
    "__version__",
    "match",
]

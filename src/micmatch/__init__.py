"""micmatch: measure, match and simulate the frequency responses of recording devices.

The numpy/scipy core imports without torch or dask; ``micmatch.learn`` needs the ``torch`` extra and
``micmatch.parallel`` with a scheduler needs the ``dask`` extra.
"""

import sys
import types
import warnings

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
from micmatch.matchresult import MatchResult

__version__ = "0.1.0"


def match(target, reference, output=None, **options) -> MatchResult:
    """Make ``target`` sound as if recorded like ``reference``; see :func:`micmatch.matching.match`."""
    from micmatch.matching import match as _match

    return _match(target, reference, output, **options)


def event(recordings, output_dir, **options):
    """Bring recordings of one event onto one timeline and one sound; see :func:`micmatch.eventmode.event`."""
    from micmatch.eventmode import event as _event

    return _event(recordings, output_dir, **options)


# The module ``micmatch.match`` is now ``micmatch.matching``; its old name works for one release (it goes in the
# next). It cannot stay a submodule: importing a submodule sets the package attribute of its name, which would
# replace the function above. Instead sys.modules holds, under the old name, a stand-in whose attributes come
# from micmatch.matching on first use: ``from micmatch.match import match`` resolves without touching the package
# attribute, and ``import micmatch`` stays light. ``micmatch.match.MatchResult`` is an attribute of the function.
match.MatchResult = MatchResult


def _from_matching(name: str):
    if name.startswith("__"):  # the import machinery probing (__path__, __file__...)
        raise AttributeError(name)
    from micmatch import matching

    value = getattr(matching, name)
    warnings.warn(f"micmatch.match.{name} is now micmatch.matching.{name}; the old module name goes in the next "
                  f"release", DeprecationWarning, stacklevel=2)
    return value


_old_match_module = types.ModuleType("micmatch.match", "Old name of :mod:`micmatch.matching` (for one release).")
_old_match_module.__getattr__ = _from_matching
_old_match_module.__all__ = ["MatchResult", "analysis_n_fft", "long_term_distance_db", "long_term_spectrum_db", "match",
                             "read_target_curve", "third_octave_levels_db"]
sys.modules.setdefault("micmatch.match", _old_match_module)


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
    "MatchResult",
    "UnknownDeviceError",
    "__version__",
    "event",
    "match",
]

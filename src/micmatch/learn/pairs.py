"""Old home of :mod:`micmatch.pairs`, kept for one release (remove it in the next).

The module needs no torch, so it moved out of the torch package: import from ``micmatch.pairs``.
"""

from micmatch.pairs import *  # noqa: F403
from micmatch.pairs import __all__  # noqa: F401

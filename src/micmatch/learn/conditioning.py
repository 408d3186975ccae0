"""Old home of :mod:`micmatch.conditioning`, kept for one release (remove it in the next): import from ``micmatch.conditioning``.

The module needs no torch, so it moved out of the torch package.
"""

from micmatch.conditioning import *  # noqa: F403
from micmatch.conditioning import __all__  # noqa: F401

"""Old home of :mod:`micmatch.conditioning`, kept for one release (remove it in the next).

The module needs no torch, so it moved out of the torch package: import from ``micmatch.conditioning``.
"""

from micmatch.conditioning import *  # noqa: F403
from micmatch.conditioning import __all__  # noqa: F401

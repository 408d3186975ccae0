"""PyTorch side of micmatch: nn.Module twins of the feature normalizations and augmentations (``transforms``),
classifiers and training loops.

Needs the ``torch`` extra (``pip install 'micmatch[torch]'``); importing this package without torch raises
:class:`~micmatch.errors.MissingDependencyError` naming that extra. The numpy core never imports it.
"""

from __future__ import annotations

from micmatch.errors import require

torch = require("torch", "torch")

__all__ = ["torch"]

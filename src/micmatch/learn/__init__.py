"""PyTorch side of micmatch: learned models apart from their training, one engine and one model-file format.

Models: ``transforms`` (nn.Module twins of the feature normalizations and augmentations), ``classifier``,
``ratio_net`` and ``eq_net`` (learned normalizers), ``converter_model`` (the FiLM device converter),
``converter_augment`` (the converter as an augmentation). Training: ``classifier_train``, ``normalizer_train``,
``converter_train``, all on ``engine`` (compute device, determinism, progress, early stopping); ``heldout``
compares a learned model with the static correction on held-out audio, and ``event_residual`` is event mode's
learned correction over the static one, kept only where that comparison shows it better. Files:
``modelfile`` (JSON header + weights), used by ``classifier``, ``normalizer`` and ``converter_model``. The
numpy-only helpers they use live outside this package: :mod:`micmatch.pairs`, :mod:`micmatch.conditioning`,
:mod:`micmatch.domains`.

Needs the ``torch`` extra (``pip install 'micmatch[torch]'``); importing this package without torch raises
:class:`~micmatch.errors.MissingDependencyError` naming that extra. The numpy core never imports it.
"""

from __future__ import annotations

from micmatch.errors import require

torch = require("torch", "torch")

__all__ = ["torch"]

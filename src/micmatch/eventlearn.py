"""Event mode: the hook for a learned correction on top of the static one.

``event(..., learned=fit_devices)`` hands ``fit_devices`` one pair per device that overlaps the reference directly:
``pairs[name] = (device, reference)``, mono float32 at the stems' rate, time-aligned on the timeline, the device
after its static correction, over at most :data:`PAIR_S` seconds of the overlap (the stretch where the reference is
loudest). It returns ``{name: fit}``; a kept fit's ``apply`` runs on every channel of the device's stem after the
static correction and before the loudness step, block by block with ``fit.context`` samples of context
(:func:`micmatch.eventstream.apply_with_context`). This module needs no learning library: the callable brings it.
"""

from __future__ import annotations

import numpy as np

from micmatch.errors import ParameterError
from micmatch.render import process_array

#: Longest stretch of an overlap handed to the learned correction (seconds).
PAIR_S = 120.0
#: Step of the energy profile used to find the loudest stretch (seconds).
STEP_S = 0.1


def loudest_window(store, a: int, b: int, sample_rate: int, length: int) -> tuple[int, int]:
    """The ``length`` samples of ``a .. b`` where ``store`` (a placed recording) has the most energy, on a 100 ms
    grid; all of ``a .. b`` when shorter."""
    if b - a <= length:
        return a, b
    step = max(1, int(STEP_S * sample_rate))
    energies = []
    for s in range(a, b, 100 * step):
        x = store.read(s, min(s + 100 * step, b)).mean(axis=0).astype(np.float64)
        whole = x.shape[-1] // step * step
        energies.append((x[:whole] ** 2).reshape(-1, step).sum(axis=-1))
    e = np.concatenate(energies)
    width = length // step
    c = np.concatenate([[0.0], np.cumsum(e)])
    best = int(np.argmax(c[width:] - c[:-width])) if e.shape[0] > width else 0
    lo = a + best * step
    return lo, min(lo + length, b)


def corrected_piece(store, processor, lo: int, hi: int) -> np.ndarray:
    """Mono of ``store`` over ``lo .. hi`` after the static correction ``processor`` (with its context read)."""
    if processor is None:
        return store.read(lo, hi).mean(axis=0).astype(np.float32)
    ctx = max(processor.left, processor.right)
    y = process_array(store.read(lo - ctx, hi + ctx), processor)
    return y[:, ctx : ctx + hi - lo].mean(axis=0).astype(np.float32)


def pairs_for(kept, ref, names, routes, stores, covered, processors, sample_rate) -> dict:
    """The pairs handed to the learned correction (module docstring)."""
    pairs = {}
    for k in kept:
        if k == ref or len(routes[k]) != 2:
            continue
        a, b = max(covered[k][0], covered[ref][0]), min(covered[k][1], covered[ref][1])
        lo, hi = loudest_window(stores[ref], a, b, sample_rate, int(PAIR_S * sample_rate))
        pairs[names[k]] = (corrected_piece(stores[k], processors.get(k), lo, hi),
                           corrected_piece(stores[ref], processors.get(ref), lo, hi))
    return pairs


def check_fit(name: str, fit) -> None:
    """Refuse a fit without the interface (``kept``, ``context``, ``figures``, ``reason``, ``apply``)."""
    missing = [a for a in ("kept", "context", "figures", "reason", "apply") if not hasattr(fit, a)]
    if missing:
        raise ParameterError(f"{name}: the learned correction's fit lacks {', '.join(missing)}")
    if int(fit.context) < 0:
        raise ParameterError(f"{name}: the learned correction's context {fit.context} must be >= 0")


def summary(fit, paired: bool = True) -> dict:
    """What ``event.json`` says of one device's learned correction (``paired``: whether it was given a pair)."""
    if not paired:
        return {"kept": False, "reason": "does not overlap the reference directly", "figures": {}}
    if fit is None:
        return {"kept": False, "reason": "the learned correction returned no fit for it", "figures": {}}
    return {"kept": bool(fit.kept), "reason": str(fit.reason), "figures": fit.figures}


__all__ = ["PAIR_S", "check_fit", "loudest_window", "pairs_for", "summary"]

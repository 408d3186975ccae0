"""Fitting the fitted registry entries of a recipe on the benchmark's data, once per entry, parameters and data.

A fitted step's state comes from one of two places. Given an argument (``umc:CONVERTER``), the entry's ``load``
reads it and the step's ``check_loaded`` checks it against the benchmark. Otherwise the entry's ``fit``
(:mod:`micmatch.registry`) fits it on the recordings its ``fit_on`` names, passed through the recipe's steps
before it (corrections of the waveforms; the front end for statistics of features):

* ``per-device``: every device's clips, labelled: its training clips when it has some in this training set,
  otherwise its calibration clips, never the clips being scored; ``reference`` is the reference device.
* ``training``: the training set.
* ``reference``: the reference device's training clips.

A step with its own ``fit_data`` hook (:class:`~micmatch.bench.recipes.Step`) says its clips itself, in the
same ``(device index, rows)`` form: the device converter of the adaptation track adds the known devices'
unlabeled clips to the reference's this way.

States fitted on waveforms (spectrum correction, the device converter) are fitted before the front end is built;
statistics of features in recipe order, each on the features of the steps before it. A :class:`FittedStates`
store holds every state of a run, keyed by the step, its parameters and a digest of the data it was fitted on,
so recipes that share a fitted step on the same data share its state (the converter is trained once per run).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import numpy as np

from micmatch import registry
from micmatch.bench import recipes as rc
from micmatch.bench.recipes import Recipe, split_step


def entry_of(step: str) -> registry.Transform | None:
    """The fitted registry entry that ``step`` applies, or None for a step without fitted state."""
    impl = rc.STEPS[split_step(step)[0]]
    return registry.get(impl.fitted) if impl.fitted else None


def _digest(items, devices, reference) -> str:
    h = hashlib.sha1()
    for x in [items] if isinstance(items, np.ndarray) else items:
        h.update(np.ascontiguousarray(x).tobytes())
    h.update(json.dumps([list(map(str, devices or [])), reference]).encode())
    return h.hexdigest()


class FittedStates:
    """Every fitted state of one benchmark run (see the module docstring).

    ``trained`` lists ``(entry name, state)`` for the states fitted in this run (not those loaded), in order.
    """

    def __init__(self) -> None:
        self._fitted: dict[tuple, object] = {}
        self._loaded: dict[str, object] = {}
        self.trained: list[tuple[str, object]] = []

    def check(self, step: str, data) -> None:
        """Refuse, before any training, a step that cannot get its state: a file that does not load or does not
        suit the benchmark, or data the entry cannot be fitted on."""
        name, arg = split_step(step)
        impl = rc.STEPS[name]
        if not impl.fitted:
            return
        if arg is not None:
            self.load(step, data)
        elif impl.before_fit is not None:
            impl.before_fit(data)

    def load(self, step: str, data):
        """The state of ``name:PATH``, read once with the entry's ``load`` and checked with the step's
        ``check_loaded``."""
        if step not in self._loaded:
            name, arg = split_step(step)
            impl = rc.STEPS[name]
            state = registry.get(impl.fitted).load(arg, config=data.config.logmel(data.sample_rate))
            if impl.check_loaded is not None:
                impl.check_loaded(state, arg, data)
            self._loaded[step] = state
        return self._loaded[step]

    def fit(self, step: str, data, items, *, devices=None, reference: str | None = None):
        """The state of ``step`` fitted on ``items`` (reused when this step was fitted on the same data)."""
        name, _ = split_step(step)
        impl = rc.STEPS[name]
        entry = registry.get(impl.fitted)
        params = entry.parameters(impl.settings(data))
        fit_params = {k: v for k, v in params.items() if k not in impl.apply_only}
        key = (entry.name, json.dumps(fit_params, sort_keys=True, default=str), _digest(items, devices, reference))
        if key not in self._fitted:
            if impl.before_fit is not None:
                impl.before_fit(data)
            state = entry.fit(items, config=data.config.logmel(data.sample_rate), devices=devices,
                              reference=reference, **params)
            self._fitted[key] = state
            self.trained.append((entry.name, state))
        return self._fitted[key]

    def first_trained(self, name: str):
        """The first state of entry ``name`` fitted in this run, or None."""
        return next((s for n, s in self.trained if n == name), None)


def fitting_rows(data, ideal: bool, fit_on: str) -> list[tuple[int, Callable[[], np.ndarray] | np.ndarray]]:
    """``(device index, rows)`` of the clips ``fit_on`` names: training-set rows (an index array) or, for a
    device without training clips, a callable giving its calibration clips."""
    assign = data.assign_ideal if ideal else data.assign
    if fit_on == "training":
        return [(-1, np.arange(len(assign)))]
    ref = data.plan.names.index(data.plan.reference.name)
    devices = [ref] if fit_on == "reference" else range(len(data.plan.names))
    out = []
    for i in devices:
        rows = np.flatnonzero(assign == i)
        out.append((i, rows if rows.size else (lambda i=i: data.calibration_set(i))))
    return out


def waveform_states(recipe: Recipe, data, store: FittedStates) -> dict[str, object]:
    """States of the recipe's fitted steps that fit on waveforms, in pipeline order; each fits on clips corrected
    by the correction steps before it."""
    from micmatch.bench.recipes import build_step

    ideal = recipe.ideal
    assign = data.assign_ideal if ideal else data.assign
    corrections: list = []

    def corrected(waves, index):
        for c in corrections:
            waves = c(waves, index)
        return waves

    states: dict[str, object] = {}
    for step in recipe.steps():
        entry = entry_of(step)
        if entry is None or entry.fit_domain != "waveform":
            continue
        if split_step(step)[1] is not None:
            states[step] = store.load(step, data)
        else:
            items, labels = [], []
            impl = rc.STEPS[split_step(step)[0]]
            sources = impl.fit_data(data, ideal) if impl.fit_data else fitting_rows(data, ideal, entry.fit_on)
            for i, rows in sources:
                if callable(rows):
                    waves, index = rows(), None
                else:
                    waves, index = data.train_set(ideal)[rows], assign[rows]
                index = np.full(len(waves), i) if index is None else index
                items.append(corrected(waves, index))
                labels += [data.plan.names[int(d)] for d in index]
            states[step] = store.fit(step, data, np.concatenate(items), devices=labels,
                                     reference=data.plan.reference.name)
        if step in recipe.correct:
            corrections.append(build_step(step, data, states[step]))
    return states


__all__ = ["FittedStates", "entry_of", "fitting_rows", "waveform_states"]

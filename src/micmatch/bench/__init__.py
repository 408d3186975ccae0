"""Benchmark suites behind ``micmatch bench ...``.

The device-mismatch benchmark (simulated devices from impulse responses, one classifier per recipe and seed,
per-device accuracy and macro-F1, device gap, gap closed), split by job: :mod:`~micmatch.bench.plan` (which
impulse responses play which device), :mod:`~micmatch.bench.data` (settings, clips, simulated recordings),
:mod:`~micmatch.bench.recipes` (the recipe language and registry), :mod:`~micmatch.bench.fitting` (fitting the
states of fitted steps), :mod:`~micmatch.bench.pipeline` (the torch pipeline of a recipe),
:mod:`~micmatch.bench.run` (training and scoring) and :mod:`~micmatch.bench.report` (tables, JSON, chart,
merging parts). :mod:`~micmatch.bench.mismatch` gathers their public names.
"""

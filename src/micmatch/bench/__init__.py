"""Benchmark suites behind ``micmatch bench ...``.

* :mod:`micmatch.bench.mismatch`: the device-mismatch benchmark (simulated devices from impulse responses, one
  classifier per recipe and seed, per-device accuracy and macro-F1, device gap, gap closed).
"""

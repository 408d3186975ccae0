"""The direct measure of conversion quality: distances between distributions of per-band frame levels."""

from __future__ import annotations

import numpy as np
import pytest

from micmatch.conversion_quality import QUANTILES, band_quantiles, quantile_distance
from micmatch.errors import ParameterError


def test_identical_sets_are_at_zero_and_an_offset_is_measured_exactly():
    x = np.random.default_rng(0).normal(-50, 12, (5, 8, 30))
    assert quantile_distance(x, x) == 0.0
    # A constant shift moves every quantile by the shift (float rounding only).
    assert quantile_distance(x + 3.0, x) == pytest.approx(3.0, abs=1e-9)
    shift = np.linspace(-4, 4, 8)[None, :, None]
    assert quantile_distance(x + shift, x) == pytest.approx(np.mean(np.abs(shift)), abs=1e-9)


def test_a_missing_noise_floor_is_seen_in_the_low_quantiles():
    rng = np.random.default_rng(1)
    speech = rng.normal(-30, 5, (4, 6, 50))
    speech[:, :, 25:] = -120.0  # silence: a deterministic generator would leave it there
    floored = speech.copy()
    floored[:, :, 25:] = rng.normal(-70, 3, (4, 6, 25))
    q = band_quantiles(floored) - band_quantiles(speech)
    assert q.shape == (6, len(QUANTILES))
    assert np.all(q[:, 0] > 40) and np.all(np.abs(q[:, -1]) < 1e-9)  # the floor differs, loud frames do not
    assert quantile_distance(speech, floored) > 10


def test_bad_inputs_are_refused_in_one_line():
    x = np.zeros((2, 4, 10))
    with pytest.raises(ParameterError, match="mel bands"):
        quantile_distance(x, np.zeros((2, 5, 10)))
    with pytest.raises(ParameterError, match="NaN"):
        band_quantiles(np.full((1, 4, 3), np.nan))
    with pytest.raises(ParameterError, match="at least one frame"):
        band_quantiles(np.zeros((0, 4, 10)))

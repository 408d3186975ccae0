"""The shared argument checks: accepted values come back as plain Python types; refused ones raise one line that
names the argument, its value and the requirement, as ParameterError or the class passed as error=."""

from __future__ import annotations

import math

import numpy as np
import pytest

from micmatch import validate as v
from micmatch.errors import CorpusError, FeatureError, ParameterError


def test_accepted_values_come_back_as_python_types():
    assert v.positive_int(np.int64(3), "n") == 3 and type(v.positive_int(np.int64(3), "n")) is int
    assert v.int_in_range(5, "k", low=1, high=5) == 5
    assert v.finite_float(np.float32(0.5), "x") == 0.5
    assert v.float_in_range(0.0, "pole", low=0.0, high=1.0, high_inclusive=False) == 0.0
    assert v.positive_float(2, "alpha") == 2.0
    assert v.probability(1, "p") == 1.0
    assert v.odd_size(7, "size") == 7 and v.even_size(512, "n_fft") == 512
    assert v.one_of("gms", "mode", ("gms", "gmsvn")) == "gms"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: v.positive_int(0, "n_fft"), "n_fft=0 must be a positive integer"),
    (lambda: v.positive_int(True, "jobs"), "jobs=True must be a positive integer"),
    (lambda: v.positive_int(2.0, "jobs"), "jobs=2.0 must be a positive integer"),
    (lambda: v.int_in_range(9, "n_ceps", low=1, high=8), "n_ceps=9 must be an integer in [1, 8]"),
    (lambda: v.finite_float(math.nan, "gain"), "gain=nan must be a finite number"),
    (lambda: v.float_in_range(1.0, "pole", low=0.0, high=1.0, high_inclusive=False), "pole=1.0 must be a number in [0.0, 1.0)"),
    (lambda: v.float_in_range(-1.0, "x", low=0.0), "x=-1.0 must be a number >= 0.0"),
    (lambda: v.positive_float(math.inf, "alpha"), "alpha=inf must be positive"),
    (lambda: v.probability(1.5), "p=1.5 must be a probability in [0, 1]"),
    (lambda: v.odd_size(4, "size"), "size=4 must be a positive odd integer"),
    (lambda: v.even_size(511, "n_fft"), "n_fft=511 must be a positive even integer"),
    (lambda: v.one_of("l2", "mode", ("gms", "gmsvn")), "mode='l2' must be one of 'gms', 'gmsvn'"),
])
def test_refused_values_name_the_argument_and_the_requirement(call, message):
    with pytest.raises(ParameterError) as info:
        call()
    assert str(info.value) == message


def test_error_class_can_be_chosen():
    with pytest.raises(FeatureError):
        v.positive_int(0, "n_mels", error=FeatureError)
    with pytest.raises(CorpusError):
        v.probability(2.0, "test_fraction", error=CorpusError)
    assert issubclass(FeatureError, ParameterError)

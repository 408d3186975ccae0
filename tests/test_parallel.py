"""parallel: results in input order whatever the workers, failures collected, dask gives the same result."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from micmatch import audio
from micmatch.errors import AudioError
from micmatch.estimate import file_stats
from micmatch.parallel import FileFailure, default_jobs, map_files
from micmatch.response import SpectralConfig


def _square_or_fail(item: int) -> int:
    if item % 5 == 3:
        raise AudioError(f"item{item}: refused on purpose")
    if item == 7:
        raise ValueError("an unexpected problem")
    return item * item


def _expected(items):
    out = []
    for i in items:
        if i % 5 == 3:
            out.append(FileFailure(str(i), f"item{i}: refused on purpose"))
        elif i == 7:
            out.append(FileFailure(str(i), "unexpected ValueError: an unexpected problem"))
        else:
            out.append(i * i)
    return out


@pytest.mark.parametrize("jobs", [1, 2])
def test_order_preserved_and_failures_collected(jobs):
    items = list(range(40))
    got = list(map_files(_square_or_fail, items, jobs=jobs))
    assert [i for i, _ in got] == items
    assert [r for _, r in got] == _expected(items)


def test_failure_message_names_the_item_once():
    assert str(FileFailure("a.wav", "a.wav: silent")) == "a.wav: silent"
    assert str(FileFailure("a.wav", "silent")) == "a.wav: silent"


def test_jobs_validation_and_default():
    with pytest.raises(ValueError, match="jobs=0 must be at least 1"):
        list(map_files(_square_or_fail, [1], jobs=0))
    assert default_jobs() >= 1


def test_unexpected_exceptions_outside_the_list_propagate():
    def boom(item):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(map_files(boom, [1, 2]))


@pytest.fixture
def wav_files(tmp_path, rng):
    paths = []
    for i in range(6):
        x = (rng.standard_normal(4000) * 0.02 * (i + 1)).astype(np.float32)
        paths.append(str(audio.save(tmp_path / f"{i}.wav", x, 8000, subtype="PCM_16")))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    paths.insert(3, str(bad))
    return paths


def test_dask_scheduler_gives_the_same_result_as_jobs_1(wav_files):
    distributed = pytest.importorskip("distributed")
    config = SpectralConfig(sample_rate=8000, n_fft=256, hop_length=64)
    work = functools.partial(file_stats, config=config)
    local = list(map_files(work, wav_files, jobs=1))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        remote = list(map_files(work, wav_files, scheduler=cluster.scheduler_address))
    assert [i for i, _ in remote] == wav_files
    for (_, a), (_, b) in zip(local, remote):
        if isinstance(a, FileFailure):
            assert a == b and "bad.wav: cannot read audio" in str(a)
        else:
            np.testing.assert_array_equal(a.sum_db, b.sum_db)
            assert a.n_frames == b.n_frames

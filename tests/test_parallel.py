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


def _sleepy(item: int) -> int:
    import time

    time.sleep(0.2)
    return item


_POOL_SCRIPT = """
import sys
from micmatch.outputs import handle_termination
from micmatch.parallel import map_files
from test_parallel import _sleepy
handle_termination()
print("started", flush=True)
try:
    for _ in map_files(_sleepy, list(range(400)), jobs=2):
        pass
except KeyboardInterrupt:
    sys.exit(143)
"""


def _children(pid: int) -> list[int]:
    import glob

    kids = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        with open(path) as fh:
            kids += [int(k) for k in fh.read().split()]
    return kids


def _alive(pid: int) -> bool:

    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc to find the workers")
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_worker_pool_stops_on_termination_without_orphans(signame):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent / "src"), str(here)]))
    proc = subprocess.Popen([sys.executable, "-c", _POOL_SCRIPT], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:  # the pool's workers (and its helper, if any)
        workers = [k for k in _children(proc.pid) if _alive(k)]
        time.sleep(0.05)
    assert len(workers) >= 2
    time.sleep(0.5)  # the workers are busy
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], "worker processes outlived the interrupted batch"
    assert "Traceback" not in err


def test_unreachable_dask_scheduler_is_one_quick_line(monkeypatch):
    pytest.importorskip("distributed")
    import time

    from micmatch import parallel
    from micmatch.errors import ParameterError

    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 1.0)  # nothing listens on port 1: refused or timed out
    t0 = time.monotonic()
    with pytest.raises(ParameterError, match=r"--scheduler tcp://127.0.0.1:1: cannot connect") as info:
        list(map_files(_sleepy, [1, 2], scheduler="tcp://127.0.0.1:1"))
    assert "\n" not in str(info.value)
    assert time.monotonic() - t0 < 20  # distributed's own default waits 30 s and then prints a long traceback

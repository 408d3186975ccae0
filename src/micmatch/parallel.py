"""Map work over files, in this process, in local worker processes, or on a dask.distributed cluster.

Results come back in input order, so reductions done by the caller (e.g. adding per-file statistics) are the
same whatever the number of workers. A file that fails becomes a :class:`FileFailure` and the batch goes on.
Warnings raised while an item is processed are caught where it runs (a worker never prints them) and raised again
in the calling process, in input order, just before that item's result is yielded: a caller that records them
(``warnings.catch_warnings``) sees the same warnings whatever the number of workers.

Interruption: when the caller stops (SIGINT, SIGTERM under :func:`micmatch.outputs.handle_termination`, or any
exception), pending work is cancelled and worker processes are terminated and joined: none is left behind. Workers
ignore SIGINT (a terminal's Ctrl-C reaches the whole process group; the parent decides) and, on Linux, ask the
kernel to end them if the parent dies without cleaning up (SIGKILL).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from micmatch.errors import MicmatchError, ParameterError, require
from micmatch.outputs import raise_if_terminated

#: Seconds to wait for a dask scheduler to answer before giving up with one line.
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FileFailure:
    """A file that could not be processed, and why (one line that names the file once)."""

    path: str
    message: str

    def __str__(self) -> str:
        return self.message if self.path in self.message else f"{self.path}: {self.message}"


def _guarded(func: Callable[[Any], Any], item: Any) -> Any:
    try:
        return func(item)
    except MicmatchError as exc:
        return FileFailure(str(item), str(exc))
    except OSError as exc:  # permission, disk full, not a folder: one line naming the file
        return FileFailure(str(item), exc.strerror or str(exc))
    except (ValueError, RuntimeError, MemoryError) as exc:  # unexpected, but keep the batch going
        return FileFailure(str(item), f"unexpected {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class CaughtWarning:
    """A warning raised while one item was processed, carried back to the calling process."""

    category: type[Warning]
    message: str


@dataclass(frozen=True)
class _Done:
    """An item's result (or :class:`FileFailure`) and the warnings raised while computing it."""

    result: Any
    warnings: tuple[CaughtWarning, ...]


class _Call:
    """Picklable wrapper so worker processes and dask can run ``_guarded(func, item)``, catching its warnings."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func

    def __call__(self, item: Any) -> _Done:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _guarded(self.func, item)
        return _Done(result, tuple(CaughtWarning(w.category, str(w.message)) for w in caught))


def _unwrap(done: _Done) -> Any:
    """Raise an item's warnings again in this process, then return its result."""
    for w in done.warnings:
        warnings.warn(w.message, w.category, stacklevel=3)
    return done.result


def default_jobs() -> int:
    """Worker processes to use by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def map_files(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: bool = False,
    desc: str = "files",
) -> Iterator[tuple[Any, Any]]:
    """Apply ``func`` to every item; yield ``(item, result_or_FileFailure)`` in input order.

    Parameters
    ----------
    func : callable
        A picklable function (module-level, or ``functools.partial`` of one) when ``jobs > 1`` or a scheduler is used.
    jobs : int
        Local worker processes; 1 runs in this process.
    scheduler : str, optional
        Address of a dask.distributed scheduler (``tcp://host:8786``); needs the ``dask`` extra. Overrides ``jobs``.
    progress : bool
        Show a tqdm progress bar on stderr.
    """
    if jobs < 1:
        raise ParameterError(f"jobs={jobs} must be at least 1")
    call = _Call(func)
    bar = _progress(len(items), desc, progress)
    try:
        if scheduler:
            yield from _map_dask(call, items, scheduler, bar)
        elif jobs == 1 or len(items) <= 1:
            for item in items:
                raise_if_terminated()
                result = _unwrap(call(item))
                bar.update(1)
                yield item, result
        else:
            pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)), initializer=_worker_init)
            try:
                chunksize = max(1, min(16, len(items) // (jobs * 8)))
                for item, result in zip(items, pool.map(call, items, chunksize=chunksize)):
                    raise_if_terminated()
                    bar.update(1)
                    yield item, _unwrap(result)
            except BaseException:  # interrupted (or the consumer stopped): no worker may outlive this call
                _stop_pool(pool)
                raise
            pool.shutdown(wait=True)
    finally:
        bar.close()


def _worker_init() -> None:
    """Worker processes: leave SIGINT to the parent, and end with the parent even if it is killed."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the parent dies
        except (OSError, AttributeError):  # pragma: no cover - no prctl here
            pass


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel pending work, terminate the workers and wait for them (so none is left as an orphan)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5)
        if proc.is_alive():  # pragma: no cover - a worker stuck in uninterruptible I/O
            proc.kill()
            proc.join(timeout=5)


def _map_dask(call: _Call, items: Sequence[Any], scheduler: str, bar) -> Iterator[tuple[Any, Any]]:
    distributed = require("distributed", "dask")
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterError(f"--scheduler {scheduler}: cannot connect to the dask scheduler within "
                             f"{CONNECT_TIMEOUT_S:.0f} s ({reason})") from None
    with client:
        futures = client.map(call, list(items), pure=False)
        results: dict[int, Any] = {}
        index = {f.key: i for i, f in enumerate(futures)}
        next_i = 0
        for fut in distributed.as_completed(futures):
            results[index[fut.key]] = fut.result()
            bar.update(1)
            while next_i in results:
                yield items[next_i], _unwrap(results.pop(next_i))
                next_i += 1


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="file", disable=not enabled, file=sys.stderr, leave=False)

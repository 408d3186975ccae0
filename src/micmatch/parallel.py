"""Map work over files, in this process, in local worker processes, or on a dask.distributed cluster.

Results come back in input order, so reductions done by the caller (e.g. adding per-file statistics) are the
same whatever the number of workers. A file that fails becomes a :class:`FileFailure` and the batch goes on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from micmatch.errors import MicmatchError, ParameterError, require


@dataclass(frozen=True)
class FileFailure:
    """A file that could not be processed, and why (one line)."""

    path: str
    message: str

    def __str__(self) -> str:
        return self.message if self.message.startswith(self.path) else f"{self.path}: {self.message}"


def _guarded(func: Callable[[Any], Any], item: Any) -> Any:
    try:
        return func(item)
    except MicmatchError as exc:
        return FileFailure(str(item), str(exc))
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:  # unexpected, but keep the batch going
        return FileFailure(str(item), f"unexpected {type(exc).__name__}: {exc}")


class _Call:
    """Picklable wrapper so worker processes and dask can run ``_guarded(func, item)``."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func

    def __call__(self, item: Any) -> Any:
        return _guarded(self.func, item)


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
                result = call(item)
                bar.update(1)
                yield item, result
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(items))) as pool:
                chunksize = max(1, min(16, len(items) // (jobs * 8)))
                for item, result in zip(items, pool.map(call, items, chunksize=chunksize)):
                    bar.update(1)
                    yield item, result
    finally:
        bar.close()


def _map_dask(call: _Call, items: Sequence[Any], scheduler: str, bar) -> Iterator[tuple[Any, Any]]:
    distributed = require("distributed", "dask")
    with distributed.Client(scheduler) as client:
        futures = client.map(call, list(items), pure=False)
        results: dict[int, Any] = {}
        index = {f.key: i for i, f in enumerate(futures)}
        next_i = 0
        for fut in distributed.as_completed(futures):
            results[index[fut.key]] = fut.result()
            bar.update(1)
            while next_i in results:
                yield items[next_i], results.pop(next_i)
                next_i += 1


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="file", disable=not enabled, file=sys.stderr, leave=False)

"""The batch runner of the file commands: planned (input, output) pairs through one per-file function.

``correct``, ``correct --model`` and ``match`` write one output per input; ``features`` reads many inputs into
one output (its pairs have no output, ``None``). Each gets the same batch behaviour from :func:`run_batch`:

- with ``skip_existing``, outputs already there are kept and left out of the run (outputs appear only when
  complete, so this resumes an interrupted batch);
- the work runs through :func:`micmatch.parallel.map_files` (in this process, in worker processes, or on a dask
  cluster) with a progress bar on a terminal; results come back in input order;
- a file that fails prints one ``micmatch: error:`` line naming it, and the batch goes on;
- warnings raised while a file is processed (in a worker or here) are printed by this process as one
  ``micmatch: warning:`` line each, and kinds a batch sums up as one line per kind (:class:`WarningLines`);
- above-full-scale outputs of a correction are summarised once per batch, not once per file;
- an interruption (SIGINT, SIGTERM) stops the workers and propagates: the command group removes unfinished
  outputs and exits 130 or 143.

The command prints its own summary line from the returned :class:`BatchOutcome` and exits with
:attr:`BatchOutcome.exit_code`.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from micmatch.cli.common import WarningLines, fail_line, progress_enabled, warn_line

#: What an above-full-scale action did to the files it names (the ``action`` of a correction's file result).
OVERS_ACTIONS = {
    "scaled": "were scaled down as a whole to keep their format",
    "float": "were written as 32-bit float to keep samples above full scale",
    "clipped": "were clipped at full scale",
}


@dataclass(frozen=True)
class _Job:
    """One planned file; it prints as its input, so a failure names the input."""

    src: Path
    dst: Path | None

    def __str__(self) -> str:
        return str(self.src)


class _PairCall:
    """Picklable ``job -> work(src, dst)``."""

    def __init__(self, work: Callable[[Path, Path | None], Any]) -> None:
        self.work = work

    def __call__(self, job: _Job) -> Any:
        return self.work(job.src, job.dst)


@dataclass
class BatchOutcome:
    """What a batch did.

    Attributes
    ----------
    n_planned : int
        Pairs planned (the inputs found).
    n_skipped : int
        Pairs left out because their output was already there (``skip_existing``).
    n_failed : int
        Files that failed (each reported with one line).
    results : list of (input, output, result)
        The per-file function's results for the files that succeeded, in input order.
    """

    n_planned: int
    n_skipped: int
    n_failed: int = 0
    results: list[tuple[Path, Path | None, Any]] = field(default_factory=list)

    @property
    def n_run(self) -> int:
        """Files the batch tried (planned minus skipped)."""
        return self.n_planned - self.n_skipped

    @property
    def n_done(self) -> int:
        """Files processed successfully."""
        return self.n_run - self.n_failed

    @property
    def exit_code(self) -> int:
        """1 when any file failed, else 0."""
        return 1 if self.n_failed else 0

    def skipped_note(self) -> str:
        """`` (N already there, skipped)`` for a summary line, or ``""`` when nothing was skipped."""
        return f" ({self.n_skipped} already there, skipped)" if self.n_skipped else ""

    def report_failures(self) -> None:
        """Print ``N of M file(s) failed`` on stderr when any file failed."""
        if self.n_failed:
            click.echo(f"{self.n_failed} of {self.n_run} file(s) failed", err=True)


@dataclass
class Batch:
    """Planned pairs and those still to do; :func:`plan_batch` makes one, :meth:`run` runs it."""

    pairs: list[tuple[Path, Path | None]]
    todo: list[tuple[Path, Path | None]]

    def run(self, work: Callable[[Path, Path | None], Any], *, jobs: int = 1, scheduler: str | None = None,
            progress: bool | None = None, desc: str = "files", on_result: Callable[[Path, Path | None, Any], None]
            | None = None, summarize_overs: bool = False) -> BatchOutcome:
        """Run ``work(input, output)`` on every pair still to do; see :func:`run_batch`."""
        from micmatch.parallel import FileFailure, map_files

        outcome = BatchOutcome(n_planned=len(self.pairs), n_skipped=len(self.pairs) - len(self.todo))
        call = _PairCall(work)
        planned = [_Job(Path(src), None if dst is None else Path(dst)) for src, dst in self.todo]
        show = progress_enabled() if progress is None else progress
        overs: dict[str, list] = {}
        lines = WarningLines()
        with warnings.catch_warnings(record=True) as caught:  # map_files raises each file's warnings here
            warnings.simplefilter("always", UserWarning)  # other kinds follow the filters in force
            for job, result in map_files(call, planned, jobs=jobs, scheduler=scheduler, progress=show, desc=desc):
                lines.add_caught(caught)
                if isinstance(result, FileFailure):
                    outcome.n_failed += 1
                    fail_line(str(result))
                    continue
                outcome.results.append((job.src, job.dst, result))
                if summarize_overs and getattr(result, "action", "ok") != "ok":
                    overs.setdefault(result.action, []).append(result)
                if on_result is not None:
                    on_result(job.src, job.dst, result)
        lines.finish(outcome.n_run)
        for action, results in overs.items():
            warn_overs(action, results)
        return outcome


def plan_batch(pairs: Iterable[tuple[Path, Path | None]], *, skip_existing: bool = False) -> Batch:
    """Plan a batch: with ``skip_existing``, pairs whose output file exists are left out of the work."""
    pairs = list(pairs)
    todo = [(src, dst) for src, dst in pairs if not (skip_existing and dst is not None and Path(dst).is_file())]
    return Batch(pairs=pairs, todo=todo)


def run_batch(pairs: Sequence[tuple[Path, Path | None]], work: Callable[[Path, Path | None], Any], *,
              jobs: int = 1, scheduler: str | None = None, skip_existing: bool = False, progress: bool | None = None,
              desc: str = "files", on_result: Callable[[Path, Path | None, Any], None] | None = None,
              summarize_overs: bool = False) -> BatchOutcome:
    """Run ``work(input, output)`` over planned pairs, keeping going past bad files.

    Parameters
    ----------
    pairs : sequence of (input, output)
        From :func:`micmatch.cli.common.output_paths`; ``output`` may be ``None`` for work that writes no file
        of its own (``features``).
    work : callable
        ``work(input, output) -> result``; picklable (module level, or a ``functools.partial`` of one) when
        ``jobs > 1`` or ``scheduler`` is given. A :class:`~micmatch.errors.MicmatchError` or ``OSError`` it
        raises fails that file only.
    jobs, scheduler
        As for :func:`micmatch.parallel.map_files`.
    skip_existing : bool
        Keep outputs already there and leave their inputs out.
    progress : bool, optional
        Draw a progress bar labelled ``desc``; default: when stderr is a terminal.
    on_result : callable, optional
        ``on_result(input, output, result)`` for each success, in input order, as it arrives (per-file lines).
    summarize_overs : bool
        Results with an ``action`` other than ``"ok"`` (see :class:`micmatch.correct.FileResult`) are
        summarised by :func:`warn_overs`, one line per kind, after the batch.

    Returns
    -------
    BatchOutcome
    """
    return plan_batch(pairs, skip_existing=skip_existing).run(
        work, jobs=jobs, scheduler=scheduler, progress=progress, desc=desc, on_result=on_result,
        summarize_overs=summarize_overs)


def warn_overs(action: str, results: Sequence[Any]) -> None:
    """One warning line for the files of a batch whose correction exceeded full scale and got ``action``."""
    worst = max(r.peak for r in results)
    warn_line(f"{len(results)} file(s) exceeded full scale after correction (peak up to "
              f"{20 * math.log10(max(worst, 1e-12)):+.1f} dBFS) and {OVERS_ACTIONS[action]}; e.g. {results[0].input}")


def exit_with(outcome: BatchOutcome) -> None:
    """End the command with the batch's exit code when a file failed (``sys.exit(1)``)."""
    if outcome.exit_code:
        sys.exit(outcome.exit_code)
